"""Groups of shards keyed by content: what lets a rebuild reuse every stage output whose inputs did not change.

A group is written as its shards first, then its record ``shards/groups/<key>.json`` (atomically). A group
whose record exists is complete, whichever build wrote it and whether or not that build published a version,
so a build that was killed resumes from the groups it finished. The records also index videos: a video whose
unit key appears in any group can be carried into a new group by reading its rows back, not redoing them.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from hiw.schemas import TABLES, arrow_schema
from hiw.storage.shards import SHARDS_DIR, write_shard
from hiw.storage.versions import Group

GROUPS_DIR = Path(SHARDS_DIR) / "groups"


class GroupStore:
    def __init__(self, root: Path):
        self.root = root
        self.groups: dict[str, Group] = {}
        self._units: dict[str, Group] = {}
        for path in sorted((root / GROUPS_DIR).glob("*.json")):
            try:
                group = Group.model_validate_json(path.read_text())
            except (OSError, ValueError):
                continue  # unreadable record: the group counts as not written
            if all((root / f.path).exists() for f in group.files.values()):
                self._add(group)

    def _add(self, group: Group) -> None:
        if not group.retry:
            self.groups[group.key] = group
        for video_id, unit_key in group.units.items():
            if video_id not in group.retry:
                self._units.setdefault(unit_key, group)

    def get(self, key: str) -> Group | None:
        return self.groups.get(key)

    def holding(self, unit_key: str) -> Group | None:
        """A written group that holds a video with this unit key."""
        return self._units.get(unit_key)

    def write(
        self, kind: str, key: str, units: dict[str, str], tables: dict[str, pa.Table], retry: list[str] | None = None
    ) -> Group:
        """Write a group's shards, then its record. A group with videos to retry gets a key of its own each time,
        so its shards never overwrite the ones a published version lists."""
        if retry:
            key = f"{key}_retry_{uuid.uuid4().hex[:8]}"
        files = {name: write_shard(self.root, name, key, data) for name, data in tables.items()}
        group = Group(key=key, kind=kind, units=units, files=files, retry=retry or [])
        folder = self.root / GROUPS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{key}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "w") as f:
            f.write(group.model_dump_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, folder / f"{key}.json")
        self._add(group)
        return group

    def rows(self, group: Group, table: str, column: str, values: list[str]) -> pa.Table:
        """Rows of ``table`` in ``group`` whose ``column`` is one of ``values``."""
        schema = arrow_schema(TABLES[table])
        if table not in group.files or not values:
            return schema.empty_table()
        return pq.read_table(self.root / group.files[table].path, filters=[(column, "in", values)], schema=schema)
