"""Kinematic facts of a clip: what the tracks alone say about each hand.

Image-plane motion is converted to approximate metres with the hand's own size: the metric
wrist-to-middle-knuckle length (3D keypoints) over its length in pixels (2D keypoints). It ignores
foreshortening, so speeds are approximate, and labelled so in captions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hiw.schemas import N_KEYPOINTS, MotionRecord

WRIST, MIDDLE_MCP = 0, 9
FINGERTIPS = [4, 8, 12, 16, 20]
MOVING_SPEED = 0.03  # m/s of mean wrist speed below which a hand counts as still
MIN_DISPLACEMENT = 0.03  # m of net travel needed to name a direction
OPENNESS_CHANGE = 0.15  # relative change of hand openness that counts as closing/opening
SCALE_CHANGE = 1.15  # apparent hand size ratio that counts as moving toward/away from the camera


@dataclass
class HandSequence:
    """One hand's keypoints at the canonical rate: what the facts are computed from."""

    valid: np.ndarray  # (T,) bool
    keypoints_2d: np.ndarray  # (T, 21, 3) source pixels + confidence, NaN where unknown
    keypoints_3d: np.ndarray  # (T, 21, 3) metres

    @classmethod
    def from_motion(cls, motion: MotionRecord, side: str) -> HandSequence:
        return cls(
            valid=getattr(motion, f"{side}_valid"),
            keypoints_2d=getattr(motion, f"{side}_keypoints_2d").reshape(-1, N_KEYPOINTS, 3),
            keypoints_3d=getattr(motion, f"{side}_keypoints_3d").reshape(-1, N_KEYPOINTS, 3),
        )


@dataclass(frozen=True)
class HandFacts:
    side: str
    visible_frac: float
    moving: bool = False
    speed_m_s: float = 0.0
    directions: tuple[str, ...] = ()
    grip: str | None = None  # "grasp", "release", "grasp_release", "release_grasp"
    directions_known: bool = True  # False: 3D-only tracks in a world frame whose axes have no names


def hand_facts(side: str, seq: HandSequence, fps: float) -> HandFacts:
    """Facts from the image track when there is one; else (precomputed 3D) from the metric wrist, without directions."""
    visible = float(seq.valid.mean()) if len(seq.valid) else 0.0
    in_image = seq.valid & np.isfinite(seq.keypoints_2d[:, 0, 0])  # frames made by gap filling have no 2D
    in_space = seq.valid & np.isfinite(seq.keypoints_3d).all(axis=(1, 2))
    valid = in_image if in_image.sum() >= 3 else in_space
    if valid.sum() < 3:
        return HandFacts(side=side, visible_frac=visible)
    kp3d = seq.keypoints_3d[valid]
    palm_m = np.linalg.norm(kp3d[:, MIDDLE_MCP] - kp3d[:, WRIST], axis=-1)
    directions: tuple[str, ...] = ()
    if valid is in_image:
        kp2d = seq.keypoints_2d[valid, :, :2]
        palm_px = np.linalg.norm(kp2d[:, MIDDLE_MCP] - kp2d[:, WRIST], axis=-1)
        px_per_m = float(np.median(palm_px / np.maximum(palm_m, 1e-4)))
        wrist_m = kp2d[:, WRIST] / max(px_per_m, 1e-6)
        directions = _directions(wrist_m, palm_px)
    else:  # which way is "up" depends on the source's world frame: no direction words
        wrist_m = kp3d[:, WRIST]
    times = np.flatnonzero(valid) / fps
    steps = np.diff(times)
    contiguous = steps < 1.5 / fps  # speed only across neighbouring valid frames
    step_speed = np.linalg.norm(np.diff(wrist_m, axis=0), axis=-1) / np.maximum(steps, 1e-6)
    speed = float(step_speed[contiguous].mean()) if contiguous.any() else 0.0
    return HandFacts(
        side=side,
        visible_frac=visible,
        moving=speed >= MOVING_SPEED,
        speed_m_s=speed,
        directions=directions,
        directions_known=valid is in_image,
        grip=_grip(kp3d, palm_m),
    )


def _ends(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Means over the first and last fifth of a sequence (robust to jitter at the ends)."""
    k = max(1, len(values) // 5)
    return values[:k].mean(axis=0), values[-k:].mean(axis=0)


def _directions(wrist_m: np.ndarray, palm_px: np.ndarray) -> tuple[str, ...]:
    start, end = _ends(wrist_m)
    dx, dy = end - start
    words = []
    if abs(dy) >= MIN_DISPLACEMENT and abs(dy) >= 0.5 * abs(dx):
        words.append("up" if dy < 0 else "down")  # image y grows downwards
    if abs(dx) >= MIN_DISPLACEMENT and abs(dx) >= 0.5 * abs(dy):
        words.append("left" if dx < 0 else "right")
    size_start, size_end = _ends(palm_px)
    if size_end > SCALE_CHANGE * size_start:
        words.append("toward the camera")
    elif size_start > SCALE_CHANGE * size_end:
        words.append("away from the camera")
    return tuple(words)


def _grip(kp3d: np.ndarray, palm_m: np.ndarray) -> str | None:
    """Closing/opening from fingertip spread relative to palm length (scale free)."""
    spread = np.linalg.norm(kp3d[:, FINGERTIPS] - kp3d[:, [WRIST]], axis=-1).mean(axis=1) / np.maximum(palm_m, 1e-4)
    start, end = _ends(spread)
    k = max(1, len(spread) // 5)
    middle = spread[k:-k] if len(spread) > 2 * k else spread
    lo, hi = float(middle.min()), float(middle.max())
    if end < start * (1 - OPENNESS_CHANGE):
        return "grasp"
    if end > start * (1 + OPENNESS_CHANGE):
        return "release"
    if lo < min(start, end) * (1 - OPENNESS_CHANGE):
        return "grasp_release"
    if hi > max(start, end) * (1 + OPENNESS_CHANGE):
        return "release_grasp"
    return None
