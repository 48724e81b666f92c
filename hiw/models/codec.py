"""Whole sequences through a trained tokenizer: tiled into training-size windows, batched, and stitched back.

``encode`` gives each sequence ceil(T / step) token steps (the last window's padding is dropped);
``decode`` turns those steps back into T frames of raw (denormalised) features.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from hiw.data.sequences import MotionSequence
from hiw.data.stats import FeatureStats
from hiw.data.windows import WINDOW, tiles
from hiw.models.tokenizer import MotionTokenizer

CHUNK = 256  # windows per forward pass


def _steps(n_frames: int, step: int) -> int:
    return -(-n_frames // step)


@torch.no_grad()
def encode(
    model: MotionTokenizer, stats: FeatureStats, sequences: Sequence[MotionSequence], window: int = WINDOW
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per sequence: codes (L, len(stream)) int64 and per-hand step mask (L, 2)."""
    device = next(model.parameters()).device
    feats, masks, counts = [], [], []
    for seq in sequences:
        f, m = tiles(seq, stats, window)
        feats.append(f)
        masks.append(m)
        counts.append(len(f))
    if not feats:
        return []
    all_feats, all_masks = np.concatenate(feats), np.concatenate(masks)
    code_parts, step_parts = [], []
    for i in range(0, len(all_feats), CHUNK):
        x = torch.from_numpy(all_feats[i : i + CHUNK]).to(device)
        m = torch.from_numpy(all_masks[i : i + CHUNK]).to(device)
        code_parts.append(model.encode(x, m).cpu())
        step_parts.append(model.step_mask(m).cpu())
    code_arr, step_arr = torch.cat(code_parts).numpy(), torch.cat(step_parts).numpy()
    out, at = [], 0
    for seq, n in zip(sequences, counts):
        steps = _steps(seq.n_frames, model.step)
        out.append((code_arr[at : at + n].reshape(-1, code_arr.shape[-1])[:steps], step_arr[at : at + n].reshape(-1, 2)[:steps]))
        at += n
    return out


@torch.no_grad()
def decode(
    model: MotionTokenizer, stats: FeatureStats, codes: Sequence[np.ndarray], n_frames: Sequence[int], window: int = WINDOW
) -> list[np.ndarray]:
    """Codes (L, len(stream)) per sequence -> raw features (n_frames, 198) per sequence."""
    device = next(model.parameters()).device
    per_window = window // model.step
    blocks, counts = [], []
    for c in codes:
        n = max(_steps(len(c) * model.step, per_window * model.step), 1)
        padded = np.zeros((n * per_window, c.shape[-1]), np.int64)  # pad with code 0; the frames are cut off below
        padded[: len(c)] = c
        blocks.append(padded.reshape(n, per_window, -1))
        counts.append(n)
    if not blocks:
        return []
    all_codes = np.concatenate(blocks)
    feats = []
    for i in range(0, len(all_codes), CHUNK):
        z = model.decode(torch.from_numpy(all_codes[i : i + CHUNK]).to(device))
        feats.append(stats.denormalise(z).cpu())
    all_feats = torch.cat(feats).numpy()
    out, at = [], 0
    for n, frames in zip(counts, n_frames):
        out.append(all_feats[at : at + n].reshape(-1, all_feats.shape[-1])[:frames])
        at += n
    return out
