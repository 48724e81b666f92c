"""Tables derived from a dataset by later flows (``DERIVED_TABLES``: tokens, reconstructions), one file per
producer (e.g. per checkpoint) in ``ROOT/<name>/``, outside the build's versions."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pyarrow.parquet as pq
from pydantic import BaseModel

from hiw.schemas import DERIVED_TABLES, to_table

ROW_GROUP_ROWS = 256


def write_derived(root: Path, name: str, part: str, records: list[BaseModel]) -> Path:
    """Write (or replace) one file of a derived table atomically: ``ROOT/<name>/<part>.parquet``."""
    return write_records(root / name / f"{part}.parquet", name, records)


def write_records(path: Path, name: str, records: list[BaseModel]) -> Path:
    """Write (or replace) ``path`` atomically with rows of the derived table ``name``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    pq.write_table(to_table(DERIVED_TABLES[name], records), tmp, compression="zstd", row_group_size=ROW_GROUP_ROWS)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path
