"""What both trainer exports share: choosing clips and captions, streaming motion, train-only statistics, and
publishing the folder all at once.

An export is assembled in a sibling folder ``.<name>.partial-<id>`` and renamed onto ``out`` only when complete
(``meta.json`` is its last file), so ``out`` always holds either the previous export or the new one; a crash
leaves the ``.partial`` folder, recognisable by name. A non-empty ``out`` is replaced only when its
``meta.json`` says it is an export of the same format.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from pydantic import BaseModel

import hiw
from hiw.data.sequences import MotionSequence, read_sequences, screen
from hiw.data.splits import SPLITS, check_splits_table, dataset_splits
from hiw.data.stats import LAYOUT, STD_FLOOR, FeatureStats, compute_stats
from hiw.errors import ConfigError
from hiw.motion.features import FEATURES, HAND_FEATURES
from hiw.storage.catalog import CAPTION_PRIORITY  # caption kinds best first

META_FILE = "meta.json"
FEATURE_LAYOUT = {
    "description": "per frame 198 numbers: left hand [0, 99) then right hand [99, 198); per hand global orientation "
    "as 6D rotation [0, 6), 15 finger joints as 6D rotations [6, 96) (MANO joint order), wrist translation in "
    "metres [96, 99); translation shifted so the mean of the two wrists at the first frame both are valid is the "
    "origin; frames where a hand is missing are zeros",
    "layout": LAYOUT,
    "hand_features": HAND_FEATURES,
    "hands": ["left", "right"],
    "per_hand": {"global_orient_6d": [0, 6], "finger_rotations_6d": [6, 96], "wrist_translation": [96, 99]},
}

Progress = Callable[[int, int], None]  # (sequences done, sequences to do)


class ExportSummary(BaseModel):
    format: str
    out: str
    sequences: int
    splits: dict[str, int]  # sequences per split
    frames: int
    captions: int
    fps: float
    skipped: dict[str, int]  # reason -> clips not exported
    stats_id: str


@dataclass
class Caption:
    kind: str
    text: str
    verbs: list[str]
    objects: list[str]


@dataclass
class ExportRun:
    """The state a format's writer sees: where it writes, what was kept, the statistics once computed."""

    folder: Path
    fmt: str
    membership: dict[str, str]  # clip_id -> split, for every selected clip
    videos: dict[str, str]  # clip_id -> video_id, for every selected clip
    captions: dict[str, list[Caption]]
    fps: float
    kept: dict[str, str] = field(default_factory=dict)  # exported clip_id -> split
    frames: Counter = field(default_factory=Counter)  # split -> frames
    skipped: Counter = field(default_factory=Counter)
    train_masks: dict[str, np.ndarray] = field(default_factory=dict)
    stats: FeatureStats | None = None

    def ids(self, split: str | None = None) -> list[str]:
        return sorted(c for c, s in self.kept.items() if split is None or s == split)


def clean_text(text: str) -> str:
    """One line, no '#': HumanML3D-style files split lines on '#'."""
    return re.sub(r"\s+", " ", (text or "").replace("#", " ")).strip()


def clip_captions(con: duckdb.DuckDBPyConnection, clip_ids: list[str]) -> dict[str, list[Caption]]:
    """Each clip's captions, best kind first (then by caption_id), QA failures left out, duplicate texts once."""
    rows = con.sql(
        f"""SELECT clip_id, kind, text, verbs, objects FROM captions
            WHERE clip_id IN (SELECT unnest($ids)) AND coalesce(qa_passed, true)
            ORDER BY clip_id, {CAPTION_PRIORITY}, caption_id""",
        params={"ids": clip_ids},
    ).fetchall()
    out: dict[str, list[Caption]] = {}
    for clip_id, kind, text, verbs, objects in rows:
        text = clean_text(text)
        known = out.setdefault(clip_id, [])
        if text and all(c.text != text for c in known):
            known.append(Caption(kind, text, list(verbs or []), list(objects or [])))
    return out


