"""What the curator browser costs (figures in docs/BENCHMARKS.md, "Curator browser").

1. Per-clip cost of ``hiw browse`` on two datasets built here: a rendered egocentric video (frames decoded from the
   source and drawn over), and HaWoR-style track files (no pixels: pages, 3D data and the index only). A first run
   renders every clip; a rerun with nothing changed reuses them all; a rebuild that changes one track file's motion
   re-renders only that file's clips.
2. The index at paper scale: data/clips.js grown to 32,000 clips (copies of the real rows under new ids) and opened
   in Debian's Chromium: load to first page shown, one filter, one sort, one page turn (``performance.now`` in the
   page). Skipped, with a line saying so, where Chromium or Playwright is missing.

Run: .venv/bin/python benchmarks/bench_browse.py [--clips 32000] [--files 40] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PREFECT_HOME", str(PROJECT / ".cache" / "prefect-bench"))
os.environ.setdefault("MPLCONFIGDIR", str(PROJECT / ".cache" / "matplotlib"))
sys.path.insert(0, str(PROJECT / "tests"))

from hiw import runtime  # noqa: E402

runtime.configure()

import numpy as np  # noqa: E402

from conftest import hawor_arrays  # noqa: E402
from hiw.browse.site import build_site  # noqa: E402
from hiw.config import load_config  # noqa: E402
from hiw.demo.run import render_demo_input  # noqa: E402
from hiw.flows.build import build_plain  # noqa: E402

WORK = PROJECT / ".cache" / "bench-browse"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def per_clip(label: str, root: Path, site: Path) -> None:
    shutil.rmtree(site, ignore_errors=True)
    first = build_site(root, site)
    again = build_site(root, site)
    print(
        f"{label} | {first.clips} | {1000 * first.seconds / first.clips:.0f} ms | "
        f"{1000 * again.seconds / again.clips:.1f} ms ({again.reused} reused)",
        flush=True,
    )


def track_dataset(files: int, seconds: float) -> tuple[Path, Path]:
    inputs, root = WORK / "tracks-in", WORK / "tracks-out"
    shutil.rmtree(inputs, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    inputs.mkdir(parents=True)
    for i in range(files):
        np.savez(inputs / f"take_{i:03d}.npz", **hawor_arrays(i, seconds))
    build_plain(load_config(videos=str(inputs), out=root, tracker="precomputed", window_s=3.0, workers=2))
    return inputs, root


def rebuild_one(inputs: Path, root: Path, site: Path) -> None:
    data = dict(np.load(inputs / "take_000.npz"))
    data["pred_trans"] = data["pred_trans"] + np.float32(0.01)  # one file's motion moves by 1 cm
    np.savez(inputs / "take_000.npz", **data)
    build_plain(load_config(videos=str(inputs), out=root, tracker="precomputed", window_s=3.0, workers=2))
    summary = build_site(root, site)
    print(f"\nafter a rebuild that changed one file: {summary.describe()}", flush=True)


def index_at_scale(site: Path, clips: int) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("index at scale skipped: playwright is not installed (pip install -e '.[test]')")
        return
    if not Path(CHROMIUM).exists():
        print(f"index at scale skipped: no Chromium at {CHROMIUM} (make chromium)")
        return
    text = (site / "data" / "clips.js").read_text()
    rows = json.loads(text[text.index("=") + 1 : text.rindex(";")])
    grown = [dict(rows[i % len(rows)], id=f"c_{i:016x}") for i in range(clips)]
    scaled = WORK / "site-scaled"
    shutil.rmtree(scaled, ignore_errors=True)
    shutil.copytree(site, scaled)
    (scaled / "data" / "clips.js").write_text("window.HIW_CLIPS = " + json.dumps(grown, separators=(",", ":")) + ";\n")
    size = (scaled / "data" / "clips.js").stat().st_size
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        began = time.perf_counter()
        page.goto((scaled / "index.html").as_uri())
        page.wait_for_function(f"document.getElementById('clip-count').textContent === '{clips}'")
        load = time.perf_counter() - began
        timings = page.evaluate(
            """() => {
                const form = document.getElementById("filters"), out = {};
                const time = (name, change) => { const t = performance.now(); change(); out[name] = performance.now() - t; };
                const set = (field, value) => { form.elements[field].value = value; form.dispatchEvent(new Event("input")); };
                const verb = form.elements.verb.options[1] ? form.elements.verb.options[1].value : "";
                time("filter by status", () => set("status", "accepted"));
                time("filter by verb", () => set("verb", verb));
                time("clear filters", () => { set("verb", ""); set("status", ""); });
                time("sort by jitter", () => set("sort", "jitter"));
                time("next page", () => document.getElementById("next").click());
                return out;
            }"""
        )
        browser.close()
    print(f"\nindex with {clips:,} clips (data/clips.js {size / 1e6:.1f} MB, 100 rows a page), in Chromium:")
    print(f"- open to first page shown: {1000 * load:.0f} ms")
    for name, ms in timings.items():
        print(f"- {name}: {ms:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=32000, help="clips in the scaled index")
    parser.add_argument("--files", type=int, default=40, help="track files (4 clips of 3 s each)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script runs")
    args = parser.parse_args()
    if args.smoke:
        args.clips, args.files = 500, 3
    WORK.mkdir(parents=True, exist_ok=True)
    print("## per-clip cost of hiw browse (this 2-core CPU)\n")
    print("dataset | clips | first run, per clip | rerun, nothing changed, per clip\n---|---:|---:|---:")
    video_root = WORK / "video-out"
    shutil.rmtree(video_root, ignore_errors=True)
    video, _ = render_demo_input(WORK / "video-in", 3.0 if args.smoke else 12.0, seed=0)
    build_plain(load_config(videos=str(video.parent), out=video_root, window_s=3.0, min_clip_s=1.0, workers=1))
    per_clip("rendered video (frames decoded and drawn)", video_root, WORK / "site-video")
    inputs, root = track_dataset(args.files, 12.0)
    per_clip("track files (no pixels)", root, WORK / "site-tracks")
    rebuild_one(inputs, root, WORK / "site-tracks")
    index_at_scale(WORK / "site-tracks", args.clips)


if __name__ == "__main__":
    main()
