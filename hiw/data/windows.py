"""Fixed-length training windows (144 frames = 9.6 s at 15 fps, PAPER.md section 2) with masks.

Longer sequences are cropped, shorter ones zero-padded with the mask False. Training draws random
crops; evaluation and tokenization tile each sequence into consecutive windows so every frame is seen
exactly once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from hiw.data.sequences import MotionSequence
from hiw.data.stats import FeatureStats

WINDOW = 144


def crop(seq: MotionSequence, start: int, length: int, stats: FeatureStats) -> tuple[np.ndarray, np.ndarray]:
    """Normalised features (length, 198) and mask (length, 2) from ``start``, zero-padded past the end."""
    feats = np.zeros((length, seq.features.shape[1]), np.float32)
    mask = np.zeros((length, 2), bool)
    part = slice(start, min(start + length, seq.n_frames))
    n = part.stop - part.start
    feats[:n] = stats.normalise(seq.features[part], seq.mask[part])
    mask[:n] = seq.mask[part]
    return feats, mask


def random_batch(
    sequences: Sequence[MotionSequence],
    rng: np.random.Generator,
    size: int,
    stats: FeatureStats,
    window: int = WINDOW,
    skipped: Counter | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``size`` random windows (B, window, 198) and masks (B, window, 2); all-masked crops are redrawn and counted."""
    feats, masks = [], []
    for _ in range(50 * size):  # bounded: screened sequences have valid frames, so redraws end quickly
        seq = sequences[rng.integers(len(sequences))]
        start = int(rng.integers(max(seq.n_frames - window, 0) + 1))
        f, m = crop(seq, start, window, stats)
        if not m.any():
            if skipped is not None:
                skipped["all_masked_window"] += 1
            continue
        feats.append(f)
        masks.append(m)
        if len(feats) == size:
            return np.stack(feats), np.stack(masks)
    raise ValueError("could not draw a window with a valid frame; are all sequences masked?")


def tiles(seq: MotionSequence, stats: FeatureStats, window: int = WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """Consecutive windows covering the whole sequence: (W, window, 198), (W, window, 2)."""
    starts = range(0, max(seq.n_frames, 1), window)
    pairs = [crop(seq, s, window, stats) for s in starts]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
