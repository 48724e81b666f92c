"""The tokenizer's jobs as plain functions (the Prefect flows in ``hiw.flows.shift`` wrap them):
feature statistics, training, tokenizing, reconstructing, evaluating.

A job reads its data through a ``DataSource``; sequences unfit for the tokenizer are screened out and
counted (``skipped`` in every result), never trained on or tokenized. Jobs that apply a checkpoint load it
through the per-process cache, so a worker running several of them loads the model once.
"""

from __future__ import annotations

import json
import shutil
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from hiw.data.sources import DataSource, feature_stats, load_screened
from hiw.data.stats import FeatureStats
from hiw.errors import ConfigError
from hiw.models.checkpoints import CHECKPOINTS, METRICS_FILE
from hiw.models.loop import TrainResult
from hiw.models.loop_settings import check_settings, pick_device
from hiw.models.shift_checkpoint import LoadedTokenizer, cached_tokenizer
from hiw.models.shift_eval import EvalReport, evaluate
from hiw.models.shift_train import TRAIN_PRESETS, TrainSettings, train
from hiw.models.tokenizer import PRESETS, TokenizerConfig, Variant
from hiw.models.tokens import reconstruction_records, token_records
from hiw.storage import list_versions, write_catalog, write_derived

RUN_FILE = "run.json"


def model_config(preset: str, variant: str) -> TokenizerConfig:
    if preset not in PRESETS:
        raise ConfigError(f"--preset must be one of {sorted(PRESETS)} (got {preset!r})")
    if variant not in typing.get_args(Variant):
        raise ConfigError(f"--variant must be shift, single or lr (got {variant!r})")
    return PRESETS[preset].model_copy(update={"variant": variant})


def train_settings(preset: str, **overrides: Any) -> TrainSettings:
    """The preset's settings with the given (not None) overrides, checked."""
    given = {k: v for k, v in overrides.items() if v is not None}
    settings = TRAIN_PRESETS[preset].model_copy(update=given)
    check_settings(settings)
    return settings


def train_run(
    run_dir: Path,
    source: DataSource,
    config: TokenizerConfig,
    settings: TrainSettings,
    device: str = "auto",
    fresh: bool = False,
    log: Callable[[dict[str, float]], None] | None = None,
    stats: FeatureStats | None = None,
) -> TrainResult:
    """Train on the source's train split (validating on its val split when ``settings.val_every`` asks);
    ``stats`` as computed by the statistics flow, else computed here."""
    if fresh:
        shutil.rmtree(run_dir / CHECKPOINTS, ignore_errors=True)
        (run_dir / METRICS_FILE).unlink(missing_ok=True)
    torch_device = pick_device(device)
    step = 2**config.down_t
    screened = load_screened(source, "train", step)
    stats = stats or feature_stats(source, run_dir, step, screened)
    data = {
        "source": source.model_dump(),
        "fingerprint": stats.dataset,
        "split": "train",
        "sequences": len(screened.kept),
        "skipped": dict(screened.skipped),
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    info = {"model": config.model_dump(), "settings": settings.model_dump(), "data": data, "device": str(torch_device)}
    (run_dir / RUN_FILE).write_text(json.dumps(info, indent=1))
    val = load_screened(source, "val", step).kept if settings.val_every else []
    result = train(run_dir, config, settings, screened.kept, stats, data, torch_device, log, val)
    result.skipped.update(screened.skipped)
    return result


def _source(loaded: LoadedTokenizer, source: DataSource | None) -> DataSource:
    """The data to apply a checkpoint to: as given, else the data it was trained on."""
    return source or DataSource(**loaded.state["data"]["source"])


@dataclass
class TableResult:
    path: Path
    rows: int
    checkpoint_id: str
    skipped: dict[str, int] = field(default_factory=dict)


def tokenize_run(
    checkpoint: Path, source: DataSource | None = None, out: Path | None = None, split: str | None = None
) -> TableResult:
    """Write the ``tokens`` table of every (screened) sequence of ``source`` for this checkpoint."""
    loaded = cached_tokenizer(checkpoint, pick_device("auto"))
    source = _source(loaded, source)
    screened = load_screened(source, split, loaded.model.step)
    rows = token_records(loaded, screened.kept, source.fingerprint())
    out = out or source.default_out(_run_dir(loaded))
    path = write_derived(out, "tokens", f"part-{loaded.checkpoint_id}", rows)
    _refresh_catalog(out)
    return TableResult(path, len(rows), loaded.checkpoint_id, dict(screened.skipped))


def reconstruct_run(checkpoint: Path, out: Path | None = None) -> TableResult:
    """Decode this checkpoint's ``tokens`` table (written by ``tokenize_run`` into ``out``) to ``reconstructions``."""
    loaded = cached_tokenizer(checkpoint, pick_device("auto"))
    out = out or _source(loaded, None).default_out(_run_dir(loaded))
    tokens = out / "tokens" / f"part-{loaded.checkpoint_id}.parquet"
    if not tokens.is_file():
        raise ConfigError(f"no tokens of checkpoint {loaded.checkpoint_id} under {out} (run `hiw shift tokenize` first)")
    rows = pq.read_table(tokens).to_pylist()
    path = write_derived(out, "reconstructions", f"part-{loaded.checkpoint_id}", reconstruction_records(loaded, rows))
    _refresh_catalog(out)
    return TableResult(path, len(rows), loaded.checkpoint_id)


def eval_run(checkpoint: Path, source: DataSource | None = None, split: str = "test") -> EvalReport:
    """Reconstruction metrics on one split (held-out ``test`` by default); also saved as ``eval-<split>.json``."""
    loaded = cached_tokenizer(checkpoint, pick_device("auto"))
    source = _source(loaded, source)
    screened = load_screened(source, split, loaded.model.step)
    if not screened.kept:
        raise ConfigError(f"no usable {split} sequence in {source.describe()} ({screened.describe()})")
    report = evaluate(loaded, screened.kept, f"{source.describe()} [{split}]", dict(screened.skipped))
    (_run_dir(loaded) / f"eval-{split}.json").write_text(report.model_dump_json(indent=1))
    return report


def _run_dir(loaded: LoadedTokenizer) -> Path:
    return loaded.path.parent.parent


def _refresh_catalog(out: Path) -> None:
    """A dataset root's catalog gains views of the derived tables; a run folder has no catalog to refresh."""
    if list_versions(out):
        write_catalog(out)
