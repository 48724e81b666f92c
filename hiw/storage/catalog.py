"""The DuckDB catalog: one small database file with views over the shards of each dataset version.

The default schema holds the current version's tables, the joined views ``samples`` (one row per accepted
clip with its captions) and ``video_stats`` (one row per source video), and the derived tables (``tokens``,
``reconstructions``) once written. Every version also has a schema of its own name: ``SELECT * FROM v1.clips``.
Views hold absolute paths so plain ``duckdb ROOT/catalog.duckdb`` works from any folder; ``open_catalog``
rewrites the file when the root has moved or a new version or derived file appeared, and connects through the
sandbox (``hiw.storage.sandbox``): the connection can read the files the views read (listed in the catalog's
``hiw_catalog`` table) and nothing else, and cannot write.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from hiw.schemas import DERIVED_TABLES, TABLES, arrow_schema
from hiw.schemas.ids import stable_hash
from hiw.storage import sandbox
from hiw.storage.shards import SHARDS_DIR, check_shard
from hiw.storage.versions import Manifest, list_versions, load_manifest, resolve_version

CATALOG_FILE = "catalog.duckdb"
# Part of the stamp: a catalog written by older code (no file list in hiw_catalog) is rewritten once.
CATALOG_FORMAT = 2
# Caption kinds best first (the samples view's caption, exports' caption order).
CAPTION_PRIORITY = "CASE kind WHEN 'closed_vocab' THEN 0 WHEN 'pcot_summary' THEN 1 WHEN 'narration' THEN 2 ELSE 3 END"


def derived_glob(root: Path, name: str) -> Path:
    """Where a derived table's files live: ``ROOT/<name>/*.parquet``, one file per producer (e.g. checkpoint)."""
    return root / name / "*.parquet"


def empty_shard(root: Path, table: str) -> Path:
    """A 0-row file with the table's schema, so a table no build has written yet still has a typed view."""
    schema = arrow_schema(TABLES[table])
    path = root / SHARDS_DIR / table / f"empty-{stable_hash(schema.to_string(), length=12)}.parquet"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        pq.write_table(schema.empty_table(), tmp)
        tmp.replace(path)
    return path


def _files(root: Path, manifest: Manifest, table: str) -> list[str]:
    files = [str(root / f.path) for f in manifest.files(table)]
    return files or [str(empty_shard(root, table))]


def sql_list(paths: list[str]) -> str:
    return "[" + ", ".join(sql_text(p) for p in paths) + "]"


