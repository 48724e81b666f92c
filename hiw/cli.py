"""The `hiw` command: build, deploy, query, versions, diff, verify, gc, export, demo, eval-fit, and `hiw shift ...`
(the motion tokenizer).

Exit codes: 0 success (a build with rejects included), 1 a failure while running (or a build that held its
version back, which says why), 2 a usage or configuration error (one line on stderr, no traceback).
"""

from __future__ import annotations

import inspect
import sys
import types
import typing
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from hiw import runtime
from hiw.config import BuildConfig, load_config
from hiw.errors import ConfigError, HiwError

runtime.configure()
# plain (click) help: rich panels cut long flag names off on 80-column terminals
app = typer.Typer(
    add_completion=False, no_args_is_help=True, rich_markup_mode=None, help="Egocentric video -> aligned 3D hand motion and text."
)
console = Console(stderr=False)
errors = Console(stderr=True)

EXIT_FAILURE, EXIT_USAGE = 1, 2


def fail(err: Exception, code: int) -> typing.NoReturn:
    # one line, however narrow the terminal; the message is text, not rich markup (it may quote "[build]" or a path)
    errors.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _flag_type(annotation: Any) -> Any:
    """The type typer parses a config field's flag as; pydantic validates the value afterwards."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    if typing.get_origin(annotation) is typing.Literal:
        return type(typing.get_args(annotation)[0])
    return annotation


def _config_parameters() -> list[inspect.Parameter]:
    """One --flag per BuildConfig field (default None = 'not given', so TOML and defaults apply)."""
    params = []
    for name, field in BuildConfig.model_fields.items():
        kind = _flag_type(field.annotation)
        flag = f"--{name.replace('_', '-')}"
        decls = [f"{flag}/--no-{name.replace('_', '-')}"] if kind is bool else [flag]
        choices = typing.get_args(field.annotation) if typing.get_origin(field.annotation) is typing.Literal else ()
        help_text = field.description + (f" [{'|'.join(map(str, choices))}]" if choices else "")
        default = "auto" if field.default_factory else field.default
        suffix = "" if default is None else f" (default: {default})"
        option = typer.Option(None, *decls, help=help_text + suffix, show_default=False)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind | None))
    return params


def build(config: Path | None = None, **flags: Any) -> None:
    """Build a dataset from videos: clips, hand motion, captions, rejects, and a DuckDB catalog."""
    from hiw.flows.checks import check_config

    try:
        cfg = load_config(config, **flags)
        check_config(cfg)  # before torch and Prefect load: a typo answers at once
    except ConfigError as err:
        fail(err, EXIT_USAGE)
    summary = run_and_report(cfg)
    if summary.held:  # the build ran, but the version it made would lose data: a scheduler should see a failure
        fail(HiwError(f"not published, {summary.version} stays current: {summary.held}"), EXIT_FAILURE)
    if summary.clips_planned == 0:
        errors.print("warning: no clip was planned; see the rejects above", style="yellow")


CONFIG_OPTION = inspect.Parameter(
    "config",
    inspect.Parameter.KEYWORD_ONLY,
    default=typer.Option(None, "--config", help="TOML file with any of the options below (flags override it)"),
    annotation=Path | None,
)
build.__signature__ = inspect.Signature([CONFIG_OPTION, *_config_parameters()])
app.command("build")(build)


def deploy(cron: str, name: str = "hiw-rebuild", config: Path | None = None, **flags: Any) -> None:
    """Serve the build as a Prefect deployment on a cron schedule (runs until stopped; see docs/ORCHESTRATION.md)."""
    from hiw.flows import lifeline
    from hiw.flows.deploy import serve_build

    lifeline.hold()  # the temporary server and each run's workers die with this process, however it ends
    try:
        serve_build(load_config(config, **flags), name, cron, say=lambda text: errors.print(text, highlight=False))
    except ConfigError as err:
        fail(err, EXIT_USAGE)


deploy.__signature__ = inspect.Signature(
    [
        inspect.Parameter(
            "cron",
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(..., "--cron", help='schedule as a cron expression, e.g. "0 3 * * *" (03:00 daily, UTC)'),
            annotation=str,
        ),
        inspect.Parameter(
            "name",
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option("hiw-rebuild", "--name", help="deployment name (runs show as hiw-build/NAME)"),
            annotation=str,
        ),
        CONFIG_OPTION,
        *_config_parameters(),
    ]
)
app.command("deploy")(deploy)


def run_and_report(cfg: BuildConfig):
    from hiw.flows import lifeline
    from hiw.flows.build import build_flow
    from hiw.report import BuildProgress, print_summary

    lifeline.hold()  # before any child process: the temporary server and workers die with the build, however it ends
    try:
        with BuildProgress(console) as progress:
            summary = build_flow(cfg, progress)
    except ConfigError as err:
        fail(err, EXIT_USAGE)
    except HiwError as err:
        fail(err, EXIT_FAILURE)
    print_summary(summary, console)
    return summary


Root = Annotated[Path, typer.Option("--root", help="dataset root (the build's --out)")]
Version = Annotated[str | None, typer.Option("--version", help="a dataset version, e.g. v2 (default: the current one)")]
QUERY_FORMATS = ("table", "csv", "json", "parquet")


@app.command()
def query(
    sql: Annotated[
        str,
        typer.Argument(
            help="SQL over the views clips, motion, captions, responses, vocabulary, rejects, samples, video_stats "
            "(and tokens, reconstructions once written); older versions also as v1.clips, ..."
        ),
    ],
    root: Root = Path("hiw-out"),
    version: Version = None,
    fmt: Annotated[str | None, typer.Option("--format", help="table|csv|json|parquet (default: from --out, else table)")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="write the result to this file (outside the dataset root) instead of printing it")
    ] = None,
) -> None:
    """Run read-only SQL against a dataset version through its DuckDB catalog.

    The SQL reads the dataset's tables and nothing else: COPY, EXPORT, ATTACH, INSTALL, LOAD, SET and writes
    are refused, and so are other files (exit 2). Save a result with --out; for full DuckDB open the catalog
    itself: duckdb -readonly ROOT/catalog.duckdb.
    """
    import duckdb

    from hiw.printing import print_rows
    from hiw.storage import open_catalog
    from hiw.storage.catalog import damage_hint
    from hiw.storage.sandbox import query_rows, write_result

    suffix = out.suffix.lstrip(".") if out is not None else ""
    fmt = fmt or (suffix if suffix in QUERY_FORMATS else None if out is not None else "table")
    if out is not None and fmt not in ("csv", "json", "parquet"):
        fail(ConfigError(f"--out needs csv, json or parquet, from --format or the file's suffix (got {out.name!r})"), EXIT_USAGE)
    if fmt not in QUERY_FORMATS or (fmt == "parquet" and out is None):
        fail(ConfigError(f"--format must be table, csv or json, or parquet with --out (got {fmt!r})"), EXIT_USAGE)
    try:
        with open_catalog(root, version) as con:
            if out is not None:
                write_result(con, sql, out, fmt)
                errors.print(f"wrote {out}", highlight=False)
                return
            columns, rows = query_rows(con, sql)
    except ConfigError as err:  # a refused statement or file included
        fail(err, EXIT_USAGE)
    except duckdb.Error as err:  # DuckDB's own message (with its caret under the bad token), no traceback
        fail(ConfigError(f"query failed: {err}{damage_hint(root, err)}"), EXIT_FAILURE)
    print_rows(columns, rows, fmt, console)


TableOrJson = Annotated[typing.Literal["table", "json"], typer.Option("--format", help="table|json")]


@app.command()
def versions(root: Root = Path("hiw-out"), fmt: TableOrJson = "table") -> None:
    """List a dataset's versions, oldest first (the last one is current)."""
    from hiw.printing import print_rows
    from hiw.storage import list_versions, load_manifest, resolve_version

    rows = []
    try:
        resolve_version(root)  # a clear error when there is no dataset
        for name in list_versions(root):
            m = load_manifest(root, name)
            rows.append(
                (
                    m.version,
                    m.created_at.isoformat(timespec="seconds"),
                    m.parent or "",
                    m.rows("clips"),
                    m.rows("motion"),
                    m.rows("captions"),
                    m.rows("rejects"),
                    f"{m.bytes() / 1e6:.1f}",
                    m.config_hash,
                    m.code_version,
                )
            )
    except ConfigError as err:
        fail(err, EXIT_USAGE)
    columns = ["version", "created_at", "parent", "clips", "motion", "captions", "rejects", "MB", "config_hash", "code"]
    print_rows(columns, rows, fmt, console)


