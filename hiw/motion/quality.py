"""The paper's motion quality filters, each with a threshold in config and its measured value kept.

(The both-hands visibility filter runs earlier, on the tracks: ``hiw.flows.stages.quality_check``.)
Jitter is the mean of the three largest frame-to-frame accelerations of the wrist translation
(m/s^2) and of the global orientation (rad/s^2), over consecutive valid frames at the canonical rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import roma
import torch

from hiw.errors import StageError
from hiw.motion.temporal import runs


@dataclass(frozen=True)
class QualitySettings:
    max_jitter_translation: float  # m/s^2
    max_jitter_rotation: float  # rad/s^2
    min_motion_s: float


@dataclass(frozen=True)
class QualityMetrics:
    jitter_translation: float
    jitter_rotation: float
    motion_s: float


def top3_mean(values: np.ndarray) -> float:
    return float(np.sort(values)[-3:].mean()) if len(values) else 0.0


def jitter(global_orient: np.ndarray, transl: np.ndarray, valid: np.ndarray, fps: float) -> tuple[float, float]:
    """(translation m/s^2, rotation rad/s^2) jitter of one hand: global_orient (T, 3, 3), transl (T, 3)."""
    ok = valid[:-2] & valid[1:-1] & valid[2:]
    if not ok.any():
        return 0.0, 0.0
    acc = (transl[2:] - 2 * transl[1:-1] + transl[:-2])[ok] * fps**2
    rot = torch.as_tensor(np.nan_to_num(global_orient))
    omega = roma.rotmat_to_rotvec(rot[:-1].transpose(-1, -2) @ rot[1:]).numpy() * fps  # body-frame angular velocity
    alpha = (omega[1:] - omega[:-1])[ok] * fps
    return top3_mean(np.linalg.norm(acc, axis=-1)), top3_mean(np.linalg.norm(alpha, axis=-1))


def measure(
    global_orient: dict[str, np.ndarray], transl: dict[str, np.ndarray], valid: dict[str, np.ndarray], fps: float
) -> QualityMetrics:
    """Jitter of the worse hand; motion length = longest span where every hand seen in the clip is valid."""
    per_hand = [jitter(global_orient[s], transl[s], valid[s], fps) for s in valid]
    seen = [v for v in valid.values() if v.any()]
    together = np.logical_and.reduce(seen) if seen else np.zeros(0, bool)
    longest = max((end - start for start, end in runs(together)), default=0)
    return QualityMetrics(
        jitter_translation=max(t for t, _ in per_hand),
        jitter_rotation=max(r for _, r in per_hand),
        motion_s=longest / fps,
    )


def check(metrics: QualityMetrics, settings: QualitySettings) -> None:
    """Raise StageError naming the first filter the clip fails, with the measured value and threshold."""
    if metrics.motion_s < settings.min_motion_s:
        raise StageError(
            "too_short", f"longest span with the hands valid is {metrics.motion_s:.2f} s; min_motion_s={settings.min_motion_s:g}"
        )
    if metrics.jitter_translation > settings.max_jitter_translation:
        raise StageError(
            "jitter_translation",
            f"top-3 wrist acceleration {metrics.jitter_translation:.1f} m/s^2 > "
            f"max_jitter_translation={settings.max_jitter_translation:g}",
        )
    if metrics.jitter_rotation > settings.max_jitter_rotation:
        raise StageError(
            "jitter_rotation",
            f"top-3 angular acceleration {metrics.jitter_rotation:.1f} rad/s^2 > "
            f"max_jitter_rotation={settings.max_jitter_rotation:g}",
        )
