"""The paper's per-frame motion layout: 99 numbers per hand, 198 for both (PAPER.md section 2).

Per hand: global orientation as 6D (6), 15 joint rotations as 6D (90), wrist translation (3);
left hand first. Translation is shifted so the mean of the two wrists at the first frame where
both are valid is the origin. Missing frames are zeros, with a mask alongside.
"""

from __future__ import annotations

import numpy as np
import roma
import torch

from hiw.motion.rotations import matrix_to_6d, sixd_to_matrix
from hiw.schemas import HANDS

HAND_FEATURES = 99
FEATURES = 2 * HAND_FEATURES


def canonical_origin(transl: dict[str, np.ndarray], valid: dict[str, np.ndarray]) -> np.ndarray:
    """Mean of the two wrists at the first frame both hands are valid (or the first valid wrist)."""
    both = np.flatnonzero(valid["left"] & valid["right"])
    if len(both):
        return (transl["left"][both[0]] + transl["right"][both[0]]) / 2
    for side in HANDS:
        if valid[side].any():
            return transl[side][np.flatnonzero(valid[side])[0]]
    return np.zeros(3, np.float32)


def hand_features(rotations: np.ndarray, transl: np.ndarray) -> np.ndarray:
    """(T, 16, 3, 3), (T, 3) -> (T, 99)."""
    sixd = matrix_to_6d(torch.as_tensor(rotations)).reshape(len(rotations), -1).numpy()
    return np.concatenate([sixd, transl], axis=1)


def motion_features(
    rotations: dict[str, np.ndarray], transl: dict[str, np.ndarray], valid: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Both hands -> ((T, 198) float32 features, (T, 2) bool mask); left hand first."""
    origin = canonical_origin(transl, valid)
    parts = []
    for side in HANDS:
        feats = hand_features(rotations[side], transl[side] - origin)
        feats[~valid[side]] = 0.0
        parts.append(feats)
    return np.concatenate(parts, axis=1).astype(np.float32), np.stack([valid[s] for s in HANDS], axis=1)


def hand_params(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of ``hand_features`` for any leading shape: (..., 99) -> rotations (..., 16, 3, 3), transl (..., 3).

    The 6D parts are orthonormalised (Gram-Schmidt), so decoder outputs become proper rotations.
    """
    sixd = features[..., : HAND_FEATURES - 3].reshape(*features.shape[:-1], 16, 6)
    return sixd_to_matrix(sixd), features[..., HAND_FEATURES - 3 :]


def param_columns(features: np.ndarray, valid: np.ndarray, origin: np.ndarray) -> dict[str, np.ndarray]:
    """(T, 198) features and (T, 2) validity -> the ``motion`` table's per-hand columns (``{side}_valid``,
    ``_global_orient``, ``_hand_pose`` as axis-angle, ``_transl`` with ``origin`` added back); NaN where invalid."""
    columns = {}
    for h, side in enumerate(HANDS):
        rotations, transl = hand_params(
            torch.from_numpy(np.ascontiguousarray(features[:, h * HAND_FEATURES : (h + 1) * HAND_FEATURES]))
        )
        axis_angle = roma.rotmat_to_rotvec(rotations).numpy().reshape(len(features), 48)
        axis_angle[~valid[:, h]] = np.nan
        position = transl.numpy() + np.asarray(origin, np.float32)
        position[~valid[:, h]] = np.nan
        columns |= {
            f"{side}_valid": valid[:, h].copy(),
            f"{side}_global_orient": axis_angle[:, :3],
            f"{side}_hand_pose": axis_angle[:, 3:],
            f"{side}_transl": position,
        }
    return columns
