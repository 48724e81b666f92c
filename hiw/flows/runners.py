"""Where the build's units of work run: a thread pool without Prefect (PlainRunner), or Prefect tasks on a
Prefect task runner (PrefectRunner): threads, processes, or a Dask cluster.

The build's wiring (``hiw.flows.build.run_build``) is written once against this small interface, so every
runner executes identical stage code. A unit (one video, one clip) runs its stages as plain calls, times them
itself and returns the times with its result: that works the same in a thread, another process or another
machine, and keeps the Prefect server at one task run per unit.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import as_completed as futures_completed
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel

from hiw.config import BuildConfig
from hiw.errors import ConfigError
from hiw.flows import lifeline
from hiw.flows.work import VLM_TAG, Resources, Unit

# Failures worth another try: the file system or network hiccuped, or the task ran out of time. A missing or
# forbidden file, bad input (StageError) or a bug fails the same way every time.
_PERMANENT_OS_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)


def transient(err: BaseException) -> bool:
    return isinstance(err, (OSError, TimeoutError)) and not isinstance(err, _PERMANENT_OS_ERRORS)


# Prefect warns on every task run with a timeout outside the main thread (a Dask or pool worker): such a timeout
# fires once the running call returns to Python. The stages return to Python every frame, so it works for us.
logging.getLogger("prefect.task_runs").addFilter(lambda record: not str(record.msg).startswith("Timeout of"))


class StageTime(BaseModel):
    calls: int = 0
    seconds: float = 0.0
    items: int = 0  # frames for frame-based stages


class StageTimes:
    """Thread-safe per-stage totals of time spent inside the stage functions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: dict[str, StageTime] = defaultdict(StageTime)

    @contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - start)

    def add(self, stage: str, seconds: float, items: int = 0, calls: int = 1) -> None:
        with self._lock:
            t = self._totals[stage]
            t.calls += calls
            t.seconds += seconds
            t.items += items

    def count_items(self, stage: str, items: int) -> None:
        self.add(stage, 0.0, items, calls=0)

    def merge(self, times: dict[str, StageTime]) -> None:
        """Add a unit's own totals (measured wherever it ran)."""
        for stage, t in times.items():
            self.add(stage, t.seconds, t.items, t.calls)

    def snapshot(self) -> dict[str, StageTime]:
        with self._lock:
            return {k: v.model_copy() for k, v in self._totals.items()}


class PlainRunner:
    """Units on a thread pool, no orchestrator: the benchmark's baseline and a debugging aid."""

    name = "plain"
    retries = 0  # of a unit after a transient failure

    def __init__(self, workers: int):
        self.times = StageTimes()  # the driver's own stages, plus every unit's merged in
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hiw")

    def run(self, stage: str, fn: Callable[..., Any], *args: Any) -> Any:
        """A stage of the driver itself (discover, vocabulary, caption QA), timed."""
        with self.times.measure(stage):
            return fn(*args)

    def submit(self, unit: Unit, *args: Any) -> Future:
        return self._pool.submit(unit.fn, *args)

    def as_completed(self, futures: Iterable[Future]) -> Iterator[Future]:
        return futures_completed(list(futures))

    def vlm_slot(self) -> Callable[[], Any] | None:
        """A global limit each VLM request holds a slot of, or None (no orchestrator, no limit)."""
        return None

    def close(self) -> None:
        self._pool.shutdown(wait=True)


# What keeps a worker process on one core: the video decoder's and OpenCV's own thread pools.
ONE_CORE_ENV = {"HIW_DECODE_THREADS": "1", "OPENCV_FOR_THREADS_NUM": "1"}


def _transient(task, task_run, state) -> bool:
    """Prefect's retry condition: retry only failures that may not happen again (``transient``)."""
    try:
        state.result()
    except BaseException as err:  # noqa: BLE001 - the failure is what decides
        return transient(err)
    return False


class PrefectRunner(PlainRunner):
    """Each unit is a Prefect task run on ``task_runner`` (started by the caller, inside a flow run).

    Unit tasks take no Prefect cache (stage outputs are cached by content key in the dataset root), retry
    transient failures with exponential backoff, time out after ``cfg.task_timeout_s``, and carry tags that
    Prefect's concurrency limits act on.
    """

    def __init__(self, task_runner: Any, cfg: BuildConfig):
        self.times = StageTimes()
        self.task_runner, self.cfg = task_runner, cfg
        self.retries, self.name = cfg.task_retries, cfg.runner
        self._tasks: dict[Unit, Any] = {}
        self._limits: dict[str, bool] = {}
        self._lock = threading.Lock()

    def _tags(self, unit: Unit) -> list[str]:
        """The unit's tags that have a limit on the server (looked up once per tag and run): a tagged task acquires
        its tag's slot through the server even when no limit exists, about 0.15 s a clip on a busy 2-core machine."""
        for tag in unit.resources.tags:
            if tag not in self._limits:
                self._limits[tag] = limit_exists(f"tag:{tag}")
        return [tag for tag in unit.resources.tags if self._limits[tag]]

    def _task(self, unit: Unit) -> Any:
        from prefect import task
        from prefect.cache_policies import NO_CACHE
        from prefect.tasks import exponential_backoff

        with self._lock:
            if unit not in self._tasks:
                self._tasks[unit] = task(
                    unit.fn,
                    name=unit.name,
                    tags=self._tags(unit),
                    retries=self.cfg.task_retries,
                    retry_delay_seconds=exponential_backoff(self.cfg.task_retry_backoff_s),
                    retry_condition_fn=_transient,
                    timeout_seconds=self.cfg.task_timeout_s or None,
                    cache_policy=NO_CACHE,
                    persist_result=False,
                )
            return self._tasks[unit]

    def submit(self, unit: Unit, *args: Any) -> Any:
        parameters = inspect.signature(unit.fn).bind(*args).arguments
        with placement(unit.resources):
            return self.task_runner.submit(self._task(unit), parameters=dict(parameters))

    def as_completed(self, futures: Iterable[Any]) -> Iterator[Any]:
        from prefect.futures import as_completed

        return as_completed(list(futures))

    def vlm_slot(self) -> Callable[[], Any] | None:
        """Prefect's ``hiw-vlm`` tag limit, when the server has one (checked once, not per request)."""
        from prefect.concurrency.asyncio import concurrency

        name = f"tag:{VLM_TAG}"
        if not limit_exists(name):
            return None
        return lambda: concurrency(name, occupy=1, strict=False)

    def close(self) -> None:
        pass


