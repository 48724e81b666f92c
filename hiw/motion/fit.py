"""Inverse kinematics: 3D keypoints -> hand-model parameters, batched over the frames of a sequence.

Two steps, both vectorised over frames:
1. a closed-form warm start: the palm's rigid pose by Kabsch, then each finger joint's rotation as
   the smallest one that turns its rest bone toward the observed bone, joint by joint down the tree;
2. a refinement in torch (L-BFGS over 6D rotations, translation and MANO betas) of
   keypoint error + temporal smoothness (wrist-relative joint accelerations over consecutive observed
   frames) +
   a pose prior (twist about each finger bone, which keypoints barely constrain and hands barely do).
Frames without an observation get no parameters here; short gaps are filled afterwards
(``hiw.motion.temporal``), so the same filling serves precomputed parameters too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import roma
import torch

from hiw.motion.hand_model import N_JOINTS, PALM, PARENTS, HandModel
from hiw.motion.rotations import rotation_between

# the joint each joint's rotation aims at: next joint down the finger, or the fingertip
CHILD = {1: 2, 2: 3, 3: 17, 4: 5, 5: 6, 6: 18, 7: 8, 8: 9, 9: 20, 10: 11, 11: 12, 12: 19, 13: 14, 14: 15, 15: 16}


@dataclass(frozen=True)
class FitSettings:
    iterations: int  # L-BFGS steps after the closed-form start (the build's --fit-iterations)
    w_smooth: float = 0.02  # weight of articulation acceleration (mm per frame^2) against keypoint error (mm)
    w_twist: float = 10.0  # weight of squared twist (rad) per joint
    w_betas: float = 1.0  # MANO shape prior (squared betas)

    def describe(self) -> str:
        return f"lbfgs{self.iterations}+smooth{self.w_smooth:g}+twist{self.w_twist:g}"


@dataclass
class FitResult:
    rotations: np.ndarray  # (T, 16, 3, 3), NaN where not observed
    transl: np.ndarray  # (T, 3)
    betas: np.ndarray  # (n_betas,)
    keypoints: np.ndarray  # (T, 21, 3) mano21, model output
    error_mm: np.ndarray  # (T,) mean per-keypoint distance to the observation, NaN where not observed
    valid: np.ndarray  # (T,) bool


def closed_form_pose(rest: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotations (B, 16, 3, 3) and transl (B, 3) that put ``rest`` (21, 3) bones along ``target`` (B, 21, 3)."""
    palm = list(PALM)
    glob_rot, t = roma.rigid_points_registration(rest[palm].expand(len(target), -1, -1), target[:, palm])
    transl = t - rest[0] + (glob_rot @ rest[0])
    local = [glob_rot]
    glob = {0: glob_rot}
    for j in range(1, N_JOINTS):
        parent_rot = glob[PARENTS[j]]
        observed = target[:, CHILD[j]] - target[:, j]
        rot = rotation_between(rest[CHILD[j]] - rest[j], (parent_rot.transpose(-1, -2) @ observed[..., None])[..., 0])
        local.append(rot)
        glob[j] = parent_rot @ rot
    return torch.stack(local, dim=1), transl


def fit_hand(model: HandModel, keypoints: np.ndarray, valid: np.ndarray, settings: FitSettings) -> FitResult:
    """Fit (T, 21, 3) mano21 keypoints (metres) on the frames where ``valid``."""
    n = len(valid)
    valid = valid & np.isfinite(keypoints).all(axis=(1, 2))
    idx = np.flatnonzero(valid)
    target = torch.as_tensor(keypoints[idx], dtype=torch.float32)
    betas = torch.zeros(model.n_betas)
    with torch.no_grad():
        rot0, transl0 = closed_form_pose(model.rest_joints(betas if model.n_betas else None), target)
    # optimise axis-angle steps from the warm start: well conditioned, no constraint to keep
    delta = torch.zeros(len(idx), N_JOINTS, 3, requires_grad=True)
    shift_mm = torch.zeros(len(idx), 3, requires_grad=True)  # millimetres: same scale as the loss
    params = [delta, shift_mm]
    if model.n_betas:
        betas.requires_grad_(True)
        params.append(betas)
    # accelerations only over runs of consecutive observed frames
    triples = torch.as_tensor(np.flatnonzero((idx[2:] - idx[:-2]) == 2))
    twist_axes = _twist_axes(model.rest_joints(None).detach())

    def loss_fn() -> torch.Tensor:
        rot = rot0 @ roma.rotvec_to_rotmat(delta)
        joints = model.forward(rot, transl0 + shift_mm / 1000, betas if model.n_betas else None)
        data = ((joints - target) * 1000).norm(dim=-1).pow(2).mean()
        loss = data
        if len(triples) and settings.w_smooth:
            mm = (joints - joints[:, :1]) * 1000  # articulation only: the trajectory is smoothed later, with the rotations
            acc = mm[triples] - 2 * mm[triples + 1] + mm[triples + 2]
            loss = loss + settings.w_smooth * acc.norm(dim=-1).pow(2).mean()
        if settings.w_twist:
            twist = (roma.rotmat_to_rotvec(rot[:, 1:]) * twist_axes).sum(-1)
            loss = loss + settings.w_twist * twist.pow(2).mean()
        if model.n_betas:
            loss = loss + settings.w_betas * betas.pow(2).mean()
        return loss

    if len(idx) and settings.iterations:
        opt = torch.optim.LBFGS(params, max_iter=settings.iterations, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = loss_fn()
            loss.backward()
            return loss

        opt.step(closure)
    with torch.no_grad():
        rot = rot0 @ roma.rotvec_to_rotmat(delta)
        transl = transl0 + shift_mm / 1000
        joints = model.forward(rot, transl, betas if model.n_betas else None)
        err = ((joints - target) * 1000).norm(dim=-1).mean(-1)
    out_rot = np.full((n, N_JOINTS, 3, 3), np.nan, np.float32)
    out_transl = np.full((n, 3), np.nan, np.float32)
    out_joints = np.full(keypoints.shape, np.nan, np.float32)
    out_err = np.full(n, np.nan, np.float32)
    out_rot[idx], out_transl[idx], out_joints[idx], out_err[idx] = (
        rot.numpy(),
        transl.detach().numpy(),
        joints.numpy(),
        err.numpy(),
    )
    return FitResult(out_rot, out_transl, betas.detach().numpy().copy(), out_joints, out_err, valid)


def _twist_axes(rest: torch.Tensor) -> torch.Tensor:
    """(15, 3) unit rest direction of the bone each finger joint rotates (the twist axis)."""
    axes = torch.stack([rest[CHILD[j]] - rest[j] for j in range(1, N_JOINTS)])
    return axes / axes.norm(dim=-1, keepdim=True)
