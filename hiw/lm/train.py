"""Training the language model: its settings, and the ``Trainable`` a phase hands to the shared loop.

A batch is ``batch`` distinct training clips. Its mode (span corruption of text or motion, or supervised templates)
is drawn per batch with the phase's probabilities, and a supervised row's task per row. The loss is T5's
cross-entropy on the target tokens; in the align phase, ``lm_weight`` x that + ``rec_weight`` x the geometric
reconstruction loss of the batch's t2m rows (``hiw.lm.align``), with the Gumbel temperature annealed from
``tau_start`` to ``tau_end`` over the phase.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from hiw.errors import ConfigError
from hiw.lm.align import alignment_loss, temperature
from hiw.lm.data import LMClip
from hiw.lm.samples import Batch, SampleMaker
from hiw.models.loop_settings import LoopSettings, Precision
from hiw.models.shift_checkpoint import LoadedTokenizer

if TYPE_CHECKING:
    from hiw.lm.phases import Phase


class LMSettings(LoopSettings):
    steps: int = 100_000
    batch: int = 36
    lr: float = 2e-4  # the authors' AdamW
    max_length: int = 160  # encoder input and target tokens (the paper's)
    lm_weight: float = 1.0  # a in L = a L_LM + lambda L_rec (align phase)
    rec_weight: float = 1.0  # lambda
    keypoint_weight: float = 10.0  # per metre of mean keypoint error, inside L_rec
    tau_start: float = 1.0  # Gumbel-softmax temperature at the align phase's first step ...
    tau_end: float = 0.1  # ... and at its last
    precision: Precision = "auto"


def check_lm_settings(settings: LMSettings) -> None:
    if settings.max_length < 16:
        raise ConfigError(f"--max-length must be at least 16 (got {settings.max_length})")
    if not 0 < settings.tau_end <= settings.tau_start:
        raise ConfigError(
            f"the Gumbel temperature must fall from tau_start to tau_end > 0 (got {settings.tau_start} -> {settings.tau_end})"
        )
    if min(settings.lm_weight, settings.rec_weight, settings.keypoint_weight) < 0:
        raise ConfigError("loss weights must be >= 0")


class LMJob:
    """One phase of the language model as the loop sees it."""

    kind = "clutch"

    def __init__(
        self,
        phase: Phase,
        settings: LMSettings,
        build: Any,  # (device) -> the T5 model, from the base or the earlier phase
        maker: SampleMaker,
        clips: list[LMClip],
        val_clips: list[LMClip],
        shift: LoadedTokenizer,
        config: dict[str, Any],
        data: dict[str, Any],
        extra: dict[str, Any],
    ):
        if not clips:
            raise ConfigError("no training clip left (see the skipped counts)")
        self.phase, self.settings, self.maker, self.shift = phase, settings, maker, shift
        self.clips, self.val_clips = clips, val_clips
        self._build, self.config, self.data, self._extra = build, config, data, extra
        self.modes, self.mode_p = list(phase.modes), np.asarray(list(phase.modes.values()), float)
        self.tasks, self.task_p = list(phase.tasks), np.asarray(list(phase.tasks.values()), float)
        self.mode_p, self.task_p = self.mode_p / self.mode_p.sum(), self.task_p / self.task_p.sum()
        self.step = 0
        for p in shift.model.parameters():
            p.requires_grad_(False)

    def build(self, device: torch.device) -> nn.Module:
        self.shift.model.to(device).eval()
        return self._build(device)

    def begin_step(self, step: int) -> None:
        self.step = step

    def _batch(self, clips: list[LMClip], rng: np.random.Generator, device: torch.device) -> Batch:
        picked = rng.choice(len(clips), min(self.settings.batch, len(clips)), replace=False)
        mode = self.modes[rng.choice(len(self.modes), p=self.mode_p)]
        tasks = [self.tasks[i] for i in rng.choice(len(self.tasks), len(picked), p=self.task_p)]
        return self.maker.batch([clips[i] for i in picked], mode, tasks, rng).to(device)

    def batch(self, rng: np.random.Generator, device: torch.device) -> Batch:
        return self._batch(self.clips, rng, device)

    def val_batches(self, rng: np.random.Generator, device: torch.device, n: int) -> list[Batch]:
        if not self.val_clips:
            raise ConfigError("--val-every needs validation data, and the val split has no usable clip")
        return [self._batch(self.val_clips, rng, device) for _ in range(n)]

    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels)
        loss, terms = out.loss, {"lm": out.loss.item()}
        if self.phase.align and batch.aligned:
            s = self.settings
            tau = temperature(self.step, s.steps, s.tau_start, s.tau_end)
            rec, rec_terms = alignment_loss(
                out.logits, batch, self.maker.vocab, self.maker.base, self.shift, tau, s.keypoint_weight
            )
            loss = s.lm_weight * out.loss + s.rec_weight * rec
            terms |= rec_terms
        terms["loss"] = loss.item()
        return loss, terms

    def extra(self) -> dict[str, Any]:
        return self._extra