def check_target(out: Path, fmt: str) -> Path:
    """``out`` resolved; refuse a file, or a non-empty folder that is not a previous export of this format."""
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"export target {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        try:
            previous = json.loads((out / META_FILE).read_text()).get("format")
        except (OSError, ValueError, AttributeError):
            previous = None
        if previous != fmt:
            found = f"a {previous} export" if isinstance(previous, str) else f"no {META_FILE} with a format"
            raise ConfigError(f"refusing to write a {fmt} export into non-empty {out} ({found}); give an empty or new folder")
    return out


class ExportFormat:
    """One trainer layout: where a clip's (T, 198) features go, what else a clip writes, the index files."""

    name = ""

    def features_path(self, folder: Path, clip_id: str) -> Path:
        raise NotImplementedError

    def read_features(self, folder: Path, clip_id: str) -> np.ndarray:
        """A written clip's (T, 198) features, read back for the train statistics."""
        return np.load(self.features_path(folder, clip_id))

    def check_splits(self, counts: dict[str, int]) -> None:
        """Refuse (ConfigError) clips per split that this layout's loader cannot take; called on the selection
        before anything is written, and on the clips kept before the export is published."""

    def write_clip(self, run: ExportRun, seq: MotionSequence, split: str) -> None:
        raise NotImplementedError

    def finish(self, run: ExportRun) -> dict[str, Any]:
        """Write the index files once every clip is written; return extra ``meta.json`` fields."""
        raise NotImplementedError


def run_export(
    con: duckdb.DuckDBPyConnection,
    out: Path,
    fmt: ExportFormat,
    *,
    splits: pa.Table | None = None,
    progress: Progress | None = None,
    dataset_version: str | None = None,
    min_frames: int = 1,
    batch_rows: int = 64,
) -> ExportSummary:
    """Write the accepted clips of ``splits`` (default: ``dataset_splits(con)``) in layout ``fmt`` at ``out``: select
    clips, stream and screen their motion, let ``fmt`` write each clip, compute train-only statistics from the written
    files, let ``fmt`` write its index files, then ``meta.json``, then publish. Each format module's ``export_<name>``
    calls this with its format and passes these keywords on."""
    out = check_target(out, fmt.name)
    membership = check_splits_table(dataset_splits(con) if splits is None else splits)
    if not membership:
        raise ConfigError("nothing to export: the splits select no clip")
    fmt.check_splits({s: sum(1 for v in membership.values() if v == s) for s in SPLITS})
    ids = sorted(membership)
    fps_sql = "SELECT DISTINCT fps FROM motion WHERE clip_id IN (SELECT unnest($ids))"
    fps_values = sorted(r[0] for r in con.sql(fps_sql, params={"ids": ids}).fetchall())
    if len(fps_values) > 1:
        raise ConfigError(f"motion rows have several frame rates {fps_values}; a trainer needs one")
    videos_sql = "SELECT clip_id, video_id FROM clips WHERE clip_id IN (SELECT unnest($ids))"
    videos = dict(con.sql(videos_sql, params={"ids": ids}).fetchall())
    run = ExportRun(Path(), fmt.name, membership, videos, clip_captions(con, ids), float(fps_values[0]) if fps_values else 0.0)
    out.parent.mkdir(parents=True, exist_ok=True)
    run.folder = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:12]}"
    run.folder.mkdir()
    try:
        seen = 0
        for seq in read_sequences(con, ids, batch_rows=batch_rows, ordered=False):
            seen += 1
            _export_one(run, seq, fmt, min_frames)
            if progress is not None:
                progress(seen, len(ids))
        if len(ids) > seen:
            run.skipped["no_motion"] += len(ids) - seen
        if not run.kept:
            raise ConfigError(f"nothing to export: every selected clip was skipped ({_reasons(run.skipped)})")
        try:
            fmt.check_splits({s: len(run.ids(s)) for s in SPLITS})
        except ConfigError as err:
            raise ConfigError(f"{err} (after skipping {_reasons(run.skipped)})") from None
        run.stats = compute_stats(_SavedTrain(run, fmt), dataset_version or "unversioned")
        _write_meta(run, dataset_version, fmt.finish(run))
        _publish(run.folder, out)
    except BaseException:
        shutil.rmtree(run.folder, ignore_errors=True)
        raise
    return ExportSummary(
        format=fmt.name,
        out=str(out),
        sequences=len(run.kept),
        splits={s: len(run.ids(s)) for s in SPLITS},
        frames=sum(run.frames.values()),
        captions=sum(len(run.captions[c]) for c in run.kept),
        fps=run.fps,
        skipped=dict(sorted(run.skipped.items())),
        stats_id=run.stats.stats_id,
    )


