"""What every `hiw` command shares: its consoles, exit codes and one-line messages."""

from __future__ import annotations

import typing

import typer
from rich.console import Console
from rich.markup import escape

console = Console(stderr=False)
errors = Console(stderr=True)

EXIT_FAILURE, EXIT_USAGE = 1, 2


def fail(err: Exception, code: int) -> typing.NoReturn:
    # one line, however narrow the terminal; the message is text, not rich markup (it may quote "[build]" or a path)
    errors.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def say(text: str) -> None:
    """One unwrapped, unhighlighted line (scripts grep these)."""
    console.print(text, highlight=False, soft_wrap=True)


def skipped_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items())) or "none"
