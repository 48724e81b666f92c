"""The build flow: videos -> probe -> plan clips -> decode -> track -> filter -> camera -> motion -> quality
-> annotate -> tables (precomputed tracks: load replaces decode/track/camera).

``run_build`` is the wiring, written once against a runner (``hiw.flows.runners``); ``hiw_build`` is the
Prefect flow that runs it with one task per video and per clip on the task runner ``cfg.runner`` names, and
publishes the run report as a Prefect artifact. Deployments (``hiw deploy``, ``prefect.yaml``) run that flow.
"""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from typing import Any

from prefect import flow

from hiw.config import BuildConfig
from hiw.errors import StageError
from hiw.flows import stages
from hiw.flows.annotate import VLMPhase
from hiw.flows.attempts import Where
from hiw.flows.checks import check_config
from hiw.flows.holds import unreadable_source
from hiw.flows.runners import PlainRunner, PrefectRunner, local_run, shared_api, task_runner
from hiw.flows.sources import source_for
from hiw.flows.summary import BuildSummary, Progress, current_progress, reporting_to, summarise
from hiw.flows.units import CLIP_UNIT, UNITS, VIDEO_UNIT, ClipResult, VideoResult, failed_clip, failure
from hiw.flows.version import PlannedVideo, VersionPlan
from hiw.schemas import Reject
from hiw.storage import write_catalog
from hiw.storage.groups import GroupStore
from hiw.storage.versions import BuildLock
from hiw.video.discover import discover

REPORT_KEY = "hiw-build-report"


def run_build(cfg: BuildConfig, runner: PlainRunner, progress: Progress | None = None) -> BuildSummary:
    """Build a new version of the dataset at ``cfg.out``, redoing only what changed since the versions before
    (``hiw.flows.version``); every bad input ends up in ``rejects``, not in an exception."""
    with BuildLock(cfg.out):
        return _build(cfg, runner, progress or Progress())


def _build(cfg: BuildConfig, runner: PlainRunner, progress: Progress) -> BuildSummary:
    started = time.perf_counter()
    source = source_for(cfg)  # video files or track files: chosen once per build
    found = runner.run("discover", discover, cfg.videos, cfg.manifest, source.suffixes)
    progress.videos_found(len(found.videos) + len(found.unreadable))
    source_rejects = [Reject.of("discover", r.error(), r.source) for r in found.rejects]  # unreadable entries, bad rows
    tracker = source.tracker_version(cfg)
    futures = [runner.submit(VIDEO_UNIT, p, found.narrations.get(p, []), cfg) for p in found.videos]
    videos, first_path, probed = [], {}, 0
    for path, future in zip(found.videos, futures):  # in path order, so the first of duplicate files is always the same one
        try:
            result: VideoResult = future.result()
        except Exception as err:  # noqa: BLE001 - its task kept failing: that video is rejected, not the build
            result = VideoResult(path=path, rejects=[failure("video", err, runner.retries, Where(str(path)))])
        runner.times.merge(result.times)
        progress.video_done()
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
        key = stages.unit_key(result.video, found.narrations.get(path, []), cfg, tracker)
        videos.append(PlannedVideo(result.video, result.clips, result.rejects, key))
    plan = VersionPlan(cfg, videos, source_rejects, GroupStore(cfg.out))
    progress.clips_planned(plan.clips_to_process())
    failed = 0
    with ExitStack() as stack:  # the VLM session closes however the build ends
        vlm = None
        if plan.annotation_needed():
            texts = [n.text for ns in found.narrations.values() for n in ns]
            vlm = stack.enter_context(VLMPhase(cfg, texts, runner, progress))
            for clip_input in runner.run("annotation_inputs", plan.carried_annotation_inputs):
                vlm.submit(clip_input)
        clip_phase = time.perf_counter()
        clips = {
            runner.submit(CLIP_UNIT, clip, video.video.rotation, cfg, tracker): clip
            for video in plan.videos_to_process()
            for clip in video.clips
        }
        for future in runner.as_completed(clips):
            try:
                result: ClipResult = future.result()  # process_clip records bad input itself
            except Exception as err:  # noqa: BLE001 - its task kept failing: that clip is rejected, not the build
                result = failed_clip(clips[future], err, runner.retries, cfg, tracker)
                failed += result.failed  # transient: the next build tries it again
            runner.times.merge(result.times)
            if vlm is not None and result.motion is not None:
                vlm.submit(result.vlm_input)
            with runner.times.measure("write"):
                plan.add(result)  # writes a group's shards as soon as its last clip is done
            progress.clip_done(result.record)
        clip_phase = time.perf_counter() - clip_phase
        if vlm is not None:
            with runner.times.measure("write"):
                plan.add_annotation(vlm.finish())
    with runner.times.measure("write"):
        # a source that cannot be read has no rows this time: publishing could drop the rows it had (holds.py)
        outcome = plan.publish([r for r in source_rejects if unreadable_source(r)])
        write_catalog(cfg.out)
    browser = None
    if cfg.browse is not None:
        from hiw.browse.site import build_site

        with runner.times.measure("browse"):
            browser = str(build_site(cfg.out, cfg.browse).out / "index.html")
    run = dict(
        runner=runner.name,
        videos_found=len(found.videos) + len(found.unreadable),
        videos_probed=probed,
        clips_processed=len(clips),
        clips_failed=failed,
        clip_phase_s=clip_phase,
    )
    summary = summarise(cfg, outcome, run, runner.times.snapshot(), time.perf_counter() - started)
    summary = summary.model_copy(update={"browser": browser})
    report = {"summary": summary.model_dump(mode="json"), "config": cfg.model_dump(mode="json")}
    (cfg.out / "build.json").write_text(json.dumps(report, indent=2))
    return summary


@flow(name="hiw-build", validate_parameters=False)
def hiw_build(config: BuildConfig | dict[str, Any]) -> BuildSummary:
    """Prefect flow: build a dataset version from videos (see ``run_build``); publishes the run report.

    ``config`` is a BuildConfig, or its JSON form as a deployment passes it."""
    from prefect.artifacts import create_markdown_artifact

    from hiw.report import report_markdown

    cfg = config if isinstance(config, BuildConfig) else BuildConfig.model_validate(config)
    with shared_api(cfg), task_runner(cfg, cpus=max(u.resources.cpus for u in UNITS)) as tasks:
        summary = run_build(cfg, PrefectRunner(tasks, cfg), current_progress())
    create_markdown_artifact(markdown=report_markdown(summary), key=REPORT_KEY, description=f"hiw build of {cfg.out}")
    return summary


def build_flow(cfg: BuildConfig, progress: Progress | None = None) -> BuildSummary:
    """Run the build as a Prefect flow (ephemeral server unless PREFECT_API_URL points at one)."""
    check_config(cfg)
    with reporting_to(progress), local_run():
        return hiw_build(cfg)


def build_plain(cfg: BuildConfig, progress: Progress | None = None) -> BuildSummary:
    """The same build without Prefect (the benchmark's baseline; also handy for debugging)."""
    runner = PlainRunner(cfg.workers)
    try:
        return run_build(cfg, runner, progress)
    finally:
        runner.close()
