"""Motion sequences in the paper's 198-number layout, from procedural clips or a built dataset's ``motion`` table.

A ``MotionSequence`` is what the tokenizer sees: features (T, 198) at 15 fps with a per-hand mask, plus
what turning features back into joints needs (each hand's rest skeleton) and the translation origin the
features were shifted by. ``screen`` sorts out sequences the tokenizer must not see (NaNs, too short to
make one token, no valid frame) and counts them, so a bad row is reported, never trained on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import roma
import torch

from hiw.data.counts import kept_and_skipped
from hiw.data.procedural import ProceduralClip, generate
from hiw.data.splits import check_split, dataset_splits, split_of
from hiw.motion.features import HAND_FEATURES, canonical_origin, motion_features
from hiw.motion.open_skeleton import template
from hiw.schemas import HANDS


@dataclass(frozen=True)
class MotionSequence:
    clip_id: str
    features: np.ndarray = field(repr=False)  # (T, 198) float32, left hand first, zeros where a hand is missing
    mask: np.ndarray = field(repr=False)  # (T, 2) bool: left, right valid
    rest: np.ndarray = field(repr=False)  # (2, 21, 3) float32 rest keypoints (mano21 order) for forward kinematics
    origin: np.ndarray = field(repr=False)  # (3,) translation subtracted from both wrists (canonical origin)
    fps: float = 15.0
    text: str = ""

    @property
    def n_frames(self) -> int:
        return len(self.features)


@dataclass
class Screened:
    """Sequences fit for the tokenizer, and how many were set aside for which reason."""

    kept: list[MotionSequence]
    skipped: Counter = field(default_factory=Counter)

    def describe(self) -> str:
        return kept_and_skipped(len(self.kept), "sequences", self.skipped)


def screen(sequences: Iterable[MotionSequence], min_frames: int) -> Screened:
    """Drop sequences with NaN/inf in a valid frame (``nan``), fewer than ``min_frames`` frames (``too_short``,
    i.e. shorter than one token step) or no valid frame of either hand (``all_masked``)."""
    out = Screened([])
    for seq in sequences:
        valid = np.repeat(seq.mask, HAND_FEATURES, axis=1)
        if not np.isfinite(seq.features[valid]).all() or not np.isfinite(seq.origin).all():
            out.skipped["nan"] += 1
        elif seq.n_frames < min_frames:
            out.skipped["too_short"] += 1
        elif not seq.mask.any():
            out.skipped["all_masked"] += 1
        else:
            out.kept.append(seq)
    return out


def from_params(
    clip_id: str,
    rotations: dict[str, np.ndarray],
    transl: dict[str, np.ndarray],
    valid: dict[str, np.ndarray],
    rest: dict[str, np.ndarray],
    fps: float,
    text: str = "",
) -> MotionSequence:
    origin = canonical_origin(transl, valid)
    features, mask = motion_features(rotations, transl, valid)
    rest_arr = np.stack([np.asarray(rest[s], np.float32).reshape(21, 3) for s in HANDS])
    return MotionSequence(clip_id, features, mask, rest_arr, np.asarray(origin, np.float32), fps, text)


def from_procedural(clip: ProceduralClip) -> MotionSequence:
    rest = {side: template(side) for side in HANDS}
    return from_params(clip.clip_id, clip.rotations, clip.transl, clip.valid, rest, clip.fps, clip.text)


def procedural_sequences(n: int, seed: int, split: str | None = None) -> list[MotionSequence]:
    """``n`` generated clips (deterministic for ``seed``), restricted to one split when given."""
    check_split(split)
    return [from_procedural(c) for c in generate(n, seed) if split is None or split_of(c.clip_id) == split]


def dataset_sequences(root: Path, split: str | None = None) -> list[MotionSequence]:
    """Every row of a built dataset's ``motion`` table (one split when given), with its first caption as text.

    A clip's split is its source video's (``dataset_splits``); only the rows of the split are read.
    """
    from hiw.storage import open_catalog

    check_split(split)
    with open_catalog(root) as con:
        wanted = None
        if split is not None:
            splits = dataset_splits(con)
            wanted = [c for c, s in zip(splits["clip_id"].to_pylist(), splits["split"].to_pylist()) if s == split]
        return list(read_sequences(con, wanted))


MOTION_PARTS = ("valid", "global_orient", "hand_pose", "transl", "rest_keypoints")
_WIDTHS = {"valid": None, "global_orient": 3, "hand_pose": 45, "transl": 3, "rest_keypoints": None}


def read_sequences(
    con: duckdb.DuckDBPyConnection, clip_ids: Sequence[str] | None = None, batch_rows: int = 256, ordered: bool = True
) -> Iterator[MotionSequence]:
    """Rows of the ``motion`` table (all, or those in ``clip_ids``) as sequences, ``batch_rows`` rows at a time.

    Per-frame columns go from Arrow to numpy without Python lists, and only one batch is held at once.
    ``ordered`` sorts by clip_id (DuckDB then buffers the rows to sort them; exports that write one file per
    clip need no order). Do not run other queries on ``con`` while iterating: that would end this one.
    """
    columns = ["clip_id", "fps"] + [f"{s}_{c}" for s in HANDS for c in MOTION_PARTS]
    where = "WHERE m.clip_id IN (SELECT unnest($ids))" if clip_ids is not None else ""
    sql = f"""SELECT {", ".join("m." + c for c in columns)},
                     (SELECT first(c.text ORDER BY c.kind DESC) FROM captions c WHERE c.clip_id = m.clip_id) AS text
              FROM motion m {where} {"ORDER BY m.clip_id" if ordered else ""}"""
    params = {"ids": list(clip_ids)} if clip_ids is not None else None
    for batch in con.sql(sql, params=params).to_arrow_reader(batch_rows):
        yield from arrow_sequences(batch)


def arrow_sequences(table: pa.Table | pa.RecordBatch) -> list[MotionSequence]:
    """Motion rows (clip_id, fps, text and the per-hand parameter columns) -> sequences. Without
    ``*_rest_keypoints`` (generated motion has none) each hand gets the open skeleton's rest pose."""
    names = set(table.schema.names)
    per_row = {
        f"{s}_{c}": frame_rows(table[f"{s}_{c}"], _WIDTHS[c]) if f"{s}_{c}" in names else [np.zeros(0)] * len(table)
        for s in HANDS
        for c in MOTION_PARTS
    }
    fps, texts = table["fps"].to_pylist(), table["text"].to_pylist()
    return [
        _row_sequence(clip_id, {name: values[i] for name, values in per_row.items()}, fps[i], texts[i] or "")
        for i, clip_id in enumerate(table["clip_id"].to_pylist())
    ]


