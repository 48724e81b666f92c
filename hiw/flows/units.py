"""The build's units of work: one video (probe + plan) and one clip (observe -> motion -> quality -> annotate).

A unit runs anywhere a runner sends it (a thread, a process, a Dask worker), so it takes only picklable
inputs, runs its stages as plain calls, times them itself and returns the times with its result. A stage
that fails on bad input becomes a reject; a transient failure (``runners.transient``) is raised, so the task
is retried, and if it keeps failing the driver records ``failed_clip``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hiw.annotators.pcot import ClipInput
from hiw.config import BuildConfig
from hiw.errors import StageError
from hiw.flows import observations, stages
from hiw.flows.holds import TASK_FAILED
from hiw.flows.runners import StageTime, StageTimes, transient
from hiw.schemas import Caption, ClipRecord, ClipSpec, MotionRecord, Narration, Reject, VideoSource
from hiw.trackers.precomputed import load_tracks, probe_tracks
from hiw.video.probe import probe_video


@dataclass
class VideoResult:
    path: Path
    video: VideoSource | None = None
    clips: list[ClipSpec] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    times: dict[str, StageTime] = field(default_factory=dict)


@dataclass
class ClipResult:
    record: ClipRecord
    motion: MotionRecord | None = None
    captions: list[Caption] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    vlm_input: ClipInput | None = None
    times: dict[str, StageTime] = field(default_factory=dict)
    failed: bool = False  # its task kept failing: a rebuild tries it again


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
        if transient(err):
            raise  # the task is retried
        detail = f"{type(err).__name__}: {err}".splitlines()[0][:500]
        return None, Reject.of(stage, StageError("internal_error", detail), where.source_path, where.video_id, where.clip_id)


def attempt(times: StageTimes, where: Where, stage: str, fn, *args):
    """Run one stage, timed: (result, None) or (None, Reject)."""
    with times.measure(stage):
        return _attempt(where, stage, fn, *args)


def process_video(path: Path, narrations: list[Narration], cfg: BuildConfig) -> VideoResult:
    times = StageTimes()
    result = _process_video(path, narrations, cfg, times)
    result.times = times.snapshot()
    return result


def _process_video(path: Path, narrations: list[Narration], cfg: BuildConfig, times: StageTimes) -> VideoResult:
    result = VideoResult(path=path)
    probe = probe_tracks if cfg.tracker == "precomputed" else probe_video
    video, reject = attempt(times, Where(str(path)), "probe", probe, path)
    if reject:
        result.rejects.append(reject)
        return result
    result.video = video
    planned, reject = attempt(times, Where(str(path), video.video_id), "plan", stages.plan, video, narrations, cfg)
    if reject:
        result.rejects.append(reject)
    else:
        result.clips, result.rejects = planned
    return result


def _observe(clip: ClipSpec, rotation: int, cfg: BuildConfig, tracker_name: str, times: StageTimes, where: Where):
    """(tracks, camera, VLM frame files, reject): decode + track + camera from video (cached per clip in
    ``cache/observations``), or load precomputed tracks."""
    if cfg.tracker == "precomputed":
        tracks, reject = attempt(times, where, "load", load_tracks, clip)
        if tracks is not None:
            _, reject = attempt(times, where, "filter", stages.quality_check, tracks, cfg)
        return tracks, None, (), reject
    decoded: list = []

    def frames():  # decoded once, and only when a stage needs pixels
        if not decoded:
            pixels, reject = attempt(times, where, "decode", stages.decode, clip, cfg, rotation)
            if pixels is not None:
                times.count_items("decode", len(pixels))
            decoded.append((pixels, reject))
        return decoded[0]

    key = observations.observation_key(clip, cfg, tracker_name)
    obs = observations.load(cfg.out, key)
    if obs is None:
        pixels, reject = frames()
        if reject:
            return None, None, (), reject
        tracks, reject = attempt(times, where, "track", stages.track, pixels, clip, cfg)
        if reject:
            return None, None, (), reject
        times.count_items("track", tracks.n_frames)
        obs = observations.Observation(tracks)
        if observations.cacheable(tracks):
            observations.save(cfg.out, key, obs)
    else:
        times.add("observe_cached", 0.0, items=obs.tracks.n_frames)
    _, reject = attempt(times, where, "filter", stages.quality_check, obs.tracks, cfg)
    if reject:
        return obs.tracks, None, (), reject
    if cfg.compensate_head_rotation and obs.rotations is None:
        pixels, reject = frames()
        if not reject:
            obs.rotations, reject = attempt(times, where, "camera", stages.camera, pixels, obs.tracks, clip, cfg)
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
                frame_paths, reject = attempt(times, where, "frames", stages.vlm_frames, pixels, clip, cfg)
            if reject:
                return obs.tracks, None, (), reject
    return obs.tracks, cam, frame_paths, None


def process_clip(clip: ClipSpec, rotation: int, cfg: BuildConfig, tracker_name: str) -> ClipResult:
    times = StageTimes()
    result = _process_clip(clip, rotation, cfg, tracker_name, times)
    result.times = times.snapshot()
    return result


def _process_clip(clip: ClipSpec, rotation: int, cfg: BuildConfig, tracker_name: str, times: StageTimes) -> ClipResult:
    where = Where(clip.source_path, clip.video_id, clip.clip_id)
    tracks, cam, frame_paths, reject = _observe(clip, rotation, cfg, tracker_name, times, where)  # frames freed on return
    motion = annotated = None
    if not reject:
        motion, reject = attempt(times, where, "motion", stages.motion, tracks, cam, clip, cfg, tracker_name)
    if not reject:
        _, reject = attempt(times, where, "quality", stages.motion_quality, motion, cfg)
    if not reject:
        annotated, reject = attempt(times, where, "annotate", stages.annotate, motion, clip, frame_paths)
    record = stages.clip_record(clip, cfg, tracker_name, tracks, reject, motion)
    if reject:
        return ClipResult(record=record, rejects=[reject])
    captions, vlm_input = annotated
    return ClipResult(record=record, motion=motion, captions=captions, vlm_input=vlm_input)


def failure(stage: str, err: BaseException, retries: int, where: Where) -> Reject:
    """The reject of a unit whose task failed for good (after ``retries`` retries when the failure was transient)."""
    tries = 1 + retries if transient(err) else 1
    detail = f"{type(err).__name__}: {err}".splitlines()[0][:400] + f" ({tries} attempt{'s' * (tries > 1)})"
    return Reject.of(stage, StageError(TASK_FAILED, detail), where.source_path, where.video_id, where.clip_id)


def failed_clip(clip: ClipSpec, err: BaseException, retries: int, cfg: BuildConfig, tracker_name: str) -> ClipResult:
    reject = failure("clip", err, retries, Where(clip.source_path, clip.video_id, clip.clip_id))
    record = stages.clip_record(clip, cfg, tracker_name, None, reject)
    # a task fails only from a transient error or a crash of its worker or pool: worth trying again next build
    return ClipResult(record=record, rejects=[reject], failed=True)
