"""Prefect flows of the CLUTCH language model: thin wiring over the plain jobs in ``hiw.lm.runs``.

``hiw-train-clutch`` (one phase: pretrain, align or instruct), ``hiw-generate`` (text to motion, the evaluation
suite's generations table) and ``hiw-caption`` (motion to text, its generated_captions table). Each runs against
the ephemeral server unless PREFECT_API_URL points at one.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from hiw.data.sources import DataSource
from hiw.flows.printer import progress
from hiw.lm import runs
from hiw.lm.train import LMSettings
from hiw.models.loop import TrainResult


@flow(name="hiw-train-clutch", validate_parameters=False)
def train_clutch_flow(
    run_dir: Path,
    phase: str,
    source: DataSource,
    shift: Path,
    settings: LMSettings,
    preset: str = "tiny",
    lm: Path | None = None,
    device: str = "auto",
    fresh: bool = False,
) -> TrainResult:
    return runs.train_run(run_dir, phase, source, shift, settings, preset, lm, device, fresh, progress)


@flow(name="hiw-generate", validate_parameters=False)
def generate_flow(
    run: Path,
    out: Path,
    texts: list[str] | None = None,
    split: str | None = None,
    n: int = 1,
    seed: int = 0,
    free: bool = False,
    source: DataSource | None = None,
) -> runs.GenerateResult:
    return runs.generate_run(run, out, texts, split, n, seed, free, source, progress)


@flow(name="hiw-caption", validate_parameters=False)
def caption_flow(
    run: Path, out: Path, split: str = "test", clip: str | None = None, source: DataSource | None = None
) -> runs.GenerateResult:
    return runs.caption_run(run, out, split, clip, source, progress)
