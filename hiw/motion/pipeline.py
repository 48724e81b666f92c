"""Tracks of one clip -> the paper's motion: MANO-style parameters per hand at the canonical rate.

Order: repair (NaNs, impossible frames) -> handedness consistency -> camera space (PnP) -> head
rotation removed -> fit (unless the source has parameters) -> gap filling -> Savitzky-Golay and
Gaussian smoothing -> resampling. Works on mediapipe tracks and on precomputed ones alike.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from hiw.errors import StageError
from hiw.motion.camera import CameraRotations, Intrinsics, camera_space_keypoints, compensate_rotation
from hiw.motion.fit import FitSettings, fit_hand
from hiw.motion.hand_model import PARENTS21, HandModel, from_mano21, to_mano21
from hiw.motion.handedness import apply_swaps, swap_frames
from hiw.motion.open_skeleton import OpenSkeleton
from hiw.motion.temporal import (
    ParamSequence,
    TemporalSettings,
    fill_gaps,
    resample,
    resample_array,
    resample_positions,
    smooth,
)
from hiw.schemas import HANDS, HandTrack
from hiw.trackers.base import ClipTracks

BONE_RATIO_RANGE = (0.5, 2.0)  # a frame whose summed bone length is off the median by more is a bad detection
# (mediapipe's metric hands legitimately vary by up to ~40% between frames of one clip)


@dataclass(frozen=True)
class MotionSettings:
    fps: float
    hand_model: str  # "open" or "mano"
    mano_dir: str | None
    compensate_head_rotation: bool
    fit: FitSettings
    temporal: TemporalSettings

    def describe(self, fitted: bool = True) -> str:
        source = f"fit {self.fit.describe()}" if fitted else "parameters as given"
        return f"{source}; {self.temporal.describe()}; resample {self.fps:g} fps"


@dataclass
class HandMotion:
    """One hand at the canonical rate."""

    params: ParamSequence
    betas: np.ndarray
    rest: np.ndarray  # (21, 3) mano21 rest keypoints of the fitted model
    keypoints_3d: np.ndarray  # (T, 21, 3) openpose order, model output, NaN where invalid
    keypoints_2d: np.ndarray  # (T, 21, 3) openpose order, tracker's, source pixels
    fit_error_mm: np.ndarray  # (T,)


@dataclass
class ClipMotion:
    hands: dict[str, HandMotion]
    fps: float
    hand_model: str
    coordinate_frame: str
    camera_rotations: np.ndarray  # (T, 3, 3) camera at frame t -> first camera (identity when not estimated)
    head_rotation_deg: float
    swapped_frames: int
    dropped_frames: int  # observations removed as impossible (NaN, absurd bone lengths, behind the camera)
    fitted: bool  # parameters come from the fit (False: precomputed parameters)

    @property
    def n_frames(self) -> int:
        return len(self.camera_rotations)


def make_hand_model(settings: MotionSettings, side: str, keypoints: np.ndarray, valid: np.ndarray) -> HandModel:
    if settings.hand_model == "mano":
        from hiw.motion.mano import ManoHand  # smplx only when asked for

        return ManoHand(side, mano_dir=settings.mano_dir)
    return OpenSkeleton.calibrated(side, keypoints, valid)


def plausible_frames(keypoints: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Valid frames that are finite and whose hand size is close to the sequence's median."""
    ok = valid & np.isfinite(keypoints).all(axis=(1, 2))
    if not ok.any():
        return ok
    bones = np.linalg.norm(keypoints[:, 1:] - keypoints[:, list(PARENTS21[1:])], axis=-1).sum(-1)
    ratio = bones / np.median(bones[ok])
    return ok & (ratio >= BONE_RATIO_RANGE[0]) & (ratio <= BONE_RATIO_RANGE[1])


def finite_params(seq: ParamSequence) -> np.ndarray:
    """Frames whose parameters are all finite (a source may give NaN rotations for frames it marks valid)."""
    return seq.valid & np.isfinite(seq.rotations).all(axis=(1, 2, 3)) & np.isfinite(seq.transl).all(-1)


