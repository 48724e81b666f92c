"""Trainer exports of a built dataset, in the paper's 198-number motion features, split by source video: the CLUTCH
authors' layout (their loader reads it unchanged), the HumanML3D layout, and hiw's own npy layout with hand masks.

Each format is a module ``hiw.export.<name>`` with a function ``export_<name>``; this package imports none of them
(they load torch), so the CLI checks a format name in milliseconds."""

from __future__ import annotations

import importlib
from collections.abc import Callable

FORMATS = ("clutch", "humanml3d", "npy")


def exporter(name: str) -> Callable:
    """``export_<name>`` of the format's module."""
    return getattr(importlib.import_module(f"hiw.export.{name}"), f"export_{name}")
