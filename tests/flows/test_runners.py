"""The same build flow on every task runner: a real dask.distributed LocalCluster with two worker processes
(one of them killed with SIGKILL mid-run) and a process pool give the dataset the plain thread build gives."""

from __future__ import annotations

import math
import os
import signal

import pyarrow as pa
import pytest

from conftest import copy_fphab_all, fphab_config
from hiw.flows.build import build_flow, build_plain
from hiw.flows.runners import local_run
from hiw.flows.summary import Progress
from hiw.storage import read_table
from hiw.storage.verify import verify_version

pytestmark = pytest.mark.slow
FILES = ["Subject_1/pour_milk/1", "Subject_2/squeeze_paper/5", "Subject_3/pour_milk/4", "Subject_2/open_juice_bottle/1"]
RUN_FIELDS = {"created_at"}  # when a row was made, not what it is


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, fphab_dir):
    return copy_fphab_all(fphab_dir, tmp_path_factory.mktemp("runners-in"), FILES)


def test_a_process_build_without_a_server_hands_its_temporary_server_to_the_workers(inputs, reference, tmp_path):
    """Runs first, before this module's fixtures set PREFECT_API_URL: the build starts the temporary server itself
    and gives the pool's processes its URL (else each would start its own on the same database)."""
    assert "PREFECT_API_URL" not in os.environ
    cfg = fphab_config(inputs, tmp_path / "out", fit_iterations=60, runner="process")
    summary = build_flow(cfg)
    assert summary.runner == "process" and summary.clips_failed == 0
    assert_same_dataset(cfg.out, reference)
    assert "PREFECT_API_URL" not in os.environ  # handed back as it was


def test_flows_on_a_temporary_server_run_without_the_heartbeat_thread(prefect_api):
    """A sync flow run joins its heartbeat thread at the end (0-1 s each); on a temporary server nothing reads the
    heartbeats, so ``local_run`` turns them off there, and only there."""
    from prefect import flow
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    @flow(name="hiw-test-heartbeat")
    def frequency() -> int | None:
        return PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value()

    with temporary_settings(updates={PREFECT_API_URL: None}):
        with local_run():
            assert frequency() is None
        assert frequency() == 180  # Prefect's own default outside
    with temporary_settings(updates={PREFECT_API_URL: prefect_api}), local_run():
        assert frequency() == 180  # a long-lived server may watch for missing heartbeats


@pytest.fixture(scope="module")
def prefect_api():
    """One Prefect server for this process and its Dask workers, as a cluster user has (PREFECT_API_URL)."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server = SubprocessASGIServer()
    server.start()
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield server.api_url
    finally:
        os.environ.pop("PREFECT_API_URL", None)


@pytest.fixture(scope="module")
def cluster(prefect_api):
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as local,
        Client(local) as client,
    ):
        yield local, client


def table(root, name: str) -> pa.Table:
    data = read_table(root, name)
    keep = [c for c in data.column_names if c not in RUN_FIELDS]
    return data.select(keep).sort_by([(c, "ascending") for c in ("clip_id", "caption_id") if c in keep])


def same(a, b) -> bool:
    """Equal values, NaN equal to NaN (missing hands are NaN in the motion arrays)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def assert_same_dataset(root, reference) -> None:
    for name in ("clips", "motion", "captions"):
        got, want = table(root, name), table(reference, name)
        assert got.num_rows == want.num_rows > 0, name
        assert same(got.to_pylist(), want.to_pylist()), name  # same rows, same values: nothing lost, duplicated or changed
    assert len(set(table(root, "clips")["clip_id"].to_pylist())) == table(root, "clips").num_rows
    assert verify_version(root) == []


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("runners-ref") / "out"
    build_plain(fphab_config(inputs, out, fit_iterations=60))
    return out


def test_build_on_a_two_worker_dask_cluster_equals_the_plain_build(inputs, reference, cluster, tmp_path):
    from distributed import get_task_stream

    local, client = cluster
    cfg = fphab_config(inputs, tmp_path / "out", fit_iterations=60, runner="dask", dask_address=local.scheduler_address)
    with get_task_stream(client) as stream:
        summary = build_flow(cfg)
    assert summary.runner == "dask" and summary.clips_failed == 0
    assert len({t["worker"] for t in stream.data}) == 2  # both workers ran clips
    assert summary.stage_times["motion"].calls == summary.clips_processed  # stage times came back from the workers
    assert_same_dataset(cfg.out, reference)


class KillAWorker(Progress):
    """SIGKILLs a Dask worker that is running a clip once ``after`` clips are done (the nanny starts a new one)."""

    def __init__(self, client, after: int):
        self.client, self.after, self.done, self.killed = client, after, 0, []

    def clip_done(self, record) -> None:
        self.done += 1
        if self.done == self.after:
            busy = [w for w, keys in self.client.processing().items() if keys]
            pids = self.client.run(os.getpid, workers=busy[:1])
            for pid in pids.values():
                os.kill(pid, signal.SIGKILL)
                self.killed.append(pid)


def test_killing_a_dask_worker_mid_run_loses_and_duplicates_nothing(inputs, reference, cluster, tmp_path):
    local, client = cluster
    cfg = fphab_config(inputs, tmp_path / "out", fit_iterations=60, runner="dask", dask_address=local.scheduler_address)
    progress = KillAWorker(client, after=3)
    summary = build_flow(cfg, progress)
    assert progress.killed, "no worker was busy to kill"
    assert progress.done == summary.clips_processed == summary.clips_planned  # every clip reported exactly once
    assert summary.clips_failed == 0 and summary.published
    assert_same_dataset(cfg.out, reference)
    client.wait_for_workers(2, timeout=60)  # the nanny replaced the killed worker
    assert all(pid not in progress.killed for pid in client.run(os.getpid).values())