@app.command()
def diff(
    a: Annotated[str, typer.Argument(help="the older version, e.g. v1")],
    b: Annotated[str, typer.Argument(help="the newer version (default: current)")] = "latest",
    root: Root = Path("hiw-out"),
    fmt: TableOrJson = "table",
) -> None:
    """Clips added, removed and changed, and captions changed, between two versions."""
    from hiw.printing import print_diff
    from hiw.storage.diff import diff_versions

    try:
        result = diff_versions(root, a, b)
    except ConfigError as err:
        fail(err, EXIT_USAGE)
    if fmt == "json":
        print(result.model_dump_json(indent=1))
    else:
        print_diff(result, console)


@app.command()
def verify(
    root: Root = Path("hiw-out"),
    version: Version = None,
    all_versions: Annotated[bool, typer.Option("--all", help="verify every version, not only one")] = False,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="when the current version is damaged, build it again from its own inputs and settings (rewriting "
            "the damaged shards; unchanged work is reused), then verify again",
        ),
    ] = False,
) -> None:
    """Check a version's shards against its manifest (checksums, schema, rows) and its tables against each other.
    Exits 1 when anything is wrong."""
    from hiw.storage import list_versions, load_manifest, resolve_version
    from hiw.storage.verify import verify_version

    def check(names: list[str]) -> list[str]:
        return [p for name in names for p in verify_version(root, name, _progress_line(f"verify {name}"))]

    try:
        current = resolve_version(root)  # a clear error when there is no dataset
        names = list_versions(root) if all_versions else [resolve_version(root, version)]
        if repair and names != [current]:
            raise ConfigError(f"--repair rebuilds the current version ({current}) only; run it without --version/--all")
        problems = check(names)
        if problems and repair:
            _say_problems(problems)
            errors.print(f"repairing {current}: building it again from its own inputs and settings", highlight=False)
            settings = {**load_manifest(root, current).config, "out": str(root)}
            run_and_report(load_config(**{k: v for k, v in settings.items() if k in BuildConfig.model_fields}))
            names = [resolve_version(root)]
            problems = check(names)
    except ConfigError as err:
        fail(err, EXIT_USAGE)
    if problems:
        _say_problems(problems)
        raise typer.Exit(EXIT_FAILURE)
    console.print(f"ok: {', '.join(names)} verified", highlight=False)


