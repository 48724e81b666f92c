"""`hiw eval ...`: train the text-motion evaluator and score generations with it (flows in ``hiw.flows.eval``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

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
    show_table,
    skipped_counts,
    split_and_source,
)
from hiw.errors import ConfigError

eval_app = typer.Typer(no_args_is_help=True, help="Evaluation suite: train the evaluator, score generations and baselines.")

DEFAULT_RUN = Path("hiw-runs/evaluator")
RunOpt = Annotated[Path, typer.Option("--run", help="the evaluator's run folder (its latest checkpoint) or a checkpoint file")]
DataOpt = Annotated[str | None, typer.Option("--data", help="data to score on (default: what the evaluator trained on)")]
SplitOpt = Annotated[str, typer.Option(help="train|val|test")]
SeedOpt = Annotated[int, typer.Option(help="seed of the replications' draws (captions, pools, subsets, pairs)")]
GeneratorOpt = Annotated[str | None, typer.Option(help="which generator's rows, where the file holds several")]
PoolOpt = Annotated[int, typer.Option(help="R-precision pool size")]
ReplicationsOpt = Annotated[int, typer.Option(help="replications the mean ± 95% interval is taken over")]
KidSubsetsOpt = Annotated[int, typer.Option(help="KID: random subsets")]
KidSizeOpt = Annotated[int, typer.Option(help="KID: clips per subset")]
DiversityOpt = Annotated[int, typer.Option(help="Diversity: random pairs")]
MMPairsOpt = Annotated[int, typer.Option(help="MultiModality: pairs per text")]
BertOpt = Annotated[bool, typer.Option("--bertscore/--no-bertscore", help="compute BERTScore (loads MiniLM)")]


def _options(
    split: str, data: str | None, clips: int, data_seed: int, seed: int, generator: str | None, bertscore: bool, **metric: int
):
    """The checked scoring options; a bad one exits 2 before any flow starts."""
    from pydantic import ValidationError

    from hiw.eval.metrics import MetricSettings
    from hiw.eval.runs import ScoreOptions

    source = split_and_source(split, data, clips, data_seed)
    try:
        settings = MetricSettings(**metric)
    except ValidationError as err:
        first = err.errors()[0]
        fail(ConfigError(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}"), EXIT_USAGE)
    return ScoreOptions(source=source, split=split, seed=seed, settings=settings, generator=generator, bertscore=bertscore)


def _print_report(report) -> None:
    table = Table(title=f"{report.task} {report.generator} on {report.split} ({report.pairs} pairs)")
    for column in ("metric", report.generator, "real data"):
        table.add_column(column)
    for row in report.table():
        table.add_row(*row)
    show_table(table)
    evaluator = report.evaluator
    say(f"evaluator {evaluator['checkpoint_id']} (step {evaluator['step']}); rejected: {skipped_counts(report.rejected)}")


def _run(job, *args: Any, **kwargs: Any) -> Any:
    from hiw.flows.printer import with_printer

    return run_job(with_printer, _show, job, *args, **kwargs)


def _show(message: Any) -> None:
    if isinstance(message, dict):  # training metrics
        val = f"  val_loss {message['val_loss']:.4f}" if "val_loss" in message else ""
        say(
            f"step {message['step']}  loss {message['loss']:.4f}  positive {message['positive_dist']:.3f}  "
            f"negative {message['negative_dist']:.3f}  batch_top1 {message['batch_top1']:.2f}{val}  "
            f"{message['sequences_per_s']:.1f} clips/s"
        )
    else:
        say(str(message))


@eval_app.command("train")
def eval_train(
    data: TrainDataOpt = "procedural",
    run: TrainRunOpt = DEFAULT_RUN,
    preset: Annotated[str, typer.Option(help="tiny (CPU, minutes) or paper (TM2T's sizes)")] = "tiny",
    steps: StepsOpt = None,
    batch: BatchOpt = None,
    lr: LrOpt = None,
    warmup_steps: WarmupOpt = None,
    schedule: ScheduleOpt = None,
    min_lr: MinLrOpt = None,
    clip_norm: ClipNormOpt = None,
    val_every: ValEveryOpt = None,
    precision: PrecisionOpt = None,
    margin: Annotated[float | None, typer.Option(help="contrastive margin (10, TM2T's, if not given)")] = None,
    word_vectors: Annotated[
        str | None, typer.Option(help="a folder of HumanML3D GloVe files (our_vab_*); default: MiniLM's token embeddings")
    ] = None,
    tagger: Annotated[str, typer.Option(help="part-of-speech tagger: auto, spacy (en_core_web_sm) or rules")] = "auto",
    seed: TrainSeedOpt = 0,
    clips: ClipsOpt = 2000,
    data_seed: DataSeedOpt = 0,
    device: DeviceOpt = "auto",
    fresh: FreshOpt = False,
) -> None:
    """Train the evaluator on the train split; resumes from the run folder's latest checkpoint when there is one."""
    from hiw.eval import runs
    from hiw.flows.eval import train_evaluator_flow
    from hiw.models.loop_settings import autocast_dtype, pick_device

    try:
        source = data_source(data, clips, data_seed)
        settings = runs.train_settings(
            preset,
            steps=steps,
            batch=batch,
            lr=lr,
            warmup_steps=warmup_steps,
            schedule=schedule,
            min_lr=min_lr,
            clip_norm=clip_norm,
            val_every=val_every,
            precision=precision,
            margin=margin,
            seed=seed,
        )
        autocast_dtype(settings.precision, pick_device(device))  # before any flow starts
    except ConfigError as err:
        fail(err, EXIT_USAGE)
    say(f"training the evaluator ({preset}) on {source.describe()} for {settings.steps} steps -> {run}")
    result = _run(
        train_evaluator_flow,
        run_dir=run,
        source=source,
        preset=preset,
        settings=settings,
        word_vectors=word_vectors,
        tagger=tagger,
        device=device,
        fresh=fresh,
    )
    if result.resumed_from:
        say(f"resumed from step {result.resumed_from}")
    skipped = skipped_counts(result.skipped)
    say(f"checkpoint {result.checkpoint} (step {result.step}); {result.sequences_per_s:.1f} clips/s; skipped: {skipped}")
    if result.best:
        say(f"best {result.best} (val_loss {result.best_val_loss:.4f})")


