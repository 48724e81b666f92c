"""Retries, timeouts and failing clips in a real Prefect build (threads, ephemeral server).

The failures are injected into one stage (a test double of a flaky disk or a hung call; everything else is the
real build of real F-PHAB tracks): a transient failure is retried with backoff and, when it keeps failing,
that clip alone is rejected and the next build tries it again; a bad-input failure is not retried."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from conftest import copy_fphab, fphab_config
from hiw.errors import ConfigError
from hiw.flows import stages
from hiw.flows.build import build_flow
from hiw.storage import read_table

FILES = ["Subject_1/pour_milk/1", "Subject_2/squeeze_paper/5"]


@pytest.fixture
def inputs(tmp_path, fphab_dir):
    for name in FILES:
        copy_fphab(fphab_dir, tmp_path / "in", name)
    return tmp_path / "in"


class FlakyMotion:
    """Wraps ``stages.motion``: ``fail(clip_id, attempt)`` may raise or stall before the real stage runs."""

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
            raise ValueError("bad numbers")  # a bug or bad input: the same every time, not retried

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
