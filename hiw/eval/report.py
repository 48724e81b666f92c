"""What one scoring run reports: every metric as mean ± 95% interval over replications, beside the same metric on
real data, with the lineage of what was scored by what. Saved as JSON and as rows of the ``evaluations`` table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from hiw import __version__
from hiw.eval.metrics import MetricSettings
from hiw.schemas import EvaluationRecord
from hiw.schemas.ids import stable_hash
from hiw.storage import write_derived


class Value(BaseModel):
    mean: float | None  # None: not computable here (e.g. MultiModality without repeated generations)
    interval: float | None = None  # 95% half-width; None for a metric computed once
    replications: int = 1


class Scores(BaseModel):
    """What a protocol (``t2m``, ``m2t``) measured: the generator's metrics and the same with real data."""

    pairs: int  # generated items scored
    metrics: dict[str, Value]
    real: dict[str, Value]


class EvalReport(BaseModel):
    task: Literal["t2m", "m2t"]
    generator: str
    generator_lineage: dict[str, Any]
    evaluator: dict[str, Any]  # the evaluator checkpoint's lineage (hiw.eval.checkpoint.LoadedEvaluator.lineage)
    dataset: str  # fingerprint of the scored data (motion and captions)
    dataset_version: str | None  # e.g. v3; None for procedural clips
    split: str
    seed: int
    settings: MetricSettings
    pairs: int  # generated items scored
    rejected: dict[str, int]
    metrics: dict[str, Value]  # the generator's
    real: dict[str, Value]  # the same metrics with real data in the generator's place (ground truth)

    @property
    def evaluation_id(self) -> str:
        return "ev_" + stable_hash(
            self.task, self.generator, self.generator_lineage, self.evaluator["checkpoint_id"], self.dataset, self.split,
            self.seed, self.settings.model_dump(),
        )  # fmt: skip

    def records(self) -> list[EvaluationRecord]:
        common = {
            "evaluation_id": self.evaluation_id,
            "task": self.task,
            "generator": self.generator,
            "generator_lineage": json.dumps(self.generator_lineage, sort_keys=True),
            "evaluator_id": self.evaluator["checkpoint_id"],
            "evaluator_lineage": json.dumps(self.evaluator, sort_keys=True),
            "dataset": self.dataset,
            "dataset_version": self.dataset_version,
            "split": self.split,
            "seed": self.seed,
            "settings": self.settings.model_dump_json(),
            "pairs": self.pairs,
            "rejected": json.dumps(self.rejected, sort_keys=True),
            "code_version": __version__,
        }
        rows = [(name, v) for name, v in self.metrics.items()] + [(f"real_{name}", v) for name, v in self.real.items()]
        return [
            EvaluationRecord(metric=name, mean=v.mean, interval=v.interval, replications=v.replications, **common)
            for name, v in rows
        ]

    def save(self, run_dir: Path, out: Path) -> tuple[Path, Path]:
        """``run_dir/eval/<task>-<generator>-<split>.json`` and ``out/evaluations/part-<evaluation_id>.parquet``."""
        folder = run_dir / "eval"
        folder.mkdir(parents=True, exist_ok=True)
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.generator)
        path = folder / f"{self.task}-{name}-{self.split}.json"
        path.write_text(self.model_dump_json(indent=1))
        return path, write_derived(out, "evaluations", f"part-{self.evaluation_id}", self.records())

    def table(self) -> list[tuple[str, str, str]]:
        """(metric, generated, real) rows as printed: mean ± interval."""
        return [(name, show(v), show(self.real.get(name))) for name, v in self.metrics.items()]


def show(value: Value | None) -> str:
    if value is None or value.mean is None:
        return "-"
    return f"{value.mean:.4f}" if value.interval is None else f"{value.mean:.4f} ± {value.interval:.4f}"
