"""Motion sequences in the paper's 198-number layout, from procedural clips or a built dataset's ``motion`` table.

A ``MotionSequence`` is what the tokenizer sees: features (T, 198) at 15 fps with a per-hand mask, plus
what turning features back into joints needs (each hand's rest skeleton) and the translation origin the
features were shifted by. ``screen`` sorts out sequences the tokenizer must not see (NaNs, too short to
make one token, no valid frame) and counts them, so a bad row is reported, never trained on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import roma
import torch

from hiw.data.procedural import ProceduralClip, generate
from hiw.data.splits import check_split, split_of
from hiw.motion.features import canonical_origin, motion_features
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
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items())) or "none"
        return f"{len(self.kept)} sequences kept; skipped: {skipped}"


def screen(sequences: Iterable[MotionSequence], min_frames: int) -> Screened:
    """Drop sequences with NaN/inf in a valid frame (``nan``), fewer than ``min_frames`` frames (``too_short``,
    i.e. shorter than one token step) or no valid frame of either hand (``all_masked``)."""
    out = Screened([])
    for seq in sequences:
        valid = np.repeat(seq.mask, seq.features.shape[1] // 2, axis=1)
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
    """Every row of a built dataset's ``motion`` table (one split when given), with its first caption as text."""
    from hiw.storage import open_catalog

    check_split(split)
    columns = ["clip_id", "fps"] + [
        f"{s}_{c}" for s in HANDS for c in ("valid", "global_orient", "hand_pose", "transl", "rest_keypoints")
    ]
    sql = f"""SELECT {", ".join("m." + c for c in columns)},
                     (SELECT first(c.text ORDER BY c.kind DESC) FROM captions c WHERE c.clip_id = m.clip_id) AS text
              FROM motion m ORDER BY m.clip_id"""
    with open_catalog(root) as con:
        rows = con.sql(sql).to_arrow_table().to_pylist()
    return [_row_sequence(row) for row in rows if split is None or split_of(row["clip_id"]) == split]


def _row_sequence(row: dict) -> MotionSequence:
    rotations, transl, valid, rest = {}, {}, {}, {}
    for side in HANDS:
        valid[side] = np.asarray(row[f"{side}_valid"], bool)
        axis_angle = np.concatenate(
            [
                np.asarray(row[f"{side}_global_orient"], np.float32).reshape(-1, 1, 3),
                np.asarray(row[f"{side}_hand_pose"], np.float32).reshape(-1, 15, 3),
            ],
            axis=1,
        )
        # NaN parameters mark missing frames; give them the identity so the features stay finite (they are masked)
        axis_angle[~valid[side]] = 0.0
        rotations[side] = roma.rotvec_to_rotmat(torch.as_tensor(axis_angle)).numpy()
        transl[side] = np.asarray(row[f"{side}_transl"], np.float32).reshape(-1, 3)
        transl[side][~valid[side]] = 0.0
        kp = np.asarray(row[f"{side}_rest_keypoints"] or [], np.float32)
        rest[side] = kp.reshape(21, 3) if kp.size == 63 else template(side)
    return from_params(row["clip_id"], rotations, transl, valid, rest, float(row["fps"]), row.get("text") or "")