def _export_one(run: ExportRun, seq: MotionSequence, fmt: ExportFormat, min_frames: int) -> None:
    screened = screen([seq], min_frames)
    if screened.skipped:
        run.skipped.update(screened.skipped)
        return
    if not run.captions.get(seq.clip_id):
        run.skipped["no_caption"] += 1
        return
    split = run.membership[seq.clip_id]
    fmt.write_clip(run, seq, split)
    run.kept[seq.clip_id] = split
    run.frames[split] += seq.n_frames
    if split == "train":
        run.train_masks[seq.clip_id] = seq.mask


class _SavedTrain(Sequence[MotionSequence]):
    """The train split read back from the written feature files one clip at a time, in clip order, so the
    statistics (``compute_stats``, the tokenizer's own) never need every sequence in memory."""

    def __init__(self, run: ExportRun, fmt: ExportFormat):
        self._run, self._fmt, self._ids = run, fmt, run.ids("train")

    def __len__(self) -> int:
        return len(self._ids)

    def __getitem__(self, i: int | slice):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        clip_id = self._ids[i]
        features = self._fmt.read_features(self._run.folder, clip_id)
        empty = np.zeros(3, np.float32)
        return MotionSequence(clip_id, features, self._run.train_masks[clip_id], np.zeros((2, 21, 3), np.float32), empty)

    def __iter__(self) -> Iterator[MotionSequence]:
        return (self[i] for i in range(len(self)))


def save_npy(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array)


def stats_arrays(run: ExportRun) -> tuple[np.ndarray, np.ndarray]:
    mean, std = np.asarray(run.stats.mean, np.float32), np.asarray(run.stats.std, np.float32)
    assert mean.shape == std.shape == (FEATURES,)
    return mean, std


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")


def _write_meta(run: ExportRun, dataset_version: str | None, extra: dict[str, Any]) -> None:
    meta = {
        "format": run.fmt,
        "fps": run.fps,
        "features": FEATURE_LAYOUT,
        "sequences": len(run.kept),
        "splits": {s: len(run.ids(s)) for s in SPLITS},
        "frames": {s: run.frames[s] for s in SPLITS},
        "captions": sum(len(run.captions[c]) for c in run.kept),
        "skipped": dict(sorted(run.skipped.items())),
        "stats": {
            "split": "train",
            "stats_id": run.stats.stats_id,
            "valid_frames": run.stats.frames,
            "std_floor": STD_FLOOR,
            "note": "mean/std per feature over the frames where that hand is valid, train split only",
        },
        "dataset_version": dataset_version,
        "code_version": hiw.__version__,
        **extra,
    }
    write_json(run.folder / META_FILE, meta)


def _publish(folder: Path, out: Path) -> None:
    """Swap the finished folder in: the old export (if any) steps aside, the new one takes its name."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:12]}"
        out.rename(old)
    try:
        folder.rename(out)
    except OSError:
        if old is not None:
            old.rename(out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _reasons(skipped: Counter) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items())) or "none selected"
