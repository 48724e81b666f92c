"""The `hiw` command: build, query, demo.

Exit codes: 0 success (a build with rejects included), 1 a failure while running, 2 a usage or
configuration error (one line on stderr, no traceback).
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

from hiw import runtime
from hiw.config import BuildConfig, load_config
from hiw.errors import ConfigError, HiwError

runtime.configure()
app = typer.Typer(add_completion=False, no_args_is_help=True, help="Egocentric video -> aligned 3D hand motion and text.")
console = Console(stderr=False)
errors = Console(stderr=True)

EXIT_FAILURE, EXIT_USAGE = 1, 2


def fail(err: Exception, code: int) -> typing.NoReturn:
    errors.print(f"[bold red]error:[/] {err}", highlight=False)
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
    try:
        cfg = load_config(config, **flags)
    except ConfigError as err:
        fail(err, EXIT_USAGE)
    summary = run_and_report(cfg)
    if summary.clips_planned == 0:
        errors.print("warning: no clip was planned; see the rejects above", style="yellow")


build.__signature__ = inspect.Signature(
    [
        inspect.Parameter(
            "config",
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(None, "--config", help="TOML file with any of the options below (flags override it)"),
            annotation=Path | None,
        ),
        *_config_parameters(),
    ]
)
app.command("build")(build)


def run_and_report(cfg: BuildConfig):
    from hiw.flows.build import build_flow
    from hiw.report import BuildProgress, print_summary

    try:
        with BuildProgress(console) as progress:
            summary = build_flow(cfg, progress)
    except ConfigError as err:
        fail(err, EXIT_USAGE)
    except HiwError as err:
        fail(err, EXIT_FAILURE)
    print_summary(summary, console)
    return summary


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="SQL over the views clips, motion, captions, rejects")],
    root: Annotated[Path, typer.Option("--root", help="dataset root (the build's --out)")] = Path("hiw-out"),
    fmt: Annotated[str, typer.Option("--format", help="table|csv|json")] = "table",
) -> None:
    """Run SQL against a built dataset's DuckDB catalog."""
    import duckdb

    from hiw.report import print_rows
    from hiw.storage import open_catalog

    if fmt not in ("table", "csv", "json"):
        fail(ConfigError(f"--format must be table, csv or json (got {fmt!r})"), EXIT_USAGE)
    try:
        with open_catalog(root) as con:
            cursor = con.execute(sql)
            columns = [d[0] for d in cursor.description or []]
            rows = cursor.fetchall()
    except ConfigError as err:
        fail(err, EXIT_USAGE)
    except duckdb.Error as err:
        fail(ConfigError(f"query failed: {str(err).splitlines()[0]}"), EXIT_FAILURE)
    print_rows(columns, rows, fmt, console)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="dataset root for the demo build")] = Path("hiw-demo"),
    seconds: Annotated[float, typer.Option(help="length of the rendered clip")] = 6.0,
    seed: Annotated[int, typer.Option(help="seed of the procedural scene")] = 0,
) -> None:
    """Render a synthetic egocentric clip, build a dataset from it, and check tracking against ground truth."""
    from hiw.demo.run import run_demo

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


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