def fix_handedness(tracks: ClipTracks, jump_px: float) -> tuple[ClipTracks, int]:
    """Undo the tracker's left/right swaps, judged on 2D wrists when every observation has them.

    Hand-centred 3D says nothing about where a hand is, so such tracks are always judged in 2D (a frame
    whose 2D wrist is missing then counts as unseen).
    """
    hands = [tracks.hands[s] for s in HANDS]
    wrists_2d = [h.keypoints_2d.reshape(-1, 21, 3)[:, 0, :2] for h in hands]
    use_2d = tracks.coordinate_frame == "hand_centred" or all(np.isfinite(w[h.valid]).all() for w, h in zip(wrists_2d, hands))
    if tracks.params:
        use_2d = False
        pos = [tracks.params[s].transl for s in HANDS]
    else:
        pos = wrists_2d if use_2d else [h.keypoints_3d.reshape(-1, 21, 3)[:, 0] for h in hands]
    jump = jump_px if use_2d else 0.15  # metres when only 3D is known
    seen = [h.valid & np.isfinite(p).all(-1) for h, p in zip(hands, pos)]
    left, right = hands
    swap = swap_frames(pos[0], pos[1], seen[0], seen[1], jump)
    if not swap.any():
        return tracks, 0
    fields = {}
    for name in ("valid", "keypoints_2d", "keypoints_3d"):
        fields[name] = apply_swaps(getattr(left, name), getattr(right, name), swap)
    hands = {side: HandTrack(side=side, **{name: fields[name][i] for name in fields}) for i, side in enumerate(HANDS)}
    params = tracks.params
    if params:
        swapped = {}
        for name in ("rotations", "transl", "valid", "filled"):
            swapped[name] = apply_swaps(getattr(params["left"], name), getattr(params["right"], name), swap)
        params = {side: ParamSequence(**{k: v[i] for k, v in swapped.items()}) for i, side in enumerate(HANDS)}
    return replace(tracks, hands=hands, params=params), int(swap.sum())


def _observations(tracks: ClipTracks, intrinsics: Intrinsics | None) -> tuple[dict, str, int]:
    """Per hand (mano21 keypoints, usable frames, 2D keypoints), their coordinate frame, and frames dropped.

    Hand-centred tracks are placed in camera space by PnP when intrinsics are known; frames with NaNs,
    a failed PnP or an impossible hand size (or NaN precomputed parameters) are not usable.
    """
    n = tracks.n_frames
    to_camera = tracks.coordinate_frame == "hand_centred" and intrinsics is not None
    observed, dropped = {}, 0
    for side in HANDS:
        hand = tracks.hands[side]
        kp3d = hand.keypoints_3d.reshape(n, 21, 3)
        kp2d = hand.keypoints_2d.reshape(n, 21, 3)
        valid = hand.valid & np.isfinite(kp3d).all(axis=(1, 2))
        if to_camera:
            cam = camera_space_keypoints(kp2d, kp3d, valid, intrinsics)
            kp3d, valid = cam.keypoints, cam.valid
        keypoints = to_mano21(kp3d, "openpose21")
        ok = plausible_frames(keypoints, valid) if tracks.params is None else hand.valid & finite_params(tracks.params[side])
        dropped += int((hand.valid & ~ok).sum())
        observed[side] = (keypoints, ok, kp2d)
    return observed, "camera" if to_camera else tracks.coordinate_frame, dropped


