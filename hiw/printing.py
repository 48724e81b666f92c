"""Query results, version lists and diffs as rich tables, CSV or JSON.

Kept apart from ``hiw.report`` (which needs the build flow, torch and Prefect) so catalog commands start fast.
"""

from __future__ import annotations

import csv
import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table


def _cell(value: Any) -> str:
    """Text of a table cell; arrays (a motion row holds thousands of numbers) are cut short."""
    if isinstance(value, (list, dict)):
        text = json.dumps(value, default=str)
        return text if len(text) <= 60 else text[:59] + "…"
    return str(value)


def print_rows(columns: list[str], rows: list[tuple], fmt: str, console: Console) -> None:
    if fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
    elif fmt == "json":
        print(json.dumps([dict(zip(columns, row)) for row in rows], default=str, indent=1))
    else:
        table = Table(*columns)
        for row in rows:
            table.add_row(*(_cell(v) for v in row))
        console.print(table)
        console.print(f"{len(rows)} row(s)", style="dim")


def print_diff(diff, console: Console) -> None:
    """``hiw diff``: counts per kind of change, and a few clip ids of each."""
    table = Table(title=f"{diff.a} -> {diff.b}")
    for col in ("change", "count", "examples"):
        table.add_column(col, justify="right" if col == "count" else "left")
    for kind in ("clips_added", "clips_removed", "clips_changed", "captions_added", "captions_removed", "captions_changed"):
        table.add_row(kind.replace("_", " "), str(getattr(diff, kind)), ", ".join(diff.examples.get(kind, [])))
    console.print(table)
    if diff.unchanged():
        console.print("no differences", style="dim")
