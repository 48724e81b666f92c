"""Motion accuracy and cost (figures in docs/BENCHMARKS.md).

- F-PHAB (real 3D hand motion): open-skeleton fit error; robustness to 5 mm noise + 20% dropped
  frames through the build's motion pipeline; parameter round trip.
- Cost, side by side in one run on the fixture video's own tracks: mediapipe per frame, fitting per
  frame, and the whole camera and motion stages per frame.
- World frame on the fixture: head rotation found, and what removing it does to the hands' paths.

Run: .venv/bin/python benchmarks/bench_motion.py [--stride N] [--repeats N] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MPLCONFIGDIR", str(PROJECT / ".cache" / "matplotlib"))

from hiw import runtime  # noqa: E402

runtime.configure()

import numpy as np  # noqa: E402

from hiw.config import BuildConfig, load_config  # noqa: E402
from hiw.flows import stages  # noqa: E402
from hiw.flows.settings import motion_settings  # noqa: E402
from hiw.motion.camera import camera_space_keypoints, compensate_rotation  # noqa: E402
from hiw.motion.evaluate import fit_error, robustness, roundtrip  # noqa: E402
from hiw.motion.fit import fit_hand  # noqa: E402
from hiw.motion.hand_model import to_mano21  # noqa: E402
from hiw.motion.open_skeleton import OpenSkeleton  # noqa: E402
from hiw.motion.pipeline import plausible_frames  # noqa: E402
from hiw.trackers.precomputed import read_fphab  # noqa: E402
from hiw.video.probe import probe_video  # noqa: E402

FIXTURES = PROJECT.parent / "shared" / "fixtures"
VIDEO = FIXTURES / "video" / "ego_kitchen_plate.mp4"
FPHAB = FIXTURES / "pose3d" / "fphab"


def fphab_accuracy(stride: int, poses: int = 500) -> None:
    build = motion_settings(BuildConfig())  # the fit, gap filling and smoothing a build runs
    every = sorted(FPHAB.glob("Subject_*/*/*/skeleton.txt"))
    files = every[::stride]
    fit_mm, noisy_mm, out_mm, coverage, skipped = [], [], [], [], 0
    started = time.perf_counter()
    for i, path in enumerate(files):
        joints = read_fphab(path) if path.stat().st_size else None
        if joints is None or len(joints) < 10:
            skipped += 1
            continue
        fit_mm.append(fit_error(joints, build.fit)[0])
        n_mm, o_mm, cov = robustness(joints, noise_mm=5.0, drop=0.2, settings=build, seed=i)
        noisy_mm.append(n_mm), out_mm.append(o_mm), coverage.append(cov)
        if (i + 1) % 50 == 0:
            print(f"  {i + 1}/{len(files)} sequences, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print(f"F-PHAB sequences: {len(fit_mm)} (every {stride}th of {len(every)}; {skipped} empty or < 10 frames skipped)")
    print(
        f"  fit error (open skeleton, keypoints -> parameters -> FK): mean {np.mean(fit_mm):.2f} mm, "
        f"p95 {np.percentile(fit_mm, 95):.2f} mm"
    )
    ratio = np.mean(out_mm) / np.mean(noisy_mm)
    print(
        f"  robustness (5 mm noise, 20% frames dropped): input {np.mean(noisy_mm):.2f} mm -> output {np.mean(out_mm):.2f} mm, "
        f"ratio {ratio:.3f} (per sequence p95 {np.percentile(np.array(out_mm) / np.array(noisy_mm), 95):.2f}), "
        f"frames returned {np.mean(coverage):.1%}"
    )
    for twist in (0.0, 10.0):
        joint_deg, glob_deg = roundtrip(build.fit, poses, seed=1, max_twist_deg=twist)
        print(
            f"  round trip, {poses} random poses, twist up to {twist:g} deg: "
            f"joints {joint_deg:.3f} deg, global {glob_deg:.4f} deg"
        )


def cost_and_world_frame(repeats: int) -> None:
    cfg = load_config(videos=str(VIDEO), window_s=4.0, min_both_hands_frac=0.5, min_motion_s=0.5)
    video = probe_video(VIDEO)
    (clip,), _ = stages.plan(video, [], cfg)
    frames = stages.decode(clip, cfg)
    K = stages.intrinsics(clip, cfg)
    track_s, fit_s, camera_s, motion_s = [], [], [], []
    for _ in range(repeats):  # interleaved, so both sides see the same machine load
        t = time.perf_counter()
        tracks = stages.track(frames, clip, cfg)
        track_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        rot = stages.camera(frames, tracks, clip, cfg)
        camera_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        record = stages.motion(tracks, (K, rot), clip, cfg, "bench")
        motion_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        for side in ("left", "right"):  # the fitting alone, on the same camera-space keypoints
            hand = tracks.hands[side]
            kp2d, kp3d = hand.keypoints_2d.reshape(-1, 21, 3), hand.keypoints_3d.reshape(-1, 21, 3)
            space = camera_space_keypoints(kp2d, kp3d, hand.valid, K)
            keypoints = to_mano21(space.keypoints, "openpose21")
            ok = plausible_frames(keypoints, space.valid)
            fit_hand(OpenSkeleton.calibrated(side, keypoints, ok), keypoints, ok, motion_settings(cfg).fit)
        fit_s.append(time.perf_counter() - t)
    n = len(frames)
    per = {
        name: statistics.median(v) / n * 1000
        for name, v in (("track", track_s), ("fit", fit_s), ("camera", camera_s), ("motion", motion_s))
    }
    print(f"Cost on {VIDEO.name} ({n} frames, both hands, median of {repeats}, ms per source frame):")
    for name, ms in per.items():
        print(f"  {name:7s} {ms:6.2f} ms   ratio to tracking {ms / per['track']:.3f}")

    print(
        f"World frame on {VIDEO.name}: head rotation over the clip {rot.total_angle_deg():.1f} deg "
        f"(max {rot.max_angle_deg():.1f}), pairs solved {rot.ok[1:].mean():.0%}"
    )
    for side in ("left", "right"):
        hand = tracks.hands[side]
        space = camera_space_keypoints(hand.keypoints_2d.reshape(-1, 21, 3), hand.keypoints_3d.reshape(-1, 21, 3), hand.valid, K)
        wrist = space.keypoints[:, 0]
        fixed = compensate_rotation(space.keypoints, rot.rotations)[:, 0]
        ok = space.valid
        spread_cam = np.linalg.norm(wrist[ok] - wrist[ok].mean(0), axis=-1).mean() * 100
        spread_fixed = np.linalg.norm(fixed[ok] - fixed[ok].mean(0), axis=-1).mean() * 100
        direction = [np.degrees(np.arccos(np.clip(w[2] / np.linalg.norm(w), -1, 1))) for w in (wrist[ok][-1], fixed[ok][-1])]
        print(
            f"  {side} wrist: mean distance from its mean position {spread_cam:.1f} cm in the camera frame, "
            f"{spread_fixed:.1f} cm head-rotation compensated; angle off the first camera's axis at its last frame "
            f"{direction[0]:.0f} -> {direction[1]:.0f} deg"
        )
    print(
        f"  stored motion: frame {record.coordinate_frame}, "
        f"jitter {record.jitter_translation:.1f} m/s^2 / {record.jitter_rotation:.1f} rad/s^2"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stride", type=int, default=1, help="use every Nth F-PHAB sequence")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="4 sequences, 1 repeat, 20 poses: checks it runs")
    args = parser.parse_args()
    if not FPHAB.is_dir() or not VIDEO.is_file():
        sys.exit(f"fixtures missing: {FPHAB} and {VIDEO} are needed (see ../shared/fixtures/FIXTURES.md)")
    cost_and_world_frame(1 if args.smoke else args.repeats)
    fphab_accuracy(200 if args.smoke else args.stride, 20 if args.smoke else 500)


if __name__ == "__main__":
    main()
