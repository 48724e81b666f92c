"""The build flow: videos -> probe -> plan clips -> decode -> track -> filter -> camera -> motion -> quality
-> annotate -> tables (precomputed tracks: load replaces decode/track/camera).

``run_build`` is the wiring, written once against a runner (``hiw.flows.runners``);
``build_flow`` is the Prefect flow that runs it with Prefect tasks.
"""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, Field

from hiw.annotators.pcot import ClipInput
from hiw.config import BuildConfig
from hiw.errors import ConfigError, StageError
from hiw.flows import observations, stages
from hiw.flows.annotate import AnnotationProgress, VLMPhase
from hiw.flows.runners import PlainRunner, PrefectRunner, StageTime
from hiw.flows.version import PlannedVideo, Published, VersionPlan, version_counts
from hiw.schemas import Caption, ClipRecord, ClipSpec, MotionRecord, Narration, Reject, VideoSource
from hiw.storage import write_catalog
from hiw.storage.groups import GroupStore
from hiw.storage.versions import BuildLock
from hiw.trackers.precomputed import TRACK_SUFFIXES, load_tracks, probe_tracks
from hiw.video.discover import VIDEO_SUFFIXES, check_inputs, discover
from hiw.video.probe import probe_video


class Progress(AnnotationProgress):
    """Receives the build's progress; this base ignores it (the CLI shows a bar)."""

    def videos_found(self, n: int) -> None: ...
    def clips_planned(self, n: int) -> None: ...
    def clip_done(self, record: ClipRecord) -> None: ...


@dataclass
class VideoResult:
    path: Path
    video: VideoSource | None = None
    clips: list[ClipSpec] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


@dataclass
class ClipResult:
    record: ClipRecord
    motion: MotionRecord | None = None
    captions: list[Caption] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    vlm_input: ClipInput | None = None


class BuildSummary(BaseModel):
    """Counts over the dataset version the build left current, and what this run itself did."""

    out: str
    version: str
    parent: str | None = None
    published: bool = Field(description="False when nothing changed: the current version stays current")
    videos_found: int
    videos_probed: int
    videos_processed: int = 0
    videos_reused: int = 0
    groups_written: int = 0
    groups_reused: int = 0
    clips_planned: int
    clips_accepted: int
    clips_rejected: int
    captions: int
    captions_by_kind: dict[str, int] = {}
    vlm_calls: int = 0
    vlm_cache_hits: int = 0
    vlm_failed_calls: int = 0
    vlm_prompt_tokens: int = 0
    vlm_completion_tokens: int = 0
    rejects_by_reason: dict[str, int]
    frames_tracked: int
    frames_any_hand: int
    frames_both_hands: int
    stage_times: dict[str, StageTime]
    wall_s: float
    config_hash: str


@dataclass(frozen=True)
class Where:
    """What a reject refers to."""

    source_path: str
    video_id: str | None = None
    clip_id: str | None = None


def _attempt(where: Where, stage: str, fn, *args):
    """(result, None), or (None, Reject) when fn fails: one bad input never stops the build."""
    try:
        return fn(*args), None
    except StageError as err:
        return None, Reject.of(stage, err, where.source_path, where.video_id, where.clip_id)
    except Exception as err:  # noqa: BLE001 - unexpected failures are recorded with their text
        detail = f"{type(err).__name__}: {err}".splitlines()[0][:500]
        return None, Reject.of(stage, StageError("internal_error", detail), where.source_path, where.video_id, where.clip_id)


def attempt(runner: PlainRunner, where: Where, stage: str, fn, *args):
    """Run one stage through the runner (a Prefect task that completes even when it rejects)."""
    return runner.run(stage, _attempt, where, stage, fn, *args)


def process_video(path: Path, narrations: list[Narration], cfg: BuildConfig, runner: PlainRunner) -> VideoResult:
    result = VideoResult(path=path)
    probe = probe_tracks if cfg.tracker == "precomputed" else probe_video
    video, reject = attempt(runner, Where(str(path)), "probe", probe, path)
    if reject:
        result.rejects.append(reject)
        return result
    result.video = video
    planned, reject = attempt(runner, Where(str(path), video.video_id), "plan", stages.plan, video, narrations, cfg)
    if reject:
        result.rejects.append(reject)
    else:
        result.clips, result.rejects = planned
    return result


