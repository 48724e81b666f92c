"""Immutable dataset versions: a version exists once its manifest is written, and never changes afterwards.

A dataset root holds ``versions/v1.json``, ``versions/v2.json``, ... Each manifest lists every shard file of
every table (path, rows, bytes, sha256), the config, code version, parent and creation time. Shards live in
``shards/<table>/`` and are shared between versions; a build writes its shards first and its manifest last
(create-exclusive), so a crash leaves the previous version as it was. ``BuildLock`` keeps two builds from
publishing into one root at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from hiw.errors import ConfigError
from hiw.schemas.ids import stable_hash

VERSIONS_DIR = "versions"
LOCK_FILE = ".hiw-build.lock"
_NAME = re.compile(r"^v([1-9][0-9]*)$")


class ShardFile(BaseModel):
    """One Parquet file of a table, as the manifest records it (path relative to the dataset root)."""

    path: str
    rows: int
    bytes: int
    sha256: str


class Group(BaseModel):
    """Shards written for one content key: a group of videos' rows, the annotation, or the source rejects.

    ``key`` derives from the inputs, settings and stage versions that made the rows, so a group with the same key
    is the same rows and is reused as it is. ``units`` maps each video of the group to its own key."""

    key: str
    kind: str = Field(description="videos | annotation | sources")
    units: dict[str, str] = Field(default_factory=dict)
    files: dict[str, ShardFile] = Field(default_factory=dict)
    retry: list[str] = Field(
        default_factory=list, description="videos with a clip whose task kept failing: never reused, so a rebuild retries them"
    )
    created_at: datetime | None = Field(
        None, description="when its rows were first made (their created_at), so writing it again makes the same bytes"
    )


class Manifest(BaseModel):
    version: str
    parent: str | None
    created_at: datetime
    code_version: str
    config_hash: str
    config: dict[str, Any]
    groups: list[Group]
    summary: dict[str, Any] = Field(default_factory=dict)

    def files(self, table: str) -> list[ShardFile]:
        return sorted((g.files[table] for g in self.groups if table in g.files), key=lambda f: f.path)

    def tables(self) -> list[str]:
        return sorted({t for g in self.groups for t in g.files})

    def rows(self, table: str) -> int:
        return sum(f.rows for f in self.files(table))

    def bytes(self) -> int:
        return sum(f.bytes for g in self.groups for f in g.files.values())

    def content_id(self, tables: tuple[str, ...] | None = None) -> str:
        """Hash of the listed shards' checksums: equal for versions with equal data, without reading the data."""
        names = tables or tuple(self.tables())
        return "d_" + stable_hash([(t, [f.sha256 for f in self.files(t)]) for t in names])


def _number(name: str) -> int:
    return int(_NAME.match(name).group(1))


def list_versions(root: Path) -> list[str]:
    """Published version names, oldest first."""
    folder = root / VERSIONS_DIR
    names = [p.stem for p in folder.glob("v*.json") if _NAME.match(p.stem)] if folder.is_dir() else []
    return sorted(names, key=_number)


def current_version(root: Path) -> str | None:
    versions = list_versions(root)
    return versions[-1] if versions else None


def resolve_version(root: Path, spec: str | None = None) -> str:
    """A version name from ``None``/``latest`` (the current one), ``v3`` or ``3``; a clear error otherwise."""
    versions = list_versions(root)
    if not versions:
        if (root / "tables").is_dir():
            raise ConfigError(f"{root} was built by an older hiw without versions; rebuild it with `hiw build --out {root}`")
        raise ConfigError(f"no dataset at {root} (no versions/ there; run `hiw build --out {root}` first)")
    if spec in (None, "latest", "current"):
        return versions[-1]
    name = f"v{spec}" if spec.isdigit() else spec
    if name not in versions:
        raise ConfigError(f"no version {spec!r} at {root}; versions: {', '.join(versions)}")
    return name


def load_manifest(root: Path, spec: str | None = None) -> Manifest:
    name = resolve_version(root, spec)
    path = root / VERSIONS_DIR / f"{name}.json"
    try:
        return Manifest.model_validate_json(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"manifest {path} cannot be read: {str(err).splitlines()[0]}") from None


def publish(root: Path, manifest: Manifest) -> Path:
    """Make ``manifest`` visible: written to a temp file, fsynced, then linked under its final name, which
    fails if that name exists (so a version is never overwritten)."""
    folder = root / VERSIONS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{manifest.version}.json"
    tmp = folder / f".{manifest.version}.{uuid.uuid4().hex}.tmp"
    with open(tmp, "w") as f:
        f.write(manifest.model_dump_json(indent=1))
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, final)
    except FileExistsError:
        raise ConfigError(f"version {manifest.version} already exists at {root}") from None
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(folder)
    return final


def next_version(root: Path) -> str:
    current = current_version(root)
    return f"v{_number(current) + 1}" if current else "v1"


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BuildLock:
    """An exclusive, non-blocking lock on a dataset root, held for a whole build (or ``hiw gc``: ``task``).

    ``flock`` is released by the kernel when the process dies, so a killed build never leaves a stale lock;
    the file's text (task, pid, host, start time) only serves the error message."""

    def __init__(self, root: Path, task: str = "build"):
        self.root = root
        self.task = task
        self.path = root / LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> BuildLock:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 4096).decode(errors="replace").strip()
            os.close(fd)
            raise ConfigError(self._busy(text)) from None
        os.ftruncate(fd, 0)
        holder = {"task": self.task, "pid": os.getpid(), "host": socket.gethostname(), "since": _now()}
        os.write(fd, json.dumps(holder).encode())
        self._fd = fd
        return self

    def _busy(self, text: str) -> str:
        try:
            holder = json.loads(text)
        except ValueError:
            holder = {}
        who = "another build is publishing into" if holder.get("task", "build") == "build" else "`hiw gc` is cleaning"
        what = f" ({text})" if text else ""
        if self.task == "build":
            return f"{who} {self.root}{what}; wait for it to finish or build into another --out"
        return f"cannot run {self.task}: {who} {self.root}{what}; wait for it to finish"

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
