"""A clip's pictures and 3D tracks: the frames the VLM saw with both hands' 2D keypoints drawn over them (OpenCV),
and each hand's 3D keypoints per frame for the page's animated view.

Frames come from where the build stored the VLM's (``cache/frames/<clip_id>-<n>x<width>/``), else they are decoded
from the source video at the same positions (``hiw.video.sample.pick_indices``); precomputed tracks have no pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import roma
import torch

from hiw.caches import FRAMES_DIR
from hiw.errors import StageError
from hiw.motion.hand_model import PARENTS_OPENPOSE, forward_kinematics, from_mano21
from hiw.motion.open_skeleton import template
from hiw.schemas import HANDS, ClipSpec
from hiw.video import sample
from hiw.video.sample import pick_indices

HAND_COLOURS = {"left": (255, 140, 0), "right": (0, 160, 255)}  # RGB: orange left, blue right (pages use the same)
FRAMES = 4  # frames per clip page when the build stored none
WIDTH = 480  # frame width on the pages
JPEG_QUALITY = 85


def stored_frames(root: Path, clip_id: str) -> list[Path]:
    """The VLM's frames of ``clip_id`` as the build stored them (the newest setting's folder), or none; a folder
    with a cut-off JPEG is moved aside by ``hiw.video.sample.stored_frames``, as a build would."""
    folders = sorted((root / FRAMES_DIR).glob(f"{clip_id}-*"), key=lambda p: p.stat().st_mtime)
    return sample.stored_frames(root, folders[-1].name) if folders else []


def decode_source(clip: dict[str, Any], width: int) -> np.ndarray:
    """Every frame of a ``clips`` row's span from its source video, ``width`` wide (StageError/OSError if it cannot)."""
    from hiw.video.decode import decode_clip

    return decode_clip(ClipSpec(**{k: clip[k] for k in ClipSpec.model_fields}), width, "auto")


def clip_frames(root: Path, clip: dict[str, Any], has_pixels: bool) -> tuple[list[np.ndarray], list[int], str]:
    """RGB frames to show, the clip-relative source frame index of each, and where they came from."""
    n = clip["end_frame"] - clip["start_frame"]
    stored = stored_frames(root, clip["clip_id"])
    if stored:
        images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in stored]
        return images, pick_indices(n, len(images)).tolist(), "the frames the VLM saw"
    if not has_pixels:
        return [], [], "no pixels: the motion came from a track file"
    try:
        frames = decode_source(clip, WIDTH)
    except (StageError, OSError) as err:
        return [], [], f"the source video could not be read ({err})"
    picked = pick_indices(len(frames), FRAMES)
    return [frames[i] for i in picked], picked.tolist(), "frames decoded from the source video where the VLM would sample"


def draw_keypoints(image: np.ndarray, keypoints: dict[str, np.ndarray | None], scale: float) -> np.ndarray:
    """``image`` with each hand's 2D keypoints (21, 3: x, y, confidence in source pixels) drawn, bones and joints."""
    out = image.copy()
    radius, thick = max(2, round(out.shape[1] / 240)), max(1, round(out.shape[1] / 320))
    for side, kp in keypoints.items():
        if kp is None or not np.isfinite(kp[:, :2]).all():
            continue
        points = np.round(kp[:, :2] * scale).astype(int)
        for j, parent in enumerate(PARENTS_OPENPOSE):
            if parent >= 0:
                cv2.line(out, tuple(points[parent]), tuple(points[j]), HAND_COLOURS[side], thick, cv2.LINE_AA)
        for point in points:
            cv2.circle(out, tuple(point), radius, HAND_COLOURS[side], -1, cv2.LINE_AA)
    return out


def frame_keypoints(motion: dict[str, Any] | None, clip: dict[str, Any], source_index: int) -> dict[str, np.ndarray | None]:
    """Each hand's 2D keypoints at the canonical frame nearest to clip-relative source frame ``source_index``."""
    if motion is None:
        return {side: None for side in HANDS}
    k = min(round(source_index * motion["fps"] / clip["source_fps"]), motion["n_frames"] - 1)
    out = {}
    for side in HANDS:
        valid = bool(motion[f"{side}_valid"][k])
        out[side] = motion[f"{side}_keypoints_2d"][k].reshape(21, 3) if valid else None
    return out


def overlay_jpegs(root: Path, clip: dict[str, Any], motion: dict[str, Any] | None, has_pixels: bool) -> tuple[list[bytes], str]:
    """The page's frames as JPEG bytes, keypoints drawn, and a line saying where they came from."""
    images, indices, origin = clip_frames(root, clip, has_pixels)
    out = []
    for image, index in zip(images, indices):
        scale = image.shape[1] / clip["width"] if clip["width"] else 1.0
        drawn = draw_keypoints(image, frame_keypoints(motion, clip, index), scale)
        if drawn.shape[1] > WIDTH:
            drawn = cv2.resize(drawn, (WIDTH, round(drawn.shape[0] * WIDTH / drawn.shape[1])), interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if ok:
            out.append(jpeg.tobytes())
    return out, origin


def tracks_3d(row: dict[str, Any] | None, rest_from: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Per hand, (T, 21, 3) keypoints in metres (openpose order, None for a frame without the hand), from a motion or
    reconstruction row: its ``keypoints_3d`` where the row has finite ones, else forward kinematics of its
    parameters on the rest skeleton of ``rest_from`` (the clip's motion row; the row itself by default)."""
    if row is None:
        return None
    rest_row = rest_from or row
    hands: dict[str, list] = {}
    for side in HANDS:
        valid = np.asarray(row[f"{side}_valid"], bool)
        kp = row.get(f"{side}_keypoints_3d")
        if kp is not None and np.isfinite(kp[valid]).all():
            points = kp.reshape(-1, 21, 3)
        else:
            points = _forward_kinematics(row, side, rest_row)
        hands[side] = [np.round(p, 4).tolist() if ok else None for p, ok in zip(points, valid)]
    return {"fps": float(row["fps"]), "frames": int(row["n_frames"]), "hands": hands}


def _forward_kinematics(row: dict[str, Any], side: str, rest_row: dict[str, Any]) -> np.ndarray:
    rest = rest_row.get(f"{side}_rest_keypoints")
    rest = np.asarray(rest, np.float32).reshape(21, 3) if rest is not None and np.size(rest) == 63 else template(side)
    axis_angle = np.concatenate([row[f"{side}_global_orient"], row[f"{side}_hand_pose"]], axis=1).reshape(-1, 16, 3)
    axis_angle = np.nan_to_num(axis_angle)  # frames without the hand: identity (they are not shown)
    rotations = roma.rotvec_to_rotmat(torch.from_numpy(axis_angle))
    transl = torch.from_numpy(np.nan_to_num(row[f"{side}_transl"]))
    mano21 = forward_kinematics(torch.from_numpy(rest), rotations, transl).numpy()
    return from_mano21(mano21, "openpose21")
