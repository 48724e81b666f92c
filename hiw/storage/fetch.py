"""Fetch the motion of given clips without scanning the dataset.

DuckDB cannot prune row groups for a list of clip ids (ids are hashes, so every shard spans their whole range,
and an ``IN`` list is pushed down as one min..max range): it reads nearly all motion bytes. Here each clip's
video id comes from the small ``clips`` table; shards hold disjoint ranges of videos and are sorted by clip_id
within, so the footers' statistics leave one row group per clip (benchmarks/bench_storage.py measures both).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hiw.schemas import TABLES, arrow_schema
from hiw.storage.catalog import read_table
from hiw.storage.versions import load_manifest


def fetch_motion(root: Path, clip_ids: list[str], version: str | None = None, columns: list[str] | None = None) -> pa.Table:
    """The ``motion`` rows of ``clip_ids`` (those that have one) from a version, reading only the row groups whose
    statistics can hold them."""
    clips = read_table(root, "clips", version, columns=["clip_id", "video_id"])
    clips = clips.filter(pc.is_in(clips["clip_id"], pa.array(sorted(set(clip_ids)), pa.string())))
    pairs = list(zip(clips["clip_id"].to_pylist(), clips["video_id"].to_pylist()))
    wanted = pa.array([c for c, _ in pairs], pa.string())
    if columns is not None and "clip_id" not in columns:
        columns = ["clip_id", *columns]
    parts = []
    for shard in load_manifest(root, version).files("motion") if pairs else []:
        parquet = pq.ParquetFile(root / shard.path)
        groups = _row_groups(parquet.metadata, pairs)
        if groups:
            table = parquet.read_row_groups(groups, columns=columns)
            parts.append(table.filter(pc.is_in(table["clip_id"], wanted)))
    if not parts:
        schema = arrow_schema(TABLES["motion"])
        return schema.empty_table().select(columns) if columns else schema.empty_table()
    return pa.concat_tables(parts)


def _row_groups(meta: pq.FileMetaData, pairs: list[tuple[str, str]]) -> list[int]:
    leaves = [meta.schema.column(j).path for j in range(meta.num_columns)]
    at_clip, at_video = leaves.index("clip_id"), leaves.index("video_id")
    groups = []
    for g in range(meta.num_row_groups):
        clip, video = meta.row_group(g).column(at_clip).statistics, meta.row_group(g).column(at_video).statistics
        if clip is None or video is None or not (clip.has_min_max and video.has_min_max):
            groups.append(g)  # no statistics: the group has to be read
        elif any(video.min <= v <= video.max and clip.min <= c <= clip.max for c, v in pairs):
            groups.append(g)
    return groups
