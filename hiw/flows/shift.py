"""Prefect flows of the motion tokenizer: thin wiring over the plain jobs in ``hiw.models.shift_runs``.

``hiw-feature-stats`` (dataset mean/std), ``hiw-train-shift`` (runs the statistics flow as a subflow,
then trains), ``hiw-tokenize``, ``hiw-reconstruct`` and ``hiw-eval-shift``. Each runs against the
ephemeral server unless PREFECT_API_URL points at one, and logs through Prefect's run logger.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path

from prefect import flow, get_run_logger

from hiw.data.sources import DataSource
from hiw.data.stats import FeatureStats
from hiw.models import shift_runs as runs
from hiw.models.loop import TrainResult
from hiw.models.shift_eval import EvalReport
from hiw.models.shift_train import TrainSettings
from hiw.models.tokenizer import TokenizerConfig

# The CLI's progress printer; a context variable because flow parameters must be serialisable.
_log: ContextVar[Callable[[dict[str, float]], None] | None] = ContextVar("hiw_train_log", default=None)


@flow(name="hiw-feature-stats", validate_parameters=False)
def feature_stats_flow(source: DataSource, run_dir: Path, step: int = 4) -> FeatureStats:
    stats = runs.feature_stats(source, run_dir, step)
    get_run_logger().info("feature stats %s for %s (frames per hand %s)", stats.stats_id, stats.dataset, stats.frames)
    return stats


@flow(name="hiw-train-shift", validate_parameters=False)
def train_shift_flow(
    run_dir: Path, source: DataSource, config: TokenizerConfig, settings: TrainSettings, device: str = "auto", fresh: bool = False
) -> TrainResult:
    logger = get_run_logger()
    stats = feature_stats_flow(source, run_dir, 2**config.down_t)
    printer = _log.get()

    def log(metrics: dict[str, float]) -> None:
        logger.info("step %d: %s", metrics["step"], {k: round(v, 4) for k, v in metrics.items() if k != "step"})
        if printer:
            printer(metrics)

    return runs.train_run(run_dir, source, config, settings, device, fresh, log, stats)


@flow(name="hiw-tokenize", validate_parameters=False)
def tokenize_flow(
    checkpoint: Path, source: DataSource | None = None, out: Path | None = None, split: str | None = None
) -> runs.TableResult:
    result = runs.tokenize_run(checkpoint, source, out, split)
    get_run_logger().info("wrote %d token rows to %s", result.rows, result.path)
    return result


@flow(name="hiw-reconstruct", validate_parameters=False)
def reconstruct_flow(checkpoint: Path, out: Path | None = None) -> runs.TableResult:
    result = runs.reconstruct_run(checkpoint, out)
    get_run_logger().info("wrote %d reconstructions to %s", result.rows, result.path)
    return result


@flow(name="hiw-eval-shift", validate_parameters=False)
def eval_flow(checkpoint: Path, source: DataSource | None = None, split: str = "test") -> EvalReport:
    report = runs.eval_run(checkpoint, source, split)
    get_run_logger().info("mpjpe %.2f mm, accel %.3f mm/frame^2", report.mpjpe_mm, report.accel_mm)
    return report


def train_with_progress(log: Callable[[dict[str, float]], None], **kwargs) -> TrainResult:
    token = _log.set(log)
    try:
        return train_shift_flow(**kwargs)
    finally:
        _log.reset(token)
