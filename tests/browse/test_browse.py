"""The curator browser in a real browser (Debian's Chromium driven by Playwright), the overlay preview video, and
the incremental rerun.

The dataset: a rendered egocentric clip (mediapipe tracks it) narrated with hostile text, a video without hands
(its clips are rejected), a VLM annotation against the loopback OpenAI server (captions, QA, PCoT answers, stored
frames) and a SHIFT reconstruction. Chromium comes from the project's set-up (``make test`` installs it); where it
cannot be installed these tests skip and say so."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import hawor_arrays, textured_frames, write_video
from hiw.browse.media import HAND_COLOURS
from hiw.browse.preview import write_preview
from hiw.browse.site import build_site
from hiw.cli import app
from hiw.config import load_config
from hiw.demo.run import render_demo_input
from hiw.flows.build import build_plain
from hiw.storage import read_table
from hiw.testing.openai_server import OpenAIServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HOSTILE = "C lifts the plate <script>window.pwned = 1</script> \"quoted\" & 'single' <b>bold</b>"
BACKGROUND = (16, 20, 24)  # the 3D view's clear colour


def cli(*args) -> object:
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    inputs = tmp_path_factory.mktemp("browse-in")
    video, _ = render_demo_input(inputs, seconds=3.0, seed=1)
    write_video(inputs / "no_hands.mp4", textured_frames(60, 320, 240, seed=3))
    (inputs / "narrations.csv").write_text(
        f'video,start_s,end_s,text\n{video.name},0.0,3.0,"{HOSTILE.replace(chr(34), 2 * chr(34))}"\nno_hands.mp4,,,\n'
    )
    out = tmp_path_factory.mktemp("browse-out")
    with OpenAIServer(model="loopback-vlm") as server:
        cfg = load_config(
            manifest=inputs / "narrations.csv",
            out=out,
            window_s=2.0,
            min_clip_s=1.0,
            min_both_hands_frac=0.5,
            workers=1,
            vlm="openai",
            vlm_url=server.url,
            vlm_model="loopback-vlm",
        )
        summary = build_plain(cfg)
    assert summary.clips_accepted >= 1 and summary.clips_rejected >= 1, summary.rejects_by_reason
    run = tmp_path_factory.mktemp("shift") / "run"
    for args in (
        ("shift", "train", "--data", out, "--steps", "3", "--run", run),
        ("shift", "tokenize", "--run", run, "--data", out),
        ("shift", "reconstruct", "--run", run, "--out", out),
    ):
        result = cli(*args)
        assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def site(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site") / "browser"
    summary = build_site(dataset, out)
    assert summary.rendered == summary.clips and summary.reused == 0
    return out


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the test extra) is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


class Page:
    """A page with its console errors and uncaught exceptions collected."""

    def __init__(self, browser, shots: Path):
        self.page = browser.new_page(viewport={"width": 1300, "height": 900})
        self.errors: list[str] = []
        self.shots = shots
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.errors.append(f"dialog: {d.message}"), d.dismiss()))

    def open(self, path: Path, shot: str):
        self.page.goto(path.as_uri())
        self.page.wait_for_load_state("load")
        self.page.wait_for_timeout(200)
        self.page.screenshot(path=str(self.shots / f"{shot}.png"), full_page=True)
        return self.page


def drawn_pixels(page, canvas: str) -> int:
    """Pixels of a canvas that are not its background colour."""
    return page.evaluate(
        """([id, bg]) => {
            const c = document.getElementById(id);
            const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < d.length; i += 4) {
                if (Math.abs(d[i] - bg[0]) + Math.abs(d[i + 1] - bg[1]) + Math.abs(d[i + 2] - bg[2]) > 60) n++;
            }
            return n;
        }""",
        [canvas, list(BACKGROUND)],
    )


def test_the_index_lists_and_filters_the_clips(dataset, site, browser, tmp_path):
    clips = read_table(dataset, "clips").to_pylist()
    rejected = [c for c in clips if c["status"] == "rejected"]
    view = Page(browser, tmp_path)
    page = view.open(site / "index.html", "index")
    assert page.text_content("#clip-count") == str(len(clips))
    assert page.locator("#rows tr").count() == len(clips)
    page.select_option("select[name=status]", "rejected")
    assert page.text_content("#clip-count") == str(len(rejected)) != str(len(clips))
    reasons = {r for c in rejected for r in [c["reject_reason"]] if r}
    assert all(r in page.text_content("#rows") for r in reasons)
    page.select_option("select[name=status]", "")
    page.fill("input[name=text]", "lifts the plate")
    narrated = [c for c in clips if c["narration"]]
    assert page.text_content("#clip-count") == str(len(narrated)) != str(len(clips))
    assert "<script>" in page.text_content("#rows")  # the narration, shown as text
    assert page.evaluate("window.pwned") is None
    assert view.errors == []


def test_a_clip_page_shows_frames_captions_and_draws_its_hands(dataset, site, browser, tmp_path):
    motion = {r["clip_id"]: r for r in read_table(dataset, "motion").to_pylist()}
    clip = next(c for c in read_table(dataset, "clips").to_pylist() if c["narration"] and c["clip_id"] in motion)
    view = Page(browser, tmp_path)
    page = view.open(site / "clips" / f"{clip['clip_id']}.html", "clip")
    frames = page.locator("#frames img")
    assert frames.count() >= 2
    assert all(page.evaluate("(img) => img.naturalWidth", frames.nth(i).element_handle()) > 0 for i in range(frames.count()))
    captions = read_table(dataset, "captions").to_pylist()
    mine = [c for c in captions if c["clip_id"] == clip["clip_id"]]
    assert {"narration", "kinematic", "pcot_summary"} <= {c["kind"] for c in mine}
    table = page.text_content("table.captions")
    assert all(c["text"] in table for c in mine)  # every caption, as text: the hostile one included
    assert page.text_content("#narration") == HOSTILE and page.evaluate("window.pwned") is None
    assert page.locator("table.captions b").count() == 0  # "<b>" in a caption is not markup
    assert "action_object" in page.text_content("main")  # the PCoT answers
    assert drawn_pixels(page, "hands3d") > 200
    assert drawn_pixels(page, "recon3d") > 200  # the SHIFT reconstruction beside it
    first = page.evaluate("document.getElementById('frame').value")
    page.wait_for_timeout(400)
    assert page.evaluate("document.getElementById('frame').value") != first  # it plays
    assert view.errors == []


def test_a_rejected_clip_and_its_video_page(dataset, site, browser, tmp_path):
    clip = next(c for c in read_table(dataset, "clips").to_pylist() if c["status"] == "rejected")
    view = Page(browser, tmp_path)
    page = view.open(site / "clips" / f"{clip['clip_id']}.html", "rejected")
    assert clip["reject_reason"].split("/")[-1] in page.text_content("table.rejects")
    assert page.locator("#hands3d").count() == 0
    page = view.open(site / "videos.html", "videos")
    videos = {c["video_id"] for c in read_table(dataset, "clips").to_pylist()}
    assert page.locator("tbody tr").count() == len(videos)
    page.click(f"a[href='videos/{clip['video_id']}.html']")
    page.wait_for_load_state("load")
    page.screenshot(path=str(tmp_path / "video.png"), full_page=True)
    spans = page.locator("#timeline a")
    clips_of_video = [c for c in read_table(dataset, "clips").to_pylist() if c["video_id"] == clip["video_id"]]
    assert spans.count() == len(clips_of_video)
    assert view.errors == []


def test_a_rerun_renders_only_what_changed(dataset, site):
    again = build_site(dataset, site)
    assert again.rendered == 0 and again.reused == again.clips and again.removed == 0
    (clip_page,) = list((site / "clips").glob("*.html"))[:1]
    clip_page.unlink()  # a page lost: made again, alone
    third = build_site(dataset, site)
    assert third.rendered == 1 and third.reused == third.clips - 1 and clip_page.exists()


def test_the_preview_video_draws_keypoints_where_the_table_says(dataset, tmp_path):
    motion = read_table(dataset, "motion").to_pylist()
    clips = {c["clip_id"]: c for c in read_table(dataset, "clips").to_pylist()}
    row = max(motion, key=lambda r: sum(r["left_valid"]) + sum(r["right_valid"]))
    clip = clips[row["clip_id"]]
    out = tmp_path / "clip.mp4"
    written = write_preview(dataset, row["clip_id"], out)
    capture = cv2.VideoCapture(str(out))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    assert len(frames) == written["frames"] == clip["end_frame"] - clip["start_frame"]
    assert frames[0].shape[1] == written["width"] and written["video_width"] == 640 or clip["width"] < 640
    scale = written["video_width"] / clip["width"]
    hits = checked = 0
    for i in range(0, len(frames), 5):
        k = min(round(i * row["fps"] / clip["source_fps"]), row["n_frames"] - 1)
        for side in ("left", "right"):
            if not row[f"{side}_valid"][k]:
                continue
            wrist = np.array(row[f"{side}_keypoints_2d"][k][:2]) * scale
            x, y = np.round(wrist).astype(int)
            if not (0 <= x < written["video_width"] and 0 <= y < written["height"]):
                continue
            checked += 1
            hits += np.abs(frames[i][y, x].astype(int) - HAND_COLOURS[side]).sum() < 90
    assert checked >= 4 and hits >= 0.9 * checked, (hits, checked)


def test_the_cli_writes_the_site_and_serves_it(dataset, tmp_path):
    import httpx

    from hiw.browse.serve import make_server

    result = cli("browse", "--root", dataset, "--out", tmp_path / "site")
    assert result.exit_code == 0 and "browser of v1" in result.output, result.output
    server = make_server(tmp_path / "site", port=0)
    import threading

    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        response = httpx.get(f"http://{host}:{port}/index.html")
        assert response.status_code == 200 and 'id="clip-count"' in response.text
    finally:
        server.shutdown()
        server.server_close()
    for args, message in (
        (("preview", "--root", dataset, "--clip", "c_nope", "--out", tmp_path / "x.mp4"), "no clip 'c_nope'"),
        (("preview", "--root", dataset, "--clip", "c_nope", "--out", tmp_path / "x.gif"), "must be an .mp4"),
        (("browse", "--root", tmp_path / "nowhere", "--out", tmp_path / "s2"), "nowhere"),
    ):
        result = cli(*args)
        assert result.exit_code == 2 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1, result.output


def test_a_build_publishes_its_browser_and_links_it(tmp_path):
    """``--browse`` on a Prefect build of track files (no pixels): the site is written and the run's artifact links it."""
    from prefect.artifacts import Artifact

    from hiw.flows.build import REPORT_KEY, build_flow

    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(2):
        np.savez(inputs / f"take_{i}.npz", **hawor_arrays(i, 6.0))
    cfg = load_config(videos=str(inputs), out=tmp_path / "out", tracker="precomputed", window_s=3.0, browse=tmp_path / "site")
    summary = build_flow(cfg)
    index = tmp_path / "site" / "index.html"
    assert summary.clips_accepted == 4 and summary.browser == str(index) and index.is_file()
    assert len(list((tmp_path / "site" / "clips").glob("*.html"))) == 4
    # in a thread of its own: Playwright's sync API leaves an event loop on this one, where Prefect's sync calls
    # would hand back a coroutine
    with ThreadPoolExecutor(1) as pool:
        artifact = pool.submit(Artifact.get, REPORT_KEY).result()
    assert index.as_uri() in artifact.data
