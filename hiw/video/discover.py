"""Find input videos: a folder, a glob, or a CSV manifest with optional Ego4D-style narrations.

A manifest that cannot be read as a whole (not UTF-8, not CSV, no ``video`` column) is a usage error; a bad
row (times missing, not numbers, negative, or ending before they start) is an ``InputReject`` for that row
alone, so the rest of the manifest still builds. Messages quote at most a short excerpt of the input.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from hiw.errors import ConfigError, StageError
from hiw.schemas import Narration

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}
MANIFEST_COLUMNS = ("video", "start_s", "end_s", "text")
UNREADABLE = "unreadable_entry"
EXCERPT_CHARS = 40


@dataclass(frozen=True)
class InputReject:
    """An input that cannot be used: ``source`` is its path, or ``<manifest>:<line>`` for a manifest row."""

    source: str
    reason: str
    detail: str

    def error(self) -> StageError:
        return StageError(self.reason, self.detail)


@dataclass
class Discovered:
    """Videos to process (sorted, unique), their narrations, and the inputs that cannot be used (with why)."""

    videos: list[Path] = field(default_factory=list)
    narrations: dict[Path, list[Narration]] = field(default_factory=dict)
    rejects: list[InputReject] = field(default_factory=list)

    @property
    def unreadable(self) -> list[InputReject]:
        """Entries that were found but are not readable files: they count as videos found, bad rows do not."""
        return [r for r in self.rejects if r.reason == UNREADABLE]


@dataclass
class ManifestRows:
    """What a manifest lists: videos (in row order, repeats included), narrations per video, bad rows."""

    videos: list[Path] = field(default_factory=list)
    narrations: dict[Path, list[Narration]] = field(default_factory=dict)
    rejects: list[InputReject] = field(default_factory=list)


def discover(videos: str | None, manifest: Path | None, suffixes: set[str] = VIDEO_SUFFIXES) -> Discovered:
    """Resolve ``videos`` (folder or glob) and ``manifest`` (CSV) into the build's inputs.

    A missing folder/manifest, a glob that matches nothing or an unusable manifest is a ConfigError (the
    user's mistake); a bad manifest row or a matched entry that is not a readable file is a reject.
    """
    _require_input(videos, manifest)
    found = Discovered()
    candidates: list[Path] = []
    narrations: dict[Path, list[Narration]] = {}
    if videos is not None:
        candidates += _expand(videos, suffixes)
    if manifest is not None:
        rows = read_manifest(manifest)
        candidates += rows.videos
        narrations = rows.narrations
        found.rejects += rows.rejects
    seen: set[Path] = set()
    for path in candidates:
        key = path.absolute()
        if key in seen:
            continue
        seen.add(key)
        problem = _unreadable_reason(path)
        if problem:
            found.rejects.append(InputReject(str(key), UNREADABLE, problem))
        else:
            found.videos.append(key)
    found.narrations = {p.absolute(): n for p, n in narrations.items()}
    return found


def check_inputs(videos: str | None, manifest: Path | None, suffixes: set[str] = VIDEO_SUFFIXES) -> None:
    """Fail fast, before any work starts, on inputs that cannot be found or read as a whole (ConfigError)."""
    _require_input(videos, manifest)
    if videos is not None:
        _expand(videos, suffixes)
    if manifest is not None:
        read_manifest(manifest)  # its bad rows are rejects, found again by ``discover``


def _require_input(videos: str | None, manifest: Path | None) -> None:
    if videos is None and manifest is None:
        raise ConfigError("no input: give --videos PATH (folder or glob) and/or --manifest CSV")


def _expand(videos: str, suffixes: set[str]) -> list[Path]:
    """A folder (searched recursively for files with ``suffixes``), a glob, a JSON index, or one file."""
    root = Path(videos).expanduser()
    if root.suffix.lower() == ".json" and root.is_file():
        return read_index(root, suffixes)
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


def read_index(index: Path, suffixes: set[str]) -> list[Path]:
    """The inputs a JSON index names: a list, or a dict of lists (the CLUTCH authors' split file, CLUTCH_CODE.md
    1.2). An entry is a path (a file, or a folder whose files with ``suffixes`` are taken) or an object whose
    ``hawor_recon_file`` is one. Relative paths resolve against the index's folder."""
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ConfigError(f"index {index} is not a readable JSON file ({type(err).__name__}: {err})") from None
    groups = list(data.values()) if isinstance(data, dict) else [data]
    if not all(isinstance(g, list) for g in groups):
        raise ConfigError(f"index {index} must be a list of inputs, or an object of such lists (one per split)")
    paths = []
    for entry in (e for g in groups for e in g):
        named = entry.get("hawor_recon_file") if isinstance(entry, dict) else entry
        if not isinstance(named, str) or not named:
            raise ConfigError(f"index {index}: entry {excerpt(json.dumps(entry))} names no path")
        path = Path(named).expanduser()
        path = path if path.is_absolute() else index.parent / path
        paths += sorted(p for p in path.iterdir() if p.suffix.lower() in suffixes) if path.is_dir() else [path]
    if not paths:
        raise ConfigError(f"index {index} names no input")
    return paths


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


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """``text`` quoted, cut to ``limit`` characters: error messages never carry a whole input."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def read_manifest(manifest: Path) -> ManifestRows:
    """Read a UTF-8 CSV with a ``video`` column and optional ``start_s``, ``end_s``, ``text``.

    Relative video paths resolve against the manifest's folder. Rows without a narration just list a
    video. A row with a bad narration is rejected whole (its video is not listed by that row).
    """
    text = _manifest_text(manifest)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        columns = reader.fieldnames or []
        if "video" not in columns:
            has = ", ".join(excerpt(c, 20) for c in columns[:8]) + (", ..." if len(columns) > 8 else "")
            raise ConfigError(f"manifest {manifest} needs a 'video' column in its first line (has: {has or 'nothing'})")
        found = ManifestRows()
        for row in reader:
            line = reader.line_num
            if not any(isinstance(cell, str) and cell.strip() for cell in row.values()):
                continue  # a row of empty cells (spreadsheets export them) lists nothing
            try:
                path, narration = _row(row, manifest)
            except StageError as err:
                where = f"{manifest.absolute()}:{line}"
                found.rejects.append(InputReject(where, err.reason, f"manifest {manifest} line {line}: {err.detail}"))
                continue
            found.videos.append(path)
            if narration is not None:
                found.narrations.setdefault(path, []).append(narration)
    except csv.Error as err:
        raise ConfigError(f"manifest {manifest} is not valid CSV (line {reader.reader.line_num}: {err})") from None
    return found


def _manifest_text(manifest: Path) -> str:
    if not manifest.is_file():
        raise ConfigError(f"manifest does not exist: {manifest}")
    try:
        data = manifest.read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read manifest {manifest}: {err.strerror or err}") from None
    try:
        return data.decode("utf-8-sig")  # a byte-order mark (spreadsheet exports) is not part of the first column
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ConfigError(
            f"manifest {manifest} is not UTF-8 text (byte 0x{data[err.start]:02x} on line {line}); save it as UTF-8"
        ) from None


def _row(row: dict[str | None, str | None], manifest: Path) -> tuple[Path, Narration | None]:
    """The video and narration of one manifest row, or StageError saying what is wrong with it."""
    video = (row.get("video") or "").strip()
    if not video:
        raise StageError("manifest_no_video", "the video cell is empty")
    path = Path(video)
    path = path if path.is_absolute() else manifest.parent / path
    text = (row.get("text") or "").strip()
    if not text:
        return path, None
    start, end = _time(row, "start_s"), _time(row, "end_s")
    if start < 0 or end < 0:
        raise StageError("narration_negative_time", f"narration {excerpt(text)} has a negative time ({start:g} to {end:g} s)")
    if end <= start:
        raise StageError(
            "narration_ends_before_start", f"narration {excerpt(text)} ends at {end:g} s, not after its start at {start:g} s"
        )
    return path, Narration(start_s=start, end_s=end, text=text)


def _time(row: dict[str | None, str | None], column: str) -> float:
    cell = (row.get(column) or "").strip()
    if not cell:
        raise StageError("narration_bad_time", f"a narration needs {column} (the cell is empty)")
    try:
        value = float(cell)
    except ValueError:
        raise StageError("narration_bad_time", f"{column} {excerpt(cell, 20)} is not a number") from None
    if not math.isfinite(value):
        raise StageError("narration_bad_time", f"{column} {excerpt(cell, 20)} is not a finite number")
    return value