def frame_rows(column: pa.Array | pa.ChunkedArray, width: int | None) -> list[np.ndarray]:
    """A list column -> one numpy array per row: (frames, width) for fixed-size frame lists, flat otherwise."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    offsets = arr.offsets.to_numpy()
    values = arr.values.flatten() if width else arr.values
    flat = values.to_numpy(zero_copy_only=False)
    if width:
        flat = flat.reshape(-1, width)
    return [flat[offsets[i] : offsets[i + 1]] for i in range(len(arr))]


def _row_sequence(clip_id: str, row: dict[str, np.ndarray], fps: float, text: str) -> MotionSequence:
    rotations, transl, valid, rest = {}, {}, {}, {}
    for side in HANDS:
        valid[side] = row[f"{side}_valid"].astype(bool)
        axis_angle = np.concatenate(
            [row[f"{side}_global_orient"].reshape(-1, 1, 3), row[f"{side}_hand_pose"].reshape(-1, 15, 3)], axis=1
        ).astype(np.float32)
        # NaN parameters mark missing frames; give them the identity so the features stay finite (they are masked)
        axis_angle[~valid[side]] = 0.0
        rotations[side] = roma.rotvec_to_rotmat(torch.as_tensor(axis_angle)).numpy()
        transl[side] = row[f"{side}_transl"].astype(np.float32)
        transl[side][~valid[side]] = 0.0
        kp = row[f"{side}_rest_keypoints"].astype(np.float32)
        rest[side] = kp.reshape(21, 3) if kp.size == 63 else template(side)
    return from_params(clip_id, rotations, transl, valid, rest, float(fps), text)
