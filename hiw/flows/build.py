"""The build flow: videos -> probe -> plan clips -> decode -> track -> filter -> camera -> motion -> quality
-> annotate -> tables (precomputed tracks: load replaces decode/track/camera).

``run_build`` is the wiring, written once against a runner (``hiw.flows.runners``);
``build_flow`` is the Prefect flow that runs it with Prefect tasks.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from contextlib import ExitStack
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel

from hiw.annotators.pcot import ClipInput
from hiw.config import BuildConfig
from hiw.errors import ConfigError, StageError
from hiw.flows import stages
from hiw.flows.annotate import AnnotationProgress, VLMOutput, VLMPhase
from hiw.flows.runners import PlainRunner, PrefectRunner, StageTime
from hiw.schemas import Caption, ClipRecord, ClipSpec, MotionRecord, Narration, Reject, VideoSource
from hiw.storage import publish_tables, write_catalog
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
    out: str
    videos_found: int
    videos_probed: int
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


def _observe(clip: ClipSpec, rotation: int, cfg: BuildConfig, runner: PlainRunner, where: Where):
    """(tracks, camera, VLM frame files, reject): decode + track + camera from video, or load precomputed tracks."""
    if cfg.tracker == "precomputed":
        tracks, reject = attempt(runner, where, "load", load_tracks, clip)
        if tracks is not None:
            _, reject = attempt(runner, where, "filter", stages.quality_check, tracks, cfg)
        return tracks, None, (), reject
    tracks = cam = None
    frame_paths: tuple[str, ...] = ()
    frames, reject = attempt(runner, where, "decode", stages.decode, clip, cfg, rotation)
    if frames is not None:
        runner.times.count_items("decode", len(frames))
        tracks, reject = attempt(runner, where, "track", stages.track, frames, clip, cfg)
    if tracks is not None:
        runner.times.count_items("track", tracks.n_frames)
        _, reject = attempt(runner, where, "filter", stages.quality_check, tracks, cfg)
    if not reject:
        cam, reject = attempt(runner, where, "camera", stages.camera, frames, tracks, clip, cfg)
    if not reject and cfg.vlm != "kinematic" and cfg.vlm_frames > 0:
        frame_paths, reject = attempt(runner, where, "frames", stages.vlm_frames, frames, clip, cfg)
    return tracks, cam, frame_paths, reject


def process_clip(clip: ClipSpec, rotation: int, cfg: BuildConfig, tracker_name: str, runner: PlainRunner) -> ClipResult:
    where = Where(clip.source_path, clip.video_id, clip.clip_id)
    tracks, cam, frame_paths, reject = _observe(clip, rotation, cfg, runner, where)  # decoded frames are released on return
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
    """Build the dataset at ``cfg.out``; every bad input ends up in ``rejects``, not in an exception."""
    progress = progress or Progress()
    started = time.perf_counter()
    suffixes = TRACK_SUFFIXES if cfg.tracker == "precomputed" else VIDEO_SUFFIXES
    found = runner.run("discover", discover, cfg.videos, cfg.manifest, suffixes)
    progress.videos_found(len(found.videos) + len(found.unreadable))
    rejects = [Reject.of("discover", StageError("unreadable_entry", why), str(path)) for path, why in found.unreadable]
    tracker_name = stages.tracker_version(cfg)
    with ExitStack() as stack:  # the VLM session closes however the build ends
        vlm = None
        if cfg.vlm != "kinematic":
            vlm = stack.enter_context(VLMPhase(cfg, [n.text for ns in found.narrations.values() for n in ns], runner, progress))
        video_futures = [
            runner.submit("process-video", process_video, path, found.narrations.get(path, []), cfg, runner)
            for path in found.videos
        ]
        clip_futures, videos_probed, first_path = [], 0, {}
        for future in video_futures:  # in path order, so the first of duplicate files is always the same one
            video = future.result()
            if video.video is None:
                rejects += video.rejects
                continue
            videos_probed += 1
            vid = video.video.video_id
            if vid in first_path:  # same bytes under another name: its clips would duplicate rows
                same = StageError("duplicate_video", f"same content as {first_path[vid]} (video_id {vid})")
                rejects.append(Reject.of("probe", same, str(video.path), vid))
                continue
            first_path[vid] = video.path
            rejects += video.rejects
            progress.clips_planned(len(video.clips))
            clip_futures += [
                runner.submit("process-clip", process_clip, clip, video.video.rotation, cfg, tracker_name, runner)
                for clip in video.clips
            ]
        clips, motion, captions = [], [], []
        for future in runner.as_completed(clip_futures):
            result: ClipResult = future.result()  # process_clip records failures itself
            clips.append(result.record)
            rejects += result.rejects
            if result.motion is not None:
                motion.append(result.motion)
                captions += result.captions
                if vlm is not None:
                    vlm.submit(result.vlm_input)
            progress.clip_done(result.record)
        annotated = vlm.finish() if vlm is not None else VLMOutput()
        captions += annotated.captions
        rejects += annotated.rejects
        responses = annotated.responses

    with runner.times.measure("write"):
        tables = {"clips": clips, "motion": motion, "captions": captions, "responses": responses, "rejects": rejects}
        publish_tables(cfg.out, tables | {"vocabulary": annotated.vocabulary})
        write_catalog(cfg.out)
    summary = BuildSummary(
        out=str(cfg.out.resolve()),
        videos_found=len(found.videos) + len(found.unreadable),
        videos_probed=videos_probed,
        clips_planned=len(clips),
        clips_accepted=sum(c.status == "accepted" for c in clips),
        clips_rejected=sum(c.status == "rejected" for c in clips),
        captions=len(captions),
        captions_by_kind=dict(Counter(c.kind for c in captions).most_common()),
        vlm_calls=sum(not r.cached for r in responses),
        vlm_cache_hits=sum(r.cached for r in responses),
        vlm_failed_calls=sum(r.status in ("error", "timeout") for r in responses),
        vlm_prompt_tokens=sum(r.prompt_tokens or 0 for r in responses if not r.cached),
        vlm_completion_tokens=sum(r.completion_tokens or 0 for r in responses if not r.cached),
        rejects_by_reason=dict(Counter(f"{r.stage}/{r.reason}" for r in rejects).most_common()),
        frames_tracked=sum(c.frames_decoded for c in clips),
        frames_any_hand=sum(c.frames_any_hand for c in clips),
        frames_both_hands=sum(c.frames_both_hands for c in clips),
        stage_times=runner.times.snapshot(),
        wall_s=time.perf_counter() - started,
        config_hash=cfg.config_hash(),
    )
    report = {"summary": summary.model_dump(mode="json"), "config": cfg.model_dump(mode="json")}
    (cfg.out / "build.json").write_text(json.dumps(report, indent=2))
    return summary


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
