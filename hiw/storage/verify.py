"""``hiw verify``: is a version's data what its manifest says, and do its tables agree with each other?

Files: present, same size and sha256 as recorded, readable Parquet with the table's schema and row count.
Tables (only when every file is sound): unique keys, every accepted clip has exactly one motion row and every
motion row an accepted clip, and captions, responses and rejects refer to clips (and responses) that exist.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from hiw.schemas import KEYS, TABLES, arrow_schema
from hiw.storage.catalog import create_views
from hiw.storage.shards import check_shard
from hiw.storage.versions import Manifest, load_manifest

# (what is wrong, SQL counting the rows that show it)
REFERENCES = [
    (
        "accepted clips without a motion row",
        "SELECT count(*) FROM clips WHERE status = 'accepted' AND clip_id NOT IN (SELECT clip_id FROM motion)",
    ),
    (
        "motion rows without an accepted clip",
        "SELECT count(*) FROM motion WHERE clip_id NOT IN (SELECT clip_id FROM clips WHERE status = 'accepted')",
    ),
    (
        "captions of clips that are not accepted",
        "SELECT count(*) FROM captions WHERE clip_id NOT IN (SELECT clip_id FROM clips WHERE status = 'accepted')",
    ),
    ("responses of unknown clips", "SELECT count(*) FROM responses WHERE clip_id NOT IN (SELECT clip_id FROM clips)"),
    (
        "captions from unknown responses",
        "SELECT count(*) FROM captions WHERE response_id IS NOT NULL AND response_id NOT IN (SELECT response_id FROM responses)",
    ),
    (
        "rejects of unknown clips",
        "SELECT count(*) FROM rejects WHERE clip_id IS NOT NULL AND clip_id NOT IN (SELECT clip_id FROM clips)",
    ),
    (
        "motion rows whose video differs from the clip's",
        "SELECT count(*) FROM motion m JOIN clips c USING (clip_id) WHERE m.video_id <> c.video_id",
    ),
]


def verify_version(root: Path, version: str | None = None, progress=None) -> list[str]:
    """Every problem found in one version, as lines for a person; empty when the version is sound."""
    manifest = load_manifest(root, version)
    problems = _check_files(root, manifest, progress)
    if not problems:
        problems = _check_tables(root, manifest)
    return [f"{manifest.version}: {p}" for p in problems]


def _check_files(root: Path, manifest: Manifest, progress) -> list[str]:
    problems = []
    files = [(table, f) for table in manifest.tables() for f in manifest.files(table)]
    for i, (table, f) in enumerate(files, 1):
        if progress:
            progress(i, len(files))
        path = root / f.path
        why = check_shard(root, f)
        if why:
            problems.append(
                f"{table}: missing shard {f.path}"
                if why == "missing"
                else f"{table}: shard {f.path} does not match its checksum ({why})"
            )
            continue
        try:
            meta = pq.read_metadata(path)
            schema = pq.read_schema(path)
        except Exception as err:  # noqa: BLE001 - any unreadable file is one problem, not a crash
            problems.append(f"{table}: shard {f.path} is not readable Parquet: {err}")
            continue
        expected = arrow_schema(TABLES[table])
        if not schema.remove_metadata().equals(expected.remove_metadata()):
            problems.append(f"{table}: shard {f.path} has another schema than the {table} table")
        if meta.num_rows != f.rows:
            problems.append(f"{table}: shard {f.path} has {meta.num_rows} rows, the manifest says {f.rows}")
    return problems


def _check_tables(root: Path, manifest: Manifest) -> list[str]:
    problems = []
    with duckdb.connect() as con:
        create_views(con, root, manifest)
        for table, columns in KEYS.items():
            key = ", ".join(columns)
            [(dupes,)] = con.execute(
                f"SELECT count(*) FROM (SELECT {key} FROM {table} GROUP BY ALL HAVING count(*) > 1)"
            ).fetchall()
            if dupes:
                problems.append(f"{table}: {dupes} duplicate key(s) ({key})")
        for what, sql in REFERENCES:
            [(n,)] = con.execute(sql).fetchall()
            if n:
                problems.append(f"{n} {what}")
    return problems
