"""How stages run: inline and in a thread pool (PlainRunner), or as Prefect tasks (PrefectRunner).

The build's wiring (``hiw.flows.build.run_build``) is written once against this small interface,
so the Prefect flow and the no-Prefect baseline of the benchmark execute identical stage code.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import as_completed as futures_completed
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel


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

    def snapshot(self) -> dict[str, StageTime]:
        with self._lock:
            return {k: v.model_copy() for k, v in self._totals.items()}


class PlainRunner:
    """Stages as plain calls; parallel units on a thread pool. The no-orchestrator baseline."""

    def __init__(self, workers: int):
        self.times = StageTimes()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hiw")

    def run(self, stage: str, fn: Callable[..., Any], *args: Any) -> Any:
        with self.times.measure(stage):
            return fn(*args)

    def submit(self, name: str, fn: Callable[..., Any], *args: Any) -> Future:
        return self._pool.submit(fn, *args)

    def as_completed(self, futures: Iterable[Future]) -> Iterator[Future]:
        return futures_completed(list(futures))

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class PrefectRunner(PlainRunner):
    """Each stage call is a Prefect task run; parallel units go to the flow's task runner.

    Must be used inside a running flow. Tasks take no cache (inputs are frames and tracks; stage
    caching by content key is the storage layer's job) and report their own time.
    """

    def __init__(self) -> None:
        self.times = StageTimes()
        self._tasks: dict[tuple[str, Callable], Any] = {}
        self._lock = threading.Lock()

    def _task(self, name: str, fn: Callable[..., Any], timed: bool) -> Any:
        from prefect import task
        from prefect.cache_policies import NO_CACHE

        with self._lock:
            key = (name, fn)
            if key not in self._tasks:
                body = (lambda *a: PlainRunner.run(self, name, fn, *a)) if timed else fn
                self._tasks[key] = task(body, name=name, cache_policy=NO_CACHE, persist_result=False)
            return self._tasks[key]

    def run(self, stage: str, fn: Callable[..., Any], *args: Any) -> Any:
        return self._task(stage, fn, timed=True)(*args)

    def submit(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        return self._task(name, fn, timed=False).submit(*args)

    def as_completed(self, futures: Iterable[Any]) -> Iterator[Any]:
        from prefect.futures import as_completed

        return as_completed(list(futures))

    def close(self) -> None:
        pass
