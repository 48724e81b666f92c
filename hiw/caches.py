"""The caches under a dataset root, and what happens to an entry that cannot be read.

Every cache is keyed by content (so a stale entry is never found) and is only a cache: a damaged entry is moved
aside, not deleted and not trusted (``<name>.corrupt-<time>``, for whoever wants to see what happened to it), and
recomputed. ``hiw gc`` removes what no version uses and what was moved aside.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger("hiw.cache")
MARK = ".corrupt-"

CACHE_DIR = Path("cache")
OBSERVATIONS_DIR = CACHE_DIR / "observations"  # what tracking saw per clip (hiw.flows.observations)
FRAMES_DIR = CACHE_DIR / "frames"  # the frames the VLM sees per clip (hiw.video.sample)
RESPONSES_FILE = CACHE_DIR / "vlm-responses.sqlite"  # the VLM's answers by request (hiw.annotators.cache)


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
