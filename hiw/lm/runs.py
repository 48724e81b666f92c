"""The language model's jobs as plain functions (the Prefect flows in ``hiw.flows.lm`` wrap them): train a phase,
generate motion from text, caption motion.

``train_run`` builds the run on its first phase: the base model (``--lm`` folder, or the preset's, written to
``RUN/base/``), the tokenizer with the motion vocabulary (``RUN/tokenizer/``), and ``run.json`` naming the SHIFT
checkpoint every later phase, generation and caption must use. A later phase starts from the latest earlier phase
in the run, and each phase resumes from its own checkpoints like every hiw model.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hiw import __version__
from hiw.data.sources import DataSource
from hiw.errors import ConfigError
from hiw.eval.generations import caption_records, motion_records, write_generations
from hiw.lm.checkpoint import TOKENIZER_DIR, cached_lm, tokenizer_digest
from hiw.lm.data import load_lm_set, sample_caption
from hiw.lm.generate import generate_captions, generate_motion
from hiw.lm.model import T5_SHAPES, add_motion_vocab, from_weights, init_base, load_base, sentinel_ids
from hiw.lm.phases import PHASES, TRAIN_PRESETS
from hiw.lm.samples import SampleMaker
from hiw.lm.tasks import load_templates
from hiw.lm.train import LMJob, LMSettings, check_lm_settings
from hiw.lm.vocab import MotionVocab
from hiw.models import loop
from hiw.models.checkpoints import CHECKPOINTS, LATEST, METRICS_FILE, load_state, resolve
from hiw.models.loop_settings import check_settings, pick_device
from hiw.models.shift_checkpoint import cached_tokenizer

RUN_FILE = "run.json"
BASE_DIR = "base"
LM_TABLES = ("motion", "captions")  # what the model learns from: a change to either is new data
Progress = Callable[[Any], None] | None


def train_settings(preset: str, phase: str, **overrides: Any) -> LMSettings:
    if phase not in PHASES:
        raise ConfigError(f"--stage must be one of {', '.join(PHASES)} (got {phase!r})")
    if preset not in TRAIN_PRESETS:
        raise ConfigError(f"--preset must be one of {sorted(TRAIN_PRESETS)} (got {preset!r})")
    settings = TRAIN_PRESETS[preset][phase].model_copy(update={k: v for k, v in overrides.items() if v is not None})
    check_settings(settings)
    check_lm_settings(settings)
    return settings


def _run_info(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / RUN_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def train_run(
    run_dir: Path,
    phase_name: str,
    source: DataSource,
    shift_path: Path,
    settings: LMSettings,
    preset: str = "tiny",
    lm_path: Path | None = None,
    device: str = "auto",
    fresh: bool = False,
    log: Progress = None,
) -> loop.TrainResult:
    phase = PHASES[phase_name]
    shift = cached_tokenizer(resolve(shift_path, "hiw shift train"), "cpu")
    vocab = MotionVocab(shift.model.config.codebook_size, tuple(shift.model.stream))
    info = _run_info(run_dir)
    if info and info["shift"]["checkpoint_id"] != shift.checkpoint_id:
        raise ConfigError(
            f"{run_dir} was built on SHIFT checkpoint {info['shift']['checkpoint_id']} ({info['shift']['path']}); "
            f"--shift {shift_path} is {shift.checkpoint_id}. Use that checkpoint, or another --run"
        )
    earlier = next((p for p in phase.starts_from if (run_dir / p / CHECKPOINTS / LATEST).is_file()), None)
    if phase.starts_from and earlier is None:
        raise ConfigError(
            f"--stage {phase_name} starts from {' or '.join(phase.starts_from)}; train --stage pretrain first in {run_dir}"
        )
    phase_dir = run_dir / phase_name
    if fresh:
        shutil.rmtree(phase_dir / CHECKPOINTS, ignore_errors=True)
        (phase_dir / METRICS_FILE).unlink(missing_ok=True)
    torch_device = pick_device(device)
    train = load_lm_set(source, "train", shift)
    if not train.clips:
        raise ConfigError(f"no usable training clip in {source.describe()} ({train.describe()})")
    val = load_lm_set(source, "val", shift).clips if settings.val_every else []
    templates = load_templates(phase.templates)
    if info is None:
        info = _start_run(run_dir, preset, lm_path, shift, vocab, [c for clip in train.clips for c in clip.all_captions()])
    tokenizer = _tokenizer(run_dir, info)
    maker = SampleMaker(tokenizer, vocab, info["motion_base"], templates, sentinel_ids(tokenizer), settings.max_length)
    data = {
        "source": source.model_dump(),
        "fingerprint": f"{source.fingerprint(LM_TABLES)}+{shift.checkpoint_id}",
        "split": "train",
        "clips": len(train.clips),
        "skipped": dict(train.skipped),
    }
    started_from = str(resolve(run_dir / earlier)) if earlier else info["base"]
    extra = {
        "stats": shift.stats.model_dump(),
        "lm": {
            "phase": phase_name,
            "started_from": started_from,
            "base": info["base"],
            "vocab": vocab.describe(),
            "motion_base": info["motion_base"],
            "shift": info["shift"],
            "templates": templates.lineage(),
            "tokenizer": info["tokenizer"],
            "code_version": __version__,
        },
    }

    def build(torch_device):
        if earlier:
            model = from_weights(info["t5"], load_state(run_dir / earlier)["model"])
        else:
            model, _ = load_base(Path(info["base"]))
            add_motion_vocab(model, tokenizer, vocab)
        return model.to(torch_device)

    config = {"t5": info["t5"], "phase": phase_name}
    job = LMJob(phase, settings, build, maker, train.clips, val, shift, config, data, extra)
    phase_dir.mkdir(parents=True, exist_ok=True)
    (phase_dir / RUN_FILE).write_text(
        json.dumps({"settings": settings.model_dump(), "data": data, "started_from": started_from}, indent=1)
    )
    result = loop.train(phase_dir, job, settings, torch_device, log)
    result.skipped.update(train.skipped)
    result.skipped.update(maker.counts)
    return result


def _start_run(run_dir: Path, preset: str, lm_path: Path | None, shift, vocab: MotionVocab, texts: list[str]) -> dict[str, Any]:
    """The run's base model, its tokenizer with the motion vocabulary, and ``run.json``."""
    if lm_path is None:
        if preset not in T5_SHAPES:
            raise ConfigError(f"--preset {preset} has no model of its own; give --lm PATH (a Hugging Face T5 folder)")
        templates = [
            p for name in ("pretrain", "instruct") for t in load_templates(name).tasks.values() for p in t.inputs + t.outputs
        ]
        lm_path = init_base(run_dir / BASE_DIR, preset, texts + templates)
    lm_path = lm_path.expanduser().resolve()
    model, tokenizer = load_base(lm_path)
    motion_base = add_motion_vocab(model, tokenizer, vocab)
    folder = run_dir / TOKENIZER_DIR
    tokenizer.save_pretrained(folder)
    info = {
        "base": str(lm_path),
        "t5": {k: v for k, v in model.config.to_dict().items() if k != "_name_or_path"},  # a moved base is the same model
        "motion_base": motion_base,
        "tokenizer": tokenizer_digest(folder),
        "vocab": vocab.describe(),
        "shift": {
            "checkpoint_id": shift.checkpoint_id,
            "codebook_id": shift.codebook_id,
            "stats_id": shift.stats.stats_id,
            "path": str(shift.path.resolve()),
        },
    }
    (run_dir / RUN_FILE).write_text(json.dumps(info, indent=1))
    return json.loads((run_dir / RUN_FILE).read_text())  # as a resumed phase reads it (JSON turns int keys to str)


