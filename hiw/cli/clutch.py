"""`hiw clutch ...`: train the CLUTCH language model phase by phase, generate motion from text, caption motion
(flows in ``hiw.flows.lm``). Generations and captions are written in the evaluation suite's tables, for
``hiw eval t2m`` and ``hiw eval m2t``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from hiw.cli.common import (
    EXIT_USAGE,
    BatchOpt,
    ClipNormOpt,
    ClipsOpt,
    DataSeedOpt,
    DeviceOpt,
    FreshOpt,
    LrOpt,
    MinLrOpt,
    PrecisionOpt,
    ScheduleOpt,
    StepsOpt,
    TrainDataOpt,
    TrainSeedOpt,
    ValEveryOpt,
    WarmupOpt,
    data_source,
    fail,
    run_job,
    say,
    skipped_counts,
    split_and_source,
)
from hiw.errors import ConfigError

clutch_app = typer.Typer(
    no_args_is_help=True, help="CLUTCH language model: train (pretrain, align, instruct), generate, caption."
)

DEFAULT_RUN = Path("hiw-runs/clutch")
RunOpt = Annotated[Path, typer.Option("--run", help="the model's run folder (its latest phase), a phase folder or a checkpoint")]
DataOpt = Annotated[
    str | None, typer.Option("--data", help="data whose clips to prompt with (default: what the model trained on)")
]


def OutOpt(table: str, default: str):  # noqa: N802  (an option type, like the others)
    help = f"a .parquet file, or a root that gains a {table}/ part [default: PHASE/{default}]"
    return Annotated[Path | None, typer.Option("--out", help=help)]


def _run(job, *args: Any, **kwargs: Any) -> Any:
    from hiw.flows.printer import with_printer

    return run_job(with_printer, _show, job, *args, **kwargs)


def _show(message: Any) -> None:
    if isinstance(message, dict):  # training metrics
        parts = [f"step {message['step']}", f"loss {message['loss']:.4f}", f"lm {message['lm']:.4f}"]
        if "rec" in message:
            parts.append(f"rec {message['rec']:.4f} (keypoints {message['rec_keypoint_mm']:.1f} mm, tau {message['tau']:.2f})")
        if "val_loss" in message:
            parts.append(f"val_loss {message['val_loss']:.4f}")
        say("  ".join(parts) + f"  {message['sequences_per_s']:.1f} clips/s")
    else:
        say(str(message))


def _checked_run(run: Path) -> Path:
    from hiw.lm.checkpoint import phase_checkpoint

    try:
        return phase_checkpoint(run)
    except ConfigError as err:
        fail(err, EXIT_USAGE)


@clutch_app.command("train")
def clutch_train(
    stage: Annotated[str, typer.Option("--stage", help="training phase: pretrain, align (geometric alignment) or instruct")],
    shift: Annotated[Path, typer.Option("--shift", help="the SHIFT tokenizer's run folder or checkpoint (hiw shift train)")],
    data: TrainDataOpt = "procedural",
    run: Annotated[
        Path, typer.Option("--run", help="run folder: one subfolder per phase, the tokenizer, run.json")
    ] = DEFAULT_RUN,
    preset: Annotated[
        str, typer.Option(help="tiny (CPU, minutes), base (flan-t5-base's shape, random) or paper (give --lm)")
    ] = "tiny",
    lm: Annotated[
        Path | None, typer.Option("--lm", help="a local Hugging Face T5 folder to start from (e.g. flan-t5-base)")
    ] = None,
    steps: StepsOpt = None,
    batch: BatchOpt = None,
    lr: LrOpt = None,
    warmup_steps: WarmupOpt = None,
    schedule: ScheduleOpt = None,
    min_lr: MinLrOpt = None,
    clip_norm: ClipNormOpt = None,
    val_every: ValEveryOpt = None,
    precision: PrecisionOpt = None,
    max_length: Annotated[int | None, typer.Option(help="longest input and target in tokens (160, the paper's)")] = None,
    rec_weight: Annotated[float | None, typer.Option(help="align: weight of the reconstruction loss (lambda)")] = None,
    seed: TrainSeedOpt = 0,
    clips: ClipsOpt = 2000,
    data_seed: DataSeedOpt = 0,
    device: DeviceOpt = "auto",
    fresh: FreshOpt = False,
) -> None:
    """Train one phase; a later phase starts from the run's earlier one, and each resumes from its own checkpoints."""
    from hiw.flows.lm import train_clutch_flow
    from hiw.lm import runs
    from hiw.models.checkpoints import resolve
    from hiw.models.loop_settings import autocast_dtype, pick_device

    try:
        source = data_source(data, clips, data_seed)
        overrides = dict(steps=steps, batch=batch, lr=lr, warmup_steps=warmup_steps, schedule=schedule, min_lr=min_lr)
        overrides |= dict(clip_norm=clip_norm, val_every=val_every, precision=precision, max_length=max_length, seed=seed)
        settings = runs.train_settings(preset, stage, rec_weight=rec_weight, **overrides)
        autocast_dtype(settings.precision, pick_device(device))
        shift = resolve(shift, "hiw shift train")
        if preset == "paper" and lm is None:
            raise ConfigError("--preset paper trains flan-t5-base: give its folder with --lm PATH")
    except ConfigError as err:
        fail(err, EXIT_USAGE)
    say(f"training CLUTCH ({preset}) phase {stage} on {source.describe()} for {settings.steps} steps -> {run / stage}")
    result = _run(
        train_clutch_flow,
        run_dir=run,
        phase=stage,
        source=source,
        shift=shift,
        settings=settings,
        preset=preset,
        lm=lm,
        device=device,
        fresh=fresh,
    )
    if result.resumed_from:
        say(f"resumed from step {result.resumed_from}")
    rate = f"{result.sequences_per_s:.1f} clips/s"
    say(f"checkpoint {result.checkpoint} (step {result.step}); {rate}; skipped: {skipped_counts(result.skipped)}")
    if result.best:
        say(f"best {result.best} (val_loss {result.best_val_loss:.4f})")


