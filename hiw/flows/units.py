"""The build's units of work: one video (probe + plan) and one clip (observe -> motion -> quality -> captions).

A unit runs anywhere a runner sends it (a thread, a process, a Dask worker), so it takes only picklable
inputs, runs its steps as plain calls (``attempts.Steps``), times them itself and returns the times with its
result. A step that fails on bad input becomes a reject; a transient failure (``runners.transient``) is raised,
so the task is retried, and if it keeps failing the driver records ``failed_clip``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hiw.annotators.pcot import ClipInput
from hiw.config import BuildConfig
from hiw.errors import StageError
from hiw.flows import stages
from hiw.flows.attempts import Steps, Where
from hiw.flows.holds import TASK_FAILED
from hiw.flows.runners import StageTime, StageTimes, transient
from hiw.flows.sources import source_for
from hiw.flows.work import TRACKER_TAG, Resources, Unit
from hiw.schemas import Caption, ClipRecord, ClipSpec, MotionRecord, Narration, Reject, VideoSource


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


def process_video(path: Path, narrations: list[Narration], cfg: BuildConfig) -> VideoResult:
    steps = Steps(Where(str(path)), StageTimes())
    result = VideoResult(path=path)
    video, reject = steps.run("probe", source_for(cfg).probe, path)
    if video is not None:
        result.video = video
        steps = Steps(Where(str(path), video.video_id), steps.times)
        planned, reject = steps.run("plan", stages.plan, video, narrations, cfg)
        if planned is not None:
            result.clips, result.rejects = planned
    result.rejects += [reject] if reject else []
    result.times = steps.times.snapshot()
    return result


def process_clip(clip: ClipSpec, rotation: int, cfg: BuildConfig, tracker: str) -> ClipResult:
    """observe (the source's steps) -> motion -> quality -> captions; the clip's frames are freed once observed."""
    steps = Steps(Where(clip.source_path, clip.video_id, clip.clip_id), StageTimes())
    seen = source_for(cfg).observe(clip, rotation, cfg, tracker, steps)
    motion = captioned = None
    reject = seen.reject
    if not reject:
        motion, reject = steps.run("motion", stages.motion, seen.tracks, seen.camera, clip, cfg, tracker)
    if not reject:
        _, reject = steps.run("quality", stages.motion_quality, motion, cfg)
    if not reject:
        captioned, reject = steps.run("captions", stages.annotate, motion, clip, seen.frame_paths)
    record = stages.clip_record(clip, cfg, tracker, seen.tracks, reject, motion)
    if reject:
        return ClipResult(record=record, rejects=[reject], times=steps.times.snapshot())
    captions, vlm_input = captioned
    return ClipResult(record=record, motion=motion, captions=captions, vlm_input=vlm_input, times=steps.times.snapshot())


def failure(unit: str, err: BaseException, retries: int, where: Where) -> Reject:
    """The reject of a unit whose task failed for good (after ``retries`` retries when the failure was transient)."""
    tries = 1 + retries if transient(err) else 1
    detail = f"{type(err).__name__}: {err}".splitlines()[0][:400] + f" ({tries} attempt{'s' * (tries > 1)})"
    return where.reject(unit, StageError(TASK_FAILED, detail))


def failed_clip(clip: ClipSpec, err: BaseException, retries: int, cfg: BuildConfig, tracker: str) -> ClipResult:
    reject = failure("clip", err, retries, Where(clip.source_path, clip.video_id, clip.clip_id))
    record = stages.clip_record(clip, cfg, tracker, None, reject)
    # a task fails only from a transient error or a crash of its worker or pool: worth trying again next build
    return ClipResult(record=record, rejects=[reject], failed=True)


# The build's units: a video is probed and planned on one core; a clip is decoded and tracked on one core, and
# `prefect concurrency-limit create hiw-tracker N` caps the clips tracked at once across every run.
VIDEO_UNIT = Unit("process-video", process_video, Resources(cpus=1))
CLIP_UNIT = Unit("process-clip", process_clip, Resources(cpus=1, tags=(TRACKER_TAG,)))
UNITS = (VIDEO_UNIT, CLIP_UNIT)
