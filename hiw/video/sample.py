"""Frames for the VLM: N frames spread evenly over a clip, resized and stored as JPEG.

They are written under the dataset root (``cache/frames/<clip_id>/``), so the annotation stage can run
after tracking without holding decoded video in memory, a rebuild that only changes prompts needs no
decoding, and a curator can see exactly what the VLM saw.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import cv2
import numpy as np

from hiw.caches import FRAMES_DIR, quarantine

JPEG_QUALITY = 90


def pick_indices(n_frames: int, n: int) -> np.ndarray:
    """Centres of n equal spans of the clip (never the very first/last frame, often a cut)."""
    n = min(n, n_frames)
    return np.floor((np.arange(n) + 0.5) * n_frames / n).astype(int) if n else np.zeros(0, int)


def encode_frames(frames: np.ndarray, n: int, width: int) -> list[bytes]:
    """JPEG bytes of n RGB frames picked from ``frames`` (T, H, W, 3), ``width`` pixels wide (never upscaled)."""
    out = []
    for i in pick_indices(len(frames), n):
        frame = frames[i]
        h, w = frame.shape[:2]
        if w > width:
            frame = cv2.resize(frame, (width, max(2, round(h * width / w))), interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise ValueError(f"JPEG encoding failed for frame {i}")
        out.append(jpeg.tobytes())
    return out


def frames_hash(jpegs: list[bytes]) -> str:
    digest = hashlib.sha256()
    for jpeg in jpegs:  # length-prefixed, so frame boundaries count
        digest.update(len(jpeg).to_bytes(8, "little"))
        digest.update(jpeg)
    return "f_" + digest.hexdigest()[:16]


def stored_frames(root: Path, name: str) -> list[Path]:
    """The frames stored under ``name`` (empty when there are none, or when one is not a whole JPEG: that folder
    is moved aside and the frames are made again)."""
    folder = root / FRAMES_DIR / name
    paths = sorted(folder.glob("*.jpg"))
    broken = next((p for p in paths if not _whole_jpeg(p)), None)
    if broken is not None:
        quarantine(folder, f"{broken.name} is not a whole JPEG")
        return []
    return paths


def _whole_jpeg(path: Path) -> bool:
    """Starts with the JPEG start-of-image marker and ends with end-of-image (a cut-off copy does not)."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
            f.seek(-2, os.SEEK_END)
            return head == b"\xff\xd8" and f.read(2) == b"\xff\xd9"
    except OSError:
        return False


def write_frames(root: Path, clip_id: str, jpegs: list[bytes]) -> list[Path]:
    """Store a clip's VLM frames atomically (a folder appears complete or not at all)."""
    folder = root / FRAMES_DIR / clip_id
    if folder.exists():
        existing = sorted(folder.glob("*.jpg"))
        if [p.read_bytes() for p in existing] == jpegs:
            return existing
    tmp = folder.with_name(f".{clip_id}.{uuid.uuid4().hex}.tmp")
    tmp.mkdir(parents=True)
    for i, jpeg in enumerate(jpegs):
        (tmp / f"{i:03d}.jpg").write_bytes(jpeg)
    if folder.exists():
        old = folder.with_name(f".{clip_id}.{uuid.uuid4().hex}.old")
        os.replace(folder, old)
        os.replace(tmp, folder)
        for p in old.iterdir():
            p.unlink()
        old.rmdir()
    else:
        os.replace(tmp, folder)
    return sorted(folder.glob("*.jpg"))
