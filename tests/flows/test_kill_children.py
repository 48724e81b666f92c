"""A killed `hiw build` or `hiw deploy` leaves no process behind (hiw.flows.lifeline).

Real processes: `hiw` runs as a subprocess on real F-PHAB tracks, the test waits until its children exist (Prefect's
temporary server, pool or Dask workers), SIGKILLs the hiw process alone, as an OOM kill or a cron timeout does, and
checks that every process it had started is gone within seconds (every other CLI build of the suite shows that the
watchdog stops nothing early). And --workers starts no more worker processes than the machine has cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from conftest import FPHAB_SETTINGS, FPHAB_TWO_GROUPS, HIW, copy_fphab_all, fphab_config
from hiw.flows import lifeline
from hiw.flows.runners import task_runner

START_S = 150  # a cold temporary server and pool on a busy 2-core machine take a while
GONE_S = 15  # the watchdog's grace is 3 s; the rest is slack for a loaded machine
SLOW = dict(FPHAB_SETTINGS, fit_iterations=200)  # a minute of fitting: the build is still running when it is killed


def build_args(inputs: Path, out: Path, settings: dict, runner: str) -> list[str]:
    """`hiw build` of ``inputs`` with ``settings`` (BuildConfig fields) as flags."""
    flags = [arg for k, v in settings.items() for arg in (f"--{k.replace('_', '-')}", str(v))]
    return ["build", "--videos", str(inputs), "--out", str(out), *flags, "--runner", runner]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """These builds' own Prefect home: killing their servers mid-write never touches the suite's database."""
    home = tmp_path_factory.mktemp("prefect-kill")
    return {**os.environ, "PREFECT_HOME": str(home), "COLUMNS": "200"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, fphab_dir) -> Path:
    return copy_fphab_all(fphab_dir, tmp_path_factory.mktemp("kill-in"), FPHAB_TWO_GROUPS)


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen([str(HIW), *args], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)


class Descendants:
    """The processes under ``pid`` as they are seen, each with its command line as last read (a dead one's cannot be)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.seen: dict[psutil.Process, str] = {}

    def look(self) -> list[str]:
        """Command lines of those alive now."""
        try:
            now = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            now = []
        for p in now:
            try:
                self.seen[p] = " ".join(p.cmdline())
            except psutil.Error:
                self.seen.setdefault(p, "")
        return [self.seen[p] for p in now]

    def alive(self) -> list[psutil.Process]:
        """Those still running (is_running also tells a reused pid apart by its start time); a zombie is dead."""
        left = []
        for p in self.seen:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    left.append(p)
            except psutil.NoSuchProcess:
                pass
        return left

    def assert_all_gone(self, what: str) -> None:
        deadline = time.monotonic() + GONE_S
        while (left := self.alive()) and time.monotonic() < deadline:
            time.sleep(0.1)
        for p in left:  # leave no stray server or worker to the rest of the suite
            p.kill()
        assert not left, f"{what}: still running after {GONE_S} s: {[self.seen[p] for p in left]}"


def is_server(cmd: str) -> bool:
    return "uvicorn" in cmd and "prefect.server" in cmd


def is_worker(cmd: str) -> bool:
    return "spawn_main" in cmd  # a pool worker or a Dask worker process (multiprocessing "spawn")


def with_workers(n: int) -> Callable[[list[str]], bool]:
    return lambda cmds: any(map(is_server, cmds)) and sum(map(is_worker, cmds)) >= n


def wait_for_children(proc: subprocess.Popen, ready: Callable[[list[str]], bool], log: Path) -> Descendants:
    """Watch ``proc``'s descendants until ``ready`` holds for the live ones; the build must still be running then."""
    children = Descendants(proc.pid)
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"hiw exited ({proc.returncode}) before its children were all up:\n{log.read_text()[-3000:]}"
        if ready(children.look()):
            return children
        time.sleep(0.1)
    pytest.fail(f"children not up after {START_S} s: {list(children.seen.values())}\n{log.read_text()[-3000:]}")


@pytest.mark.slow
@pytest.mark.parametrize(
    "runner, ready",
    [("thread", with_workers(0)), ("process", with_workers(2)), ("dask", with_workers(2))],
    ids=["thread-server", "process-server-and-pool", "dask-server-and-workers"],
)
def test_sigkill_of_a_build_kills_its_server_and_workers(runner, ready, inputs, env, tmp_path):
    log = tmp_path / "build.log"
    proc = start(build_args(inputs, tmp_path / "out", SLOW, runner), env, log)
    try:
        children = wait_for_children(proc, ready, log)
    finally:
        proc.kill()  # SIGKILL: no atexit, no finally, no signal handler runs in hiw
        proc.wait()
    children.assert_all_gone(f"after SIGKILL of hiw build --runner {runner}")


@pytest.mark.slow
def test_sigkill_of_hiw_deploy_kills_its_temporary_server(inputs, env, tmp_path):
    log = tmp_path / "deploy.log"
    proc = start(["deploy", "--cron", "0 3 * * *", *build_args(inputs, tmp_path / "out", FPHAB_SETTINGS, "thread")[1:]], env, log)
    try:
        children = wait_for_children(proc, lambda procs: any(map(is_server, procs)), log)
    finally:
        proc.kill()
        proc.wait()
    children.assert_all_gone("after SIGKILL of hiw deploy")


HOLDER = """
import subprocess, sys, time
from hiw.flows import lifeline
print(lifeline.hold(), flush=True)
subprocess.Popen(["sh", "-c", "sleep 300 & wait"])  # a child, and a grandchild
time.sleep(300)
"""


def test_the_watchdog_kills_what_carries_its_token_and_nothing_else():
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, text=True)
    token = holder.stdout.readline().strip()
    assert token, "lifeline.hold() started no watchdog"
    # another build's token that this one is a prefix of
    bystander = psutil.Popen(["sleep", "300"], env={**os.environ, lifeline.MARK: f"{token}0 other"})
    try:
        children = wait_for_children(holder, lambda cmds: sum("sleep 300" in c for c in cmds) >= 2, Path(os.devnull))
    finally:
        holder.kill()
        holder.wait()
    children.assert_all_gone("after SIGKILL of a process holding a lifeline")
    assert bystander.is_running() and bystander.status() != psutil.STATUS_ZOMBIE
    bystander.kill()
    bystander.wait()


@pytest.mark.parametrize("runner", ["process", "dask"])
def test_worker_processes_are_capped_at_the_cores_this_process_may_use(runner, tmp_path):
    cores = len(os.sched_getaffinity(0))

    def workers(requested: int) -> int:
        made = task_runner(fphab_config(tmp_path, tmp_path / "out", runner=runner, workers=requested))
        return made._max_workers if runner == "process" else made.cluster_kwargs["n_workers"]

    assert workers(cores + 14) == cores
    assert workers(1) == 1  # fewer than the cores: as asked
