"""Progress of a model flow (evaluation suite, language model) to Prefect's run logger and, from the CLI, to the
terminal: the CLI sets a printer for the flow it runs (a context variable, because flow parameters must be
serialisable), and the flow's job reports through ``progress``."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from prefect import get_run_logger

_printer: ContextVar[Callable[[Any], None] | None] = ContextVar("hiw_flow_printer", default=None)


def progress(message: Any) -> None:
    """A training metrics dict or a line of text."""
    get_run_logger().info("%s", message)
    if printer := _printer.get():
        printer(message)


def with_printer(printer: Callable[[Any], None], job: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a flow with ``printer`` receiving its progress."""
    token = _printer.set(printer)
    try:
        return job(*args, **kwargs)
    finally:
        _printer.reset(token)
