"""What every `hiw` command shares: its consoles, exit codes and one-line messages."""

from __future__ import annotations

import logging
import typing
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from hiw.data.counts import skipped_counts  # noqa: F401  (the commands import it from here)
from hiw.errors import ConfigError, HiwError

console = Console(stderr=False)
errors = Console(stderr=True)

EXIT_FAILURE, EXIT_USAGE = 1, 2

ClipsOpt = Annotated[int, typer.Option("--clips", help="procedural data: clips generated (80% train, 10% val, 10% test)")]
DataSeedOpt = Annotated[int, typer.Option("--data-seed", help="procedural data: generator seed")]

# The options of every `... train` command: the shared training loop's (hiw.models.loop_settings), unset = the preset's.
TrainDataOpt = Annotated[str, typer.Option("--data", help="'procedural' or a built dataset root (hiw build --out)")]
TrainRunOpt = Annotated[Path, typer.Option("--run", help="run folder: checkpoints, metrics.jsonl, run.json")]
StepsOpt = Annotated[int | None, typer.Option(help="total optimizer steps (the preset's if not given)")]
BatchOpt = Annotated[int | None, typer.Option(help="items per step: windows, or clips (the preset's if not given)")]
LrOpt = Annotated[float | None, typer.Option(help="AdamW peak learning rate (the preset's if not given)")]
WarmupOpt = Annotated[int | None, typer.Option(help="linear learning-rate warm-up over this many steps (none unless given)")]
ScheduleOpt = Annotated[
    str | None, typer.Option(help="constant, or cosine (from --lr down to --min-lr at the last step); constant unless given")
]
MinLrOpt = Annotated[float | None, typer.Option(help="where the cosine schedule ends (0 unless given)")]
ClipNormOpt = Annotated[float | None, typer.Option(help="clip the global gradient norm to this (no clipping unless given)")]
ValEveryOpt = Annotated[
    int | None, typer.Option(help="validation loss on the val split every N steps, keeping best.pt (none unless given)")
]
PrecisionOpt = Annotated[
    str | None, typer.Option(help="fp32, bf16 (autocast), or auto (bf16 on CUDA GPUs that have it); fp32 unless given")
]
TrainSeedOpt = Annotated[int, typer.Option(help="seed of initialisation and batch sampling")]
DeviceOpt = Annotated[str, typer.Option(help="auto (cuda, then mps, then cpu), or a torch device name")]
FreshOpt = Annotated[bool, typer.Option("--fresh", help="discard the run folder's checkpoints instead of resuming")]


def fail(err: Exception, code: int) -> typing.NoReturn:
    # one line, however narrow the terminal; the message is text, not rich markup (it may quote "[build]" or a path)
    errors.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def say(text: str) -> None:
    """One unwrapped, unhighlighted line (scripts grep these)."""
    console.print(text, highlight=False, soft_wrap=True)


def show_table(table) -> None:
    """A rich table at its natural width: piped output is 80 columns, which would wrap metric names."""
    console.print(table, width=max(console.width, 160))


def data_source(spec: str | None, clips: int, seed: int):
    from hiw.data.sources import DataSource

    return None if spec is None else DataSource.parse(spec, clips, seed)


def split_and_source(split: str | None, spec: str | None, clips: int, seed: int):
    """The checked --split and --data of tokenize/eval; a bad one exits 2 before any flow starts."""
    from hiw.data.splits import check_split

    try:
        check_split(split)
        return data_source(spec, clips, seed)
    except ConfigError as err:
        fail(err, EXIT_USAGE)


def run_job(job, *args: Any, **kwargs: Any) -> Any:
    """Run a flow of a model command (shift, eval); usage errors exit 2, failures 1, both as one line."""
    from hiw.flows import lifeline
    from hiw.flows.runners import local_run

    lifeline.hold()  # the flow's temporary Prefect server dies with this process, however it ends
    runs_log = logging.getLogger("prefect.flow_runs")
    runs_log.addFilter(_no_usage_tracebacks)
    try:
        with local_run():
            return job(*args, **kwargs)
    except ConfigError as err:
        fail(err, EXIT_USAGE)
    except (HiwError, ValueError) as err:
        fail(err, EXIT_FAILURE)
    finally:
        runs_log.removeFilter(_no_usage_tracebacks)


def _no_usage_tracebacks(record: logging.LogRecord) -> bool:
    """Prefect logs a failed flow's exception with its traceback; a usage error found inside a flow (too few clips
    for a metric, say) is said once, in one line, by ``fail``."""
    return not (record.exc_info and isinstance(record.exc_info[1], ConfigError))


def checkpoint_file(run: Path, train: str) -> Path:
    """The checkpoint file of a run folder (or the file itself), checked before any flow starts; ``train`` is the
    command that makes one."""
    from hiw.models.checkpoints import resolve

    try:
        return resolve(run, train)
    except ConfigError as err:
        fail(err, EXIT_USAGE)
