"""Hand trackers behind one protocol; heavy backends import lazily."""

from __future__ import annotations

from functools import lru_cache

from hiw.errors import ConfigError
from hiw.trackers.base import ClipTracks, HandTracker, TrackerSettings

TRACKERS = ("mediapipe", "precomputed")  # precomputed tracks are loaded, not tracked (hiw.trackers.precomputed)


@lru_cache(maxsize=4)
def make_tracker(name: str, settings: TrackerSettings) -> HandTracker:
    """The tracker, built once per worker process for given settings: a tracker loads its model in ``__init__``
    and keeps no state between ``track`` calls (mediapipe opens a fresh session per clip)."""
    if name == "mediapipe":
        from hiw.trackers.mediapipe_hands import MediapipeHands

        return MediapipeHands(settings)
    raise ConfigError(f"tracker {name!r} does not track video; available: mediapipe")


__all__ = ["TRACKERS", "ClipTracks", "HandTracker", "TrackerSettings", "make_tracker"]
