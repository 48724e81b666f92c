"""Keypoint sequences at the canonical frame rate, lightly smoothed.

Resampling interpolates linearly between the two nearest source frames and is valid only where
both are; smoothing is a Gaussian along time inside each run of valid frames, so it never blends
across a gap or invents frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from hiw.schemas import HANDS, N_KEYPOINTS, MotionRecord
from hiw.trackers import ClipTracks


@dataclass(frozen=True)
class MotionSettings:
    fps: float = 15.0
    smooth_sigma: float = 1.0  # in canonical frames; 0 turns smoothing off

    def describe(self) -> str:
        return f"gaussian(sigma={self.smooth_sigma:g} frames)" if self.smooth_sigma > 0 else "none"


@dataclass
class HandSequence:
    valid: np.ndarray  # (T,) bool
    keypoints_2d: np.ndarray  # (T, 21, 3) float32, NaN where invalid
    keypoints_3d: np.ndarray  # (T, 21, 3) float32, NaN where invalid

    @classmethod
    def from_motion(cls, motion: MotionRecord, side: str) -> HandSequence:
        return cls(
            valid=getattr(motion, f"{side}_valid"),
            keypoints_2d=getattr(motion, f"{side}_keypoints_2d").reshape(-1, N_KEYPOINTS, 3),
            keypoints_3d=getattr(motion, f"{side}_keypoints_3d").reshape(-1, N_KEYPOINTS, 3),
        )


def resample_times(n_source: int, source_fps: float, fps: float) -> np.ndarray:
    """Source-frame positions (fractional) of the canonical frames covering the clip."""
    n = max(1, int(np.floor((n_source - 1) * fps / source_fps + 1e-6)) + 1)
    return np.arange(n) * (source_fps / fps)


def resample(values: np.ndarray, valid: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    i0 = np.clip(np.floor(positions + 1e-6).astype(int), 0, len(values) - 1)
    i1 = np.minimum(i0 + 1, len(values) - 1)
    w = np.clip(positions - i0, 0.0, 1.0)
    exact = w < 1e-6
    ok = valid[i0] & (exact | valid[i1])
    w = np.where(exact, 0.0, w).reshape(-1, *([1] * (values.ndim - 1)))
    out = (1 - w) * values[i0] + w * np.nan_to_num(values[i1])
    out[~ok] = np.nan
    return out.astype(np.float32), ok


def valid_runs(valid: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True."""
    edges = np.diff(np.concatenate([[0], valid.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def smooth(values: np.ndarray, valid: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return values
    out = values.copy()
    for start, end in valid_runs(valid):
        if end - start >= 3:
            out[start:end] = gaussian_filter1d(values[start:end], sigma, axis=0, mode="nearest")
    return out


def canonical_sequences(tracks: ClipTracks, settings: MotionSettings) -> dict[str, HandSequence]:
    """Both hands of a clip at ``settings.fps``, smoothed inside valid runs."""
    positions = resample_times(tracks.n_frames, tracks.fps, settings.fps)
    out = {}
    for side in HANDS:
        hand = tracks.hands[side]
        kp2d, ok = resample(hand.keypoints_2d.reshape(-1, N_KEYPOINTS, 3), hand.valid, positions)
        kp3d, _ = resample(hand.keypoints_3d.reshape(-1, N_KEYPOINTS, 3), hand.valid, positions)
        out[side] = HandSequence(
            valid=ok, keypoints_2d=smooth(kp2d, ok, settings.smooth_sigma), keypoints_3d=smooth(kp3d, ok, settings.smooth_sigma)
        )
    return out