def _say_problems(problems: list[str]) -> None:
    for problem in problems:
        errors.print(f"[bold red]problem:[/] {escape(problem)}", highlight=False, soft_wrap=True)


@app.command()
def gc(
    root: Root = Path("hiw-out"),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only say what would be removed")] = False,
) -> None:
    """Remove shards no version lists (from killed or superseded builds) and cached frames and tracks of clips that
    are in no version. Every version stays complete."""
    from hiw.storage import resolve_version
    from hiw.storage.gc import collect

    try:
        resolve_version(root)  # a clear error when there is no dataset
        garbage = collect(root, dry_run)
    except ConfigError as err:
        fail(err, EXIT_USAGE)
    verb = "would remove" if dry_run else "removed"
    console.print(
        f"{verb} {len(garbage.files)} file(s) and {len(garbage.folders)} folder(s), {garbage.bytes_total / 1e6:.1f} MB",
        highlight=False,
    )


@app.command()
def export(
    out: Annotated[Path, typer.Option("--out", help="folder to write the export into")],
    fmt: Annotated[str, typer.Option("--format", help="clutch|humanml3d")] = "clutch",
    root: Root = Path("hiw-out"),
    version: Version = None,
    where: Annotated[
        str | None,
        typer.Option("--where", help="SQL condition on the clips table (alias c) to export a subset; it reads only the dataset"),
    ] = None,
    clips: Annotated[
        Path | None,
        typer.Option("--clips", help="export only the clips listed in this file's clip_id column (.csv, .json or .parquet)"),
    ] = None,
    balance: Annotated[bool, typer.Option("--balance", help="split each activity cluster 80/10/10 on its own")] = False,
    fractions: Annotated[str, typer.Option("--fractions", help="train,val,test shares of clips")] = "0.8,0.1,0.1",
    seed: Annotated[int, typer.Option("--seed", help="seed of the split order")] = 0,
) -> None:
    """Write a dataset version in a trainer's layout, split by source video."""
    from hiw.data.splits import dataset_splits
    from hiw.storage import open_catalog, resolve_version
    from hiw.storage.sandbox import read_clip_ids

    try:
        shares = tuple(float(x) for x in fractions.split(","))
    except ValueError:
        fail(ConfigError(f"--fractions must be three numbers like 0.8,0.1,0.1 (got {fractions!r})"), EXIT_USAGE)
    try:
        if fmt not in ("clutch", "humanml3d"):
            raise ConfigError(f"--format must be clutch or humanml3d (got {fmt!r})")
        listed = read_clip_ids(clips) if clips is not None else None
        with open_catalog(root, version) as con:  # sandboxed: --where reads the dataset's tables only
            splits = dataset_splits(con, shares, seed, balance, where, clip_ids=listed)
            from hiw.export import export_clutch, export_humanml3d  # torch: seconds, so after --where was checked

            name = resolve_version(root.resolve(), version)
            exporter = {"clutch": export_clutch, "humanml3d": export_humanml3d}[fmt]
            summary = exporter(con, out, splits=splits, progress=_progress_line(f"export {fmt}"), dataset_version=name)
    except ConfigError as err:
        fail(err, EXIT_USAGE)
    counts = ", ".join(f"{k} {v}" for k, v in summary.splits.items())
    console.print(f"exported {summary.sequences} sequences ({counts}) from {name} to {summary.out}", highlight=False)
    if summary.skipped:
        console.print(f"skipped: {_skipped(summary.skipped)}", highlight=False)


