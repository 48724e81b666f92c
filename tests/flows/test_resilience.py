"""Retries, timeouts and failing clips in a real Prefect build (threads, ephemeral server).

The failures are injected into one stage (a test double of a flaky disk or a hung call; everything else is the
real build of real F-PHAB tracks):
- a transient failure is retried with backoff; when it keeps failing, that clip alone is rejected, and the next
  build processes (and captions) it again;
- a failure that would repeat (bad input, a missing file) is not retried;
- a video that cannot be read holds the new version back rather than dropping its rows."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from conftest import copy_fphab_all, fphab_config
from hiw.errors import ConfigError
from hiw.flows import stages
from hiw.flows.build import build_flow
from hiw.storage import read_table
from hiw.trackers import precomputed

FILES = ["Subject_1/pour_milk/1", "Subject_2/squeeze_paper/5"]


@pytest.fixture
def inputs(tmp_path, fphab_dir):
    return copy_fphab_all(fphab_dir, tmp_path / "in", FILES)


class FlakyMotion:
    """Wraps ``stages.motion``: ``fail(clip_id, attempt)`` may raise or stall before the real stage runs."""

    # the build calls stages.motion(tracks, camera, clip, cfg, tracker_name)

    def __init__(self, fail):
        self.fail, self.calls, self._lock = fail, Counter(), threading.Lock()
        self.real = stages.motion

    def __call__(self, tracks, cam, clip, cfg, tracker_name):
        with self._lock:
            self.calls[clip.clip_id] += 1
            attempt = self.calls[clip.clip_id]
        self.fail(clip.clip_id, attempt)
        return self.real(tracks, cam, clip, cfg, tracker_name)


def clips_by_id(root, version=None) -> dict[str, dict]:
    rows = read_table(root, "clips", version).to_pylist()
    assert len(rows) == len({r["clip_id"] for r in rows})  # no duplicates
    return {r["clip_id"]: r for r in rows}


def test_a_clip_that_keeps_failing_is_rejected_and_retried_by_the_next_build(inputs, tmp_path, monkeypatch):
    cfg = fphab_config(inputs, tmp_path / "out", task_retries=2, task_retry_backoff_s=0.05)
    build_flow(fphab_config(inputs, tmp_path / "ref"))
    reference = clips_by_id(tmp_path / "ref")
    first_clip = {r["video_id"]: c for c, r in sorted(reference.items(), reverse=True)}
    flaky, broken = sorted(first_clip.values())  # one clip of each video

    def fail(clip_id, attempt):
        if clip_id == flaky:
            raise OSError(f"disk hiccup on attempt {attempt}")  # transient: retried, and fails every time
        if clip_id == broken:
            raise FileNotFoundError("gone")  # a missing file stays missing: not retried

    motion = FlakyMotion(fail)
    monkeypatch.setattr(stages, "motion", motion)
    summary = build_flow(cfg)
    assert motion.calls[flaky] == 3 and motion.calls[broken] == 1  # 1 + task_retries, and 1
    assert summary.published and summary.clips_failed == 1
    clips = clips_by_id(cfg.out)
    assert set(clips) == set(reference)
    assert clips[flaky]["status"] == "rejected" and clips[flaky]["reject_reason"] == "task_failed"
    assert clips[broken]["reject_reason"] == "internal_error"
    assert all(clips[c]["status"] == reference[c]["status"] for c in clips if c not in (flaky, broken))
    rejects = {r["clip_id"]: r for r in read_table(cfg.out, "rejects").to_pylist() if r["clip_id"]}
    assert rejects[flaky]["stage"] == "clip" and "OSError: disk hiccup" in rejects[flaky]["detail"]
    assert "(3 attempts)" in rejects[flaky]["detail"]
    assert summary.rejects_by_reason["clip/task_failed"] == 1

    monkeypatch.setattr(stages, "motion", motion.real)  # the disk is fine again
    again = build_flow(cfg)
    assert again.published and again.version == "v2" and again.clips_failed == 0
    assert again.videos_processed == 1  # only the video of the failed clip; the bad-input reject stays as it was
    clips = clips_by_id(cfg.out)
    assert clips[flaky]["status"] == reference[flaky]["status"]
    assert clips[broken]["reject_reason"] == "internal_error"
    assert build_flow(cfg).published is False  # and now nothing is left to retry


def test_a_task_over_its_timeout_is_retried(inputs, tmp_path, monkeypatch):
    cfg = fphab_config(inputs, tmp_path / "out", task_timeout_s=1.0, task_retry_backoff_s=0.05)
    stalled = []

    def stall_once(clip_id, attempt):
        if not stalled and attempt == 1:
            stalled.append(clip_id)
            for _ in range(100):  # 10 s of a hung call, returning to Python so the timeout can fire
                time.sleep(0.1)

    motion = FlakyMotion(stall_once)
    monkeypatch.setattr(stages, "motion", motion)
    started = time.perf_counter()
    summary = build_flow(cfg)
    assert time.perf_counter() - started < 60
    assert motion.calls[stalled[0]] == 2  # timed out once, then done
    assert summary.clips_failed == 0 and summary.clips_rejected == 0
    assert clips_by_id(cfg.out)[stalled[0]]["status"] == "accepted"


def test_a_remote_dask_cluster_needs_a_prefect_server(inputs, tmp_path):
    cfg = fphab_config(inputs, tmp_path / "out", runner="dask", dask_address="tcp://127.0.0.1:1")
    with pytest.raises(ConfigError, match="PREFECT_API_URL"):
        build_flow(cfg)
    assert not (tmp_path / "out" / "versions").exists()


def test_dask_address_needs_the_dask_runner(inputs, tmp_path):
    with pytest.raises(ConfigError, match="--dask-address needs --runner dask"):
        fphab_config(inputs, tmp_path / "out", dask_address="tcp://127.0.0.1:8786")


def test_a_video_that_cannot_be_read_holds_the_new_version_back(inputs, tmp_path, monkeypatch):
    cfg = fphab_config(inputs, tmp_path / "out", task_retry_backoff_s=0.05)
    first = build_flow(cfg)
    changed = fphab_config(inputs, cfg.out, savgol_window_s=0.5, task_retry_backoff_s=0.05)  # a change to publish
    real, calls = precomputed.probe_tracks, Counter()

    def flaky_probe(path):
        calls[path.name] += 1
        if path.name == sorted(p.name for p in inputs.iterdir())[0]:
            raise TimeoutError("share did not answer")
        return real(path)

    monkeypatch.setattr(precomputed, "probe_tracks", flaky_probe)  # what TrackFiles.probe calls
    held = build_flow(changed)
    assert max(calls.values()) == 3  # retried, then given up
    assert not held.published and held.version == "v1" and "1 video(s) could not be read" in held.held
    assert held.rejects_by_reason == first.rejects_by_reason  # v1 as it was: nothing of the unread video lost
    monkeypatch.setattr(precomputed, "probe_tracks", real)
    again = build_flow(changed)
    assert again.published and again.version == "v2" and again.clips_planned == first.clips_planned


def test_a_retried_clip_gets_its_vlm_captions_in_the_next_build(inputs, tmp_path, monkeypatch):
    from hiw.testing.openai_server import OpenAIServer

    with OpenAIServer(model="loopback-vlm") as server:
        cfg = fphab_config(
            inputs, tmp_path / "out", vlm="openai", vlm_url=server.url, vlm_model="loopback-vlm", task_retry_backoff_s=0.05
        )
        flaky = None

        def fail(clip_id, attempt):
            nonlocal flaky
            flaky = flaky or clip_id
            if clip_id == flaky:
                raise OSError("disk hiccup")

        motion = FlakyMotion(fail)
        monkeypatch.setattr(stages, "motion", motion)
        first = build_flow(cfg)
        assert first.clips_failed == 1
        kinds = Counter(r["clip_id"] for r in read_table(cfg.out, "captions").to_pylist())
        assert flaky not in kinds and len(kinds) == first.clips_accepted

        monkeypatch.setattr(stages, "motion", motion.real)
        again = build_flow(cfg)
    assert again.published and again.clips_failed == 0
    captions = read_table(cfg.out, "captions").to_pylist()
    by_clip = {c: sorted(r["kind"] for r in captions if r["clip_id"] == c) for c in kinds}
    retried = sorted(r["kind"] for r in captions if r["clip_id"] == flaky)
    assert retried and all(kinds_of_clip == retried for kinds_of_clip in by_clip.values())  # annotated like the others
    assert again.vlm_cache_hits > 0  # the others' calls came from the response cache
