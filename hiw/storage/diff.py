"""``hiw diff A B``: what changed between two versions, by clip and by caption.

Shards both versions list are the same bytes, so only rows in the other shards are compared (a rebuild that
changed one video reads that video's rows, not the dataset). A clip changed when its ``clips`` or ``motion``
row differs in anything but its lineage (``LINEAGE``); a caption changed when the text of a (clip, kind)
differs.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
from pydantic import BaseModel

from hiw.storage.catalog import empty_shard, sql_list
from hiw.storage.versions import Manifest, load_manifest

EXAMPLES = 5
LINEAGE = "created_at, config_hash, code_version"  # what made a row, not what it holds
ROW_TABLES = ("clips", "motion")  # compared row by row; captions by their text


class VersionDiff(BaseModel):
    a: str
    b: str
    clips_added: int
    clips_removed: int
    clips_changed: int
    captions_added: int
    captions_removed: int
    captions_changed: int
    examples: dict[str, list[str]]

    def unchanged(self) -> bool:
        return not any(getattr(self, k) for k in type(self).model_fields if k.startswith(("clips_", "captions_")))


def diff_versions(root: Path, a: str, b: str) -> VersionDiff:
    ma, mb = load_manifest(root, a), load_manifest(root, b)
    with duckdb.connect() as con:
        for tag, mine, other in (("a", ma, mb), ("b", mb, ma)):
            for table in (*ROW_TABLES, "captions"):
                _view(con, root, f"{tag}_{table}", mine, table)
                _view(con, root, f"{tag}_{table}_own", mine, table, exclude=other)
        added = _ids(con, "SELECT clip_id FROM b_clips EXCEPT SELECT clip_id FROM a_clips")
        removed = _ids(con, "SELECT clip_id FROM a_clips EXCEPT SELECT clip_id FROM b_clips")
        rows = " UNION ALL ".join(
            f"SELECT '{v}' v, '{t}' tbl, clip_id, hash(r) h FROM (SELECT * EXCLUDE ({LINEAGE}) FROM {v}_{t}_own) r"
            for v in "ab"
            for t in ROW_TABLES
        )
        changed = _ids(  # same clip in both, a row hash that differs in clips or in motion
            con,
            f"""SELECT DISTINCT clip_id FROM ({rows}) GROUP BY clip_id, tbl
                HAVING count(DISTINCT v) = 2 AND count(DISTINCT h) > 1""",
        )
        changed = [c for c in changed if c not in set(added) | set(removed)]
        pairs = """SELECT clip_id, kind, string_agg(text, ' | ' ORDER BY text) text FROM {} GROUP BY clip_id, kind"""
        con.execute(f"CREATE TEMP VIEW ca AS {pairs.format('a_captions')}")
        con.execute(f"CREATE TEMP VIEW cb AS {pairs.format('b_captions')}")
        cap_added = _ids(con, "SELECT clip_id || ':' || kind FROM cb ANTI JOIN ca USING (clip_id, kind)")
        cap_removed = _ids(con, "SELECT clip_id || ':' || kind FROM ca ANTI JOIN cb USING (clip_id, kind)")
        cap_changed = _ids(con, "SELECT clip_id || ':' || kind FROM ca JOIN cb USING (clip_id, kind) WHERE ca.text <> cb.text")
    lists = {
        "clips_added": added,
        "clips_removed": removed,
        "clips_changed": changed,
        "captions_added": cap_added,
        "captions_removed": cap_removed,
        "captions_changed": cap_changed,
    }
    return VersionDiff(
        a=ma.version,
        b=mb.version,
        **{k: len(v) for k, v in lists.items()},
        examples={k: sorted(v)[:EXAMPLES] for k, v in lists.items() if v},
    )


def _view(con, root: Path, name: str, manifest: Manifest, table: str, exclude: Manifest | None = None) -> None:
    shared = {f.path for f in exclude.files(table)} if exclude else set()
    files = [str(root / f.path) for f in manifest.files(table) if f.path not in shared] or [str(empty_shard(root, table))]
    con.execute(f"CREATE TEMP VIEW {name} AS SELECT * FROM read_parquet({sql_list(files)}, union_by_name = true)")


def _ids(con, sql: str) -> list[str]:
    return [row[0] for row in con.execute(sql).fetchall()]
