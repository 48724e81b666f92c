"""`hiw demo`: render a synthetic egocentric clip, build a dataset from it, and score the tracking.

The renderer knows where every keypoint really is, so the demo can say how often mediapipe saw
the hands and how far its wrists are from the truth: an end-to-end check with nothing downloaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from hiw.config import load_config
from hiw.demo.render import RenderGroundTruth, write_demo_video
from hiw.schemas import HANDS
from hiw.storage import open_catalog

DETECTION_TARGET = 0.8
DEMO_QUERY = """
SELECT printf('%.1f-%.1f s', c.start_s, c.end_s) AS span, c.status,
       round(c.both_hands_frac, 2) AS both_hands, t.text AS caption
FROM clips c LEFT JOIN captions t USING (clip_id)
ORDER BY c.start_s
"""


@dataclass(frozen=True)
class TrackingAccuracy:
    frames: int
    any_hand_frac: float
    both_hands_frac: float
    wrist_error_px: dict[str, float]  # median over frames where the side was tracked
    wrist_error_3d_cm: dict[str, float]  # median camera-space wrist error of the fitted motion (PnP depth included)
    handedness_agreement: float  # tracked frames whose wrist is nearer the same side's truth than the other's
    width: int

    def worst_wrist_error_frac(self) -> float:
        return max(self.wrist_error_px.values(), default=float("nan")) / self.width


def score_tracking(root: Path, gt: RenderGroundTruth) -> TrackingAccuracy:
    """Compare the built dataset at ``root`` with the renderer's ground truth."""
    with open_catalog(root) as con:
        clips = con.execute(
            "SELECT clip_id, start_frame, frames_decoded, frames_any_hand, frames_both_hands, source_fps FROM clips"
        ).fetchall()
        motion = {
            row[0]: row[1:]
            for row in con.execute(
                "SELECT clip_id, fps, left_valid, left_keypoints_2d, left_keypoints_3d, "
                "right_valid, right_keypoints_2d, right_keypoints_3d FROM motion"
            ).fetchall()
        }
    frames = sum(c[2] for c in clips)
    errors: dict[str, list[float]] = {side: [] for side in HANDS}
    errors_3d: dict[str, list[float]] = {side: [] for side in HANDS}
    same = other = 0
    for clip_id, start, _, _, _, source_fps in clips:
        if clip_id not in motion:
            continue
        fps, *per_side = motion[clip_id]
        for side, valid, keypoints, keypoints_3d in zip(HANDS, per_side[0::3], per_side[1::3], per_side[2::3]):
            valid = np.array(valid, bool)
            wrists = np.array(keypoints, np.float32).reshape(len(valid), 21, 3)[:, 0, :2]
            wrists_3d = np.array(keypoints_3d, np.float32).reshape(len(valid), 21, 3)[:, 0]
            source = start + np.round(np.arange(len(valid)) * source_fps / fps).astype(int)
            keep = valid & np.isfinite(wrists[:, 0]) & (source < len(gt.keypoints_2d[side]))  # filled frames have no 2D
            truth_same = gt.keypoints_2d[side][source[keep], 0]
            truth_other = gt.keypoints_2d["right" if side == "left" else "left"][source[keep], 0]
            d_same = np.linalg.norm(wrists[keep] - truth_same, axis=-1)
            d_other = np.linalg.norm(wrists[keep] - truth_other, axis=-1)
            errors[side] += d_same.tolist()
            # the demo camera is static, so the head-rotation-compensated frame is the camera frame
            in_range = valid & (source < len(gt.keypoints_3d[side]))
            d_3d = np.linalg.norm(wrists_3d[in_range] - gt.keypoints_3d[side][source[in_range], 0], axis=-1)
            errors_3d[side] += d_3d.tolist()
            same += int((d_same < d_other).sum())
            other += int((d_same >= d_other).sum())
    return TrackingAccuracy(
        frames=frames,
        any_hand_frac=sum(c[3] for c in clips) / max(frames, 1),
        both_hands_frac=sum(c[4] for c in clips) / max(frames, 1),
        wrist_error_px={side: float(np.median(e)) for side, e in errors.items() if e},
        wrist_error_3d_cm={side: float(np.median(e)) * 100 for side, e in errors_3d.items() if e},
        handedness_agreement=same / max(same + other, 1),
        width=gt.width,
    )


def render_demo_input(folder: Path, seconds: float, seed: int) -> tuple[Path, RenderGroundTruth]:
    folder.mkdir(parents=True, exist_ok=True)
    video = folder / f"demo_egocentric_seed{seed}.mp4"
    gt = write_demo_video(video, seconds=seconds, seed=seed)
    K = gt.intrinsics  # the renderer's camera, as a metadata sidecar: the build reads it instead of guessing a FOV
    sidecar = {"fx": K[0, 0], "fy": K[1, 1], "cx": K[0, 2], "cy": K[1, 2]}
    video.with_suffix(".camera.json").write_text(json.dumps({k: float(v) for k, v in sidecar.items()}))
    return video, gt


def print_accuracy(acc: TrackingAccuracy, console: Console) -> None:
    table = Table(title="tracking vs the renderer's ground truth", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    verdict = "ok" if acc.any_hand_frac >= DETECTION_TARGET else f"below the {DETECTION_TARGET:.0%} target"
    table.add_row("frames with a hand detected", f"{acc.any_hand_frac:.1%} of {acc.frames} ({verdict})")
    table.add_row("frames with both hands detected", f"{acc.both_hands_frac:.1%}")
    for side, px in acc.wrist_error_px.items():
        table.add_row(f"{side} wrist error (median)", f"{px:.1f} px ({px / acc.width:.1%} of width)")
    for side, cm in acc.wrist_error_3d_cm.items():
        table.add_row(f"{side} wrist 3D error (median, fitted motion)", f"{cm:.1f} cm")
    table.add_row("handedness agreement", f"{acc.handedness_agreement:.1%}")
    console.print(table)
    console.print(summary_line(acc), highlight=False)


def summary_line(acc: TrackingAccuracy) -> str:
    """The demo's last line, for scripts. The demo camera is static, so no world-frame error is measured (nan)."""
    cm = {side: acc.wrist_error_3d_cm.get(side, float("nan")) for side in HANDS}
    return f"wrist_3d_cm_left={cm['left']:.2f} wrist_3d_cm_right={cm['right']:.2f} world_wrist_cm=nan"


def run_demo(out: Path, seconds: float, seed: int, console: Console) -> TrackingAccuracy:
    from hiw.flows.build import build_flow
    from hiw.printing import print_rows
    from hiw.report import BuildProgress, print_summary

    console.print(f"rendering a {seconds:g} s synthetic egocentric clip (seed {seed})…", highlight=False)
    video, gt = render_demo_input(out / "inputs", seconds, seed)
    cfg = load_config(videos=str(video.parent), out=out, window_s=3.0, min_clip_s=1.0)
    with BuildProgress(console) as progress:
        summary = build_flow(cfg, progress)
    print_summary(summary, console)
    with open_catalog(out) as con:
        cursor = con.execute(DEMO_QUERY)
        console.print(f"[bold]query:[/] {' '.join(DEMO_QUERY.split())}", highlight=False)
        print_rows([d[0] for d in cursor.description], cursor.fetchall(), "table", console)
    accuracy = score_tracking(out, gt)
    console.print(f'try: hiw query --root {out} "SELECT * FROM captions"', highlight=False)
    print_accuracy(accuracy, console)  # its last line is the one scripts read
    return accuracy
