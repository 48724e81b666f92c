"""Build-flow benchmark on the real fixture video (figures in docs/BENCHMARKS.md).

Measures, side by side in one process:
- time per stage of the build (inside the stage functions);
- tracker throughput inside the Prefect flow / a bare mediapipe loop over the same frames;
- whole-flow wall time through Prefect / the same stage functions without Prefect
  (Prefect's server start-up, and its fixed cost per flow run measured with an empty flow, with and
  without the heartbeat thread that ``local_run`` turns off on a temporary server, are reported separately).

Every build writes to a fresh root, so both sides track every clip (a reused root would reuse the first build).

Run: make bench   (or .venv/bin/python benchmarks/bench_build.py [--repeats N] [--video PATH] [--smoke])
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PREFECT_HOME", str(PROJECT / ".cache" / "prefect-bench"))
os.environ.setdefault("MPLCONFIGDIR", str(PROJECT / ".cache" / "matplotlib"))
os.environ.pop("PREFECT_API_URL", None)

from hiw import runtime  # noqa: E402

runtime.configure()

from hiw.config import load_config  # noqa: E402
from hiw.flows import settings, stages  # noqa: E402
from hiw.flows.build import build_flow, build_plain  # noqa: E402
from hiw.flows.runners import local_run  # noqa: E402
from hiw.video.clips import plan_clips  # noqa: E402
from hiw.video.probe import probe_video  # noqa: E402

FIXTURE = PROJECT.parent / "shared" / "fixtures" / "video" / "ego_kitchen_plate.mp4"


def bare_mediapipe_fps(cfg, video: Path) -> float:
    """mediapipe Hands over the same decoded frames, nothing else: the tracker's own speed."""
    import mediapipe as mp

    from hiw.trackers.mediapipe_hands import native_noise_dropped

    clips, _ = plan_clips(probe_video(video), [], settings.clip_plan(cfg))
    frames = [stages.decode(c, cfg) for c in clips]
    n, start = 0, time.perf_counter()
    for clip_frames in frames:
        with mp.solutions.hands.Hands(
            static_image_mode=False,
            max_num_hands=2,
            model_complexity=cfg.model_complexity,
            min_detection_confidence=cfg.min_detection_confidence,
            min_tracking_confidence=cfg.min_tracking_confidence,
        ) as hands:
            with native_noise_dropped():  # the graph starts on the first frame, as in the tracker
                hands.process(clip_frames[0])
            for frame in clip_frames[1:]:
                hands.process(frame)
            n += len(clip_frames)
    return n / (time.perf_counter() - start)


def empty_flow_s(heartbeats: bool = False) -> float:
    """Wall time of an empty flow run: Prefect's fixed cost per run (the first call also starts the server);
    as a build runs it (``local_run``: no heartbeat thread on a temporary server), or with Prefect's default."""
    from contextlib import nullcontext

    from prefect import flow

    @flow(name="hiw-bench-empty")
    def empty() -> int:
        return 1

    start = time.perf_counter()
    with nullcontext() if heartbeats else local_run():
        empty()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=FIXTURE)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="one repeat: checks the script runs end to end (make test)")
    args = parser.parse_args()
    if args.smoke:
        args.repeats = 1
    if not args.video.exists():
        print(f"skipped: fixture video missing: {args.video}", file=sys.stderr)
        return 0
    work = Path(tempfile.mkdtemp(prefix="hiw-bench-"))
    (work / "in").mkdir()
    shutil.copy(args.video, work / "in" / args.video.name)

    def config(out: str):  # both hands are in 61% of the fixture's frames: let it through, so every stage runs
        return load_config(videos=str(work / "in"), out=work / out, workers=1, min_both_hands_frac=0.5, min_motion_s=0.5)

    cfg = config("bare")
    startup = empty_flow_s()
    if not args.smoke:
        build_plain(config("warm-up"))  # models and codecs load once per process: on neither side's clock
    flow_wall, plain_wall, flow_track, bare, fixed, beating = [], [], [], [], [], []
    last = None
    for i in range(args.repeats):  # interleaved, so machine noise hits both sides alike
        t = time.perf_counter()
        build_plain(config(f"plain-{i}"))
        plain_wall.append(time.perf_counter() - t)
        t = time.perf_counter()
        last = build_flow(config(f"flow-{i}"))
        flow_wall.append(time.perf_counter() - t)
        track = last.stage_times["track"]
        flow_track.append(track.items / track.seconds)
        bare.append(bare_mediapipe_fps(cfg, args.video))
        fixed.append(empty_flow_s())
        beating.append(empty_flow_s(heartbeats=True))
    shutil.rmtree(work, ignore_errors=True)

    med = statistics.median
    print(
        f"# hiw build benchmark: {args.video.name}, {last.frames_tracked} frames, {last.clips_planned} clip(s), "
        f"workers={cfg.workers}, median of {args.repeats}\n"
    )
    print("| stage | calls | seconds | frames/s |\n|---|---:|---:|---:|")
    for stage, t in last.stage_times.items():
        rate = f"{t.items / t.seconds:.0f}" if t.items and t.seconds else ""
        print(f"| {stage} | {t.calls} | {t.seconds:.3f} | {rate} |")
    print()
    flow_s, plain_s, fixed_s = med(flow_wall), med(plain_wall), med(fixed)
    print(f"prefect ephemeral server start-up (first flow run): {startup:.1f} s")
    print(
        f"prefect fixed cost per flow run (empty flow, server up): {fixed_s:.2f} s as builds run it (no heartbeat thread); "
        f"{med(beating):.2f} s with Prefect's default heartbeats"
    )
    print(
        f"tracker fps inside the flow: {med(flow_track):.1f}; bare mediapipe loop: {med(bare):.1f}; "
        f"ratio {med(flow_track) / med(bare):.3f} (target >= 0.85)"
    )
    print(
        f"whole build wall: Prefect flow {flow_s:.2f} s; plain stage calls {plain_s:.2f} s; ratio {flow_s / plain_s:.3f}; "
        f"without the fixed per-run cost {(flow_s - fixed_s) / plain_s:.3f} (target <= 1.05)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
