"""Rotation helpers on torch tensors (roma does the numerics).

6D features follow pytorch3d's ``matrix_to_rotation_6d``: the first two rows of the matrix, which
is what the CLUTCH/SHIFT code consumes.
"""

from __future__ import annotations

import roma
import torch


def matrix_to_6d(rot: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 6)."""
    return rot[..., :2, :].reshape(*rot.shape[:-2], 6)


def sixd_to_matrix(sixd: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3) by Gram-Schmidt on the two rows."""
    rows = sixd.reshape(*sixd.shape[:-1], 2, 3)
    return roma.special_gramschmidt(rows.transpose(-1, -2)).transpose(-1, -2)


def rotation_between(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Smallest rotation taking direction a to direction b, both (..., 3); (..., 3, 3)."""
    a, b = torch.broadcast_tensors(a, b)
    a = a / a.norm(dim=-1, keepdim=True).clamp_min(eps)
    b = b / b.norm(dim=-1, keepdim=True).clamp_min(eps)
    axis = torch.cross(a, b, dim=-1)
    angle = torch.atan2(axis.norm(dim=-1), (a * b).sum(-1))
    # Near-opposite directions leave a vanishing (or rounding-noise) cross product yet need a half turn:
    # keep the axis perpendicular to a, and fall back to a x (the coordinate axis least aligned with a).
    axis = axis - (axis * a).sum(-1, keepdim=True) * a
    helper = torch.zeros_like(a).scatter_(-1, a.abs().argmin(dim=-1, keepdim=True), 1.0)
    axis = torch.where(axis.norm(dim=-1, keepdim=True) > eps, axis, torch.cross(a, helper, dim=-1))
    axis = axis / axis.norm(dim=-1, keepdim=True).clamp_min(eps)
    return roma.rotvec_to_rotmat(axis * angle[..., None])


def interpolate(r0: torch.Tensor, r1: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Geodesic (SLERP) interpolation, element-wise: (..., 3, 3) pairs and weights (...) in [0, 1]."""
    delta = roma.rotmat_to_rotvec(r0.transpose(-1, -2) @ r1)
    return r0 @ roma.rotvec_to_rotmat(delta * w[..., None])


def angle_deg(r0: torch.Tensor, r1: torch.Tensor) -> torch.Tensor:
    return torch.rad2deg(roma.rotmat_geodesic_distance(r0, r1))


def project(mat: torch.Tensor) -> torch.Tensor:
    """Nearest rotation (SVD): the chordal mean after filtering matrix entries."""
    return roma.special_procrustes(mat)


__all__ = ["angle_deg", "interpolate", "matrix_to_6d", "project", "rotation_between", "sixd_to_matrix"]
