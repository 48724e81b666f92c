"""The sandbox that catalog connections, and so user SQL (``hiw query``, ``hiw export --where``), run in.

Two layers, because neither is enough alone:

- DuckDB's own limits (``connect``). An in-memory database ATTACHes the catalog file READ_ONLY, then
  ``allowed_paths`` is set to exactly the Parquet files the catalog's views read, ``enable_external_access``
  to false (no other file, glob, URL, ATTACH of a file, INSTALL or LOAD of an extension), and
  ``lock_configuration`` to true (no SET or RESET can undo any of it). The order is forced: DuckDB refuses
  ``allowed_paths`` at connect time ("before the database is started") and once external access is off, and
  a lock given at connect time would refuse both SETs; extension auto-install/auto-load and a private temp
  folder are given at connect time. An in-memory database rather than ``duckdb.connect(catalog)``, because
  that shares one instance per file within a process: a plain connection opened next to a sandboxed one
  would be refused, or locked too.
- A statement check with DuckDB's parser (``check_sql``). ``allowed_paths`` allow writing as well as
  reading: ``COPY (...) TO '<a shard>' (USE_TMP_FILE false)`` overwrites the shard, also from inside
  ``EXPLAIN ANALYZE`` or a PIVOT. So only statements that read run; COPY, EXPORT, ATTACH, INSTALL, LOAD,
  SET, CREATE, INSERT, ... are refused by name, before anything runs.

``write_result`` writes a query's rows from Python (never DuckDB's COPY), in the same csv and json text
COPY wrote: DuckDB renders each value (a cast to VARCHAR, ``json_object``), Python writes the file.
Full DuckDB stays one command away: ``duckdb -readonly ROOT/catalog.duckdb`` (see docs/CURATION.md).
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from pathlib import Path

import duckdb
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from hiw.errors import ConfigError

ALIAS = "catalog"  # the attached catalog's name, the one plain `duckdb ROOT/catalog.duckdb` gives it
BATCH_ROWS = 4096
Type = duckdb.StatementType
# Statement types that only read. MULTI (a PIVOT that first looks up its columns) and EXPLAIN (ANALYZE runs
# the statement) wrap another statement, which is checked on its own.
READING = {Type.SELECT, Type.EXPLAIN, Type.PRAGMA, Type.CALL, Type.TRANSACTION, Type.MULTI}
# First keywords of a MULTI statement that reads (a COPY or CREATE around a PIVOT is MULTI too).
READING_MULTI = {"SELECT", "WITH", "FROM", "PIVOT", "PIVOT_WIDER", "UNPIVOT", "PIVOT_LONGER", "VALUES", "("}


class RefusedStatement(ConfigError):
    """SQL the sandbox does not run; a usage error (exit 2), with the way to do it instead."""


def connect(catalog: Path, schema: str | None = None) -> duckdb.DuckDBPyConnection:
    """A connection to ``catalog`` that can read only the files its ``hiw_catalog.files`` lists.

    ``schema`` (a version, e.g. ``v1``) becomes the default schema. The catalog must list its files
    (``write_catalog`` does).
    """
    # Spilled rows go to a folder of this connection's own (DuckDB creates it when needed and removes it on
    # close); DuckDB's default would be `.tmp` in the working folder, and it is readable by the SQL too.
    temp = Path(tempfile.gettempdir()) / f"hiw-duckdb-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    config = {"autoinstall_known_extensions": False, "autoload_known_extensions": False, "temp_directory": str(temp)}
    con = duckdb.connect(":memory:", config=config)
    try:
        con.execute(f"ATTACH {_literal(str(catalog))} AS {ALIAS} (READ_ONLY)")
        con.execute(f"USE {ALIAS}" + (f".{schema}" if schema else ""))
        files = con.execute(f"SELECT files FROM {ALIAS}.main.hiw_catalog").fetchall()[0][0]  # fetchall: see _catalog_path
        con.execute("SET allowed_paths = ?", [list(files)])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def check_sql(con: duckdb.DuckDBPyConnection, sql: str) -> list[duckdb.Statement]:
    """``sql``'s statements, parsed by DuckDB; a ``RefusedStatement`` naming the first that would not only read."""
    statements = con.extract_statements(sql)
    if not statements:
        raise ConfigError("no SQL statement given")
    for statement in statements:
        _check(con, statement)
    return statements


