"""What a build reports: progress while it runs, and its summary when it ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from pydantic import BaseModel, Field

from hiw.config import BuildConfig
from hiw.flows.annotate import AnnotationProgress, failed
from hiw.flows.runners import StageTime
from hiw.flows.version import Published, version_counts
from hiw.schemas import ClipRecord


class Progress(AnnotationProgress):
    """Receives the build's progress; this base ignores it (the CLI shows bars)."""

    def videos_found(self, n: int) -> None: ...
    def video_done(self) -> None: ...
    def clips_planned(self, n: int) -> None: ...
    def clip_done(self, record: ClipRecord) -> None: ...


_progress: ContextVar[Progress | None] = ContextVar("hiw_build_progress", default=None)


@contextmanager
def reporting_to(progress: Progress | None) -> Iterator[None]:
    """Builds started in this context report their progress to ``progress``."""
    token = _progress.set(progress)
    try:
        yield
    finally:
        _progress.reset(token)


def current_progress() -> Progress | None:
    # a function, not the ContextVar itself: task runners pickle the flow's globals, and a ContextVar cannot be
    return _progress.get()


class BuildSummary(BaseModel):
    """Counts over the dataset version the build left current, and what this run itself did."""

    out: str
    version: str
    parent: str | None = None
    published: bool = Field(description="False when nothing changed (or see held): the current version stays current")
    held: str | None = Field(None, description="why a changed dataset was not published")
    runner: str = Field("thread", description="thread | process | dask, or plain (threads without Prefect)")
    videos_found: int
    videos_probed: int
    videos_processed: int = 0
    videos_reused: int = 0
    groups_written: int = 0
    groups_reused: int = 0
    groups_damaged: int = Field(0, description="shard groups found damaged (missing or changed files) and written again")
    clips_planned: int
    clips_processed: int = Field(0, description="clips this run processed (the others were reused)")
    clips_accepted: int
    clips_rejected: int
    clips_failed: int = Field(0, description="clips whose task kept failing (transient errors); retried by the next build")
    clip_phase_s: float = Field(0.0, description="wall time from the first clip sent to a worker to the last one done")
    observations_cached: int = Field(0, description="clips whose tracking came from the observation cache")
    captions: int
    captions_by_kind: dict[str, int] = {}
    vlm_calls: int = 0
    vlm_cache_hits: int = 0
    vlm_failed_calls: int = Field(0, description="calls that failed, or whose answer was not valid however often asked")
    vlm_prompt_tokens: int = 0
    vlm_completion_tokens: int = 0
    rejects_by_reason: dict[str, int]
    frames_tracked: int
    frames_any_hand: int
    frames_both_hands: int
    stage_times: dict[str, StageTime]
    wall_s: float
    config_hash: str
    browser: str | None = Field(None, description="index.html of the browser the build wrote (--browse)")


def summarise(cfg: BuildConfig, outcome: Published, run: dict, stage_times: dict[str, StageTime], wall_s: float) -> BuildSummary:
    """The build summary: counts over the published version's tables, and what this run did (``run``)."""
    counts = version_counts(cfg.out, outcome.manifest)
    responses = outcome.new_responses
    cached = stage_times.get("observe_cached")
    return BuildSummary(
        out=str(cfg.out.resolve()),
        version=outcome.manifest.version,
        parent=outcome.manifest.parent,
        published=outcome.published,
        held=outcome.held,
        videos_processed=outcome.videos_processed,
        videos_reused=outcome.videos_reused,
        groups_written=outcome.groups_written,
        groups_reused=outcome.groups_reused,
        groups_damaged=len(outcome.damaged),
        observations_cached=cached.calls if cached else 0,
        vlm_calls=sum(not r.cached for r in responses),
        vlm_cache_hits=sum(r.cached for r in responses),
        vlm_failed_calls=sum(failed(r) for r in responses),
        vlm_prompt_tokens=sum(r.prompt_tokens or 0 for r in responses if not r.cached),
        vlm_completion_tokens=sum(r.completion_tokens or 0 for r in responses if not r.cached),
        stage_times=stage_times,
        wall_s=wall_s,
        config_hash=cfg.config_hash(),
        **run,
        **counts,
    )
