"""The tokenizer's reconstruction metrics in joint space: features -> rotations -> forward kinematics of each hand's skeleton.

- MPJPE (mm): mean distance between the 21 reconstructed and original keypoints (wrist translation
  included), over every valid frame of every hand; the local MPJPE measures the keypoints relative to
  their wrist, i.e. the hand's articulation without its trajectory.
- Acceleration error (mm/frame^2, the HMMR/VIBE convention, at the sequences' 15 fps): mean distance
  between reconstructed and original keypoint accelerations, over triples of consecutive valid frames.
- Codebook usage (share of codes used) and perplexity (exp of the code entropy) over valid token steps.
"""

from __future__ import annotations

import numpy as np
import torch

from hiw.models.quantizer import code_usage
from hiw.motion.features import HAND_FEATURES, hand_params
from hiw.motion.hand_model import forward_kinematics


def keypoints(features: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
    """Raw (denormalised) features (T, 198) and rest skeletons (2, 21, 3) -> keypoints (T, 2, 21, 3), metres."""
    hands = []
    for h in range(2):
        rotations, transl = hand_params(features[:, h * HAND_FEATURES : (h + 1) * HAND_FEATURES])
        hands.append(forward_kinematics(rest[h], rotations, transl))
    return torch.stack(hands, dim=1)


class JointErrors:
    """Per-keypoint position and acceleration errors, accumulated sequence by sequence."""

    def __init__(self) -> None:
        self.position_sum, self.local_sum, self.position_n = 0.0, 0.0, 0
        self.accel_sum, self.accel_n = 0.0, 0

    def add(self, truth: torch.Tensor, recon: torch.Tensor, mask: torch.Tensor) -> None:
        """Keypoints (T, 2, 21, 3) of the original and the reconstruction, per-hand mask (T, 2)."""
        dist = (truth - recon).norm(dim=-1) * 1000  # (T, 2, 21) mm
        self.position_sum += float(dist[mask].sum())
        local = ((truth - truth[..., :1, :]) - (recon - recon[..., :1, :])).norm(dim=-1) * 1000
        self.local_sum += float(local[mask].sum())
        self.position_n += int(mask.sum()) * dist.shape[-1]
        ok = mask[:-2] & mask[1:-1] & mask[2:]
        if ok.any():
            err = (_accel(truth) - _accel(recon)).norm(dim=-1) * 1000
            self.accel_sum += float(err[ok].sum())
            self.accel_n += int(ok.sum()) * err.shape[-1]

    @property
    def mpjpe_mm(self) -> float:
        return self.position_sum / max(self.position_n, 1)

    @property
    def local_mpjpe_mm(self) -> float:
        return self.local_sum / max(self.position_n, 1)

    @property
    def accel_mm(self) -> float:
        return self.accel_sum / max(self.accel_n, 1)


def _accel(k: torch.Tensor) -> torch.Tensor:
    return k[2:] - 2 * k[1:-1] + k[:-2]


def codebook_stats(codes: np.ndarray, codebook_size: int) -> tuple[float, float]:
    """Codes used at valid steps -> (share of the codebook used, perplexity); (0, 0) for none."""
    if codes.size == 0:
        return 0.0, 0.0
    perplexity, used = code_usage(torch.as_tensor(codes, dtype=torch.long), codebook_size)
    return int(used) / codebook_size, float(perplexity)
