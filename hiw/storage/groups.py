"""Groups of shards keyed by content: what lets a rebuild reuse every stage output whose inputs did not change.

A group is written as its shards first, then its record ``shards/groups/<key>.json`` (atomically). A group
whose record exists is complete, whichever build wrote it and whether or not that build published a version,
so a build that was killed resumes from the groups it finished. The records also index videos: a video whose
unit key appears in any group can be carried into a new group by reading its rows back, not redoing them.

A group is reused only once its shards are checked against its record (present, same size, same sha256), the
first time a build asks for it: a damaged group counts as not written, so the build redoes its rows and writes
it again (``damaged`` says which and why, so the build can report the repair and republish).
"""

from __future__ import annotations

import logging
import os
import uuid
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from hiw.schemas import GROUP_TABLES, TABLES, arrow_schema
from hiw.schemas.ids import stable_hash
from hiw.schemas.records import utc_now
from hiw.storage.shards import SHARDS_DIR, check_shard, durable, write_shard
from hiw.storage.versions import Group

GROUPS_DIR = Path(SHARDS_DIR) / "groups"
log = logging.getLogger(__name__)


def retry_key(key: str, what: object) -> str:
    """The key of a group written with videos to retry: never the reusable ``key``, and the same for the same
    failures, so a rebuild that fails the same way again publishes no new version."""
    return f"{key}_retry_{stable_hash(what, length=12)}"


class GroupStore:
    def __init__(self, root: Path):
        self.root = root
        self._records: dict[str, Group] = {}  # every readable record, by key
        self._units: dict[str, list[str]] = {}  # unit key -> keys of the groups holding that video
        self._checked: dict[str, str | None] = {}  # group key -> what is wrong with it (None: sound)
        self.damaged: dict[str, str] = {}  # group key -> what was wrong, for the groups found damaged
        self._now: dict[str, datetime] = {}
        self._unsynced: list[Path] = []  # files written since the last ``sync``
        for path in sorted((root / GROUPS_DIR).glob("*.json")):
            try:
                group = Group.model_validate_json(path.read_text())
            except (OSError, ValueError):
                continue  # unreadable record: the group counts as not written
            self._add(group)

    def _add(self, group: Group) -> None:
        self._records[group.key] = group  # a group written again replaces its record
        for video_id, unit_key in group.units.items():
            holders = self._units.setdefault(unit_key, [])
            if video_id not in group.retry and group.key not in holders:
                holders.append(group.key)

    def _sound(self, group: Group) -> bool:
        if group.key not in self._checked:
            problems = [f"{f.path}: {why}" for f in group.files.values() if (why := check_shard(self.root, f))]
            self._checked[group.key] = "; ".join(problems) or None
            if problems:
                self.damaged[group.key] = self._checked[group.key]
                log.warning("group %s is damaged (%s): its rows are made again", group.key, self.damaged[group.key])
        return self._checked[group.key] is None

    def get(self, key: str) -> Group | None:
        """The written group of this key, if it is reusable (no videos to retry) and its shards are sound."""
        group = self._records.get(key)
        return group if group is not None and not group.retry and self._sound(group) else None

    def holding(self, unit_key: str) -> Group | None:
        """A sound written group that holds a video with this unit key."""
        return next((g for k in self._units.get(unit_key, []) if self._sound(g := self._records[k])), None)

    def created_at(self, key: str) -> datetime:
        """When the group of this key was first written (now, if never): the ``created_at`` of the rows it makes, so
        a group written again from the same inputs (a repair, the same failures retried) has the same bytes."""
        record = self._records.get(key)
        return record.created_at if record is not None and record.created_at else self._now.setdefault(key, utc_now())

    def write(
        self, kind: str, key: str, units: dict[str, str], tables: dict[str, pa.Table], retry: list[str] | None = None
    ) -> Group:
        """Write a group's shards, then its record. A group with videos to retry must have a key of its own
        (``retry_key``): it is never reused as a whole."""
        files = {name: write_shard(self.root, name, key, data) for name, data in tables.items()}
        group = Group(key=key, kind=kind, units=units, files=files, retry=retry or [], created_at=self.created_at(key))
        folder = self.root / GROUPS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{key}.{uuid.uuid4().hex}.tmp"
        tmp.write_text(group.model_dump_json())
        os.replace(tmp, folder / f"{key}.json")
        self._unsynced += [self.root / f.path for f in files.values()] + [folder / f"{key}.json"]
        self._checked[key] = None
        self._add(group)
        return group

    def sync(self) -> None:
        """Make every shard and record written since the last call durable: one pass before a version is published.

        Deferred from each write because by then the kernel has written most of the bytes back on its own (a
        build writes groups as its videos finish), so the fsyncs find little left to do. Safe because a version
        lists groups only after this, and a group left unsynced by a crash before it is checked against its
        record (size, sha256) before any reuse: a torn one is made again (``_sound``)."""
        durable(self._unsynced)
        self._unsynced = []

    def video_rows(self, group: Group, video_ids: list[str]) -> dict[str, pa.Table]:
        """The rows these videos have in ``group``, in every table a group of videos holds: selected by
        ``video_id``, or by the videos' clip ids in a table without one (captions)."""
        clips = self.rows(group, "clips", "video_id", video_ids)
        clip_ids = clips["clip_id"].to_pylist()
        out = {}
        for table in GROUP_TABLES["videos"]:
            by_video = "video_id" in arrow_schema(TABLES[table]).names
            out[table] = self.rows(group, table, "video_id" if by_video else "clip_id", video_ids if by_video else clip_ids)
        return out

    def rows(self, group: Group, table: str, column: str, values: list[str]) -> pa.Table:
        """Rows of ``table`` in ``group`` whose ``column`` is one of ``values``."""
        schema = arrow_schema(TABLES[table])
        if table not in group.files or not values:
            return schema.empty_table()
        return pq.read_table(self.root / group.files[table].path, filters=[(column, "in", values)], schema=schema)
