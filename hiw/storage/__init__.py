"""Dataset versions of content-addressed Parquet shards, and the DuckDB catalog over them."""

from hiw.storage.catalog import CATALOG_FILE, derived_glob, open_catalog, read_table, write_catalog
from hiw.storage.derived import write_derived, write_records
from hiw.storage.fetch import fetch_motion
from hiw.storage.versions import Manifest, list_versions, load_manifest, resolve_version

__all__ = [
    "CATALOG_FILE",
    "Manifest",
    "derived_glob",
    "fetch_motion",
    "list_versions",
    "load_manifest",
    "open_catalog",
    "read_table",
    "resolve_version",
    "write_catalog",
    "write_derived",
    "write_records",
]
