"""``hiw preview``: one clip as an mp4 to share: the source frames with both hands' 2D keypoints drawn over them, and
beside them a panel with the fitted 3D hands seen from a fixed viewpoint (OpenCV drawing, hiw's own projection).

The video runs at the source frame rate (each source frame shows the keypoints of the nearest 15 fps motion frame).
A clip from a track file has no pixels: its video is the 3D panel alone, at the motion's frame rate.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from hiw.browse.data import clip_pages, index_rows
from hiw.browse.media import HAND_COLOURS, decode_source, draw_keypoints, frame_keypoints, tracks_3d
from hiw.errors import ConfigError, StageError
from hiw.motion.hand_model import PARENTS_OPENPOSE
from hiw.schemas import HANDS
from hiw.storage import open_catalog, resolve_version
from hiw.video.discover import VIDEO_SUFFIXES

WIDTH = 640  # width of the video half
BACKGROUND = (16, 20, 24)  # RGB, as the pages' 3D view
YAW, PITCH = 0.5, 0.35  # the panel's fixed viewpoint (radians), as the pages' initial one


def project(points: np.ndarray, centre: np.ndarray, size: float, width: int, height: int) -> np.ndarray:
    """(..., 3) metres -> (..., 2) pixels: y shown up (hiw's camera-like frames have y down), turned by YAW and
    PITCH, perspective from 2.2 scene sizes away."""
    p = points - centre
    x, y, z = p[..., 0], -p[..., 1], p[..., 2]
    x, z = np.cos(YAW) * x + np.sin(YAW) * z, -np.sin(YAW) * x + np.cos(YAW) * z
    y, z = np.cos(PITCH) * y - np.sin(PITCH) * z, np.sin(PITCH) * y + np.cos(PITCH) * z
    distance, focal = 2.2 * size, 0.9 * min(width, height) / size
    scale = focal * distance / (distance + z)
    return np.stack([width / 2 + scale * x, height / 2 - scale * y], axis=-1)


def panel(hands: dict[str, list], frame: int, centre: np.ndarray, size: float, width: int, height: int) -> np.ndarray:
    """The 3D view of one motion frame as an RGB image."""
    image = np.full((height, width, 3), BACKGROUND, np.uint8)
    for side in HANDS:
        points = hands[side][min(frame, len(hands[side]) - 1)]
        if points is None:
            continue
        xy = np.round(project(np.asarray(points), centre, size, width, height)).astype(int)
        for j, parent in enumerate(PARENTS_OPENPOSE):
            if parent >= 0:
                cv2.line(image, tuple(xy[parent]), tuple(xy[j]), HAND_COLOURS[side], 2, cv2.LINE_AA)
        for point in xy:
            cv2.circle(image, tuple(point), 3, HAND_COLOURS[side], -1, cv2.LINE_AA)
    return image


def _scene(hands: dict[str, list]) -> tuple[np.ndarray, float]:
    points = np.array([p for hand in hands.values() for frame in hand if frame is not None for p in frame])
    if not len(points):
        return np.zeros(3), 0.2
    lo, hi = points.min(0), points.max(0)
    return (lo + hi) / 2, max(0.15, float((hi - lo).max()))


def write_preview(root: Path, clip_id: str, out: Path, version: str | None = None) -> dict:
    """Write the preview of ``clip_id`` to ``out`` (.mp4); returns what was written (frames, fps, size)."""
    root = Path(root).resolve()
    name = resolve_version(root, version)
    with open_catalog(root, name) as con:
        rows = index_rows(con, clip_id)
        if not rows:
            raise ConfigError(f'no clip {clip_id!r} in {root} ({name}); `hiw query --root {root} "SELECT clip_id FROM clips"`')
        (page,) = clip_pages(con, root, name, rows)
    if page.motion is None:
        raise ConfigError(f"clip {clip_id} has no motion (it was {page.clip['status']}: {page.clip['reject_reason']})")
    tracks = tracks_3d(page.motion)
    centre, size = _scene(tracks["hands"])
    clip = page.clip
    frames, fps = None, float(tracks["fps"])
    if Path(clip["source_path"]).suffix.lower() in VIDEO_SUFFIXES:
        try:
            frames = decode_source(clip, WIDTH)
            fps = float(clip["source_fps"])
        except (StageError, OSError) as err:
            raise ConfigError(f"cannot decode the source of {clip_id} ({clip['source_path']}): {err}") from None
    n = len(frames) if frames is not None else int(page.motion["n_frames"])
    height = frames.shape[1] if frames is not None else 480
    side = height  # a square 3D panel as tall as the video
    width = (frames.shape[2] if frames is not None else 0) + side
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.partial{out.suffix or '.mp4'}")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise ConfigError(f"cannot write {out}: OpenCV has no mp4v encoder here")
    try:
        for i in range(n):
            motion_frame = min(round(i * page.motion["fps"] / fps), int(page.motion["n_frames"]) - 1)
            right = panel(tracks["hands"], motion_frame, centre, size, side, height)
            if frames is not None:
                scale = frames.shape[2] / clip["width"]
                left = draw_keypoints(frames[i], frame_keypoints(page.motion, clip, i), scale)
                image = np.concatenate([left, right], axis=1)
            else:
                image = right
            writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    tmp.replace(out)
    return {"out": str(out), "frames": n, "fps": fps, "width": width, "height": height, "video_width": width - side}
