"""`hiw shift ...`: train the SHIFT motion tokenizer, tokenize, reconstruct, evaluate (flows in ``hiw.flows.shift``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
    TrainRunOpt,
    TrainSeedOpt,
    ValEveryOpt,
    WarmupOpt,
    checkpoint_file,
    data_source,
    fail,
    run_job,
    say,
    skipped_counts,
    split_and_source,
)
from hiw.errors import ConfigError

shift_app = typer.Typer(no_args_is_help=True, help="SHIFT motion tokenizer: train, tokenize, reconstruct, eval.")

DataOpt = Annotated[str, typer.Option("--data", help="'procedural' or a built dataset root (hiw build --out)")]
RunOpt = Annotated[Path, typer.Option("--run", help="run folder (its latest checkpoint) or a checkpoint file")]
DEFAULT_RUN = Path("hiw-runs/shift")


@shift_app.command("train")
def shift_train(
    data: TrainDataOpt = "procedural",
    preset: Annotated[
        str, typer.Option(help="model and schedule size: tiny (CPU, minutes) or paper (4096x64 codebooks, width 512)")
    ] = "tiny",
    variant: Annotated[
        str, typer.Option(help="shift (traj + pose VQ-VAEs), single (one VQ-VAE over 198), lr (per hand)")
    ] = "shift",
    run: TrainRunOpt = DEFAULT_RUN,
    steps: StepsOpt = None,
    batch: BatchOpt = None,
    lr: LrOpt = None,
    warmup_steps: WarmupOpt = None,
    schedule: ScheduleOpt = None,
    min_lr: MinLrOpt = None,
    clip_norm: ClipNormOpt = None,
    val_every: ValEveryOpt = None,
    precision: PrecisionOpt = None,
    seed: TrainSeedOpt = 0,
    clips: ClipsOpt = 2000,
    data_seed: DataSeedOpt = 0,
    device: DeviceOpt = "auto",
    fresh: FreshOpt = False,
) -> None:
    """Train the tokenizer; resumes from the run folder's latest checkpoint when there is one."""
    from hiw.flows.shift import train_with_progress
    from hiw.models import shift_runs
    from hiw.models.loop_settings import autocast_dtype, pick_device

    try:
        source = data_source(data, clips, data_seed)
        config = shift_runs.model_config(preset, variant)
        settings = shift_runs.train_settings(
            preset,
            steps=steps,
            batch=batch,
            lr=lr,
            seed=seed,
            warmup_steps=warmup_steps,
            schedule=schedule,
            min_lr=min_lr,
            clip_norm=clip_norm,
            val_every=val_every,
            precision=precision,
        )
        autocast_dtype(settings.precision, pick_device(device))  # before any flow starts
    except ConfigError as err:
        fail(err, EXIT_USAGE)
    say(f"training {variant} ({preset}) on {source.describe()} for {settings.steps} steps -> {run}")

    def show(m: dict[str, float]) -> None:
        books = "  ".join(f"{k[:-11]} ppl {v:.1f}" for k, v in m.items() if k.endswith("_perplexity") and k[:4] != "val_")
        val = f"  val_loss {m['val_loss']:.4f}" if "val_loss" in m else ""
        say(
            f"step {m['step']}/{settings.steps}  loss {m['loss']:.4f}  recon {m['recon']:.4f}  vel {m['velocity']:.4f}  "
            f"commit {m['commit']:.4f}  {books}{val}  {m['sequences_per_s']:.1f} seq/s"
        )

    result = run_job(
        train_with_progress, show, run_dir=run, source=source, config=config, settings=settings, device=device, fresh=fresh
    )
    if result.resumed_from:
        say(f"resumed from step {result.resumed_from}")
    skipped = skipped_counts(result.skipped)
    say(f"checkpoint {result.checkpoint} (step {result.step}); {result.sequences_per_s:.1f} seq/s; skipped: {skipped}")
    if result.best:
        say(f"best {result.best} (val_loss {result.best_val_loss:.4f})")


@shift_app.command("tokenize")
def shift_tokenize(
    run: RunOpt = DEFAULT_RUN,
    data: Annotated[str | None, typer.Option("--data", help="data to tokenize (default: what the run trained on)")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="where tokens/ goes (default: the dataset root, or the run folder)")
    ] = None,
    split: Annotated[str | None, typer.Option(help="only this split (train|val|test); default all")] = None,
    clips: ClipsOpt = 2000,
    data_seed: DataSeedOpt = 0,
) -> None:
    """Write the tokens table: per clip the interleaved (left-traj, left-pose, right-traj, right-pose) stream."""
    from hiw.flows.shift import tokenize_flow

    source = split_and_source(split, data, clips, data_seed)
    result = run_job(tokenize_flow, checkpoint_file(run, "hiw shift train"), source, out, split)
    skipped = skipped_counts(result.skipped)
    say(f"{result.rows} clips tokenized by {result.checkpoint_id} -> {result.path}; skipped: {skipped}")


@shift_app.command("reconstruct")
def shift_reconstruct(
    run: RunOpt = DEFAULT_RUN,
    out: Annotated[Path | None, typer.Option("--out", help="folder holding tokens/ (default as for tokenize)")] = None,
) -> None:
    """Decode the checkpoint's tokens table back to per-hand parameters (the reconstructions table)."""
    from hiw.flows.shift import reconstruct_flow

    result = run_job(reconstruct_flow, checkpoint_file(run, "hiw shift train"), out)
    say(f"{result.rows} clips reconstructed -> {result.path}")


@shift_app.command("eval")
def shift_eval(
    run: RunOpt = DEFAULT_RUN,
    data: Annotated[str | None, typer.Option("--data", help="data to evaluate on (default: what the run trained on)")] = None,
    split: Annotated[str, typer.Option(help="train|val|test")] = "test",
    clips: ClipsOpt = 2000,
    data_seed: DataSeedOpt = 0,
) -> None:
    """Reconstruction metrics on held-out data; the last line is mpjpe_mm=<value>."""
    from hiw.flows.shift import eval_flow

    source = split_and_source(split, data, clips, data_seed)
    report = run_job(eval_flow, checkpoint_file(run, "hiw shift train"), source, split)
    skipped = skipped_counts(report.skipped)
    say(f"{report.variant} {report.checkpoint_id} step {report.step} on {report.data}")
    say(f"sequences={report.sequences} hand_frames={report.frames} skipped: {skipped}")
    for name, book in report.codebooks.items():
        say(f"codebook {name}: usage={book.usage:.3f} perplexity={book.perplexity:.1f}")
    say(f"local_mpjpe_mm={report.local_mpjpe_mm:.3f}  (keypoints relative to the wrist)")
    say(f"accel_mm={report.accel_mm:.3f}  (mm/frame^2)")
    say(f"mpjpe_mm={report.mpjpe_mm:.3f}")
