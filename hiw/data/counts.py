"""How a step says what it set aside: ``1 nan, 3 too_short`` (reasons sorted, zero counts left out) or ``none``."""

from __future__ import annotations

from collections.abc import Mapping


def skipped_counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()) if n) or "none"


def kept_and_skipped(kept: int, noun: str, skipped: Mapping[str, int]) -> str:
    return f"{kept} {noun} kept; skipped: {skipped_counts(skipped)}"