def create_views(con: duckdb.DuckDBPyConnection, root: Path, manifest: Manifest, schema: str = "main") -> list[str]:
    """The tables of one version and the joined views over them, in ``schema``; returns the files they read."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    read = [path for name in TABLES for path in _table_view(con, root, manifest, schema, name)]
    con.execute(f"""
        CREATE OR REPLACE VIEW {schema}.samples AS
        WITH cap AS (
            SELECT clip_id,
                   list(struct_pack(kind, text, verbs, objects, qa_passed) ORDER BY {CAPTION_PRIORITY}) AS captions,
                   first(text ORDER BY {CAPTION_PRIORITY}) FILTER (WHERE qa_passed) AS caption,
                   list_distinct(flatten(list(verbs) FILTER (WHERE qa_passed))) AS verbs,
                   list_distinct(flatten(list(objects) FILTER (WHERE qa_passed))) AS objects
            FROM {schema}.captions GROUP BY clip_id)
        SELECT c.clip_id, c.video_id, c.source_path, c.clip_index, c.start_s, c.end_s, c.end_s - c.start_s AS duration_s,
               c.narration, c.any_hand_frac, c.both_hands_frac, c.motion_s, c.jitter_translation, c.jitter_rotation,
               c.fit_error_mm, c.tracker, m.fps, m.n_frames, m.hand_model,
               cap.caption, coalesce(cap.verbs, []) AS verbs, coalesce(cap.objects, []) AS objects, cap.captions
        FROM {schema}.clips c
        JOIN (SELECT clip_id, fps, n_frames, hand_model FROM {schema}.motion) m USING (clip_id)
        LEFT JOIN cap USING (clip_id)
        WHERE c.status = 'accepted'""")
    con.execute(f"""
        CREATE OR REPLACE VIEW {schema}.video_stats AS
        SELECT video_id, any_value(source_path) AS source_path, count(*) AS clips,
               count(*) FILTER (WHERE status = 'accepted') AS accepted, count(*) FILTER (WHERE status = 'rejected') AS rejected,
               coalesce(sum(end_s - start_s) FILTER (WHERE status = 'accepted'), 0) AS accepted_s,
               avg(both_hands_frac) AS mean_both_hands_frac,
               (SELECT count(*) FROM {schema}.captions k JOIN {schema}.clips x USING (clip_id)
                WHERE x.video_id = c.video_id AND k.qa_passed) AS captions
        FROM {schema}.clips c GROUP BY video_id""")
    return read


def _table_view(con: duckdb.DuckDBPyConnection, root: Path, manifest: Manifest, schema: str, name: str) -> list[str]:
    """A table's view over its shards; a table with a missing or cut-off shard gets a view that fails, when
    queried, with what is wrong and what to run, so the other tables stay queryable. Returns the files it reads."""
    problems = [f"{f.path}: {why}" for f in manifest.files(name) if (why := check_shard(root, f, checksum=False))]
    if not problems:
        files = _files(root, manifest, name)
        try:
            con.execute(
                f"CREATE OR REPLACE VIEW {schema}.{name} AS SELECT * FROM read_parquet({sql_list(files)}, union_by_name = true)"
            )
            return files
        except duckdb.Error as err:  # a shard of the right size that is not Parquet
            problems = [str(err).splitlines()[0]]
    message = (
        f"table {name} of {manifest.version} is damaged ({'; '.join(problems)[:400]}); "
        f"run `hiw verify --repair --root {root}` to rewrite it"
    )
    empty = str(empty_shard(root, name)).replace("'", "''")
    columns = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{empty}')").fetchall()
    failing = ", ".join(f'error({sql_text(message)})::{kind} AS "{column}"' for column, kind, *_ in columns)
    # DuckDB folds an error() that no row reaches away; a row of them in every column fails whatever is asked
    con.execute(f"CREATE OR REPLACE VIEW {schema}.{name} AS SELECT * FROM read_parquet('{empty}') UNION ALL SELECT {failing}")
    return [str(empty_shard(root, name))]


def damage_hint(root: Path, err: Exception) -> str:
    """What to run when a query failed on a shard that was damaged after the catalog was written."""
    shards = str(root.resolve() / SHARDS_DIR)
    if shards not in str(err):
        return ""
    return f" (a damaged shard? `hiw verify --root {root}` lists what is wrong, `hiw verify --repair --root {root}` rewrites it)"


def sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def write_catalog(root: Path) -> Path:
    """(Re)write ``ROOT/catalog.duckdb``: the current version in ``main``, every version in its own schema.

    ``hiw_catalog`` holds the stamp ``open_catalog`` compares and ``files``, every file a view reads: the only
    files a sandboxed connection may open.
    """
    root = root.resolve()
    path = root / CATALOG_FILE
    tmp = path.with_name(f".{CATALOG_FILE}.tmp")
    tmp.unlink(missing_ok=True)
    versions = list_versions(root)
    read: list[str] = []
    with duckdb.connect(str(tmp)) as con:
        for name in versions:
            manifest = load_manifest(root, name)
            read += create_views(con, root, manifest, name)
            if name == versions[-1]:
                create_views(con, root, manifest)
        for name in DERIVED_TABLES:
            # The files by name, not a glob: the sandbox allows files, and a glob needs a whole folder allowed.
            # The stamp holds the names, so a new derived file rewrites the catalog.
            files = sorted(str(p) for p in derived_glob(root, name).parent.glob("*.parquet"))
            if files:
                read += files
                con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet({sql_list(files)}, union_by_name = true)")
        con.execute("CREATE TABLE hiw_catalog AS SELECT ? AS stamp, ?::VARCHAR[] AS files", [_stamp(root), sorted(set(read))])
    tmp.replace(path)
    return path


def open_catalog(root: Path, version: str | None = None) -> duckdb.DuckDBPyConnection:
    """A sandboxed, read-only connection to a dataset's catalog; ``version`` (e.g. ``v2``) selects an older
    version's tables as the default schema (the current one otherwise).

    The connection reads the catalog's views and nothing else: no other file, no network, no extension to
    install, no setting to change (``hiw.storage.sandbox``). For full DuckDB, connect to the file itself:
    ``duckdb.connect(str(root / CATALOG_FILE), read_only=True)``.
    """
    root = root.resolve()
    name = resolve_version(root, version)  # a clear error when there is no dataset or no such version
    path = root / CATALOG_FILE
    if not path.exists() or _catalog_stamp(path) != _stamp(root):
        write_catalog(root)
    return sandbox.connect(path, name if version is not None else None)


def _stamp(root: Path) -> str:
    derived = sorted(str(p.name) for name in DERIVED_TABLES for p in derived_glob(root, name).parent.glob("*.parquet"))
    return json.dumps({"format": CATALOG_FORMAT, "root": str(root), "versions": list_versions(root), "derived": derived})


def _catalog_stamp(path: Path) -> str | None:
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            return con.execute("SELECT stamp FROM hiw_catalog").fetchone()[0]
    except duckdb.Error:
        return None


def read_table(root: Path, name: str, version: str | None = None, columns: list[str] | None = None):
    """One table of a version (the current one by default) as a pyarrow Table."""
    manifest = load_manifest(root, version)
    return pq.read_table(_files(root, manifest, name), columns=columns, schema=None if columns else arrow_schema(TABLES[name]))