@contextmanager
def placement(resources: Resources) -> Iterator[None]:
    """Where a submitted unit may run: on Dask, a worker with the GPUs it needs (Dask reads these annotations when
    the task runner submits); elsewhere nothing to say."""
    if not resources.gpus:
        yield
        return
    import dask

    with dask.annotate(resources={"GPU": resources.gpus}):
        yield


def limit_exists(name: str) -> bool:
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            return False
    return True


def cores() -> int:
    """CPUs this process may run on (its affinity mask, e.g. under taskset or a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def worker_processes(cfg: BuildConfig, cpus: int = 1) -> int:
    """Worker processes to start on this machine: ``--workers``, but no more than its cores hold units of ``cpus``
    cores each: more processes only add memory (about 0.6 GB each). The units are not known yet when the runner
    starts, so their count does not cap it."""
    return max(1, min(cfg.workers, cores() // max(1, cpus)))


def task_runner(cfg: BuildConfig, cpus: int = 1) -> Any:
    """The Prefect task runner ``cfg.runner`` names (not started), for units of ``cpus`` cores (``Resources``)."""
    if cfg.runner == "process":
        from prefect.task_runners import ProcessPoolTaskRunner

        return ProcessPoolTaskRunner(max_workers=worker_processes(cfg, cpus))
    if cfg.runner == "dask":
        from prefect_dask import DaskTaskRunner

        if cfg.dask_address:
            return DaskTaskRunner(address=cfg.dask_address)
        # one single-threaded worker process per slot (Dask already sets OMP/MKL/OpenBLAS threads to 1 in them)
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": worker_processes(cfg, cpus),
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": ":0",
                "env": ONE_CORE_ENV,
            }
        )
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=cfg.workers)


def check_api(cfg: BuildConfig) -> None:
    """A remote Dask cluster's workers report to the Prefect server: it must be one they can reach."""
    from prefect.settings import PREFECT_API_URL

    if cfg.dask_address and not PREFECT_API_URL.value():
        raise ConfigError(
            "--dask-address needs PREFECT_API_URL set to a Prefect server the Dask workers can reach (they report "
            "their task runs to it; a temporary server would listen on this machine's loopback only)"
        )


@contextmanager
def local_run() -> Iterator[None]:
    """Run flows started inside without Prefect's heartbeat thread when they report to a temporary server.

    A sync flow run joins that thread at its end, and the thread only looks up once a second: a fixed 0-1 s per
    flow run and subflow run (1.0 s of an empty flow's 1.1 s; docs/BENCHMARKS.md). The heartbeat only serves a
    "zombie run" automation on a long-lived server; a temporary server dies with this process, so there is nothing
    to serve. With PREFECT_API_URL set, heartbeats stay as configured (default every 180 s). Crashes and SIGTERM
    still mark the run Crashed either way: Prefect does that from the run's own process."""
    from prefect.context import SettingsContext, get_settings_context

    context = get_settings_context()
    if context.settings.api.url:
        yield
        return
    # model_copy, not temporary_settings: that re-reads every settings source (0.12 s); this copies one field
    flows = context.settings.flows.model_copy(update={"heartbeat_frequency": None})
    with SettingsContext(profile=context.profile, settings=context.settings.model_copy(update={"flows": flows})):
        yield


@contextmanager
def shared_api(cfg: BuildConfig) -> Iterator[str | None]:
    """Make sure task runs in other processes report to this build's Prefect API.

    With no PREFECT_API_URL, Prefect starts a temporary server per process; worker processes would each start
    their own on the same database. So for process and Dask runners, start it here and hand its URL to the
    workers (through the environment they inherit and the settings Prefect sends along with each task).

    The worker processes and that server die with this process (``lifeline``): ``hiw build`` and ``hiw deploy``
    hold a lifeline from their start; a run started elsewhere (a work pool's worker) takes one here."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if cfg.runner != "thread" and not cfg.dask_address:
        lifeline.hold()
    url = PREFECT_API_URL.value()
    if cfg.runner == "thread" or url:
        yield url
        return
    check_api(cfg)
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    before = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield server.api_url
    finally:
        if before is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = before
