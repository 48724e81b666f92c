"""Handedness consistency: find frames where a tracker swapped the left and right labels.

Hands move little between frames, so labels are first made continuous (a frame is swapped when the
swapped assignment is much closer to the last known positions), then the whole sequence keeps the
labelling most frames agree with. On a near tie (labels flipping every other frame) the hand that is
on average further left in the image is the left hand, as in egocentric video.
"""

from __future__ import annotations

import numpy as np

SWAP_MARGIN = 0.5  # a swap must at least halve the distance to the last known positions
TIE_MARGIN = 0.1  # label votes this close (share of frames) count as a tie


def swap_frames(left: np.ndarray, right: np.ndarray, left_valid: np.ndarray, right_valid: np.ndarray, jump: float) -> np.ndarray:
    """Frames whose labels should be exchanged, from per-frame hand positions (T, D).

    ``jump``: a single visible hand is relabelled only if it is this far from its own track.
    """
    n = len(left_valid)
    swap = np.zeros(n, bool)
    last = [None, None]  # last known position of the left and right tracks
    for t in range(n):
        obs = [left[t] if left_valid[t] else None, right[t] if right_valid[t] else None]
        if obs[0] is not None and obs[1] is not None:
            if last[0] is not None and last[1] is not None:
                keep = np.linalg.norm(obs[0] - last[0]) + np.linalg.norm(obs[1] - last[1])
                cross = np.linalg.norm(obs[0] - last[1]) + np.linalg.norm(obs[1] - last[0])
                swap[t] = cross < SWAP_MARGIN * keep
        elif obs[0] is not None or obs[1] is not None:
            k = 0 if obs[0] is not None else 1
            own, other = last[k], last[1 - k]
            if own is not None and other is not None:
                d_own, d_other = np.linalg.norm(obs[k] - own), np.linalg.norm(obs[k] - other)
                swap[t] = d_own > jump and d_other < SWAP_MARGIN * d_own
        if swap[t]:
            obs = obs[::-1]
        last = [o if o is not None else prev for o, prev in zip(obs, last)]
    seen = left_valid | right_valid
    flips, keeps = int((swap & seen).sum()), int((~swap & seen).sum())
    near_tie = abs(flips - keeps) <= TIE_MARGIN * (flips + keeps)  # the labels say little: trust the image side
    if (near_tie and _left_is_right(left, right, left_valid, right_valid, swap)) or (not near_tie and flips > keeps):
        swap = ~swap
    return swap & seen


def _left_is_right(
    left: np.ndarray, right: np.ndarray, left_valid: np.ndarray, right_valid: np.ndarray, swap: np.ndarray
) -> bool:
    """After applying ``swap``, is the 'left' track on average right of the 'right' one (x = column 0)?"""
    lx = np.where(swap, right[:, 0], left[:, 0])[np.where(swap, right_valid, left_valid)]
    rx = np.where(swap, left[:, 0], right[:, 0])[np.where(swap, left_valid, right_valid)]
    return bool(len(lx) and len(rx) and lx.mean() > rx.mean())


def apply_swaps(left: np.ndarray, right: np.ndarray, swap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exchange per-frame values (T, ...) of the two hands where ``swap``."""
    mask = swap.reshape(-1, *([1] * (left.ndim - 1)))
    return np.where(mask, right, left), np.where(mask, left, right)