def _progress_line(label: str):
    """A progress callback (done, total) that prints a line every 10% of long work (on stderr)."""
    shown = set()

    def report(done: int, total: int) -> None:
        step = 10 * done // max(total, 1)
        if total >= 50 and step not in shown:
            shown.add(step)
            errors.print(f"{label}: {done}/{total}", highlight=False)

    return report


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="dataset root for the demo build")] = Path("hiw-demo"),
    seconds: Annotated[float, typer.Option(help="length of the rendered clip")] = 6.0,
    seed: Annotated[int, typer.Option(help="seed of the procedural scene")] = 0,
) -> None:
    """Render a synthetic egocentric clip, build a dataset from it, and check tracking against ground truth."""
    from hiw.demo.run import run_demo
    from hiw.flows import lifeline

    lifeline.hold()  # its build's temporary Prefect server dies with this process, however it ends
    try:
        accuracy = run_demo(out, seconds=seconds, seed=seed, console=console)
    except HiwError as err:
        fail(err, EXIT_FAILURE)
    if accuracy.any_hand_frac == 0:
        fail(HiwError("mediapipe detected no hand in the rendered clip"), EXIT_FAILURE)


@app.command("eval-fit")
def eval_fit(
    files: Annotated[list[Path], typer.Argument(help="21-joint sequences in the F-PHAB skeleton.txt format")],
    noise_mm: Annotated[float, typer.Option("--noise-mm", help="robustness run: Gaussian noise per coordinate, mm")] = 0.0,
    drop: Annotated[float, typer.Option("--drop", help="robustness run: share of frames dropped")] = 0.0,
    seed: Annotated[int, typer.Option(help="seed of the noise and drops")] = 0,
) -> None:
    """Fit 3D hand sequences with the open skeleton and report the error (last line: mean_mm=, or ratio=)."""
    import numpy as np

    from hiw.motion.evaluate import evaluate_file

    if not 0 <= drop < 1 or noise_mm < 0:
        fail(ConfigError("--drop must be in [0, 1) and --noise-mm >= 0"), EXIT_USAGE)
    results = []
    for path in files:
        try:
            result = evaluate_file(path, noise_mm, drop, seed)
        except FileNotFoundError:
            errors.print(f"skipped {path}: no such file", style="yellow")
            continue
        except HiwError as err:
            errors.print(f"skipped {path}: {err}", style="yellow")
            continue
        results.append(result)
        line = f"{path}  frames={result.frames}  fit_mm={result.mean_mm:.2f}  fit_ms_per_frame={result.fit_ms_per_frame:.2f}"
        if result.ratio is not None:
            line += f"  noisy_mm={result.noisy_mm:.2f}  processed_mm={result.processed_mm:.2f}  ratio={result.ratio:.3f}"
        console.print(line, highlight=False, soft_wrap=True)
    if not results:
        fail(HiwError("no file could be evaluated"), EXIT_FAILURE)
    console.print(f"mean_mm={np.mean([r.mean_mm for r in results]):.3f}", highlight=False)
    if results[0].ratio is not None:
        ratio = np.mean([r.processed_mm for r in results]) / np.mean([r.noisy_mm for r in results])
        console.print(f"ratio={ratio:.3f}", highlight=False)