@eval_app.command("t2m")
def eval_t2m(
    generations: Annotated[Path, typer.Option("--generations", help="a generations Parquet file, a folder of them, or a root")],
    run: RunOpt = DEFAULT_RUN,
    data: DataOpt = None,
    split: SplitOpt = "test",
    seed: SeedOpt = 0,
    generator: GeneratorOpt = None,
    pool: PoolOpt = 32,
    replications: ReplicationsOpt = 20,
    kid_subsets: KidSubsetsOpt = 50,
    kid_subset_size: KidSizeOpt = 64,
    diversity_pairs: DiversityOpt = 300,
    mm_pairs: MMPairsOpt = 10,
    clips: ClipsOpt = 2000,
    data_seed: DataSeedOpt = 0,
) -> None:
    """Score generated motion against its prompts and the split's real motion; the last line is r_precision_top3=<value>."""
    from hiw.flows.eval import t2m_flow

    metric = dict(pool=pool, replications=replications, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size)
    metric |= dict(diversity_pairs=diversity_pairs, mm_pairs=mm_pairs)
    options = _options(split, data, clips, data_seed, seed, generator, False, **metric)
    report = _run(t2m_flow, checkpoint_file(run, "hiw eval train"), generations, options)
    _print_report(report)
    say(f"r_precision_top3={report.metrics['r_precision_top3'].mean:.4f}")


@eval_app.command("m2t")
def eval_m2t(
    captions: Annotated[Path, typer.Option("--captions", help="a generated_captions Parquet file, a folder of them, or a root")],
    run: RunOpt = DEFAULT_RUN,
    data: DataOpt = None,
    split: SplitOpt = "test",
    seed: SeedOpt = 0,
    generator: GeneratorOpt = None,
    pool: PoolOpt = 32,
    replications: ReplicationsOpt = 20,
    bertscore: BertOpt = True,
    clips: ClipsOpt = 2000,
    data_seed: DataSeedOpt = 0,
) -> None:
    """Score generated captions against the real motion and every real caption; the last line is bleu4=<value>."""
    from hiw.flows.eval import m2t_flow

    options = _options(split, data, clips, data_seed, seed, generator, bertscore, pool=pool, replications=replications)
    report = _run(m2t_flow, checkpoint_file(run, "hiw eval train"), captions, options)
    _print_report(report)
    say(f"bleu4={report.metrics['bleu4'].mean:.4f}")


@eval_app.command("baselines")
def eval_baselines(
    run: RunOpt = DEFAULT_RUN,
    data: DataOpt = None,
    split: SplitOpt = "test",
    seed: SeedOpt = 0,
    samples: Annotated[int, typer.Option(help="generations per prompt for shuffled and retrieval (MultiModality)")] = 1,
    pool: PoolOpt = 32,
    replications: ReplicationsOpt = 20,
    kid_subsets: KidSubsetsOpt = 50,
    kid_subset_size: KidSizeOpt = 64,
    diversity_pairs: DiversityOpt = 300,
    mm_pairs: MMPairsOpt = 10,
    bertscore: BertOpt = True,
    clips: ClipsOpt = 2000,
    data_seed: DataSeedOpt = 0,
) -> None:
    """Score the real, shuffled and retrieval baselines; the last lines are <baseline>_r_precision_top3=<value>."""
    from hiw.flows.eval import baselines_flow

    metric = dict(pool=pool, replications=replications, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size)
    metric |= dict(diversity_pairs=diversity_pairs, mm_pairs=mm_pairs)
    options = _options(split, data, clips, data_seed, seed, None, bertscore, **metric)
    if samples < 1:
        fail(ConfigError(f"--samples must be at least 1 (got {samples})"), EXIT_USAGE)
    reports = _run(baselines_flow, checkpoint_file(run, "hiw eval train"), options, samples)
    from hiw.eval.report import show

    for task, by_name in reports.items():
        table = Table(title=f"{task} baselines on {split}")
        names = list(by_name)
        for column in ("metric", *names, "real data"):
            table.add_column(column)
        first = by_name[names[0]]
        for metric in first.metrics:
            table.add_row(metric, *(show(by_name[n].metrics.get(metric)) for n in names), show(first.real.get(metric)))
        show_table(table)
    for name, report in reports["t2m"].items():
        say(f"{name}_r_precision_top3={report.metrics['r_precision_top3'].mean:.4f}")
