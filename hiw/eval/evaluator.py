"""The text-motion evaluator: two encoders that map a caption and a motion into one space, where matching pairs are
close (TM2T's design, which the paper retrains per dataset; ../shared/CLUTCH_CODE.md section 3.2).

- Text: each word's vector plus a learned projection of its 15 part-of-speech one-hots, a linear layer, then a
  bidirectional GRU packed by the caption's real length (sos and eos included). The two final hidden states go
  through Linear, LayerNorm, LeakyReLU, Linear.
- Motion: the normalised 198 features plus the two per-hand validity flags (so a missing hand differs from a
  hand at the mean pose) go through two Conv1d layers of stride 2 (T/4 steps), then a bidirectional GRU packed by
  the real length in those steps, ceil(frames / 4). The authors' encoder runs its GRU over the zero padding too
  (``m_lens`` is ignored), so a short clip's embedding depends on how much padding it got; here it does not.

The sizes live in ``EvaluatorConfig``, which every checkpoint stores, so a checkpoint rebuilds its own model.
"""

from __future__ import annotations

import math

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from hiw.motion.features import FEATURES

DOWNSAMPLE = 4  # two stride-2 convolutions


class EvaluatorConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    word_size: int  # the word vectors' dimension (384 for MiniLM's, 300 for GloVe)
    pos_size: int = 15
    text_hidden: int = 512
    movement_hidden: int = 512  # the convolutional front end's width
    motion_hidden: int = 1024
    output: int = 512  # the shared embedding's dimension
    features: int = FEATURES
    dropout: float = 0.2


# ``paper``: the authors' tm2t.yaml sizes. ``tiny``: a CPU-sized model that trains in minutes.
PRESETS: dict[str, dict[str, int]] = {
    "paper": {},
    "tiny": {"text_hidden": 128, "movement_hidden": 128, "motion_hidden": 256, "output": 128},
}


def _head(inputs: int, hidden: int, output: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inputs, hidden), nn.LayerNorm(hidden), nn.LeakyReLU(0.2, inplace=True), nn.Linear(hidden, output)
    )


class _BiGRU(nn.Module):
    """A bidirectional GRU with a learned initial state, packed by length: the concatenated last hidden states."""

    def __init__(self, inputs: int, hidden: int):
        super().__init__()
        self.gru = nn.GRU(inputs, hidden, batch_first=True, bidirectional=True)
        self.h0 = nn.Parameter(torch.randn(2, 1, hidden) * (1.0 / math.sqrt(hidden)))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, last = self.gru(packed, self.h0.expand(-1, len(x), -1).contiguous())
        return torch.cat([last[0], last[1]], dim=-1)


class TextEncoder(nn.Module):
    def __init__(self, config: EvaluatorConfig):
        super().__init__()
        self.pos = nn.Linear(config.pos_size, config.word_size)
        self.inputs = nn.Linear(config.word_size, config.text_hidden)
        self.gru = _BiGRU(config.text_hidden, config.text_hidden)
        self.out = _head(2 * config.text_hidden, config.output, config.output)

    def forward(self, words: torch.Tensor, pos: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """words (B, L, word_size), pos (B, L, 15), lengths (B,) -> (B, output)."""
        return self.out(self.gru(self.inputs(words + self.pos(pos)), lengths))


class MotionEncoder(nn.Module):
    def __init__(self, config: EvaluatorConfig):
        super().__init__()
        hidden, drop = config.movement_hidden, config.dropout
        self.movement = nn.Sequential(
            nn.Conv1d(config.features + 2, hidden, 4, 2, 1),
            nn.Dropout(drop),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv1d(hidden, hidden, 4, 2, 1),
            nn.Dropout(drop),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.movement_out = nn.Linear(hidden, hidden)
        self.inputs = nn.Linear(hidden, config.motion_hidden)
        self.gru = _BiGRU(config.motion_hidden, config.motion_hidden)
        self.out = _head(2 * config.motion_hidden, config.motion_hidden, config.output)

    def forward(self, features: torch.Tensor, mask: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """features (B, T, 198) normalised with masked frames zero, mask (B, T, 2), frames (B,) real lengths -> (B, output).

        T must be a multiple of 4 (windows are 144 frames)."""
        x = torch.cat([features, mask.to(features.dtype)], dim=-1).transpose(1, 2)
        steps = self.movement_out(self.movement(x).transpose(1, 2))
        lengths = torch.clamp((frames + DOWNSAMPLE - 1) // DOWNSAMPLE, 1, steps.shape[1])
        return self.out(self.gru(self.inputs(steps), lengths))


class Evaluator(nn.Module):
    def __init__(self, config: EvaluatorConfig):
        super().__init__()
        self.config = config
        self.text = TextEncoder(config)
        self.motion = MotionEncoder(config)
