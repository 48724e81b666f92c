"""Dataset mean/std of the 198 motion features, for z-score normalisation (PAPER.md section 2).

Each hand's 99 numbers are averaged over the frames where that hand is valid (padding and missing
hands would drag the statistics to zero). The statistics belong to one dataset version: they carry
the dataset's fingerprint, are stored next to its tables (``ROOT/features/stats.json``, see ``hiw.data.sources``), and travel
inside every checkpoint trained on them so decoding never depends on the files still being there.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel

from hiw.data.sequences import MotionSequence
from hiw.motion.features import FEATURES, HAND_FEATURES
from hiw.schemas.ids import stable_hash

LAYOUT = "hiw-motion-198-v1"  # per hand: 6D global orientation, 15 x 6D joints, translation; left first
# Floor for the standard deviation: a feature that never varies in training (a joint the data never bends)
# must not turn tiny test-time differences into huge normalised values. 6D entries are unitless, translation
# in metres: 0.01 is a centimetre.
STD_FLOOR = 0.01


class FeatureStats(BaseModel):
    layout: str = LAYOUT
    dataset: str  # fingerprint of the data the statistics were computed on
    frames: list[int]  # valid frames per hand (left, right)
    mean: list[float]
    std: list[float]

    @property
    def stats_id(self) -> str:
        return "s_" + stable_hash(self.model_dump())

    def arrays(self, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tensor(self.mean, device=device), torch.tensor(self.std, device=device)

    def normalise(self, features: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(..., 198) raw -> z-scores; masked frames stay exactly zero."""
        z = (features - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return z * np.repeat(mask, HAND_FEATURES, axis=-1)

    def denormalise(self, z: torch.Tensor) -> torch.Tensor:
        mean, std = self.arrays(z.device)
        return z * std + mean

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(self.model_dump_json(indent=1))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: Path) -> FeatureStats:
        return cls.model_validate(json.loads(path.read_text()))


def compute_stats(sequences: Sequence[MotionSequence], dataset: str) -> FeatureStats:
    """Per-feature mean and floored std over each hand's valid frames (float64 accumulation)."""
    total = np.zeros(FEATURES)
    squares = np.zeros(FEATURES)
    frames = np.zeros(2, np.int64)
    for seq in sequences:
        for hand in range(2):
            rows = seq.features[seq.mask[:, hand], hand * HAND_FEATURES : (hand + 1) * HAND_FEATURES].astype(np.float64)
            sl = slice(hand * HAND_FEATURES, (hand + 1) * HAND_FEATURES)
            total[sl] += rows.sum(axis=0)
            squares[sl] += (rows**2).sum(axis=0)
            frames[hand] += len(rows)
    count = np.repeat(np.maximum(frames, 1), HAND_FEATURES)
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    return FeatureStats(dataset=dataset, frames=frames.tolist(), mean=mean.tolist(), std=np.maximum(std, STD_FLOOR).tolist())
