"""What gets scored, as data: ``generations`` (motion made from captions) and ``generated_captions`` (captions
made from motion), written by any generator as Parquet (``hiw.schemas``: GenerationRecord,
CaptionGenerationRecord) and read back from a file, a folder of files, or a dataset root.

Reading screens every row and records why one is set aside instead of failing the run: ``clip_not_in_split``
(a clip the evaluated split does not have), ``no_prompt`` (neither a clip nor a text), ``empty_caption`` (no word
in the text), and for motion ``nan``, ``too_short`` and ``all_masked`` as for training data, and ``fps_mismatch``
(another frame rate than the real motion's).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hiw import __version__
from hiw.data.sequences import MotionSequence, arrow_sequences, screen
from hiw.errors import ConfigError
from hiw.eval.evaluator import DOWNSAMPLE
from hiw.eval.text import TextProcessor
from hiw.motion.features import param_columns
from hiw.schemas import CaptionGenerationRecord, GenerationRecord, arrow_schema
from hiw.schemas.ids import stable_hash
from hiw.storage import write_derived, write_records


@dataclass(frozen=True)
class Generated:
    """One scored item: the prompt (clip and/or text) and what the generator made (motion or caption)."""

    clip_id: str | None
    text: str | None
    sample: int
    motion: MotionSequence | None = field(default=None, repr=False)


@dataclass
class GenerationSet:
    generator: str
    lineage: dict[str, Any]
    items: list[Generated]
    rejected: Counter = field(default_factory=Counter)


def motion_records(
    generator: str, lineage: dict[str, Any], items: Sequence[tuple[str | None, str | None, int, MotionSequence]]
) -> list[GenerationRecord]:
    """(clip_id, text, sample, motion) -> rows of the generations table."""
    lineage_json = json.dumps(lineage, sort_keys=True)
    return [
        GenerationRecord(
            generation_id="g_" + stable_hash(generator, clip_id, text, sample),
            clip_id=clip_id,
            text=text,
            sample=sample,
            generator=generator,
            generator_lineage=lineage_json,
            fps=motion.fps,
            n_frames=motion.n_frames,
            code_version=__version__,
            **param_columns(motion.features, motion.mask, motion.origin),
        )
        for clip_id, text, sample, motion in items
    ]


def caption_records(
    generator: str, lineage: dict[str, Any], items: Sequence[tuple[str, str, int]]
) -> list[CaptionGenerationRecord]:
    """(clip_id, caption, sample) -> rows of the generated_captions table."""
    lineage_json = json.dumps(lineage, sort_keys=True)
    return [
        CaptionGenerationRecord(
            generation_id="c_" + stable_hash(generator, clip_id, sample),
            clip_id=clip_id,
            text=text,
            sample=sample,
            generator=generator,
            generator_lineage=lineage_json,
            code_version=__version__,
        )
        for clip_id, text, sample in items
    ]


def write_generations(out: Path, table: str, generator: str, records: list) -> Path:
    """``out`` itself where it ends in .parquet, else ``out/<table>/part-<generator hash>.parquet`` (replacing that
    generator's earlier file)."""
    if out.suffix == ".parquet":
        return write_records(out, table, records)
    return write_derived(out, table, f"part-{stable_hash(generator, length=12)}", records)


def _files(spec: Path, table: str) -> list[Path]:
    """A Parquet file, a folder of them, or a dataset/run root holding ``<table>/``."""
    if spec.is_file():
        return [spec]
    for folder in (spec / table, spec):
        if folder.is_dir() and (files := sorted(folder.glob("*.parquet"))):
            return files
    raise ConfigError(f"no {table} at {spec} (give a Parquet file, a folder of them, or a root with {table}/)")


def _read(spec: Path, table: str, generator: str | None) -> tuple[pa.Table, str, dict[str, Any]]:
    """The rows of one generator: the only one present, or the one named."""
    schema = arrow_schema(CaptionGenerationRecord if table == "generated_captions" else GenerationRecord)
    required = [f.name for f in schema if f.name not in ("generation_id", "code_version", "created_at")]
    required = [n for n in required if n not in ("clip_id", "text", "sample")] if table == "generations" else required
    parts = []
    for path in _files(spec, table):
        try:
            part = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as err:
            raise ConfigError(f"{path} is not a readable Parquet file: {str(err).splitlines()[0]}") from err
        if missing := [n for n in required if n not in part.schema.names]:
            raise ConfigError(
                f"{path} lacks the {table} columns {missing} (see hiw.schemas.{schema.metadata[b'hiw.record'].decode()})"
            )
        parts.append(part.select([n for n in schema.names if n in part.schema.names]))
    data = pa.concat_tables(parts, promote_options="permissive")
    names = sorted(set(data["generator"].to_pylist()))
    if generator is None and len(names) > 1:
        raise ConfigError(f"{spec} holds several generators ({', '.join(names)}); choose one with --generator")
    generator = generator or (names[0] if names else "")
    data = data.filter(pc.equal(data["generator"], generator))
    if not len(data):
        raise ConfigError(f"no {table} rows of generator {generator!r} at {spec} (it has: {', '.join(names) or 'none'})")
    try:
        lineage = json.loads(data["generator_lineage"][0].as_py() or "{}")
    except json.JSONDecodeError:
        lineage = {"unparsed": data["generator_lineage"][0].as_py()}
    return data, generator, lineage


def _column(data: pa.Table, name: str, default: Any) -> list[Any]:
    return data[name].to_pylist() if name in data.schema.names else [default] * len(data)


def _prompt_reject(clip_id: str | None, text: str | None, split_clips: set[str], processor: TextProcessor) -> str | None:
    if clip_id is not None and clip_id not in split_clips:
        return "clip_not_in_split"
    if clip_id is None and text is None:
        return "no_prompt"
    if text is not None and not processor.is_usable(text):
        return "empty_caption"
    return None


def read_motion_generations(
    spec: Path, split_clips: set[str], processor: TextProcessor, generator: str | None = None, fps: float | None = None
) -> GenerationSet:
    """``fps``: the real motion's frame rate; a generation at another rate is set aside (``fps_mismatch``), since the
    evaluator's windows are frames, not seconds."""
    data, generator, lineage = _read(spec, "generations", generator)
    clip_ids, texts, samples = _column(data, "clip_id", None), _column(data, "text", None), _column(data, "sample", 0)
    ids = [f"row{i}" for i in range(len(data))]
    view = data.drop_columns([n for n in ("clip_id", "text") if n in data.schema.names])
    view = view.append_column("clip_id", pa.array(ids)).append_column("text", pa.array([""] * len(data)))
    out = GenerationSet(generator, lineage, [])
    sequences = {seq.clip_id: seq for seq in _screen_rows(view, out.rejected)}
    for i, (clip_id, text, sample) in enumerate(zip(clip_ids, texts, samples)):
        if ids[i] not in sequences:
            continue
        if fps is not None and abs(sequences[ids[i]].fps - fps) > 1e-3:
            out.rejected["fps_mismatch"] += 1
            continue
        if reason := _prompt_reject(clip_id, text, split_clips, processor):
            out.rejected[reason] += 1
            continue
        out.items.append(Generated(clip_id, text, int(sample or 0), sequences[ids[i]]))
    return out


def _screen_rows(view: pa.Table, rejected: Counter) -> list[MotionSequence]:
    screened = screen(arrow_sequences(view), min_frames=DOWNSAMPLE)
    rejected.update(screened.skipped)
    return screened.kept


def read_caption_generations(
    spec: Path, split_clips: set[str], processor: TextProcessor, generator: str | None = None
) -> GenerationSet:
    data, generator, lineage = _read(spec, "generated_captions", generator)
    out = GenerationSet(generator, lineage, [])
    for clip_id, text, sample in zip(data["clip_id"].to_pylist(), data["text"].to_pylist(), _column(data, "sample", 0)):
        if clip_id is None:
            out.rejected["no_prompt"] += 1
        elif clip_id not in split_clips:
            out.rejected["clip_not_in_split"] += 1
        elif not text or not processor.is_usable(text):  # the evaluator cannot embed a caption without a word
            out.rejected["empty_caption"] += 1
        else:
            out.items.append(Generated(clip_id, text, int(sample or 0)))
    return out