def query_rows(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[list[str], list[tuple]]:
    """Run ``sql`` (checked) and return the last statement's column names and rows."""
    relation = _run(con, sql)
    try:
        return list(relation.columns), relation.fetchall()
    except duckdb.PermissionException as err:
        raise _outside(err) from None


def write_result(con: duckdb.DuckDBPyConnection, sql: str, out: Path, fmt: str) -> None:
    """Run ``sql`` (checked) and write the last statement's rows to ``out`` as csv (with a header), json (an array
    of objects) or parquet, through a temporary file, so a failing query leaves no file behind."""
    out = Path(out)
    root = Path(_catalog_path(con)).parent
    if out.resolve().is_relative_to(root):  # Python writes the file, outside the sandbox: keep it off the dataset
        raise ConfigError(f"--out {out} is inside the dataset root {root}; write query results outside it")
    relation = _run(con, sql)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        {"csv": _write_csv, "json": _write_json, "parquet": _write_parquet}[fmt](relation, tmp)
        os.replace(tmp, out)
    except duckdb.PermissionException as err:
        raise _outside(err) from None
    except OSError as err:
        raise ConfigError(f"cannot write {out}: {err.strerror or err}") from None
    finally:
        tmp.unlink(missing_ok=True)


def read_clip_ids(path: Path) -> list[str]:
    """The ``clip_id`` column of a csv, json (an array of objects) or parquet file, e.g. one ``write_result`` wrote."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    try:
        if fmt == "parquet":
            ids = pq.read_table(path, columns=["clip_id"]).column("clip_id").to_pylist()
        elif fmt == "csv":
            table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types={"clip_id": "string"}))
            ids = table.column("clip_id").to_pylist()
        elif fmt == "json":
            ids = [row["clip_id"] for row in json.loads(path.read_text())]
        else:
            raise ConfigError(f"--clips needs a .csv, .json or .parquet file (got {path.name!r})")
    except (OSError, ValueError, KeyError, TypeError) as err:  # pyarrow's errors are ValueErrors or OSErrors
        raise ConfigError(f"cannot read a clip_id column from {path}: {err}") from None
    return sorted({str(i) for i in ids if i is not None})


def _check(con: duckdb.DuckDBPyConnection, statement: duckdb.Statement) -> None:
    keyword = _keyword(statement.query)
    try:
        kind = statement.type
    except ValueError:  # a type this duckdb's Python API cannot name (e.g. UPDATE EXTENSIONS): not a read
        raise _refused(con, keyword) from None
    if kind == Type.SET and keyword == "USE":  # USE v1: the one setting that only chooses what to read
        return
    if kind not in READING or (kind == Type.MULTI and keyword not in READING_MULTI | {"EXPLAIN"}):
        raise _refused(con, keyword)
    if kind == Type.PRAGMA and keyword != "PRAGMA":  # IMPORT DATABASE and COPY FROM DATABASE parse as PRAGMAs
        raise _refused(con, keyword)
    if kind == Type.EXPLAIN or keyword == "EXPLAIN":  # MULTI too when it explains a PIVOT
        _check_explained(con, statement.query)


def _check_explained(con: duckdb.DuckDBPyConnection, text: str) -> None:
    """Check the statement an EXPLAIN [ANALYZE] [(options)] wraps: the first tail of ``text``, at a token after
    EXPLAIN, that DuckDB parses as one statement."""
    starts = [start for start, kind in duckdb.tokenize(text) if kind != duckdb.token_type.comment][1:]
    for start in starts:
        try:
            inner = con.extract_statements(text[start:])
        except (duckdb.Error, ValueError):
            continue
        if len(inner) == 1:
            _check(con, inner[0])
            return
    raise _refused(con, "EXPLAIN")


def _run(con: duckdb.DuckDBPyConnection, sql: str) -> duckdb.DuckDBPyRelation:
    """Run checked statements one by one (what was checked is what runs); the last one's result as a relation."""
    relation = None
    try:
        for statement in check_sql(con, sql):
            relation = con.sql(statement)
    except duckdb.PermissionException as err:
        raise _outside(err) from None
    return relation


def _keyword(text: str) -> str:
    """The statement's first keyword as DuckDB's tokenizer sees it (comments skipped), upper case."""
    starts = [start for start, kind in duckdb.tokenize(text) if kind != duckdb.token_type.comment]
    if not starts:
        return "?"
    end = next((s for s, _ in duckdb.tokenize(text) if s > starts[0]), len(text))
    word = text[starts[0] : end].strip().upper() or "?"
    return "FORCE INSTALL" if word == "FORCE" else word


def _refused(con: duckdb.DuckDBPyConnection, keyword: str) -> RefusedStatement:
    return RefusedStatement(
        f"hiw query refuses {keyword}: it only reads the dataset's tables; save a result with --out FILE, "
        f"or use full DuckDB: duckdb -readonly {_catalog_path(con)}"
    )


def _catalog_path(con: duckdb.DuckDBPyConnection) -> str:
    # fetchall, not fetchone: DuckDB 2 refuses other work on a connection while a result is left unread
    rows = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = ?", [ALIAS]).fetchall()
    return rows[0][0] if rows and rows[0][0] else "ROOT/catalog.duckdb"


def _outside(err: duckdb.PermissionException) -> RefusedStatement:
    first = str(err).splitlines()[0]
    return RefusedStatement(f"hiw query reads only the dataset's tables ({first}); for other files use plain duckdb")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quote_csv(value: str | None) -> str:
    """A csv field as DuckDB's COPY writes it: NULL empty, "" for the empty string, quotes only where needed."""
    if value is None:
        return ""
    if value == "" or any(c in value for c in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _write_csv(relation: duckdb.DuckDBPyRelation, path: Path) -> None:
    names = list(relation.columns)
    # Every value as DuckDB's VARCHAR text, what COPY writes (1e-05, nan, [a, b], {'k': v}, ...); #i: by position,
    # so duplicate column names do not matter.
    text = relation.project(", ".join(f"CAST(#{i + 1} AS VARCHAR)" for i in range(len(names))))
    with open(path, "w", newline="", encoding="utf-8") as f:
        f.write(",".join(_quote_csv(n) for n in names) + "\n")
        for batch in text.to_arrow_reader(BATCH_ROWS):
            columns = [c.to_pylist() for c in batch.columns]
            f.writelines(",".join(_quote_csv(v) for v in row) + "\n" for row in zip(*columns))


def _write_json(relation: duckdb.DuckDBPyRelation, path: Path) -> None:
    names = list(relation.columns)
    # One JSON object per row rendered by DuckDB, as COPY (FORMAT json, ARRAY true) wrote them.
    row = relation.project("json_object(" + ", ".join(f"{_literal(n)}, #{i + 1}" for i, n in enumerate(names)) + ")")
    with open(path, "w", encoding="utf-8") as f:
        f.write("[\n")
        first = True
        for batch in row.to_arrow_reader(BATCH_ROWS):
            for obj in batch.column(0).to_pylist():
                f.write(("\t" if first else ",\n\t") + obj)
                first = False
        f.write("\n]\n")


def _write_parquet(relation: duckdb.DuckDBPyRelation, path: Path) -> None:
    reader = relation.to_arrow_reader(BATCH_ROWS)
    with pq.ParquetWriter(path, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)


__all__ = ["ALIAS", "RefusedStatement", "check_sql", "connect", "query_rows", "read_clip_ids", "write_result"]
