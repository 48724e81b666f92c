"""Where training and evaluation data come from: ``procedural`` clips or a built dataset root (``hiw build --out``),
and the statistics every model trained on them normalises with."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from hiw.data import procedural
from hiw.data.sequences import MotionSequence, Screened, dataset_sequences, procedural_sequences, screen
from hiw.data.stats import LAYOUT, FeatureStats, compute_stats
from hiw.errors import ConfigError

STATS_FILE = Path("features") / "stats.json"


class DataSource(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["procedural", "dataset"]
    root: str | None = None  # dataset root, for kind == "dataset"
    clips: int = 2000  # procedural: clips generated (80% of them train)
    seed: int = 0  # procedural: generator seed

    @classmethod
    def parse(cls, spec: str, clips: int = 2000, seed: int = 0) -> DataSource:
        """``procedural`` or the path of a built dataset."""
        if spec == "procedural":
            if clips < 1:
                raise ConfigError(f"--clips must be at least 1 (got {clips})")
            return cls(kind="procedural", clips=clips, seed=seed)
        root = Path(spec).expanduser().resolve()
        from hiw.storage import list_versions

        if not list_versions(root):
            raise ConfigError(
                f"--data must be 'procedural' or a built dataset root (no dataset versions under {root}; "
                f"run `hiw build --out {spec}`)"
            )
        return cls(kind="dataset", root=str(root))

    def describe(self) -> str:
        return f"procedural (clips={self.clips}, seed={self.seed})" if self.kind == "procedural" else f"dataset {self.root}"

    def fingerprint(self, tables: tuple[str, ...] = ("motion",)) -> str:
        """Identifies the content of a dataset's ``tables`` (the motion, unless told): a rebuilt dataset or another
        generator version gets a new one. Procedural clips and their labels come from one generator."""
        if self.kind == "procedural":
            return f"{procedural.VERSION}-n{self.clips}-s{self.seed}"
        from hiw.storage import load_manifest

        return load_manifest(Path(self.root)).content_id(tables)

    def load(self, split: str | None) -> list[MotionSequence]:
        if self.kind == "procedural":
            return procedural_sequences(self.clips, self.seed, split)
        return dataset_sequences(Path(self.root), split)

    def stats_path(self, run_dir: Path) -> Path:
        """Statistics live with the dataset they describe; procedural data has no home but the run."""
        return Path(self.root) / STATS_FILE if self.kind == "dataset" else run_dir / STATS_FILE

    def default_out(self, run_dir: Path) -> Path:
        """Where derived tables (tokens, reconstructions) go unless told: next to the data's own tables."""
        return Path(self.root) if self.kind == "dataset" else run_dir


def load_screened(source: DataSource, split: str | None, step: int) -> Screened:
    return screen(source.load(split), min_frames=step)


def feature_stats(source: DataSource, run_dir: Path, step: int = 4, train_split: Screened | None = None) -> FeatureStats:
    """The data's mean/std over its train split: reused while the data is unchanged, recomputed when it changed
    (from ``train_split`` when the caller has it loaded already)."""
    path = source.stats_path(run_dir)
    fingerprint = source.fingerprint()
    if path.is_file():
        stats = FeatureStats.load(path)
        if stats.dataset == fingerprint and stats.layout == LAYOUT:
            return stats
    train_split = train_split or load_screened(source, "train", step)
    if not train_split.kept:
        raise ConfigError(f"no usable training sequence in {source.describe()} ({train_split.describe()})")
    stats = compute_stats(train_split.kept, fingerprint)
    stats.save(path)
    return stats
