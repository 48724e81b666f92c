"""Tracking at a stride (``--track-fps``): what it saves and what it costs in accuracy (docs/BENCHMARKS.md, "Tracking
at a stride").

The motion is 15 fps, but mediapipe would otherwise run on every source frame. On demo renders (30 fps, several
seeds; the renderer knows every keypoint), each setting builds the same clips on one worker: end-to-end source
frames per second per core (decode + track + camera + motion, the build's own stage timers), the median 2D wrist
error against the truth and the median camera-space 3D wrist error. Settings run interleaved per seed, in
alternating order, after a warm-up build.

Run: .venv/bin/python benchmarks/bench_tracking.py [--seeds 0,1,2] [--seconds 6] [--settings 0,15,10] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PREFECT_HOME", str(PROJECT / ".cache" / "prefect-bench"))
os.environ.setdefault("MPLCONFIGDIR", str(PROJECT / ".cache" / "matplotlib"))

from hiw import runtime  # noqa: E402

runtime.configure()

import numpy as np  # noqa: E402

from hiw.config import load_config  # noqa: E402
from hiw.demo.run import render_demo_input, score_tracking  # noqa: E402
from hiw.flows.build import build_plain  # noqa: E402

WORK = PROJECT / ".cache" / "bench-tracking"
STAGES = ("decode", "track", "camera", "motion")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--settings", default="0,15,10", help="--track-fps values (0: every frame)")
    parser.add_argument("--smoke", action="store_true", help="one short render, two settings")
    args = parser.parse_args()
    if args.smoke:
        args.seeds, args.seconds, args.settings = "0", 2.0, "0,15"
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = [float(s) for s in args.settings.split(",")]
    results: dict[float, dict[str, list]] = {s: {"frames": [], "seconds": [], "px": [], "cm": []} for s in settings}
    for i, seed in enumerate(seeds):
        video, gt = render_demo_input(WORK / f"render-{seed}", args.seconds, seed)
        if i == 0:  # warm-up: the first build in a process pays mediapipe's and torch's start-up in its timers
            build_plain(load_config(videos=str(video.parent), out=WORK / "warm-up", window_s=3.0, min_clip_s=1.0, workers=1))
            shutil.rmtree(WORK / "warm-up", ignore_errors=True)
        for fps in settings if i % 2 == 0 else settings[::-1]:  # alternate the order: the machine is shared
            out = WORK / f"build-{seed}-{fps:g}"
            shutil.rmtree(out, ignore_errors=True)
            cfg = load_config(videos=str(video.parent), out=out, window_s=3.0, min_clip_s=1.0, workers=1, track_fps=fps)
            summary = build_plain(cfg)
            accuracy = score_tracking(out, gt)
            r = results[fps]
            r["frames"].append(len(gt.keypoints_2d["left"]))
            r["seconds"].append(sum(summary.stage_times[s].seconds for s in STAGES if s in summary.stage_times))
            r["px"].append(np.mean(list(accuracy.wrist_error_px.values())))
            r["cm"].append(np.mean(list(accuracy.wrist_error_3d_cm.values())))
            print(f"  seed {seed}, --track-fps {fps:g}: {summary.stage_times['track'].calls} clips", flush=True)
    base = results[settings[0]]
    base_rate = sum(base["frames"]) / sum(base["seconds"])
    base_px = np.mean(base["px"])
    print(f"\n## tracking at a stride: {len(seeds)} demo renders of {args.seconds:g} s at 30 fps, one worker\n")
    print("--track-fps | source frames/s per core | speed-up | 2D wrist error (px) | vs every frame | 3D wrist error (cm)")
    print("---|---:|---:|---:|---:|---:")
    for fps in settings:
        r = results[fps]
        rate = sum(r["frames"]) / sum(r["seconds"])
        px = np.mean(r["px"])
        label = "0 (every frame)" if fps == 0 else f"{fps:g}"
        change = f"{100 * (px / base_px - 1):+.0f}%"
        print(f"{label} | {rate:.1f} | {rate / base_rate:.2f}x | {px:.2f} | {change} | {np.mean(r['cm']):.1f}")


if __name__ == "__main__":
    main()
