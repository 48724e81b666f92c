"""Content-addressed Parquet shards: ``shards/<table>/<group key>-<sha256>.parquet``, written once, shared by every
version.

Layout choices (docs/ARCHITECTURE.md, "Shard layout", says why):
- videos are grouped into shards by content-defined boundaries (``group_videos``), so adding or changing one
  video rewrites the shards of its group only;
- ``TARGET_CLIPS`` clips per group: a motion shard of ~1,000 two-hand clips of 8 s is ~100 MB, big enough
  for fast scans, small enough that one changed video rewrites little;
- ``ROW_GROUP_ROWS[table]`` rows per row group (~8 MB of motion), the unit a point lookup reads;
- zstd, statistics on every column; rows sorted by ``SORT_KEYS`` so the common filters prune row groups.
"""

from __future__ import annotations

import hashlib
import io
import os
import queue
import threading
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hiw.schemas.ids import file_digest
from hiw.storage.versions import ShardFile, fsync_dir

SHARDS_DIR = "shards"
FORMAT_VERSION = 1  # bump when the shard layout changes: every group key changes with it
TARGET_CLIPS = 1024
MAX_CLIPS = 4 * TARGET_CLIPS
ROW_GROUP_ROWS = {"motion": 64, "responses": 4096}
DEFAULT_ROW_GROUP_ROWS = 16384
# motion by clip_id: fetching the motion of given clips reads the row groups whose clip_id range holds them
SORT_KEYS = {
    "clips": ("video_id", "start_frame", "clip_id"),
    "motion": ("clip_id",),
    "captions": ("clip_id", "kind", "caption_id"),
    "responses": ("clip_id", "prompt", "response_id"),
    "vocabulary": ("kind", "word"),
    "rejects": ("video_id", "stage", "clip_id", "reject_id"),
}


def parquet_options(table: str, schema: pa.Schema) -> dict:
    """zstd, statistics, the table's row-group size, and dictionaries only where values repeat: a dictionary of
    near-unique floats fills up in every row group before Parquet gives up on it (4x slower writes, 29% larger
    motion shards, benchmarks/bench_storage.py)."""
    return {
        "compression": "zstd",
        "row_group_size": ROW_GROUP_ROWS.get(table, DEFAULT_ROW_GROUP_ROWS),
        "write_statistics": True,
        "use_dictionary": [f.name for f in schema if not pa.types.is_floating(_leaf(f.type))],
    }


def _leaf(t: pa.DataType) -> pa.DataType:
    while pa.types.is_list(t) or pa.types.is_fixed_size_list(t):
        t = t.value_type
    return t


def shard_name(key: str, digest: str) -> str:
    """``<group key>-<sha256 prefix>.parquet``: a path never holds two different contents, so a group written again
    with other bytes (a repair, a retry) never overwrites a file that a published version lists."""
    return f"{key}-{digest[:16]}.parquet"


class _Hashing(io.FileIO):
    """A file that hashes its bytes as they are written, on a thread of its own: the shard's sha256 without reading
    the file back, computed while pyarrow encodes the next pages (hashlib and pyarrow both release the GIL)."""

    def __init__(self, path: Path):
        super().__init__(path, "wb")
        self._sha256 = hashlib.sha256()
        self._chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=64)  # at most 64 MB waiting (1 MB writes)
        self._hasher = threading.Thread(target=self._hash, daemon=True)
        self._hasher.start()

    def _hash(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            self._sha256.update(chunk)

    def write(self, data) -> int:
        chunk = bytes(data)  # the caller reuses its buffer once this returns
        self._chunks.put(chunk)
        view, done = memoryview(chunk), 0
        while done < len(view):  # a raw write may take part of the buffer
            done += super().write(view[done:])
        return done

    def close(self) -> None:
        if self._hasher.is_alive():
            self._chunks.put(None)
            self._hasher.join()
        super().close()

    def hexdigest(self) -> str:
        """The sha256 of everything written (after ``close``)."""
        return self._sha256.hexdigest()


def in_shard_order(table: str, records: list) -> list:
    """Records in the order their shard keeps (``SORT_KEYS``, missing values first): a table made from them needs
    no reordering copy in ``write_shard``, which at a group's ~200 MB of motion is most of the writer's own time."""
    keys = SORT_KEYS.get(table, ())
    return sorted(records, key=lambda r: tuple((v is not None, v) for v in (getattr(r, k) for k in keys)))


def in_order(table: str, data: pa.Table) -> pa.Table:
    """``data`` sorted by the table's ``SORT_KEYS`` (missing values first); the table itself when already in order,
    with no copy."""
    keys = [k for k in SORT_KEYS.get(table, ()) if k in data.column_names]
    if not keys or not data.num_rows:
        return data
    order = pc.sort_indices(data, [(k, "ascending", "at_start") for k in keys])
    if pc.all(pc.equal(order, pa.array(range(data.num_rows), pa.uint64()))).as_py():
        return data
    return data.take(order)


def write_shard(root: Path, table: str, key: str, data: pa.Table) -> ShardFile:
    """Sort and write one shard under its content-addressed name (temp file, then rename), hashing it as it is
    written. Writing the same bytes again replaces the file with its own content, which also repairs a damaged copy.

    Not fsynced here: ``GroupStore.sync`` makes every file of a build durable at once, before a version lists them
    (``durable``)."""
    folder = root / SHARDS_DIR / table
    folder.mkdir(parents=True, exist_ok=True)
    data = in_order(table, data)
    tmp = folder / f".{key}.{uuid.uuid4().hex}.tmp"
    raw = _Hashing(tmp)
    with io.BufferedWriter(raw, buffer_size=1 << 20) as sink:  # pyarrow writes many small pieces: hash 1 MB ones
        pq.write_table(data, sink, **parquet_options(table, data.schema))
    digest = raw.hexdigest()
    path = folder / shard_name(key, digest)
    os.replace(tmp, path)
    return ShardFile(path=str(path.relative_to(root)), rows=data.num_rows, bytes=path.stat().st_size, sha256=digest)


def durable(paths: list[Path]) -> None:
    """fsync these files, then the folders holding them (a rename is durable once its folder is); gone files
    (removed since) need nothing."""
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    for folder in sorted({p.parent for p in paths}):
        if folder.is_dir():
            fsync_dir(folder)


def check_shard(root: Path, shard: ShardFile, checksum: bool = True) -> str | None:
    """Why a shard is not what its record says (missing, another size, another sha256 unless ``checksum`` is off),
    or None when it is."""
    path = root / shard.path
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing"
    if size != shard.bytes:
        return f"{size} bytes, {shard.bytes} expected"
    if checksum and file_digest(path) != shard.sha256:
        return "sha256 differs from the recorded one"
    return None


def group_videos(videos: list[tuple[str, int]], target: int = TARGET_CLIPS, most: int = MAX_CLIPS) -> list[list[str]]:
    """Split (video_id, clips) into groups of consecutive videos (sorted by id) with content-defined boundaries.

    A group ends after a video with probability clips/target, decided by a hash of its id alone (and always
    before ``most`` clips), so inserting or removing one video moves only its own group's boundaries."""
    groups, current, size = [], [], 0
    for video_id, clips in sorted(videos):
        current.append(video_id)
        size += clips
        draw = int.from_bytes(hashlib.sha256(video_id.encode()).digest()[:8], "big") / 2**64
        if draw < clips / target or size >= most:
            groups.append(current)
            current, size = [], 0
    if current:
        groups.append(current)
    return groups
