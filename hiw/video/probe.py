"""Probe a video: stream properties, a content-derived id, and proof that its first frame decodes.

Sizes are the displayed ones: with orientation auto-applied (OpenCV's FFmpeg default, set here explicitly)
OpenCV 5 reports CAP_PROP_FRAME_WIDTH/HEIGHT after the display rotation (a 320x240 stream tagged 90 degrees
reads 240x320) and CAP_PROP_ORIENTATION_META gives the tag in ffmpeg's sense (90: shown turned clockwise).
Both decoders (hiw.video.decode) return frames as displayed, so the clip's size and intrinsics follow from these.
"""

from __future__ import annotations

from pathlib import Path

import cv2

from hiw.errors import StageError
from hiw.schemas import VideoSource
from hiw.schemas.ids import video_id


def probe_video(path: Path) -> VideoSource:
    """Return the video's properties or raise StageError with a reason code."""
    size = path.stat().st_size
    if size == 0:
        raise StageError("empty_file", "file is empty (0 bytes)")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise StageError("unreadable_video", "no decodable video stream (corrupt, truncated or not a video)")
        cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)  # the sizes below are then the displayed ones
        fps = cap.get(cv2.CAP_PROP_FPS)
        n_frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fourcc = int(cap.get(cv2.CAP_PROP_FOURCC))
        rotation = int(cap.get(cv2.CAP_PROP_ORIENTATION_META)) % 360
        if not (fps > 0 and n_frames > 0 and width > 0 and height > 0):
            raise StageError(
                "unreadable_video",
                f"stream header is invalid (fps={fps:g}, frames={n_frames}, size={width}x{height})",
            )
        if not cap.grab():
            raise StageError("unreadable_video", "the first frame does not decode")
    finally:
        cap.release()
    codec = fourcc.to_bytes(4, "little").decode("ascii", errors="replace").strip("\x00 ") or "unknown"
    return VideoSource(
        video_id=video_id(path),
        path=str(path),
        size_bytes=size,
        fps=float(fps),
        n_frames=n_frames,
        width=width,
        height=height,
        duration_s=n_frames / fps,
        codec=codec,
        rotation=rotation,
    )
