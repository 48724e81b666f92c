"""Prefect flows of the evaluation suite: thin wiring over the plain jobs in ``hiw.eval.runs``.

``hiw-train-evaluator``, ``hiw-eval-t2m``, ``hiw-eval-m2t`` and ``hiw-eval-baselines``. Each runs against the
ephemeral server unless PREFECT_API_URL points at one, and logs its progress through Prefect's run logger and,
from the CLI, to the terminal.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from hiw.data.sources import DataSource
from hiw.eval import runs
from hiw.eval.report import EvalReport
from hiw.eval.train import EvaluatorSettings
from hiw.models.loop import TrainResult

# The CLI's printer; a context variable because flow parameters must be serialisable.
_printer: ContextVar[Callable[[Any], None] | None] = ContextVar("hiw_eval_printer", default=None)


def _progress(message: Any) -> None:
    get_run_logger().info("%s", message)
    if printer := _printer.get():
        printer(message)


@flow(name="hiw-train-evaluator", validate_parameters=False)
def train_evaluator_flow(
    run_dir: Path,
    source: DataSource,
    preset: str,
    settings: EvaluatorSettings,
    word_vectors: str | None = None,
    tagger: str = "auto",
    device: str = "auto",
    fresh: bool = False,
) -> TrainResult:
    return runs.train_run(run_dir, source, preset, settings, word_vectors, tagger, device, fresh, _progress)


@flow(name="hiw-eval-t2m", validate_parameters=False)
def t2m_flow(checkpoint: Path, generations: Path, options: runs.ScoreOptions) -> EvalReport:
    return runs.score_run("t2m", checkpoint, generations, options, _progress)


@flow(name="hiw-eval-m2t", validate_parameters=False)
def m2t_flow(checkpoint: Path, captions: Path, options: runs.ScoreOptions) -> EvalReport:
    return runs.score_run("m2t", checkpoint, captions, options, _progress)


@flow(name="hiw-eval-baselines", validate_parameters=False)
def baselines_flow(checkpoint: Path, options: runs.ScoreOptions, samples: int = 1) -> dict[str, dict[str, EvalReport]]:
    return runs.baselines_run(checkpoint, options, samples, _progress)


def with_printer(printer: Callable[[Any], None], job: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a flow of this module with ``printer`` receiving its progress (training metrics dicts, or lines)."""
    token = _printer.set(printer)
    try:
        return job(*args, **kwargs)
    finally:
        _printer.reset(token)
