"""Held-out evaluation of a trained tokenizer: tokenize, decode, compare in joint space (``hiw.models.shift_metrics``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from pydantic import BaseModel

from hiw.data.sequences import MotionSequence
from hiw.models import codec
from hiw.models.shift_checkpoint import LoadedTokenizer
from hiw.models.shift_metrics import JointErrors, codebook_stats, keypoints


class CodebookReport(BaseModel):
    usage: float  # share of the codebook's entries used on the evaluated data
    perplexity: float


class EvalReport(BaseModel):
    variant: str
    checkpoint_id: str
    step: int
    data: str
    sequences: int
    frames: int  # valid hand-frames compared
    skipped: dict[str, int]
    mpjpe_mm: float
    local_mpjpe_mm: float  # keypoints relative to their wrist: articulation error without the trajectory
    accel_mm: float  # mm/frame^2
    codebooks: dict[str, CodebookReport]


def evaluate(loaded: LoadedTokenizer, sequences: Sequence[MotionSequence], data: str, skipped: dict[str, int]) -> EvalReport:
    model, stats = loaded.model, loaded.stats
    encoded = codec.encode(model, stats, sequences)
    decoded = codec.decode(model, stats, [c for c, _ in encoded], [s.n_frames for s in sequences])
    errors = JointErrors()
    for seq, recon in zip(sequences, decoded):
        rest = torch.from_numpy(seq.rest)
        mask = torch.from_numpy(seq.mask)
        errors.add(keypoints(torch.from_numpy(seq.features), rest), keypoints(torch.from_numpy(recon), rest), mask)
    return EvalReport(
        variant=model.config.variant,
        checkpoint_id=loaded.checkpoint_id,
        step=loaded.step,
        data=data,
        sequences=len(sequences),
        frames=int(sum(s.mask.sum() for s in sequences)),
        skipped=skipped,
        mpjpe_mm=errors.mpjpe_mm,
        local_mpjpe_mm=errors.local_mpjpe_mm,
        accel_mm=errors.accel_mm,
        codebooks=_codebooks(loaded, encoded),
    )


def _codebooks(loaded: LoadedTokenizer, encoded: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, CodebookReport]:
    """Usage and perplexity per codebook over valid steps (a stacked codebook pools both hands' columns)."""
    model = loaded.model
    used: dict[str, list[np.ndarray]] = {p.name: [] for p in model.parts}
    for codes, steps in encoded:
        for column, name in enumerate(model.stream):
            side, _, part = name.rpartition("-")
            valid = steps[:, ("left", "right").index(side)] if side else steps.any(axis=1)
            used[part].append(codes[valid, column])
    out = {}
    for part, chunks in used.items():
        usage, perplexity = codebook_stats(np.concatenate(chunks) if chunks else np.zeros(0, int), model.config.codebook_size)
        out[part] = CodebookReport(usage=usage, perplexity=perplexity)
    return out