def _observe(clip: ClipSpec, rotation: int, cfg: BuildConfig, tracker_name: str, runner: PlainRunner, where: Where):
    """(tracks, camera, VLM frame files, reject): decode + track + camera from video (cached per clip in
    ``cache/observations``), or load precomputed tracks."""
    if cfg.tracker == "precomputed":
        tracks, reject = attempt(runner, where, "load", load_tracks, clip)
        if tracks is not None:
            _, reject = attempt(runner, where, "filter", stages.quality_check, tracks, cfg)
        return tracks, None, (), reject
    decoded: list = []

    def frames():  # decoded once, and only when a stage needs pixels
        if not decoded:
            pixels, reject = attempt(runner, where, "decode", stages.decode, clip, cfg, rotation)
            if pixels is not None:
                runner.times.count_items("decode", len(pixels))
            decoded.append((pixels, reject))
        return decoded[0]

    key = observations.observation_key(clip, cfg, tracker_name)
    obs = observations.load(cfg.out, key)
    if obs is None:
        pixels, reject = frames()
        if reject:
            return None, None, (), reject
        tracks, reject = attempt(runner, where, "track", stages.track, pixels, clip, cfg)
        if reject:
            return None, None, (), reject
        runner.times.count_items("track", tracks.n_frames)
        obs = observations.Observation(tracks)
        if observations.cacheable(tracks):
            observations.save(cfg.out, key, obs)
    else:
        runner.times.add("observe_cached", 0.0, items=obs.tracks.n_frames)
    _, reject = attempt(runner, where, "filter", stages.quality_check, obs.tracks, cfg)
    if reject:
        return obs.tracks, None, (), reject
    if cfg.compensate_head_rotation and obs.rotations is None:
        pixels, reject = frames()
        if not reject:
            obs.rotations, reject = attempt(runner, where, "camera", stages.camera, pixels, obs.tracks, clip, cfg)
        if reject:
            return obs.tracks, None, (), reject
        if observations.cacheable(obs.tracks):
            observations.save(cfg.out, key, obs)
    cam = (stages.intrinsics(clip, cfg), obs.rotations if cfg.compensate_head_rotation else None)
    frame_paths: tuple[str, ...] = ()
    if cfg.vlm != "kinematic" and cfg.vlm_frames > 0:
        frame_paths = stages.stored_vlm_frames(clip, cfg) or ()
        if not frame_paths:
            pixels, reject = frames()
            if not reject:
                frame_paths, reject = attempt(runner, where, "frames", stages.vlm_frames, pixels, clip, cfg)
            if reject:
                return obs.tracks, None, (), reject
    return obs.tracks, cam, frame_paths, None


def process_clip(clip: ClipSpec, rotation: int, cfg: BuildConfig, tracker_name: str, runner: PlainRunner) -> ClipResult:
    where = Where(clip.source_path, clip.video_id, clip.clip_id)
    tracks, cam, frame_paths, reject = _observe(
        clip, rotation, cfg, tracker_name, runner, where
    )  # decoded frames are released on return
    motion = annotated = None
    if not reject:
        motion, reject = attempt(runner, where, "motion", stages.motion, tracks, cam, clip, cfg, tracker_name)
    if not reject:
        _, reject = attempt(runner, where, "quality", stages.motion_quality, motion, cfg)
    if not reject:
        annotated, reject = attempt(runner, where, "annotate", stages.annotate, motion, clip, frame_paths)
    record = stages.clip_record(clip, cfg, tracker_name, tracks, reject, motion)
    if reject:
        return ClipResult(record=record, rejects=[reject])
    captions, vlm_input = annotated
    return ClipResult(record=record, motion=motion, captions=captions, vlm_input=vlm_input)


def run_build(cfg: BuildConfig, runner: PlainRunner, progress: Progress | None = None) -> BuildSummary:
    """Build a new version of the dataset at ``cfg.out``, redoing only what changed since the versions before
    (``hiw.flows.version``); every bad input ends up in ``rejects``, not in an exception."""
    with BuildLock(cfg.out):
        return _build(cfg, runner, progress or Progress())