shift_app = typer.Typer(no_args_is_help=True, help="SHIFT motion tokenizer: train, tokenize, reconstruct, eval.")
app.add_typer(shift_app, name="shift")

DataOpt = Annotated[str, typer.Option("--data", help="'procedural' or a built dataset root (hiw build --out)")]
RunOpt = Annotated[Path, typer.Option("--run", help="run folder (its latest checkpoint) or a checkpoint file")]
ClipsOpt = Annotated[int, typer.Option("--clips", help="procedural data: clips generated (80% train, 10% val, 10% test)")]
DataSeedOpt = Annotated[int, typer.Option("--data-seed", help="procedural data: generator seed")]
DEFAULT_RUN = Path("hiw-runs/shift")


def _data_source(spec: str | None, clips: int, seed: int):
    from hiw.data.sources import DataSource

    return None if spec is None else DataSource.parse(spec, clips, seed)


def _split_and_source(split: str | None, spec: str | None, clips: int, seed: int):
    """The checked --split and --data of tokenize/eval; a bad one exits 2 before any flow starts."""
    from hiw.data.splits import check_split

    try:
        check_split(split)
        return _data_source(spec, clips, seed)
    except ConfigError as err:
        fail(err, EXIT_USAGE)


def _say(text: str) -> None:
    """One unwrapped, unhighlighted line (scripts grep these)."""
    console.print(text, highlight=False, soft_wrap=True)


def _skipped(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items())) or "none"


def _checkpoint(run: Path) -> Path:
    """The checkpoint file of a run folder (or the file itself); checked before any flow starts."""
    from hiw.models.checkpoint import resolve

    try:
        return resolve(run)
    except ConfigError as err:
        fail(err, EXIT_USAGE)


def _shift_job(job, *args: Any, **kwargs: Any) -> Any:
    """Run a tokenizer flow; usage errors exit 2, failures 1, both as one line."""
    from hiw.flows import lifeline

    lifeline.hold()  # the flow's temporary Prefect server dies with this process, however it ends
    try:
        return job(*args, **kwargs)
    except ConfigError as err:
        fail(err, EXIT_USAGE)
    except (HiwError, ValueError) as err:
        fail(err, EXIT_FAILURE)


