"""The `hiw` command: build, deploy, query, versions, diff, verify, gc, export, demo, eval-fit, and `hiw shift ...`
(the motion tokenizer).

Exit codes: 0 success (a build with rejects included), 1 a failure while running (or a build that held its
version back, which says why), 2 a usage or configuration error (one line on stderr, no traceback).
"""

from __future__ import annotations

import inspect
import types
import typing
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from hiw import runtime
from hiw.cli.common import EXIT_FAILURE, EXIT_USAGE, console, errors, fail, skipped_counts
from hiw.config import BuildConfig, load_config
from hiw.errors import ConfigError, HiwError

runtime.configure()
# plain (click) help: rich panels cut long flag names off on 80-column terminals
app = typer.Typer(
    add_completion=False, no_args_is_help=True, rich_markup_mode=None, help="Egocentric video -> aligned 3D hand motion and text."
)


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
    fmt: Annotated[
        str, typer.Option("--format", help="clutch (the CLUTCH authors' loader reads it), humanml3d, npy (hiw's, with masks)")
    ] = "clutch",
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
    tokens: Annotated[
        Path | None,
        typer.Option("--tokens", help="clutch: also write the authors' token files from this SHIFT run folder or checkpoint"),
    ] = None,
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
        from hiw.export import FORMATS, exporter

        if fmt not in FORMATS:
            raise ConfigError(f"--format must be one of {', '.join(FORMATS)} (got {fmt!r})")
        if tokens is not None and fmt != "clutch":
            raise ConfigError("--tokens goes with --format clutch (the authors' token files)")
        if tokens is not None and not tokens.exists():
            raise ConfigError(f"--tokens {tokens} does not exist (a SHIFT run folder or checkpoint: hiw shift train)")
        listed = read_clip_ids(clips) if clips is not None else None
        with open_catalog(root, version) as con:  # sandboxed: --where reads the dataset's tables only
            splits = dataset_splits(con, shares, seed, balance, where, clip_ids=listed)
            name = resolve_version(root.resolve(), version)
            options = {"tokens": tokens} if tokens is not None else {}
            progress = _progress_line(f"export {fmt}")
            summary = exporter(fmt)(con, out, splits=splits, progress=progress, dataset_version=name, **options)
    except ConfigError as err:
        fail(err, EXIT_USAGE)
    counts = ", ".join(f"{k} {v}" for k, v in summary.splits.items())
    console.print(f"exported {summary.sequences} sequences ({counts}) from {name} to {summary.out}", highlight=False)
    if summary.skipped:
        console.print(f"skipped: {skipped_counts(summary.skipped)}", highlight=False)


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
def browse(
    root: Root = Path("hiw-out"),
    version: Version = None,
    out: Annotated[Path, typer.Option("--out", help="folder of the site (DIR/index.html opens from disk)")] = Path("hiw-browse"),
    serve: Annotated[bool, typer.Option("--serve", help="then serve it on 127.0.0.1 until interrupted")] = False,
    port: Annotated[int, typer.Option("--port", help="--serve: the port (0: any free one)")] = 8000,
) -> None:
    """Write a static HTML browser of a dataset version: clips with frames, keypoints, 3D hands, captions, rejects."""
    from hiw.browse.site import build_site

    try:
        site = build_site(root, out, version, progress=_progress_line("browse"))
    except ConfigError as err:
        fail(err, EXIT_USAGE)
    console.print(site.describe(), highlight=False, soft_wrap=True)
    if serve:
        from hiw.browse.serve import make_server

        try:
            server = make_server(site.out, port)
        except OSError as err:
            fail(ConfigError(f"cannot serve on 127.0.0.1:{port}: {err.strerror or err}"), EXIT_USAGE)
        host, bound = server.server_address[:2]
        console.print(f"serving http://{host}:{bound}/ (Ctrl-C stops)", highlight=False)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()


@app.command()
def preview(
    clip: Annotated[str, typer.Option("--clip", help="the clip's id (clips.clip_id)")],
    out: Annotated[Path, typer.Option("--out", help="the .mp4 to write")],
    root: Root = Path("hiw-out"),
    version: Version = None,
) -> None:
    """Write one clip as an mp4: its frames with the keypoints drawn, beside a panel of the 3D hands."""
    from hiw.browse.preview import write_preview

    if out.suffix.lower() != ".mp4":
        fail(ConfigError(f"--out must be an .mp4 file (got {out})"), EXIT_USAGE)
    try:
        written = write_preview(root, clip, out, version)
    except ConfigError as err:
        fail(err, EXIT_USAGE)
    console.print(f"wrote {written['frames']} frames at {written['fps']:g} fps to {written['out']}", highlight=False)


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

    from hiw.flows.settings import motion_settings
    from hiw.motion.evaluate import evaluate_file

    if not 0 <= drop < 1 or noise_mm < 0:
        fail(ConfigError("--drop must be in [0, 1) and --noise-mm >= 0"), EXIT_USAGE)
    build_motion = motion_settings(BuildConfig())  # exactly the fit, gap filling and smoothing a build runs
    results = []
    for path in files:
        try:
            result = evaluate_file(path, build_motion, noise_mm, drop, seed)
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


from hiw.cli.clutch import clutch_app  # noqa: E402
from hiw.cli.eval import eval_app  # noqa: E402
from hiw.cli.shift import shift_app  # noqa: E402 - after runtime.configure(), like every heavy import

app.add_typer(shift_app, name="shift")
app.add_typer(eval_app, name="eval")
app.add_typer(clutch_app, name="clutch")


def main() -> None:  # pragma: no cover - console entry point
    app()
