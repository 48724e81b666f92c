"""hiw against a real `prefect server start` (tests/flows/conftest.py): what the build leaves on the
server (flow and task runs, the report artifact), tag concurrency limits acting on a build's tasks across Dask
worker processes and on its VLM requests, `hiw deploy` serving a cron deployment, and prefect.yaml registering
one for a work pool.

Real F-PHAB tracks (quick builds) and the real kitchen video; `hiw` and `prefect` run as the user runs them, in
subprocesses with PREFECT_API_URL pointing at the server."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from conftest import FPHAB_SETTINGS, copy_fphab_all, hiw
from hiw.config import BuildConfig
from hiw.flows.build import REPORT_KEY
from hiw.flows.summary import BuildSummary
from hiw.flows.work import TRACKER_TAG, VLM_TAG
from hiw.report import report_markdown
from hiw.testing.openai_server import OpenAIServer

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FILES = ["Subject_1/pour_milk/1", "Subject_2/squeeze_paper/5", "Subject_3/pour_milk/4"]
CRON = "0 3 * * *"
MODEL = "loopback-vlm"


def flags(**overrides) -> list[str]:
    """FPHAB_SETTINGS (then ``overrides``) as `hiw build` flags."""
    return [arg for k, v in {**FPHAB_SETTINGS, **overrides}.items() for arg in (f"--{k.replace('_', '-')}", str(v))]


def summary(out: Path) -> dict:
    return json.loads((out / "build.json").read_text())["summary"]


def versions(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "versions").glob("v*.json"))


def wait_for(check, timeout: float, what: str, interval: float = 0.5):
    """Call ``check`` until it returns something truthy (returned), or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def flow_runs_of(c, out: Path) -> list:
    """The hiw-build flow runs that built ``out``, oldest first."""
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    runs = c.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["hiw-build"])))
    mine = [r for r in runs if str((r.parameters.get("config") or {}).get("out")) == str(out)]
    return sorted(mine, key=lambda r: r.created)


