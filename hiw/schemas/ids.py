"""Content-derived ids: the same inputs always get the same ids, so rebuilds never duplicate rows."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def stable_hash(*parts: Any, length: int = 16) -> str:
    """Hex digest of JSON-serialisable parts (sorted keys, so dict order does not matter)."""
    payload = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:length]


def file_digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def video_id(path: Path) -> str:
    return "v_" + file_digest(path)[:16]


def clip_id(video_id: str, start_frame: int, end_frame: int, clip_config_hash: str) -> str:
    return "c_" + stable_hash(video_id, start_frame, end_frame, clip_config_hash)


def caption_id(clip_id: str, kind: str, model: str, prompt_version: str | None) -> str:
    return "t_" + stable_hash(clip_id, kind, model, prompt_version)


def reject_id(stage: str, source_path: str, clip_id: str | None, reason: str) -> str:
    return "r_" + stable_hash(stage, source_path, clip_id, reason)
