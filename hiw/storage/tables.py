"""Write a build's tables as Parquet and publish them atomically under ``ROOT/tables``.

Every table is written into a staging folder first (temp file, fsync, rename); only when all of
them are complete does the staging folder replace the published one, so a failed build leaves the
previous tables in place.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pyarrow.parquet as pq
from pydantic import BaseModel

from hiw.schemas import DERIVED_TABLES, TABLES, to_table
from hiw.schemas.ids import file_digest, stable_hash

TABLES_DIR = "tables"
ROW_GROUP_ROWS = 256  # motion rows are large (two hands x frames x 126 floats); keep groups ~tens of MB


def table_glob(root: Path, name: str) -> Path:
    """Where a table's files live: build tables under ``tables/`` (swapped as a whole on rebuild), derived
    tables (``DERIVED_TABLES``) in their own folder, one file per producer (e.g. per checkpoint)."""
    if name in DERIVED_TABLES:
        return root / name / "*.parquet"
    return root / TABLES_DIR / name / "*.parquet"


def tables_fingerprint(root: Path, names: tuple[str, ...] = ("motion",)) -> str:
    """Content hash of a built dataset's table files: changes whenever a rebuild changes their bytes."""
    files = sorted(p for name in names for p in table_glob(root, name).parent.glob("*.parquet"))
    return "d_" + stable_hash([(p.parent.name, p.name, file_digest(p)) for p in files])


def write_derived(root: Path, name: str, part: str, records: list[BaseModel]) -> Path:
    """Write (or replace) one file of a derived table atomically: ``ROOT/<name>/<part>.parquet``."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{part}.parquet"
    _write_atomic(to_table(DERIVED_TABLES[name], records), path)
    return path


def _write_atomic(table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP_ROWS, write_statistics=True)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def publish_tables(root: Path, rows: dict[str, list[BaseModel]]) -> dict[str, Path]:
    """Write every table of TABLES (empty ones too, with their schema) and swap them in."""
    unknown = set(rows) - set(TABLES)
    if unknown:
        raise ValueError(f"unknown tables: {sorted(unknown)}")
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".staging-{uuid.uuid4().hex}"
    paths = {}
    try:
        for name, model in TABLES.items():
            folder = staging / TABLES_DIR / name
            folder.mkdir(parents=True)
            records = sorted(rows.get(name, []), key=_sort_key)
            _write_atomic(to_table(model, records), folder / "part-00000.parquet")
            paths[name] = root / TABLES_DIR / name / "part-00000.parquet"
        final, old = root / TABLES_DIR, root / f".old-{uuid.uuid4().hex}"
        if final.exists():
            os.replace(final, old)
        os.replace(staging / TABLES_DIR, final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return paths


def _sort_key(record: BaseModel) -> tuple:
    # Rows sorted by source and position, so files of identical builds are laid out identically.
    d = record.__dict__
    return tuple(
        str(d.get(k) or "")
        for k in ("video_id", "source_path", "clip_id", "start_frame", "kind", "prompt", "word", "stage", "reason")
    )
