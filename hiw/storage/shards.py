"""Content-addressed Parquet shards: ``shards/<table>/<key>.parquet``, written once, shared by every version.

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
import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hiw.schemas.ids import file_digest
from hiw.storage.versions import ShardFile

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


def shard_path(root: Path, table: str, key: str) -> Path:
    return root / SHARDS_DIR / table / f"{key}.parquet"


def write_shard(root: Path, table: str, key: str, data: pa.Table) -> ShardFile:
    """Sort and write one shard atomically (temp file, fsync, rename); an existing complete shard of the same
    key is the same rows, so it is kept, not rewritten."""
    path = shard_path(root, table, key)
    rel = str(path.relative_to(root))
    if path.exists():
        meta = pq.read_metadata(path)
        return ShardFile(path=rel, rows=meta.num_rows, bytes=path.stat().st_size, sha256=file_digest(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = [k for k in SORT_KEYS.get(table, ()) if k in data.column_names]
    if keys and data.num_rows:
        order = pc.sort_indices(data, [(k, "ascending", "at_start") for k in keys])
        if not pc.all(pc.equal(order, pa.array(range(data.num_rows), pa.uint64()))).as_py():  # skip the copy if sorted
            data = data.take(order)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    pq.write_table(data, tmp, **parquet_options(table, data.schema))
    digest = file_digest(tmp)  # the fresh file comes from the page cache: as cheap as hashing while writing
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return ShardFile(path=rel, rows=data.num_rows, bytes=path.stat().st_size, sha256=digest)


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