def _phase_dir(checkpoint: Path) -> Path:
    return checkpoint.resolve().parent.parent  # PHASE/checkpoints/<file>.pt


def _summary(result, what: str) -> None:
    counts = skipped_counts(result.counts)
    say(f"wrote {result.rows} {what} for {result.prompts} prompt(s) to {result.path}; repairs and rejects: {counts}")


@clutch_app.command("generate")
def clutch_generate(
    run: RunOpt = DEFAULT_RUN,
    out: OutOpt("generations", "generations.parquet") = None,
    text: Annotated[list[str] | None, typer.Option("--text", help="a description to generate from (repeatable)")] = None,
    split: Annotated[
        str | None, typer.Option(help="generate for every clip of this split (train|val|test), from its captions")
    ] = None,
    n: Annotated[int, typer.Option("--n", help="motions per prompt (several give MultiModality)")] = 1,
    seed: Annotated[int, typer.Option(help="seed of sampling and of the captions drawn")] = 0,
    free: Annotated[
        bool, typer.Option("--free", help="sample without the well-formedness constraint (malformed output is repaired)")
    ] = False,
    data: DataOpt = None,
    clips: ClipsOpt = 2000,
    data_seed: DataSeedOpt = 0,
) -> None:
    """Generate motion in the evaluation suite's generations table (score it with `hiw eval t2m`)."""
    from hiw.flows.lm import generate_flow

    if bool(text) == bool(split):
        fail(ConfigError("give --text (one or more) or --split, not both"), EXIT_USAGE)
    if n < 1:
        fail(ConfigError(f"--n must be at least 1 (got {n})"), EXIT_USAGE)
    source = split_and_source(split, data, clips, data_seed)
    checkpoint = _checked_run(run)
    out = out or _phase_dir(checkpoint) / "generations.parquet"
    result = _run(generate_flow, checkpoint, out, texts=text, split=split, n=n, seed=seed, free=free, source=source)
    _summary(result, "motions")


@clutch_app.command("caption")
def clutch_caption(
    run: RunOpt = DEFAULT_RUN,
    out: OutOpt("generated_captions", "captions.parquet") = None,
    split: Annotated[str, typer.Option(help="train|val|test")] = "test",
    clip: Annotated[str | None, typer.Option("--clip", help="only this clip of the split")] = None,
    data: DataOpt = None,
    clips: ClipsOpt = 2000,
    data_seed: DataSeedOpt = 0,
) -> None:
    """Caption motion in the evaluation suite's generated_captions table (score it with `hiw eval m2t`)."""
    from hiw.flows.lm import caption_flow

    source = split_and_source(split, data, clips, data_seed)
    checkpoint = _checked_run(run)
    result = _run(
        caption_flow, checkpoint, out or _phase_dir(checkpoint) / "captions.parquet", split=split, clip=clip, source=source
    )
    _summary(result, "captions")
