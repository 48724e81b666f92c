"""What a build reports: one set of tables, printed by the CLI (rich) and published as a Prefect markdown
artifact, plus progress bars while it runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as ProgressBar
from rich.table import Table

from hiw.flows.summary import BuildSummary, Progress
from hiw.schemas import ClipRecord
from hiw.schemas.stages import STEPS

# Rows of the time table: the steps in the stage table's order, then what the driver times besides them.
STAGE_ORDER = [*STEPS, "observe_cached", "vocabulary", "vlm", "write"]


@dataclass
class ReportTable:
    title: str
    columns: list[str]  # empty: a two-column label/value table without a header
    rows: list[list[str]]


def report_tables(summary: BuildSummary) -> list[ReportTable]:
    """The run report: what the build did and what the dataset version holds."""
    if summary.published:
        outcome = f"{summary.version}, new"
    elif summary.held:
        outcome = f"not published: {summary.held}; {summary.version} stays current"
    else:
        outcome = f"nothing changed: {summary.version} stays current, no new version"
    frames = max(summary.frames_tracked, 1)
    rows = [
        ("dataset version", outcome),
        ("runner", summary.runner),
        ("videos found / probed", f"{summary.videos_found} / {summary.videos_probed}"),
        ("videos processed / reused", f"{summary.videos_processed} / {summary.videos_reused}"),
        ("shard groups written / reused", f"{summary.groups_written} / {summary.groups_reused}"),
        *((("  damaged, made again", summary.groups_damaged),) if summary.groups_damaged else ()),
        ("clips in the version", summary.clips_planned),
        ("clips processed by this run", summary.clips_processed),
        ("  wall time of the clip phase", _rate(summary.clip_phase_s, summary.clips_processed, "clips")),
        ("  tracking from cache", summary.observations_cached),
        ("  failed (retried next build)", summary.clips_failed),
        ("clips accepted", summary.clips_accepted),
        ("clips rejected", summary.clips_rejected),
        ("captions", summary.captions),
        *((f"  {kind}", n) for kind, n in summary.captions_by_kind.items()),
        ("frames tracked", summary.frames_tracked),
        ("frames with a hand", f"{summary.frames_any_hand} ({summary.frames_any_hand / frames:.0%})"),
        ("frames with both hands", f"{summary.frames_both_hands} ({summary.frames_both_hands / frames:.0%})"),
        *_vlm_rows(summary),
        ("wall time", f"{summary.wall_s:.1f} s"),
        ("output", summary.out),
        *((("browser", summary.browser),) if summary.browser else ()),
    ]
    tables = [ReportTable(f"hiw build: {outcome}", [], [[label, str(value)] for label, value in rows])]
    if summary.rejects_by_reason:
        tables.append(
            ReportTable(
                "rejects by stage/reason", ["stage/reason", "count"], [[r, str(n)] for r, n in summary.rejects_by_reason.items()]
            )
        )
    ordered = sorted(summary.stage_times.items(), key=lambda kv: STAGE_ORDER.index(kv[0]) if kv[0] in STAGE_ORDER else 99)
    times = [
        [
            stage,
            str(t.calls),
            f"{t.seconds:.2f}",
            str(t.items or ""),
            f"{t.items / t.seconds:.0f}" if t.items and t.seconds else "",
        ]
        for stage, t in ordered
    ]
    columns = ["stage", "calls", "seconds", "frames/tokens", "per second"]
    tables.append(ReportTable("time per stage (inside stage functions, summed over workers)", columns, times))
    return tables


def _rate(seconds: float, n: int, what: str) -> str:
    return f"{seconds:.1f} s" + (f" ({n / seconds:.2f} {what}/s)" if n and seconds > 0 else "")


def _vlm_rows(summary: BuildSummary) -> list[tuple[str, str]]:
    if not summary.vlm_calls and not summary.vlm_cache_hits:
        return []
    return [
        ("VLM calls / cache hits", f"{summary.vlm_calls} / {summary.vlm_cache_hits}"),
        ("VLM calls failed", str(summary.vlm_failed_calls)),
        ("VLM tokens in / out", f"{summary.vlm_prompt_tokens} / {summary.vlm_completion_tokens}"),
    ]


def print_summary(summary: BuildSummary, console: Console) -> None:
    for t in report_tables(summary):
        table = Table(title=t.title, show_header=bool(t.columns))
        for i, col in enumerate(t.columns or ["", ""]):
            table.add_column(col, style="bold" if not t.columns and i == 0 else None, justify="left" if i == 0 else "right")
        for row in t.rows:
            table.add_row(*row)
        console.print(table)


def report_markdown(summary: BuildSummary) -> str:
    """The same tables as ``print_summary``, as markdown (the Prefect artifact)."""
    parts = []
    for t in report_tables(summary):
        columns = t.columns or ["", ""]
        lines = [
            f"### {t.title}",
            "",
            "| " + " | ".join(columns) + " |",
            "|" + "|".join([" --- "] + [" ---: "] * (len(columns) - 1)) + "|",
        ]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in t.rows]
        parts.append("\n".join(lines))
    if summary.browser:
        parts.append(f"[Browse this version]({Path(summary.browser).as_uri()}) (opens from disk on the machine that built it)")
    return "\n\n".join(parts) + "\n"


class BuildProgress(Progress):
    """Progress of a build: a live bar on a terminal, one line per clip otherwise."""

    def __init__(self, console: Console):
        self.console = console
        self.live = console.is_terminal
        self.done = 0
        self.total = 0
        self._bar = ProgressBar(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._videos = self._bar.add_task("videos", total=None)
        self._task = self._bar.add_task("clips", total=None)
        self._vlm_task = None
        self.submitted = self.annotated = 0

    def __enter__(self) -> BuildProgress:
        if self.live:
            self._bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live:
            self._bar.stop()

    def videos_found(self, n: int) -> None:
        self.console.print(f"found {n} video file(s)", highlight=False)
        self._bar.update(self._videos, total=n)

    def video_done(self) -> None:
        self._bar.advance(self._videos)

    def clips_planned(self, n: int) -> None:
        self.total += n
        self._bar.update(self._task, total=self.total)

    def clip_done(self, record: ClipRecord) -> None:
        self.done += 1
        self._bar.update(self._task, completed=self.done)
        if not self.live:
            verdict = record.status if record.status == "accepted" else f"rejected ({record.reject_reason})"
            self.console.print(
                f"[{self.done}/{self.total}] {record.clip_id} {record.start_s:.1f}-{record.end_s:.1f} s of "
                f"{record.source_path.rsplit('/', 1)[-1]}: {record.frames_decoded} frames, "
                f"both hands in {record.both_hands_frac:.0%}: {verdict}",
                highlight=False,
            )

    def annotation_submitted(self) -> None:
        if self._vlm_task is None:
            self._vlm_task = self._bar.add_task("VLM captions", total=0)
        self.submitted += 1
        self._bar.update(self._vlm_task, total=self.submitted)

    def annotation_done(self, annotation) -> None:
        self.annotated += 1
        self._bar.update(self._vlm_task, completed=self.annotated)
        if not self.live:
            calls = ", ".join(f"{r.prompt} {r.status}" + (" (cached)" if r.cached else "") for r in annotation.responses)
            kinds = ", ".join(c.kind + ("" if c.qa_passed else " (QA flagged)") for c in annotation.captions) or "none"
            self.console.print(
                f"[VLM {self.annotated}/{self.submitted}] {annotation.clip.clip_id}: {calls}; captions: {kinds}", highlight=False
            )
