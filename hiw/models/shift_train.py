"""Training the SHIFT tokenizer: its settings and presets, and the ``Trainable`` it hands to the shared loop.

Batches are random 144-frame windows of the screened training sequences (``hiw.data.windows``), z-scored
with the data's statistics, which every checkpoint carries so decoding never depends on files a rebuild may
replace. Validation windows come from the ``val`` split the same way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hiw.data.sequences import MotionSequence
from hiw.data.stats import FeatureStats
from hiw.data.windows import WINDOW, random_batch
from hiw.errors import ConfigError
from hiw.models import loop
from hiw.models.loop_settings import LoopSettings, Precision
from hiw.models.tokenizer import MotionTokenizer, TokenizerConfig

Batch = tuple[torch.Tensor, torch.Tensor]  # features (B, window, 198), per-hand mask (B, window, 2)


class TrainSettings(LoopSettings):
    steps: int = 100_000
    batch: int = 512
    lr: float = 2e-4  # AdamW, the paper's
    # The EMA codebook picks codes by distance; in bf16 close codes would swap. Unmeasured on a GPU, so fp32.
    precision: Precision = "fp32"
    window: int = WINDOW


# Per preset: the paper's optimiser settings, and a short CPU schedule for the tiny model.
TRAIN_PRESETS: dict[str, TrainSettings] = {
    "paper": TrainSettings(),
    "tiny": TrainSettings(steps=1000, batch=32, lr=1e-3, log_every=100, checkpoint_every=250),
}


class ShiftJob:
    """The tokenizer as the loop sees it: windows in, the tokenizer's summed losses out."""

    kind = "shift"

    def __init__(
        self,
        model_config: TokenizerConfig,
        settings: TrainSettings,
        sequences: Sequence[MotionSequence],
        stats: FeatureStats,
        data: dict[str, Any],
        val_sequences: Sequence[MotionSequence] = (),
    ):
        self.model_config, self.settings, self.stats = model_config, settings, stats
        self.sequences, self.val_sequences = sequences, val_sequences
        self.config = model_config.model_dump()
        self.data = data
        self.skipped: Counter = Counter()  # all-masked windows redrawn

    def build(self, device: torch.device) -> nn.Module:
        return MotionTokenizer(self.model_config).to(device)

    def _windows(self, sequences, rng: np.random.Generator, device: torch.device, skipped: Counter | None) -> Batch:
        feats, masks = random_batch(sequences, rng, self.settings.batch, self.stats, self.settings.window, skipped)
        return torch.from_numpy(feats).to(device), torch.from_numpy(masks).to(device)

    def batch(self, rng: np.random.Generator, device: torch.device) -> Batch:
        return self._windows(self.sequences, rng, device, self.skipped)

    def val_batches(self, rng: np.random.Generator, device: torch.device, n: int) -> list[Batch]:
        if not self.val_sequences:
            raise ConfigError("--val-every needs validation data, and the val split has no usable sequence")
        return [self._windows(self.val_sequences, rng, device, None) for _ in range(n)]

    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        out = model(*batch)
        return out.loss, out.terms

    def extra(self) -> dict[str, Any]:
        return {"stats": self.stats.model_dump()}


def train(
    run_dir: Path,
    model_config: TokenizerConfig,
    settings: TrainSettings,
    sequences: Sequence[MotionSequence],
    stats: FeatureStats,
    data: dict[str, Any],
    device: torch.device,
    log: Callable[[dict[str, float]], None] | None = None,
    val_sequences: Sequence[MotionSequence] = (),
) -> loop.TrainResult:
    """Train (or resume) the tokenizer on ``sequences`` (already screened); ``data`` describes them for lineage."""
    if not sequences:
        raise ConfigError("no training sequence left after screening; see the skipped counts")
    if settings.window % 2**model_config.down_t:
        raise ConfigError(f"window {settings.window} is not a multiple of the token step {2**model_config.down_t}")
    job = ShiftJob(model_config, settings, sequences, stats, data, val_sequences)
    result = loop.train(run_dir, job, settings, device, log)
    result.skipped.update(job.skipped)
    return result
