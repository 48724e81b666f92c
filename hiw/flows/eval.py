"""Prefect flows of the evaluation suite: thin wiring over the plain jobs in ``hiw.eval.runs``.

``hiw-train-evaluator``, ``hiw-eval-t2m``, ``hiw-eval-m2t`` and ``hiw-eval-baselines``. Each runs against the
ephemeral server unless PREFECT_API_URL points at one, and logs its progress through Prefect's run logger and,
from the CLI, to the terminal.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from hiw.data.sources import DataSource
from hiw.eval import runs
from hiw.eval.report import EvalReport
from hiw.eval.train import EvaluatorSettings
from hiw.flows.printer import progress
from hiw.models.loop import TrainResult


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
    return runs.train_run(run_dir, source, preset, settings, word_vectors, tagger, device, fresh, progress)


@flow(name="hiw-eval-t2m", validate_parameters=False)
def t2m_flow(checkpoint: Path, generations: Path, options: runs.ScoreOptions) -> EvalReport:
    return runs.score_run("t2m", checkpoint, generations, options, progress)


@flow(name="hiw-eval-m2t", validate_parameters=False)
def m2t_flow(checkpoint: Path, captions: Path, options: runs.ScoreOptions) -> EvalReport:
    return runs.score_run("m2t", checkpoint, captions, options, progress)


@flow(name="hiw-eval-baselines", validate_parameters=False)
def baselines_flow(checkpoint: Path, options: runs.ScoreOptions, samples: int = 1) -> dict[str, dict[str, EvalReport]]:
    return runs.baselines_run(checkpoint, options, samples, progress)
