"""How accurate is the motion: fitting real 3D hand sequences (F-PHAB) and recovering known parameters.

- ``fit_error``: keypoints -> open-skeleton parameters -> forward kinematics, mean per-joint error.
- ``robustness``: the same sequence with Gaussian noise and dropped frames goes through the build's
  motion pipeline (fit, gap filling, smoothing); error against the clean joints over the noisy
  input's error (below 1: the pipeline removes more error than it adds).
- ``roundtrip``: random plausible parameters -> keypoints -> fit -> parameters, angle error.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import roma
import torch

from hiw.motion.fit import CHILD, FitSettings, fit_hand
from hiw.motion.hand_model import N_JOINTS, to_mano21
from hiw.motion.open_skeleton import OpenSkeleton
from hiw.motion.pipeline import MotionSettings, process_motion
from hiw.schemas import HandTrack
from hiw.trackers.base import ClipTracks
from hiw.trackers.precomputed import FPHAB_FPS, read_fphab


@dataclass(frozen=True)
class FitEval:
    path: str
    frames: int
    mean_mm: float  # clean fit error
    fit_ms_per_frame: float
    noisy_mm: float | None = None  # robustness run: error of the noisy input (observed frames)
    processed_mm: float | None = None  # ... and of the pipeline's output (all frames it returns)
    coverage: float | None = None  # share of frames the pipeline returns

    @property
    def ratio(self) -> float | None:
        return None if self.noisy_mm is None else self.processed_mm / self.noisy_mm


def fit_error(joints: np.ndarray, settings: FitSettings) -> tuple[float, float]:
    """(mean per-joint error mm, ms per frame) of fitting (T, 21, 3) OpenPose-order joints (metres)."""
    keypoints = to_mano21(joints, "openpose21")
    valid = np.ones(len(keypoints), bool)
    started = time.perf_counter()
    model = OpenSkeleton.calibrated("right", keypoints, valid)
    fit = fit_hand(model, keypoints, valid, settings)
    ms = (time.perf_counter() - started) * 1000 / len(keypoints)
    return float(np.linalg.norm(fit.keypoints - keypoints, axis=-1).mean() * 1000), ms


def robustness(
    joints: np.ndarray, noise_mm: float, drop: float, settings: MotionSettings, seed: int = 0, fps: float = FPHAB_FPS
) -> tuple[float, float, float]:
    """(noisy input error mm, pipeline output error mm, coverage) for one right-hand sequence, through the motion
    pipeline with ``settings`` (the build's: ``hiw.flows.settings.motion_settings``)."""
    rng = np.random.default_rng(seed)
    noisy = (joints + rng.normal(0, noise_mm / 1000, joints.shape)).astype(np.float32)
    valid = rng.random(len(joints)) >= drop
    noisy[~valid] = np.nan
    empty = np.full_like(noisy, np.nan)
    hands = {
        "right": HandTrack(side="right", valid=valid, keypoints_2d=empty, keypoints_3d=noisy),
        "left": HandTrack(side="left", valid=np.zeros(len(joints), bool), keypoints_2d=empty, keypoints_3d=empty),
    }
    # canonical rate = source rate, so every output frame has ground truth
    tracks = ClipTracks(fps=fps, hands=hands, coordinate_frame="world")
    out = process_motion(tracks, dataclasses.replace(settings, fps=fps)).hands["right"]
    ok = out.params.valid
    noisy_err = np.linalg.norm(noisy[valid] - joints[valid], axis=-1).mean() * 1000
    out_err = np.linalg.norm(out.keypoints_3d[ok] - joints[ok], axis=-1).mean() * 1000
    return float(noisy_err), float(out_err), float(ok.mean())


def evaluate_file(path: Path, settings: MotionSettings, noise_mm: float = 0.0, drop: float = 0.0, seed: int = 0) -> FitEval:
    """Fit error of one F-PHAB file with the build's fit, and with noise or drops its robustness run."""
    joints = read_fphab(path)
    mean_mm, ms = fit_error(joints, settings.fit)
    if noise_mm <= 0 and drop <= 0:
        return FitEval(str(path), len(joints), mean_mm, ms)
    noisy_mm, processed_mm, coverage = robustness(joints, noise_mm, drop, settings, seed)
    return FitEval(str(path), len(joints), mean_mm, ms, noisy_mm, processed_mm, coverage)


def random_pose(n: int, rng: np.random.Generator, max_deg: float = 50.0, max_twist_deg: float = 0.0) -> np.ndarray:
    """(n, 16, 3, 3) plausible rotations: any global orientation, finger joints bent about axes
    perpendicular to their bone by up to ``max_deg``, then twisted about the bone by up to ``max_twist_deg``."""
    rest = OpenSkeleton("right").rest.numpy()
    bones = np.stack([rest[CHILD[j]] - rest[j] for j in range(1, N_JOINTS)])
    bones /= np.linalg.norm(bones, axis=-1, keepdims=True)
    axes = rng.normal(size=(n, N_JOINTS - 1, 3))
    axes -= (axes * bones).sum(-1, keepdims=True) * bones  # perpendicular to the bone: a swing
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    angles = np.radians(rng.uniform(0, max_deg, size=(n, N_JOINTS - 1, 1)))
    twist = np.radians(rng.uniform(-max_twist_deg, max_twist_deg, size=(n, N_JOINTS - 1, 1))) * bones
    local = roma.rotvec_to_rotmat(torch.as_tensor(axes * angles, dtype=torch.float32)) @ roma.rotvec_to_rotmat(
        torch.as_tensor(twist, dtype=torch.float32)
    )
    glob = roma.random_rotmat(n)[:, None]
    return torch.cat([glob, local], dim=1).numpy()


def roundtrip(fit: FitSettings, n: int = 200, seed: int = 0, max_twist_deg: float = 0.0) -> tuple[float, float]:
    """(mean joint-rotation error deg, mean global-orientation error deg) over ``n`` random poses.

    Twist about a fingertip's bone moves no keypoint, so with ``max_twist_deg`` > 0 part of it is
    unrecoverable by any keypoint fit: the error then measures how much the twist prior gives up.
    """
    rng = np.random.default_rng(seed)
    model = OpenSkeleton("right")
    rot = torch.as_tensor(random_pose(n, rng, max_twist_deg=max_twist_deg))
    transl = torch.as_tensor(rng.normal(0, 0.2, size=(n, 3)), dtype=torch.float32)
    with torch.no_grad():
        keypoints = model.forward(rot, transl).numpy()
    fitted = fit_hand(model, keypoints, np.ones(n, bool), dataclasses.replace(fit, w_smooth=0))  # independent poses
    err = torch.rad2deg(roma.rotmat_geodesic_distance(torch.as_tensor(fitted.rotations), rot)).numpy()
    return float(err[:, 1:].mean()), float(err[:, 0].mean())
