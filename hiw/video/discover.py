"""Find input videos: a folder, a glob, or a CSV manifest with optional Ego4D-style narrations."""

from __future__ import annotations

import csv
import glob
import math
from dataclasses import dataclass, field
from pathlib import Path

from hiw.errors import ConfigError
from hiw.schemas import Narration

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}
MANIFEST_COLUMNS = ("video", "start_s", "end_s", "text")


@dataclass
class Discovered:
    """Videos to process (sorted, unique), their narrations, and entries that cannot be read."""

    videos: list[Path] = field(default_factory=list)
    narrations: dict[Path, list[Narration]] = field(default_factory=dict)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)


def discover(videos: str | None, manifest: Path | None, suffixes: set[str] = VIDEO_SUFFIXES) -> Discovered:
    """Resolve ``videos`` (folder or glob) and ``manifest`` (CSV) into the build's inputs.

    A missing folder/manifest or a glob that matches nothing is a ConfigError (the user's
    mistake); a matched entry that is not a readable file is recorded in ``unreadable``.
    """
    check_inputs(videos, manifest, suffixes)
    found = Discovered()
    candidates: list[Path] = []
    if videos is not None:
        candidates += _expand(videos, suffixes)
    if manifest is not None:
        listed, found.narrations = read_manifest(manifest)
        candidates += listed
    seen: set[Path] = set()
    for path in candidates:
        key = path.absolute()
        if key in seen:
            continue
        seen.add(key)
        problem = _unreadable_reason(path)
        if problem:
            found.unreadable.append((key, problem))
        else:
            found.videos.append(key)
    found.narrations = {p.absolute(): n for p, n in found.narrations.items()}
    return found


def check_inputs(videos: str | None, manifest: Path | None, suffixes: set[str] = VIDEO_SUFFIXES) -> None:
    """Fail fast, before any work starts, on inputs that cannot be found (ConfigError)."""
    if videos is None and manifest is None:
        raise ConfigError("no input: give --videos PATH (folder or glob) and/or --manifest CSV")
    if videos is not None:
        _expand(videos, suffixes)
    if manifest is not None and not manifest.is_file():
        raise ConfigError(f"manifest does not exist: {manifest}")


def _expand(videos: str, suffixes: set[str]) -> list[Path]:
    """A folder (searched recursively for files with ``suffixes``), a glob, or one file."""
    root = Path(videos).expanduser()
    if root.is_dir():
        return sorted(p for p in root.rglob("*") if p.suffix.lower() in suffixes)
    if glob.has_magic(videos):
        matches = sorted(Path(p) for p in glob.glob(str(root), recursive=True))
        if not matches:
            raise ConfigError(f"--videos glob matched nothing: {videos}")
        return matches
    if root.exists() or root.is_symlink():
        return [root]
    raise ConfigError(f"input folder or file does not exist: {videos}")


def _unreadable_reason(path: Path) -> str | None:
    try:
        if not path.exists():
            return "broken link or vanished file"
        if not path.is_file():
            return "not a regular file"
        with open(path, "rb"):
            return None
    except OSError as err:
        return f"cannot open: {err.strerror or err}"


def read_manifest(manifest: Path) -> tuple[list[Path], dict[Path, list[Narration]]]:
    """Read a CSV with a ``video`` column and optional ``start_s``, ``end_s``, ``text``.

    Relative video paths resolve against the manifest's folder. Rows without a narration just
    list a video.
    """
    if not manifest.is_file():
        raise ConfigError(f"manifest does not exist: {manifest}")
    with open(manifest, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = set(reader.fieldnames or [])
        if "video" not in columns:
            raise ConfigError(f"manifest {manifest} needs a 'video' column (has: {sorted(columns)})")
        rows = list(reader)
    videos: list[Path] = []
    narrations: dict[Path, list[Narration]] = {}
    for line, row in enumerate(rows, start=2):
        path = Path(row["video"].strip())
        path = path if path.is_absolute() else manifest.parent / path
        videos.append(path)
        text = (row.get("text") or "").strip()
        if not text:
            continue
        try:
            start, end = float(row.get("start_s") or "nan"), float(row.get("end_s") or "nan")
        except ValueError as err:
            raise ConfigError(f"manifest {manifest} line {line}: bad time: {err}") from None
        if not (math.isfinite(start) and math.isfinite(end)) or end <= start or start < 0:
            raise ConfigError(
                f"manifest {manifest} line {line}: a narration needs 0 <= start_s < end_s "
                f"(got start_s={row.get('start_s')!r}, end_s={row.get('end_s')!r})"
            )
        narrations.setdefault(path, []).append(Narration(start_s=start, end_s=end, text=text))
    return videos, narrations