def _tokenizer(run_dir: Path, info: dict[str, Any]):
    from transformers import AutoTokenizer

    folder = run_dir / TOKENIZER_DIR
    if not (folder / "tokenizer.json").is_file() or tokenizer_digest(folder) != info["tokenizer"]:
        raise ConfigError(f"{folder} is missing or changed since the run started; start a new --run")
    return AutoTokenizer.from_pretrained(folder, local_files_only=True)


@dataclass
class GenerateResult:
    path: Path
    rows: int
    prompts: int
    counts: Counter = field(default_factory=Counter)  # repairs, empties, truncations
    lineage: dict[str, Any] = field(default_factory=dict)


def _prompts(lm, source: DataSource | None, split: str):
    source = source or DataSource(**lm.state["data"]["source"])
    clips = load_lm_set(source, split, lm.shift)
    if not clips.clips:
        raise ConfigError(f"no usable {split} clip in {source.describe()} ({clips.describe()})")
    return source, clips


def generate_run(
    run: Path,
    out: Path,
    texts: list[str] | None = None,
    split: str | None = None,
    n: int = 1,
    seed: int = 0,
    free: bool = False,
    source: DataSource | None = None,
    progress: Progress = None,
) -> GenerateResult:
    """Motion for each ``texts`` (clip_id null), or for a caption drawn from each clip of ``split``; ``n`` samples each."""
    if n < 1:
        raise ConfigError(f"--n must be at least 1 (got {n})")
    lm = cached_lm(run, pick_device("auto"))
    counts: Counter = Counter()
    if texts:
        prompts = [(None, t) for t in texts]
    else:
        source, clips = _prompts(lm, source, split or "test")
        rng = np.random.default_rng([seed, 3])
        prompts = [(c.clip_id, sample_caption(c.captions, rng)) for c in clips.clips]
    say = progress or (lambda _: None)
    say(f"generating {n} motion(s) for {len(prompts)} prompt(s) with {lm.phase} step {lm.state['step']}")
    motions = generate_motion(
        lm, [t for _, t in prompts], n, seed, free, counts, lambda done: say(f"{done}/{len(prompts)} prompts")
    )
    lineage = {"generator": "clutch", "lm": lm.lineage(), "seed": seed, "n": n, "constrained": not free, "split": split}
    items = [
        (clip_id, text, sample, motion)
        for (clip_id, text), made in zip(prompts, motions)
        for sample, motion in enumerate(made)
        if motion is not None
    ]
    path = write_generations(out, "generations", "clutch", motion_records("clutch", lineage, items))
    return GenerateResult(path, len(items), len(prompts), counts, lineage)


def caption_run(
    run: Path,
    out: Path,
    split: str = "test",
    clip: str | None = None,
    source: DataSource | None = None,
    progress: Progress = None,
) -> GenerateResult:
    """A caption of every clip of ``split`` (or of one ``clip``), written as the generated_captions table."""
    lm = cached_lm(run, pick_device("auto"))
    source, clips = _prompts(lm, source, split)
    chosen = [c for c in clips.clips if clip is None or c.clip_id == clip]
    if not chosen:
        raise ConfigError(f"no clip {clip} in the {split} split of {source.describe()}")
    if progress:
        progress(f"captioning {len(chosen)} clip(s) with {lm.phase} step {lm.state['step']}")
    counts: Counter = Counter()
    captions = generate_captions(lm, chosen, counts)
    lineage = {"generator": "clutch", "lm": lm.lineage(), "split": split}
    items = [(c.clip_id, text, 0) for c, text in zip(chosen, captions) if text]
    path = write_generations(out, "generated_captions", "clutch", caption_records("clutch", lineage, items))
    return GenerateResult(path, len(items), len(chosen), counts, lineage)
