"""Train/val/test membership from the clip id alone: stable across rebuilds, machines and dataset growth."""

from __future__ import annotations

import hashlib

from hiw.errors import ConfigError

SPLITS = ("train", "val", "test")
FRACTIONS = (0.8, 0.1, 0.1)  # the paper's 80/10/10


def split_of(clip_id: str) -> str:
    """The split a clip belongs to: a hash of its id placed on [0, 1) against the cumulative fractions."""
    u = int.from_bytes(hashlib.sha256(clip_id.encode()).digest()[:8], "big") / 2**64
    edge = 0.0
    for name, fraction in zip(SPLITS, FRACTIONS):
        edge += fraction
        if u < edge:
            return name
    return SPLITS[-1]


def check_split(split: str | None) -> str | None:
    if split is not None and split not in SPLITS:
        raise ConfigError(f"--split must be train, val or test (got {split!r})")
    return split
