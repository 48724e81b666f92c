"""Parquet tables and the DuckDB catalog over them."""

from hiw.storage.catalog import CATALOG_FILE, open_catalog, write_catalog
from hiw.storage.tables import TABLES_DIR, publish_tables, table_glob, tables_fingerprint, write_derived

__all__ = [
    "CATALOG_FILE",
    "TABLES_DIR",
    "open_catalog",
    "publish_tables",
    "table_glob",
    "tables_fingerprint",
    "write_catalog",
    "write_derived",
]
