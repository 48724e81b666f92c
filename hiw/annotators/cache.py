"""The response cache: request key -> the reply the model gave, so an unchanged rebuild calls no VLM.

Only completed calls are stored (whatever the model said, valid or not: with the same request it would say it
again); transport failures are not, so a rebuild retries them. SQLite in the dataset root: one file, atomic
commits, safe across processes, and it survives a build that dies half way.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import asdict
from pathlib import Path

from hiw.annotators.requests import Reply

CACHE_FILE = Path("cache") / "vlm-responses.sqlite"


class ResponseCache:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, model TEXT, prompt TEXT, reply TEXT)")
        self._db.commit()

    @classmethod
    def in_root(cls, root: Path) -> ResponseCache:
        return cls(root / CACHE_FILE)

    def get(self, key: str) -> Reply | None:
        with self._lock:
            row = self._db.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        return Reply(**json.loads(row[0])) if row else None

    def put(self, key: str, model: str, prompt: str, reply: Reply) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?)", (key, model, prompt, json.dumps(asdict(reply)))
            )
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
