"""The response cache: request key -> the reply the model gave, so an unchanged rebuild calls no VLM.

Only answers that are usable or final are stored: ok, refused or empty (with the same request the model would say
it again). Transport failures and answers that are not the schema's JSON are not, so a rebuild asks again.
SQLite in the dataset root: one file, atomic commits, safe across processes, and it survives a build that dies
half way. It is only a cache: a file that is not a readable database is moved aside (``*.corrupt-<time>``, with a
log line) and started afresh, and an entry that cannot be read is a miss.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from dataclasses import asdict
from pathlib import Path

from hiw.annotators.requests import Reply
from hiw.caches import RESPONSES_FILE, quarantine

log = logging.getLogger(__name__)


class ResponseCache:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        try:
            self._db = self._open(path)
        except sqlite3.DatabaseError as err:  # not a database, or damaged: discard it, it is only a cache
            for sidecar in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                quarantine(sidecar, f"{err}")
            quarantine(path, f"{err}")
            self._db = self._open(path)

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, check_same_thread=False, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, model TEXT, prompt TEXT, reply TEXT)")
            db.execute("SELECT count(*) FROM replies").fetchone()
            db.commit()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    @classmethod
    def in_root(cls, root: Path) -> ResponseCache:
        return cls(root / RESPONSES_FILE)

    def get(self, key: str) -> Reply | None:
        try:
            with self._lock:
                row = self._db.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
            return Reply(**json.loads(row[0])) if row else None
        except (sqlite3.DatabaseError, ValueError, TypeError) as err:  # a damaged entry is a miss
            log.warning("response cache %s: entry %s unreadable (%s); asking the model again", self.path, key, err)
            return None

    def put(self, key: str, model: str, prompt: str, reply: Reply) -> None:
        try:
            with self._lock:
                self._db.execute(
                    "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?)", (key, model, prompt, json.dumps(asdict(reply)))
                )
                self._db.commit()
        except sqlite3.DatabaseError as err:  # the build goes on; only the saving of this call is lost
            log.warning("response cache %s: cannot store a reply (%s)", self.path, err)

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
