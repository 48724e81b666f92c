"""The MANO kinematic tree, keypoint orders, and the interface every hand model implements.

Joint order ("mano21"): the 16 MANO joints (wrist; index, middle, pinky, ring, thumb, three each,
proximal to distal) then 5 fingertips (thumb, index, middle, ring, pinky), the order smplx uses.
Keypoints are stored in the OpenPose/mediapipe order ("openpose21": wrist, then thumb, index,
middle, ring, pinky from base to tip); F-PHAB files use their own order ("fphab21": wrist, the five
finger bases, then PIP/DIP/tip finger by finger). The index arrays below map between them.

Parameters: ``rotations`` (B, 16, 3, 3) = global orientation then 15 joint rotations relative to
the model's rest pose, each in its parent's frame; ``transl`` (B, 3) shifts the posed hand, so the
wrist lands at rest_wrist + transl (the MANO convention; the open skeleton's rest wrist is 0).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

N_JOINTS = 16  # MANO joints (rotations)
N_KEYPOINTS = 21  # joints + fingertips
FINGERS_MANO = ("index", "middle", "pinky", "ring", "thumb")  # MANO's joint blocks, in order
PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)
# mano21 fingertips 16..20 (thumb, index, middle, ring, pinky) hang off these distal joints
TIP_PARENTS = (15, 3, 6, 12, 9)
PARENTS21 = PARENTS + TIP_PARENTS
PALM = (0, 1, 4, 7, 10, 13)  # wrist and the five finger bases: rigid in both models

# mano21[i] = openpose21[MANO21_FROM_OPENPOSE[i]]
MANO21_FROM_OPENPOSE = np.array([0, 5, 6, 7, 9, 10, 11, 17, 18, 19, 13, 14, 15, 1, 2, 3, 4, 8, 12, 16, 20])
MANO21_FROM_FPHAB = np.array([0, 2, 9, 10, 3, 12, 13, 5, 18, 19, 4, 15, 16, 1, 6, 7, 8, 11, 14, 17, 20])
OPENPOSE_FROM_MANO21 = np.argsort(MANO21_FROM_OPENPOSE)
FPHAB_FROM_MANO21 = np.argsort(MANO21_FROM_FPHAB)
LAYOUTS = {"openpose21": MANO21_FROM_OPENPOSE, "fphab21": MANO21_FROM_FPHAB, "mano21": np.arange(N_KEYPOINTS)}
# the bones in the order keypoints are stored (each finger a chain from the wrist), for drawing
PARENTS_OPENPOSE = tuple(
    -1 if PARENTS21[OPENPOSE_FROM_MANO21[j]] < 0 else int(MANO21_FROM_OPENPOSE[PARENTS21[OPENPOSE_FROM_MANO21[j]]])
    for j in range(N_KEYPOINTS)
)


def to_mano21(keypoints: np.ndarray, layout: str) -> np.ndarray:
    """(..., 21, C) keypoints in ``layout`` order -> mano21 order."""
    return keypoints[..., LAYOUTS[layout], :]


def from_mano21(keypoints: np.ndarray, layout: str) -> np.ndarray:
    return keypoints[..., np.argsort(LAYOUTS[layout]), :]


def forward_kinematics(rest: torch.Tensor, rotations: torch.Tensor, transl: torch.Tensor) -> torch.Tensor:
    """Pose a rigid-bone skeleton: rest (21, 3) or (B, 21, 3) joints, rotations (B, 16, 3, 3) -> (B, 21, 3)."""
    rest = rest.expand(rotations.shape[0], N_KEYPOINTS, 3)
    offsets = rest[:, 1:] - rest[:, list(PARENTS21[1:])]  # each joint relative to its parent, rest pose
    glob = [rotations[:, 0]]
    pos = [rest[:, 0] + transl]
    for j in range(1, N_KEYPOINTS):
        parent = PARENTS21[j]
        pos.append(pos[parent] + (glob[parent] @ offsets[:, j - 1, :, None])[..., 0])
        if j < N_JOINTS:
            glob.append(glob[parent] @ rotations[:, j])
    return torch.stack(pos, dim=1)


class HandModel(Protocol):
    """A hand whose 21 keypoints follow from (rotations, transl[, betas])."""

    name: str  # recorded with every fitted sequence
    side: str
    n_betas: int  # shape parameters fitted per sequence (0: none)

    def rest_joints(self, betas: torch.Tensor | None = None) -> torch.Tensor:
        """(21, 3) mano21 keypoints in the rest pose, metres, wrist-relative frame of the model."""
        ...

    def forward(self, rotations: torch.Tensor, transl: torch.Tensor, betas: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 16, 3, 3), (B, 3)[, (n_betas,)] -> (B, 21, 3) mano21 keypoints in metres."""
        ...