def _build(cfg: BuildConfig, runner: PlainRunner, progress: Progress) -> BuildSummary:
    started = time.perf_counter()
    suffixes = TRACK_SUFFIXES if cfg.tracker == "precomputed" else VIDEO_SUFFIXES
    found = runner.run("discover", discover, cfg.videos, cfg.manifest, suffixes)
    progress.videos_found(len(found.videos) + len(found.unreadable))
    source_rejects = [Reject.of("discover", StageError("unreadable_entry", why), str(p)) for p, why in found.unreadable]
    tracker_name = stages.tracker_version(cfg)
    futures = [
        runner.submit("process-video", process_video, path, found.narrations.get(path, []), cfg, runner) for path in found.videos
    ]
    videos, first_path, probed = [], {}, 0
    for path, future in zip(found.videos, futures):  # in path order, so the first of duplicate files is always the same one
        result: VideoResult = future.result()
        if result.video is None:
            source_rejects += result.rejects
            continue
        probed += 1
        vid = result.video.video_id
        if vid in first_path:  # same bytes under another name: its clips would duplicate rows
            same = StageError("duplicate_video", f"same content as {first_path[vid]} (video_id {vid})")
            source_rejects.append(Reject.of("probe", same, str(result.path), vid))
            continue
        first_path[vid] = result.path
        key = stages.unit_key(result.video, found.narrations.get(path, []), cfg, tracker_name)
        videos.append(PlannedVideo(result.video, result.clips, result.rejects, key))
    plan = VersionPlan(cfg, videos, source_rejects, GroupStore(cfg.out))
    progress.clips_planned(plan.clips_to_process())
    with ExitStack() as stack:  # the VLM session closes however the build ends
        vlm = None
        if plan.annotation_needed():
            texts = [n.text for ns in found.narrations.values() for n in ns]
            vlm = stack.enter_context(VLMPhase(cfg, texts, runner, progress))
            for clip_input in runner.run("annotation_inputs", plan.carried_annotation_inputs):
                vlm.submit(clip_input)
        clip_futures = [
            runner.submit("process-clip", process_clip, clip, video.video.rotation, cfg, tracker_name, runner)
            for video in plan.videos_to_process()
            for clip in video.clips
        ]
        for future in runner.as_completed(clip_futures):
            result: ClipResult = future.result()  # process_clip records failures itself
            if vlm is not None and result.motion is not None:
                vlm.submit(result.vlm_input)
            with runner.times.measure("write"):
                plan.add(result)  # writes a group's shards as soon as its last clip is done
            progress.clip_done(result.record)
        if vlm is not None:
            with runner.times.measure("write"):
                plan.add_annotation(vlm.finish())
    with runner.times.measure("write"):
        outcome = plan.publish()
        write_catalog(cfg.out)
    summary = summarise(cfg, outcome, found, probed, runner, time.perf_counter() - started)
    report = {"summary": summary.model_dump(mode="json"), "config": cfg.model_dump(mode="json")}
    (cfg.out / "build.json").write_text(json.dumps(report, indent=2))
    return summary


def summarise(cfg: BuildConfig, outcome: Published, found, videos_probed: int, runner: PlainRunner, wall_s: float):
    """The build summary: counts over the published version's tables, and what this run did."""
    counts = version_counts(cfg.out, outcome.manifest)
    responses = outcome.new_responses
    return BuildSummary(
        out=str(cfg.out.resolve()),
        version=outcome.manifest.version,
        parent=outcome.manifest.parent,
        published=outcome.published,
        videos_found=len(found.videos) + len(found.unreadable),
        videos_probed=videos_probed,
        videos_processed=outcome.videos_processed,
        videos_reused=outcome.videos_reused,
        groups_written=outcome.groups_written,
        groups_reused=outcome.groups_reused,
        vlm_calls=sum(not r.cached for r in responses),
        vlm_cache_hits=sum(r.cached for r in responses),
        vlm_failed_calls=sum(r.status in ("error", "timeout") for r in responses),
        vlm_prompt_tokens=sum(r.prompt_tokens or 0 for r in responses if not r.cached),
        vlm_completion_tokens=sum(r.completion_tokens or 0 for r in responses if not r.cached),
        stage_times=runner.times.snapshot(),
        wall_s=wall_s,
        config_hash=cfg.config_hash(),
        **counts,
    )


_progress: ContextVar[Progress | None] = ContextVar("hiw_build_progress", default=None)


@flow(name="hiw-build", validate_parameters=False)
def hiw_build(config: BuildConfig) -> BuildSummary:
    """Prefect flow: build a dataset version from videos (see ``run_build``)."""
    return run_build(config, PrefectRunner(), _progress.get())


def build_flow(cfg: BuildConfig, progress: Progress | None = None) -> BuildSummary:
    """Run the build as a Prefect flow (ephemeral server unless PREFECT_API_URL points at one)."""
    # a usage error should not wait for a server to start
    check_inputs(cfg.videos, cfg.manifest, TRACK_SUFFIXES if cfg.tracker == "precomputed" else VIDEO_SUFFIXES)
    if cfg.vlm != "kinematic" and cfg.vocab is not None and not cfg.vocab.is_file():
        raise ConfigError(f"vocabulary file does not exist: {cfg.vocab}")
    token = _progress.set(progress)
    try:
        return hiw_build.with_options(task_runner=ThreadPoolTaskRunner(max_workers=cfg.workers))(cfg)
    finally:
        _progress.reset(token)


def build_plain(cfg: BuildConfig, progress: Progress | None = None) -> BuildSummary:
    """The same build without Prefect (the benchmark's baseline; also handy for debugging)."""
    runner = PlainRunner(cfg.workers)
    try:
        return run_build(cfg, runner, progress)
    finally:
        runner.close()
