"""Decode a clip's frames as RGB, scaled to the tracker's working width.

decord decodes a span with one seek and resizes inside the decoder; cv2 is the fallback (one seek,
then sequential reads: frame-by-frame seeking with cv2 runs at a few fps).

Frames come out as displayed: both decoders apply the stream's rotation tag themselves. decord 0.6.0 (its
bundled FFmpeg 4.1 exports the tkhd matrix as the "rotate" tag) filters with "transpose=...,scale=W:H", so
the size it is asked for is the displayed one; OpenCV 5 rotates when CAP_PROP_ORIENTATION_AUTO is on. The
clip's width/height (from hiw.video.probe) are the displayed size too.
"""

from __future__ import annotations

import logging
import os
from typing import Literal

import cv2
import numpy as np

from hiw.errors import StageError
from hiw.schemas import ClipSpec

log = logging.getLogger(__name__)
Decoder = Literal["auto", "decord", "cv2"]
# Decoder threads (0: one per core). A worker process meant to use one core (hiw's local Dask workers) sets 1,
# or N workers on N cores would each start N decoder threads.
THREADS_VAR = "HIW_DECODE_THREADS"


def working_size(width: int, height: int, target_width: int) -> tuple[int, int]:
    """Size to decode at: ``target_width`` wide (never upscaled), even dimensions, aspect kept."""
    if width <= target_width:
        return width, height
    scale = target_width / width
    return target_width, max(2, int(round(height * scale / 2)) * 2)


def decode_clip(clip: ClipSpec, target_width: int, decoder: Decoder, rotation: int = 0, stride: int = 1) -> np.ndarray:
    """Frames start_frame, start_frame + stride, ... before end_frame of the clip as (T, H, W, 3) uint8 RGB, as
    displayed.

    Raises StageError when nothing decodes; returns fewer frames when the file ends early
    (a truncated video), which the caller records. ``rotation`` is unused (both decoders read the tag
    from the file); it stays for callers that pass VideoSource.rotation. With a stride, the frames between are
    decoded (a stream's frames depend on each other) but never converted, resized or returned.
    """
    if decoder in ("auto", "decord"):
        try:
            return _decode_decord(clip, target_width, stride)
        except ImportError:
            if decoder == "decord":
                raise StageError("decoder_unavailable", "decord is not installed") from None
        except Exception as err:  # decord raises its own error types for broken streams
            if decoder == "decord":
                raise StageError("decode_failed", f"decord: {err}".splitlines()[0]) from None
            log.info("decord failed on %s (%s); falling back to cv2", clip.source_path, err)
    return _decode_cv2(clip, target_width, stride)


def _decode_decord(clip: ClipSpec, target_width: int, stride: int) -> np.ndarray:
    import decord

    w, h = working_size(clip.width, clip.height, target_width)  # displayed size, what decord scales to after rotating
    threads = int(os.environ.get(THREADS_VAR, "0"))
    reader = decord.VideoReader(clip.source_path, ctx=decord.cpu(0), width=w, height=h, num_threads=threads)
    end = min(clip.end_frame, len(reader))
    if end <= clip.start_frame:
        raise StageError("decode_failed", f"clip starts at frame {clip.start_frame} but the stream has {len(reader)} frames")
    return reader.get_batch(list(range(clip.start_frame, end, stride))).asnumpy()


def _decode_cv2(clip: ClipSpec, target_width: int, stride: int) -> np.ndarray:
    cap = cv2.VideoCapture(clip.source_path)
    try:
        if not cap.isOpened():
            raise StageError("decode_failed", "cv2 cannot open the video")
        cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)  # frames as displayed (the default, made explicit)
        if clip.start_frame:
            cap.set(cv2.CAP_PROP_POS_FRAMES, clip.start_frame)  # one seek per clip
        size = working_size(clip.width, clip.height, target_width)
        frames = []
        for i in range(clip.n_frames):
            if i % stride:
                if not cap.grab():  # decoded, not converted: the next kept frame needs it
                    break
                continue
            ok, bgr = cap.read()
            if not ok:
                break
            if (bgr.shape[1] - bgr.shape[0]) * (size[0] - size[1]) < 0:  # portrait vs landscape: a resize would squash it
                raise StageError(
                    "decode_failed", f"cv2 frames are {bgr.shape[1]}x{bgr.shape[0]} but the clip is {clip.width}x{clip.height}"
                )
            if (bgr.shape[1], bgr.shape[0]) != size:
                bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    if not frames:
        raise StageError("decode_failed", f"no frame decodes in frames {clip.start_frame}-{clip.end_frame}")
    return np.stack(frames)
