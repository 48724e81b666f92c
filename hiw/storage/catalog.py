"""The DuckDB catalog: a small database file with one view per table over the Parquet files.

Views hold absolute paths so plain ``duckdb ROOT/catalog.duckdb`` works from any folder;
``open_catalog`` rewrites them when the dataset root has moved.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from hiw.errors import ConfigError
from hiw.schemas import DERIVED_TABLES, TABLES
from hiw.storage.tables import TABLES_DIR, table_glob

CATALOG_FILE = "catalog.duckdb"


def write_catalog(root: Path) -> Path:
    root = root.resolve()
    path = root / CATALOG_FILE
    tmp = path.with_name(f".{CATALOG_FILE}.tmp")
    tmp.unlink(missing_ok=True)
    with duckdb.connect(str(tmp)) as con:
        derived = [name for name in DERIVED_TABLES if any(table_glob(root, name).parent.glob("*.parquet"))]
        for name in [*TABLES, *derived]:
            glob = str(table_glob(root, name)).replace("'", "''")
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{glob}', union_by_name = true)")
        con.execute("CREATE TABLE hiw_catalog AS SELECT ? AS root", [str(root)])
    tmp.replace(path)
    return path


def open_catalog(root: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the catalog of a built dataset root."""
    root = root.resolve()
    path = root / CATALOG_FILE
    if not (root / TABLES_DIR).is_dir():
        raise ConfigError(f"no dataset at {root} (expected {TABLES_DIR}/ and {CATALOG_FILE}; run `hiw build --out {root}` first)")
    if not path.exists() or _catalog_root(path) != str(root):
        write_catalog(root)
    return duckdb.connect(str(path), read_only=True)


def _catalog_root(path: Path) -> str | None:
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            return con.execute("SELECT root FROM hiw_catalog").fetchone()[0]
    except duckdb.Error:
        return None