@shift_app.command("train")
def shift_train(
    data: DataOpt = "procedural",
    preset: Annotated[
        str, typer.Option(help="model and schedule size: tiny (CPU, minutes) or paper (4096x64 codebooks, width 512)")
    ] = "tiny",
    variant: Annotated[
        str, typer.Option(help="shift (traj + pose VQ-VAEs), single (one VQ-VAE over 198), lr (per hand)")
    ] = "shift",
    run: Annotated[Path, typer.Option("--run", help="run folder: checkpoints, metrics.jsonl, run.json")] = DEFAULT_RUN,
    steps: Annotated[int | None, typer.Option(help="total optimizer steps (the preset's if not given)")] = None,
    batch: Annotated[int | None, typer.Option(help="windows per step (the preset's if not given)")] = None,
    lr: Annotated[float | None, typer.Option(help="AdamW learning rate (the preset's if not given)")] = None,
    seed: Annotated[int, typer.Option(help="seed of initialisation and batch sampling")] = 0,
    clips: ClipsOpt = 2000,
    data_seed: DataSeedOpt = 0,
    device: Annotated[str, typer.Option(help="auto (cuda, then mps, then cpu), or a torch device name")] = "auto",
    fresh: Annotated[bool, typer.Option("--fresh", help="discard the run folder's checkpoints instead of resuming")] = False,
) -> None:
    """Train the tokenizer; resumes from the run folder's latest checkpoint when there is one."""
    from hiw.flows.shift import train_with_progress
    from hiw.models import runs
    from hiw.models.train import pick_device

    try:
        source = _data_source(data, clips, data_seed)
        config = runs.model_config(preset, variant)
        settings = runs.train_settings(preset, steps=steps, batch=batch, lr=lr, seed=seed)
        pick_device(device)  # before any flow starts
    except ConfigError as err:
        fail(err, EXIT_USAGE)
    _say(f"training {variant} ({preset}) on {source.describe()} for {settings.steps} steps -> {run}")

    def show(m: dict[str, float]) -> None:
        books = "  ".join(f"{k[:-11]} ppl {v:.1f}" for k, v in m.items() if k.endswith("_perplexity"))
        _say(
            f"step {m['step']}/{settings.steps}  loss {m['loss']:.4f}  recon {m['recon']:.4f}  vel {m['velocity']:.4f}  "
            f"commit {m['commit']:.4f}  {books}  {m['sequences_per_s']:.1f} seq/s"
        )

    result = _shift_job(
        train_with_progress, show, run_dir=run, source=source, config=config, settings=settings, device=device, fresh=fresh
    )
    if result.resumed_from:
        _say(f"resumed from step {result.resumed_from}")
    skipped = _skipped(result.skipped)
    _say(f"checkpoint {result.checkpoint} (step {result.step}); {result.sequences_per_s:.1f} seq/s; skipped: {skipped}")


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

    source = _split_and_source(split, data, clips, data_seed)
    result = _shift_job(tokenize_flow, _checkpoint(run), source, out, split)
    skipped = _skipped(result.skipped)
    _say(f"{result.rows} clips tokenized by {result.checkpoint_id} -> {result.path}; skipped: {skipped}")


@shift_app.command("reconstruct")
def shift_reconstruct(
    run: RunOpt = DEFAULT_RUN,
    out: Annotated[Path | None, typer.Option("--out", help="folder holding tokens/ (default as for tokenize)")] = None,
) -> None:
    """Decode the checkpoint's tokens table back to per-hand parameters (the reconstructions table)."""
    from hiw.flows.shift import reconstruct_flow

    result = _shift_job(reconstruct_flow, _checkpoint(run), out)
    _say(f"{result.rows} clips reconstructed -> {result.path}")


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

    source = _split_and_source(split, data, clips, data_seed)
    report = _shift_job(eval_flow, _checkpoint(run), source, split)
    skipped = _skipped(report.skipped)
    _say(f"{report.variant} {report.checkpoint_id} step {report.step} on {report.data}")
    _say(f"sequences={report.sequences} hand_frames={report.frames} skipped: {skipped}")
    for name, book in report.codebooks.items():
        _say(f"codebook {name}: usage={book.usage:.3f} perplexity={book.perplexity:.1f}")
    _say(f"local_mpjpe_mm={report.local_mpjpe_mm:.3f}  (keypoints relative to the wrist)")
    _say(f"accel_mm={report.accel_mm:.3f}  (mm/frame^2)")
    _say(f"mpjpe_mm={report.mpjpe_mm:.3f}")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
