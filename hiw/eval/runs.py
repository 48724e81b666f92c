"""The evaluation suite's jobs as plain functions (the Prefect flows in ``hiw.flows.eval`` wrap them): train an
evaluator, score text-to-motion generations, score motion-to-text captions, and run the baselines.

Scoring reads the evaluator's run folder for the data it was trained on (``--data`` overrides it) and writes the
report twice: ``RUN/eval/<task>-<generator>-<split>.json`` and rows of the ``evaluations`` table, next to the
dataset's own tables (a built dataset) or in the run folder (procedural data).
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from hiw import __version__
from hiw.data.sources import DataSource, feature_stats
from hiw.errors import ConfigError
from hiw.eval.baselines import BASELINES, caption_baseline, motion_baseline
from hiw.eval.checkpoint import LoadedEvaluator, cached_evaluator
from hiw.eval.data import EvalSet, load_eval_set
from hiw.eval.evaluator import DOWNSAMPLE, PRESETS, EvaluatorConfig
from hiw.eval.generations import (
    caption_records,
    motion_records,
    read_caption_generations,
    read_motion_generations,
    write_generations,
)
from hiw.eval.m2t import score_m2t
from hiw.eval.metrics import MetricSettings
from hiw.eval.report import EvalReport
from hiw.eval.t2m import score_t2m
from hiw.eval.text import load_text_processor
from hiw.eval.train import TRAIN_PRESETS, EvaluatorJob, EvaluatorSettings
from hiw.models import loop
from hiw.models.checkpoints import CHECKPOINTS, METRICS_FILE
from hiw.models.loop_settings import check_settings, pick_device
from hiw.storage import list_versions, write_catalog

RUN_FILE = "run.json"
EVAL_TABLES = ("motion", "captions")  # what the evaluator learns from: a change to either is new data
Progress = Callable[[str], None] | None


def model_config(preset: str, word_size: int) -> EvaluatorConfig:
    if preset not in PRESETS:
        raise ConfigError(f"--preset must be one of {sorted(PRESETS)} (got {preset!r})")
    return EvaluatorConfig(word_size=word_size, **PRESETS[preset])


def train_settings(preset: str, **overrides: Any) -> EvaluatorSettings:
    if preset not in TRAIN_PRESETS:
        raise ConfigError(f"--preset must be one of {sorted(TRAIN_PRESETS)} (got {preset!r})")
    settings = TRAIN_PRESETS[preset].model_copy(update={k: v for k, v in overrides.items() if v is not None})
    check_settings(settings)
    if settings.margin <= 0:
        raise ConfigError(f"--margin must be > 0 (got {settings.margin})")
    return settings


def train_run(
    run_dir: Path,
    source: DataSource,
    preset: str,
    settings: EvaluatorSettings,
    word_vectors: str | None = None,
    tagger: str = "auto",
    device: str = "auto",
    fresh: bool = False,
    log: Callable[[dict[str, float]], None] | None = None,
) -> loop.TrainResult:
    """Train (or resume) the evaluator on the source's train split, validating on val when asked."""
    if word_vectors not in (None, "minilm"):  # recorded in the checkpoint, so it must not depend on the working folder
        word_vectors = str(Path(word_vectors).expanduser().resolve())
    processor = load_text_processor(word_vectors, tagger)
    config = model_config(preset, processor.vectors.dim)
    torch_device = pick_device(device)
    if fresh:
        shutil.rmtree(run_dir / CHECKPOINTS, ignore_errors=True)
        (run_dir / METRICS_FILE).unlink(missing_ok=True)
    train = load_eval_set(source, "train", processor)
    stats = feature_stats(source, run_dir, DOWNSAMPLE)
    val = load_eval_set(source, "val", processor).clips if settings.val_every else []
    data = {
        "source": source.model_dump(),
        "fingerprint": source.fingerprint(EVAL_TABLES),
        "split": "train",
        "clips": len(train.clips),
        "skipped": dict(train.skipped),
        "code_version": __version__,
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    info = {"model": config.model_dump(), "settings": settings.model_dump(), "data": data, "device": str(torch_device)}
    (run_dir / RUN_FILE).write_text(json.dumps(info, indent=1))
    job = EvaluatorJob(config, settings, train.clips, val, processor, stats, data, word_vectors)
    result = loop.train(run_dir, job, settings, torch_device, log)
    result.skipped.update(train.skipped)
    return result


class ScoreOptions(BaseModel):
    """How a scoring run reads and samples: the same for t2m, m2t and the baselines."""

    model_config = ConfigDict(frozen=True)

    source: DataSource | None = None  # the data to score on; None: what the evaluator trained on
    split: str = "test"
    seed: int = 0
    settings: MetricSettings = MetricSettings()
    generator: str | None = None  # which generator's rows, where a file holds several
    bertscore: bool = True


@dataclass
class _Scoring:
    """What every scoring job of one evaluator on one split needs, loaded once."""

    evaluator: LoadedEvaluator
    source: DataSource
    real: EvalSet
    run_dir: Path
    options: ScoreOptions

    @classmethod
    def load(cls, checkpoint: Path, options: ScoreOptions) -> _Scoring:
        evaluator = cached_evaluator(checkpoint, pick_device("auto"))
        source = options.source or DataSource(**evaluator.state["data"]["source"])
        real = load_eval_set(source, options.split, evaluator.processor)
        if not real.clips:
            raise ConfigError(f"no usable {options.split} clip in {source.describe()} ({real.describe()})")
        return cls(evaluator, source, real, evaluator.path.parent.parent, options)

    def score(self, task: str, spec: Path, progress: Progress, generator: str | None = None) -> EvalReport:
        """Read ``spec``'s generations (of ``generator``, else the options') and score them; save the report."""
        o = self.options
        clip_ids = {clip.clip_id for clip in self.real.clips}
        if task == "t2m":
            fps = Counter(clip.motion.fps for clip in self.real.clips).most_common(1)[0][0]
            generated = read_motion_generations(spec, clip_ids, self.evaluator.processor, generator or o.generator, fps)
        else:
            generated = read_caption_generations(spec, clip_ids, self.evaluator.processor, generator or o.generator)
        context = (self.evaluator, self.real, generated, o.settings, o.seed, progress)
        scores = score_t2m(*context) if task == "t2m" else score_m2t(*context, o.bertscore)
        report = EvalReport(
            task=task,
            generator=generated.generator,
            generator_lineage=generated.lineage,
            evaluator=self.evaluator.lineage(),
            dataset=self.source.fingerprint(EVAL_TABLES),
            dataset_version=list_versions(Path(self.source.root))[-1] if self.source.kind == "dataset" else None,
            split=o.split,
            seed=o.seed,
            settings=o.settings,
            rejected=dict(generated.rejected),
            **scores.model_dump(),
        )
        out = self.source.default_out(self.run_dir)
        report.save(self.run_dir, out)
        if list_versions(out):
            write_catalog(out)  # the dataset's catalog gains the evaluations view
        return report


def score_run(task: str, checkpoint: Path, spec: Path, options: ScoreOptions, progress: Progress = None) -> EvalReport:
    """Score ``task`` (t2m: a generations table; m2t: a generated_captions table) at ``spec``."""
    return _Scoring.load(checkpoint, options).score(task, spec, progress)


def baselines_run(
    checkpoint: Path, options: ScoreOptions, samples: int = 1, progress: Progress = None
) -> dict[str, dict[str, EvalReport]]:
    """Write each baseline's generations into ``RUN/baselines/<split>/`` and score them: {task: {baseline: report}}."""
    say = progress or (lambda _: None)
    scoring = _Scoring.load(checkpoint, options)
    real, source, split, seed = scoring.real, scoring.source, options.split, options.seed
    train = load_eval_set(source, "train", scoring.evaluator.processor)
    out = scoring.run_dir / "baselines" / split
    reports: dict[str, dict[str, EvalReport]] = {"t2m": {}, "m2t": {}}
    for name in BASELINES:
        lineage = {"baseline": name, "dataset": source.fingerprint(EVAL_TABLES), "split": split, "seed": seed}
        say(f"baseline {name}: text-to-motion")
        items = motion_baseline(name, real, train, np.random.default_rng([seed, 7]), samples if name != "real" else 1)
        write_generations(out, "generations", name, motion_records(name, lineage, items))
        reports["t2m"][name] = scoring.score("t2m", out, progress, name)
        if name == "real":
            continue
        say(f"baseline {name}: motion-to-text")
        captions = caption_baseline(name, real, train, scoring.evaluator.stats, np.random.default_rng([seed, 11]))
        write_generations(out, "generated_captions", name, caption_records(name, lineage, captions))
        reports["m2t"][name] = scoring.score("m2t", out, progress, name)
    return reports
