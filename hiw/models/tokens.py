"""Rows of the ``tokens`` and ``reconstructions`` tables, with the lineage that ties them to a checkpoint."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hiw import __version__
from hiw.data.sequences import MotionSequence
from hiw.models import codec
from hiw.models.shift_checkpoint import LoadedTokenizer
from hiw.motion.features import param_columns
from hiw.schemas import HANDS, ReconstructionRecord, TokenRecord


def token_records(loaded: LoadedTokenizer, sequences: Sequence[MotionSequence], dataset: str) -> list[TokenRecord]:
    model = loaded.model
    encoded = codec.encode(model, loaded.stats, sequences)
    return [
        TokenRecord(
            clip_id=seq.clip_id,
            fps=seq.fps,
            n_frames=seq.n_frames,
            n_steps=len(codes),
            frames_per_step=model.step,
            stream=model.stream,
            tokens=codes.reshape(-1).astype(int).tolist(),
            left_step_valid=steps[:, 0],
            right_step_valid=steps[:, 1],
            origin=seq.origin.astype(float).tolist(),
            text=seq.text,
            variant=model.config.variant,
            codebook_size=model.config.codebook_size,
            codebook_id=loaded.codebook_id,
            checkpoint_id=loaded.checkpoint_id,
            checkpoint_step=loaded.step,
            checkpoint_path=str(loaded.path),
            dataset=dataset,
            stats_id=loaded.stats.stats_id,
            code_version=__version__,
        )
        for seq, (codes, steps) in zip(sequences, encoded)
    ]


def reconstruction_records(loaded: LoadedTokenizer, rows: Sequence[dict]) -> list[ReconstructionRecord]:
    """Decode ``tokens`` rows (as dicts) that came from this checkpoint back to per-hand axis-angle parameters."""
    model = loaded.model
    foreign = {r["checkpoint_id"] for r in rows} - {loaded.checkpoint_id}
    if foreign:
        raise ValueError(f"tokens from other checkpoints ({sorted(foreign)}) cannot be decoded by {loaded.checkpoint_id}")
    width = len(model.stream)
    codes = [np.asarray(r["tokens"], np.int64).reshape(-1, width) for r in rows]
    features = codec.decode(model, loaded.stats, codes, [r["n_frames"] for r in rows])
    records = []
    for row, feats in zip(rows, features):
        valid = np.stack(
            [np.repeat(np.asarray(row[f"{side}_step_valid"], bool), model.step)[: row["n_frames"]] for side in HANDS], 1
        )
        values = param_columns(feats, valid, np.asarray(row["origin"], np.float32))
        records.append(
            ReconstructionRecord(
                clip_id=row["clip_id"],
                fps=row["fps"],
                n_frames=row["n_frames"],
                checkpoint_id=loaded.checkpoint_id,
                codebook_id=loaded.codebook_id,
                code_version=__version__,
                **values,
            )
        )
    return records
