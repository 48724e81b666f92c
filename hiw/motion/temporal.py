"""Temporal processing of hand parameters, as in the paper: gap filling, Savitzky-Golay then Gaussian
smoothing, and resampling to the canonical frame rate.

Rotations are interpolated geodesically (SLERP) and smoothed as matrices whose filtered entries are
projected back onto the nearest rotation; translations are filtered directly. Nothing blends across
a gap longer than the fill limit, and filled frames are marked as such.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from scipy.signal import savgol_filter

from hiw.motion.rotations import interpolate, project


@dataclass(frozen=True)
class TemporalSettings:
    max_gap_s: float  # interior gaps up to this long are filled
    savgol_window_s: float  # Savitzky-Golay window (rounded to an odd frame count)
    savgol_order: int
    gaussian_sigma_s: float  # 0 turns the Gaussian pass off; wider blurred fast motion on F-PHAB

    def describe(self) -> str:
        return (
            f"fill<= {self.max_gap_s:g}s slerp; savgol({self.savgol_window_s:g}s, order {self.savgol_order}); "
            f"gaussian({self.gaussian_sigma_s:g}s)"
        )


@dataclass
class ParamSequence:
    """One hand's parameters over time; NaN where ``valid`` is False."""

    rotations: np.ndarray  # (T, 16, 3, 3)
    transl: np.ndarray  # (T, 3)
    valid: np.ndarray  # (T,) bool
    filled: np.ndarray  # (T,) bool: frames made up by gap filling

    @classmethod
    def observed(cls, rotations: np.ndarray, transl: np.ndarray, valid: np.ndarray) -> ParamSequence:
        return cls(rotations, transl, valid.copy(), np.zeros_like(valid))


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def _lerp_params(seq: ParamSequence, i0: np.ndarray, i1: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r0, r1 = torch.as_tensor(seq.rotations[i0]), torch.as_tensor(seq.rotations[i1])
    wt = torch.as_tensor(w, dtype=torch.float32)[:, None].expand(-1, r0.shape[1])
    rot = interpolate(r0, r1, wt).numpy()
    transl = (1 - w)[:, None] * seq.transl[i0] + w[:, None] * seq.transl[i1]
    return rot, transl.astype(np.float32)


def fill_gaps(seq: ParamSequence, max_gap: int) -> ParamSequence:
    """Fill interior gaps of at most ``max_gap`` frames: SLERP for rotations, linear for translation."""
    holes = [(s, e) for s, e in runs(~seq.valid) if s > 0 and e < len(seq.valid) and e - s <= max_gap]
    if not holes:
        return seq
    frames = np.concatenate([np.arange(s, e) for s, e in holes])
    before = np.concatenate([np.full(e - s, s - 1) for s, e in holes])
    after = np.concatenate([np.full(e - s, e) for s, e in holes])
    w = ((frames - before) / (after - before)).astype(np.float32)
    out = replace(seq, rotations=seq.rotations.copy(), transl=seq.transl.copy(), valid=seq.valid.copy(), filled=seq.filled.copy())
    out.rotations[frames], out.transl[frames] = _lerp_params(seq, before, after, w)
    out.valid[frames] = True
    out.filled[frames] = True
    return out


def smooth(seq: ParamSequence, fps: float, settings: TemporalSettings) -> ParamSequence:
    """Savitzky-Golay then Gaussian along time, within each run of valid frames."""
    rot, transl = seq.rotations.copy(), seq.transl.copy()
    window = round(settings.savgol_window_s * fps) // 2 * 2 + 1
    sigma = settings.gaussian_sigma_s * fps
    for start, end in runs(seq.valid):
        n = end - start
        flat = np.concatenate([rot[start:end].reshape(n, -1), transl[start:end]], axis=1)
        win = min(window, n if n % 2 else n - 1)
        if win > settings.savgol_order + 1:
            flat = savgol_filter(flat, win, settings.savgol_order, axis=0, mode="interp")
        if sigma > 0 and n > 2:
            flat = gaussian_filter1d(flat, sigma, axis=0, mode="nearest")
        rot[start:end] = project(torch.as_tensor(flat[:, :-3].reshape(n, -1, 3, 3), dtype=torch.float32)).numpy()
        transl[start:end] = flat[:, -3:]
    return replace(seq, rotations=rot, transl=transl)


def resample_positions(n_source: int, source_fps: float, fps: float) -> np.ndarray:
    """Fractional source-frame positions of the canonical frames covering the clip."""
    n = max(1, int(np.floor((n_source - 1) * fps / source_fps + 1e-6)) + 1)
    return np.arange(n) * (source_fps / fps)


def _neighbours(positions: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bracketing source frames, weights and validity (both neighbours valid, or an exact hit)."""
    i0 = np.clip(np.floor(positions + 1e-6).astype(int), 0, len(valid) - 1)
    i1 = np.minimum(i0 + 1, len(valid) - 1)
    w = np.clip(positions - i0, 0.0, 1.0)
    exact = w < 1e-6
    ok = valid[i0] & (exact | valid[i1])
    return i0, np.where(exact, i0, i1), np.where(exact, 0.0, w).astype(np.float32), ok


def resample(seq: ParamSequence, positions: np.ndarray) -> ParamSequence:
    i0, i1, w, ok = _neighbours(positions, seq.valid)
    rot, transl = _lerp_params(seq, i0, i1, w)
    rot[~ok], transl[~ok] = np.nan, np.nan
    filled = (seq.filled[i0] | seq.filled[i1]) & ok
    return ParamSequence(rot, transl, ok, filled)


def resample_array(values: np.ndarray, valid: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Linear resampling of per-frame values (e.g. 2D keypoints); NaN where a neighbour is missing."""
    i0, i1, w, ok = _neighbours(positions, valid)
    w = w.reshape(-1, *([1] * (values.ndim - 1)))
    out = ((1 - w) * values[i0] + w * values[i1]).astype(np.float32)
    out[~ok] = np.nan
    return out
