"""Damaged cache entries are moved aside, not deleted and not trusted: the build recomputes them, and the bad
file stays next to where it was (``<name>.corrupt-<time>``) for whoever wants to see what happened to it.
``hiw gc`` removes these."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger("hiw.cache")
MARK = ".corrupt-"


def quarantine(path: Path, why: str) -> Path | None:
    """Move ``path`` (file or folder) aside with a log line; None when there was nothing to move."""
    if not path.exists():
        return None
    aside = path.with_name(f"{path.name}{MARK}{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    try:
        os.replace(path, aside)
    except OSError as err:
        log.warning("cache entry %s is unreadable (%s) and cannot be moved aside: %s", path, why, err)
        return None
    log.warning("cache entry %s is unreadable (%s): moved to %s, recomputing it", path, why.splitlines()[0][:200], aside.name)
    return aside


def is_quarantined(path: Path) -> bool:
    return MARK in path.name