def process_motion(
    tracks: ClipTracks,
    settings: MotionSettings,
    intrinsics: Intrinsics | None = None,
    rotations: CameraRotations | None = None,
    image_width: int = 1920,
) -> ClipMotion:
    """Both hands of a clip -> parameters at ``settings.fps`` (see the module docstring)."""
    tracks, swapped = fix_handedness(tracks, jump_px=0.15 * image_width)
    n = tracks.n_frames
    observed, frame, dropped = _observations(tracks, intrinsics)
    cam_rot = np.broadcast_to(np.eye(3, dtype=np.float32), (n, 3, 3))
    if rotations is not None and settings.compensate_head_rotation and frame == "camera":
        cam_rot = rotations.rotations
        observed = {s: (compensate_rotation(k, cam_rot), ok, k2) for s, (k, ok, k2) in observed.items()}
        frame = "camera_rotation_compensated"

    positions = resample_positions(n, tracks.fps, settings.fps)
    max_gap = round(settings.temporal.max_gap_s * tracks.fps)
    hands, model_name = {}, settings.hand_model
    for side in HANDS:
        keypoints, ok, kp2d = observed[side]
        if tracks.params is not None:
            seq = replace(tracks.params[side], valid=tracks.params[side].valid & ok)
            betas, error = tracks.betas[side], np.full(n, np.nan, np.float32)
            model = make_hand_model(settings, side, keypoints, ok) if settings.hand_model == "mano" else None
            model_name = tracks.hand_model or model_name
        elif ok.any():
            model = make_hand_model(settings, side, keypoints, ok)
            fit = fit_hand(model, keypoints, ok, settings.fit)
            seq, betas, error = ParamSequence.observed(fit.rotations, fit.transl, fit.valid), fit.betas, fit.error_mm
            model_name = model.name
        else:
            seq, betas, error, model = _empty(n), np.zeros(0, np.float32), np.full(n, np.nan, np.float32), None
        seq = resample(smooth(fill_gaps(seq, max_gap), tracks.fps, settings.temporal), positions)
        hands[side] = _hand_motion(model, seq, betas, kp2d, hand_valid=ok, error=error, positions=positions)
    cam_canonical = cam_rot[np.clip(np.round(positions).astype(int), 0, n - 1)]
    head = rotations.total_angle_deg() if frame == "camera_rotation_compensated" else 0.0
    fitted = tracks.params is None
    return ClipMotion(hands, settings.fps, model_name_for(model_name), frame, cam_canonical, head, swapped, dropped, fitted)


def model_name_for(name: str) -> str:
    return {"open": OpenSkeleton.name}.get(name, name)


def _empty(n: int) -> ParamSequence:
    return ParamSequence(
        np.full((n, 16, 3, 3), np.nan, np.float32), np.full((n, 3), np.nan, np.float32), np.zeros(n, bool), np.zeros(n, bool)
    )


def _hand_motion(
    model: HandModel | None,
    seq: ParamSequence,
    betas: np.ndarray,
    kp2d: np.ndarray,
    hand_valid: np.ndarray,
    error: np.ndarray,
    positions: np.ndarray,
) -> HandMotion:
    t = len(seq.valid)
    keypoints = np.full((t, 21, 3), np.nan, np.float32)
    rest = np.full((21, 3), np.nan, np.float32)
    if model is not None:
        b = torch.as_tensor(betas) if model.n_betas else None
        with torch.no_grad():
            rest = model.rest_joints(b).numpy()
            if seq.valid.any():
                out = model.forward(torch.as_tensor(seq.rotations[seq.valid]), torch.as_tensor(seq.transl[seq.valid]), b)
                keypoints[seq.valid] = from_mano21(out.numpy(), "openpose21")
    nearest = np.clip(np.round(positions).astype(int), 0, len(error) - 1)
    return HandMotion(
        params=seq,
        betas=betas.astype(np.float32),
        rest=rest,
        keypoints_3d=keypoints,
        keypoints_2d=resample_array(kp2d, hand_valid, positions),
        fit_error_mm=np.where(seq.valid, error[nearest], np.nan).astype(np.float32),
    )


def require_motion(motion: ClipMotion) -> None:
    if not any(h.params.valid.any() for h in motion.hands.values()):
        raise StageError("no_motion", "no frame of either hand survived repair and fitting")