def report_artifact(c, flow_run_id):
    """The ``hiw-build-report`` artifact of one flow run."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    of_run = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]), key=ArtifactFilterKey(any_=[REPORT_KEY]))
    found = c.read_artifacts(artifact_filter=of_run)
    assert len(found) == 1, f"{len(found)} {REPORT_KEY} artifacts for flow run {flow_run_id}"
    return found[0]


def clip_task_runs(c, flow_run_id) -> list:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, TaskRunFilter, TaskRunFilterName

    return c.read_task_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
        task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="process-clip")),
    )


@pytest.fixture
def fphab_inputs(tmp_path, fphab_dir) -> Path:
    return copy_fphab_all(fphab_dir, tmp_path / "in", FILES)


def test_dask_build_reports_to_the_server_and_a_tag_limit_serialises_its_clips(prefect_server, fphab_inputs, tmp_path):
    from prefect.client.schemas.objects import StateType

    out = tmp_path / "out"
    # 2 s windows: fewer clips to queue one by one behind the limit
    args = ["build", "--videos", str(fphab_inputs), "--out", str(out), *flags(runner="dask", workers=2, window_s=2.0)]
    with prefect_server.tag_limit(TRACKER_TAG, 1):
        first = prefect_server.hiw(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    done = summary(out)
    assert done["published"] and done["version"] == "v1" and done["runner"] == "dask"
    n = done["clips_planned"]
    assert n >= 5 and done["clips_processed"] == n  # a few clips per file, every one processed by this run

    with prefect_server.client() as c:
        [run] = flow_runs_of(c, out)
        assert run.state_type == StateType.COMPLETED

        def recorded():  # task runs reach the server's database through its event pipeline: allow it a moment
            runs = clip_task_runs(c, run.id)
            return runs if len(runs) >= n and all(r.state_type == StateType.COMPLETED for r in runs) else None

        tasks = wait_for(recorded, 30, f"{n} completed process-clip task runs")
        assert len(tasks) == n and all(TRACKER_TAG in t.tags for t in tasks)
        spans = sorted((t.start_time, t.end_time) for t in tasks)
        overlaps = [(a, b) for a, b in zip(spans, spans[1:]) if b[0] < a[1]]
        assert not overlaps, f"clips ran at once despite the {TRACKER_TAG} limit of 1: {overlaps}"
        artifact = report_artifact(c, run.id)
    assert artifact.type == "markdown" and artifact.data.startswith("### hiw build: v1, new\n")
    assert f"| clips in the version | {n} |" in artifact.data and f"| clips processed by this run | {n} |" in artifact.data
    assert artifact.data == report_markdown(BuildSummary.model_validate(done))  # the run report, as printed

    # the same build again: nothing to do, no new version, and the server's report says so
    second = prefect_server.hiw(*args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "nothing changed" in second.stdout
    assert versions(out) == ["v1.json"] and not summary(out)["published"]
    with prefect_server.client() as c:
        runs = flow_runs_of(c, out)
        assert len(runs) == 2 and runs[1].state_type == StateType.COMPLETED
        again = report_artifact(c, runs[1].id)
    assert again.data.startswith("### hiw build: nothing changed: v1 stays current, no new version\n")
    assert f"| clips in the version | {n} |" in again.data and "| clips processed by this run | 0 |" in again.data


def test_hiw_deploy_serves_a_cron_deployment_whose_runs_rebuild_incrementally(prefect_server, fphab_inputs, tmp_path):
    from prefect.client.schemas.objects import StateType
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    log = tmp_path / "deploy.log"
    # relative paths, from the folder the user is in: the deployment must hold them absolute
    argv = [str(BIN / "hiw"), "deploy", "--cron", CRON, "--name", "t", "--videos", "in", "--out", "out", *flags()]
    with prefect_server.background(argv, log, env={"PREFECT_RUNNER_POLL_FREQUENCY": "1"}, cwd=tmp_path) as proc:

        def registered():
            if proc.poll() is not None:
                pytest.fail(f"hiw deploy exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            with prefect_server.client() as c:
                try:
                    return c.read_deployment_by_name("hiw-build/t")
                except ObjectNotFound:
                    return None

        deployment = wait_for(registered, 120, "deployment hiw-build/t", interval=1)
        assert [s.schedule.cron for s in deployment.schedules] == [CRON] and all(s.active for s in deployment.schedules)
        assert "hiw" in deployment.tags
        cfg = BuildConfig.model_validate(deployment.parameters["config"])
        assert cfg.videos == str(fphab_inputs) and cfg.out == tmp_path / "out" and cfg.tracker == "precomputed"
        out = cfg.out

        with prefect_server.api():
            first = run_deployment(name="hiw-build/t", timeout=300, poll_interval=1)
        assert first.state.type == StateType.COMPLETED, f"{first.state!r}\n{log.read_text()[-3000:]}"
        built = summary(out)
        assert versions(out) == ["v1.json"] and built["published"] and built["clips_processed"] == built["clips_planned"] > 0

        with prefect_server.api():
            second = run_deployment(name="hiw-build/t", timeout=300, poll_interval=1)
        assert second.state.type == StateType.COMPLETED, f"{second.state!r}\n{log.read_text()[-3000:]}"
        rebuilt = summary(out)
        assert versions(out) == ["v1.json"] and not rebuilt["published"] and rebuilt["clips_processed"] == 0
        assert rebuilt["wall_s"] < built["wall_s"]
        with prefect_server.client() as c:
            report = report_artifact(c, second.id)
        assert "nothing changed: v1 stays current" in report.data

        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"hiw deploy still running 30 s after SIGTERM:\n{log.read_text()[-3000:]}")


def test_deploy_with_a_bad_cron_exits_2_with_one_line(tmp_path):
    result = hiw("deploy", "--cron", "not a cron", "--videos", str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert "--cron 'not a cron' is not a valid cron expression" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_prefect_yaml_registers_the_nightly_deployment_that_a_worker_runs(prefect_server, fphab_inputs, tmp_path):
    from prefect.client.schemas.objects import StateType
    from prefect.deployments import run_deployment

    pool = prefect_server.prefect("work-pool", "create", "hiw", "--type", "process")
    assert pool.returncode == 0 or "already exists" in pool.stdout + pool.stderr, pool.stdout + pool.stderr
    deployed = prefect_server.prefect("--no-prompt", "deploy", "--name", "hiw-nightly", cwd=PROJECT)
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
    with prefect_server.client() as c:
        deployment = c.read_deployment_by_name("hiw-build/hiw-nightly")
    assert [(s.schedule.cron, s.schedule.timezone) for s in deployment.schedules] == [(CRON, "UTC")]
    assert deployment.work_pool_name == "hiw" and deployment.work_queue_name == "default" and "hiw" in deployment.tags
    assert deployment.entrypoint == "hiw/flows/build.py:hiw_build"
    # no pull section: `prefect deploy` runs the flow from the folder it was run in
    assert deployment.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(PROJECT)}}]
    example = BuildConfig.model_validate(deployment.parameters["config"])
    assert example.runner == "dask" and str(example.out) == "/data/hiw-dataset"

    # a worker of the pool runs it, with parameters pointing at real input
    out = tmp_path / "out"
    config = {"videos": str(fphab_inputs), "out": str(out), **FPHAB_SETTINGS}
    argv = [str(BIN / "prefect"), "worker", "start", "--pool", "hiw"]
    log = tmp_path / "worker.log"
    with prefect_server.background(argv, log, env={"PREFECT_WORKER_QUERY_SECONDS": "1"}), prefect_server.api():
        run = run_deployment(name="hiw-build/hiw-nightly", parameters={"config": config}, timeout=180, poll_interval=1)
    assert run.state.type == StateType.COMPLETED, f"{run.state!r}\n{log.read_text()[-3000:]}"
    assert versions(out) == ["v1.json"] and summary(out)["clips_accepted"] > 0


@pytest.fixture
def kitchen_inputs(tmp_path, kitchen_video) -> Path:
    videos = tmp_path / "in"
    videos.mkdir()
    shutil.copy(kitchen_video, videos / kitchen_video.name)
    (videos / "narrations.csv").write_text(
        f"video,start_s,end_s,text\n{kitchen_video.name},0.0,5.0,#C C picks up the plate with both hands\n"
    )
    return videos


def vlm_build(prefect_server, kitchen_inputs: Path, out: Path, vlm: OpenAIServer):
    return prefect_server.hiw(
        "build", "--manifest", str(kitchen_inputs / "narrations.csv"), "--out", str(out), "--min-both-hands-frac", "0.5",
        "--vlm", "openai", "--vlm-url", vlm.url, "--vlm-model", MODEL, "--vlm-frames", "4",
    )  # fmt: skip


def annotate_rejects(out: Path) -> list[tuple]:
    con = duckdb.connect(str(out / "catalog.duckdb"), read_only=True)
    try:
        return con.sql("SELECT reason, detail FROM rejects WHERE stage = 'annotate'").fetchall()
    finally:
        con.close()


def test_a_vlm_tag_limit_caps_the_requests_in_flight(prefect_server, kitchen_inputs, tmp_path):
    """The four PCoT questions of a clip go out together; a `hiw-vlm` limit of 1 on the server sends them one by one."""
    out = tmp_path / "out"
    with prefect_server.tag_limit(VLM_TAG, 1), OpenAIServer(latency_s=0.3, model=MODEL) as vlm:
        result = vlm_build(prefect_server, kitchen_inputs, out, vlm)
        assert result.returncode == 0, result.stderr[-3000:]
        done = summary(out)
        assert not annotate_rejects(out), annotate_rejects(out)
        assert len(vlm.requests) == 6 and done["vlm_calls"] == 6  # one accepted clip: 4 PCoT, summary, closed vocabulary
        assert vlm.max_in_flight == 1


def test_without_a_vlm_limit_a_clips_questions_overlap(prefect_server, kitchen_inputs, tmp_path):
    """The control of the test above: the same build with no `hiw-vlm` limit on the server."""
    with prefect_server.client() as c:
        assert not any(limit.tag == VLM_TAG for limit in c.read_concurrency_limits(limit=100, offset=0))
    with OpenAIServer(latency_s=0.3, model=MODEL) as vlm:
        result = vlm_build(prefect_server, kitchen_inputs, tmp_path / "out", vlm)
        assert result.returncode == 0, result.stderr[-3000:]
        assert len(vlm.requests) == 6 and vlm.max_in_flight > 1
