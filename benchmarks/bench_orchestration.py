"""Orchestration benchmark (figures in docs/BENCHMARKS.md), side by side in one run:

- the tracker stage (decode + mediapipe + motion per clip) of a real build of the fixture videos on a Dask
  LocalCluster with 1 and with 2 worker processes: wall time of the clip phase, and the speed-up;
- Prefect's cost per task: an empty task's round trip (submit, then wait for it) and the throughput of many
  empty tasks submitted at once, on the thread pool and on a two-worker Dask cluster.

Workers are started and warmed (imports done) before timing; every build writes to a fresh root, so nothing
comes from a cache. Both use one Prefect server (PREFECT_API_URL), as a cluster does.

Run: make bench   (or .venv/bin/python benchmarks/bench_orchestration.py [--repeats N] [--tasks N] [--smoke])
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PREFECT_HOME", str(PROJECT / ".cache" / "prefect-bench"))
os.environ.setdefault("MPLCONFIGDIR", str(PROJECT / ".cache" / "matplotlib"))
os.environ.pop("PREFECT_API_URL", None)

from hiw import runtime  # noqa: E402

runtime.configure()

from prefect import flow, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.settings import PREFECT_API_URL, temporary_settings  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from hiw.config import load_config  # noqa: E402
from hiw.flows.build import build_flow  # noqa: E402
from hiw.flows.runners import ONE_CORE_ENV  # noqa: E402

VIDEOS = PROJECT.parent / "shared" / "fixtures" / "video"


@task(cache_policy=NO_CACHE, persist_result=False)
def empty() -> None:
    return None


@flow
def round_trips(n: int) -> tuple[float, float]:
    """(seconds per task submitted and waited for one at a time, seconds per task with all n in flight)."""
    start = time.perf_counter()
    for _ in range(n):
        empty.submit().result()
    serial = (time.perf_counter() - start) / n
    start = time.perf_counter()
    for future in [empty.submit() for _ in range(n)]:
        future.result()
    return serial, (time.perf_counter() - start) / n


def warm(client) -> None:
    """Import what a clip task needs on every worker, so timing starts with ready workers."""

    def imports() -> None:
        import mediapipe  # noqa: F401

        import hiw.flows.units  # noqa: F401

    client.run(imports)


CLIP_STAGES = ("decode", "track", "camera", "motion", "quality", "filter", "annotate", "frames", "load")


def tracker_phase(videos: Path, workers: int, address: str | None, window_s: float) -> tuple[float, int, float]:
    """(wall time of the clip phase, clips, seconds spent inside the clip stages summed over workers) of a build
    on the Dask cluster at ``address``, or on threads without one."""
    with tempfile.TemporaryDirectory(prefix="hiw-bench-orch-") as tmp:
        cfg = load_config(
            videos=str(videos),
            out=Path(tmp) / "out",
            window_s=window_s,
            min_clip_s=min(1.0, window_s),
            min_both_hands_frac=0.0,
            runner="dask" if address else "thread",
            dask_address=address,
            workers=workers,
        )
        summary = build_flow(cfg)
        busy = sum(t.seconds for name, t in summary.stage_times.items() if name in CLIP_STAGES)
        return summary.clip_phase_s, summary.clips_processed, busy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=100, help="empty tasks per overhead measurement")
    parser.add_argument("--window-s", type=float, default=1.0, help="clip length: more, shorter clips balance better")
    parser.add_argument("--smoke", action="store_true", help="one video in 2 s clips, 1 repeat, 5 tasks: checks the script runs")
    args = parser.parse_args()
    if args.smoke:
        args.repeats, args.tasks, args.window_s = 1, 5, 2.0
    from distributed import Client, LocalCluster
    from prefect.server.api.server import SubprocessASGIServer
    from prefect_dask import DaskTaskRunner

    server = SubprocessASGIServer()
    server.start()
    os.environ["PREFECT_API_URL"] = server.api_url  # the Dask workers inherit it
    videos = Path(tempfile.mkdtemp(prefix="hiw-bench-videos-"))
    for video in sorted(VIDEOS.glob("*.mp4"))[: 1 if args.smoke else None]:
        shutil.copy(video, videos / video.name)
    print(f"inputs: {', '.join(p.name for p in sorted(videos.iterdir()))}; {args.window_s:g} s clips; {args.repeats} repeats")
    phases: dict[int, list[float]] = {}
    busy: dict[int, list[float]] = {}
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        for workers in (1, 2):
            local = dict(threads_per_worker=1, processes=True, dashboard_address=":0", env=ONE_CORE_ENV)  # as --runner dask
            with LocalCluster(n_workers=workers, **local) as cluster:
                with Client(cluster) as client:
                    warm(client)
                    if not args.smoke:
                        tracker_phase(videos, workers, cluster.scheduler_address, args.window_s)  # warm-up: graphs load
                    for _ in range(args.repeats):
                        seconds, clips, inside = tracker_phase(videos, workers, cluster.scheduler_address, args.window_s)
                        phases.setdefault(workers, []).append(seconds)
                        busy.setdefault(workers, []).append(inside / (seconds * workers))
                    wall, used = statistics.median(phases[workers]), statistics.median(busy[workers])
                    print(
                        f"tracker stage, {workers} Dask worker(s): {wall:.2f} s for {clips} clips; workers in stages {used:.0%}"
                    )
                    if workers == 2:
                        runner = DaskTaskRunner(address=cluster.scheduler_address)
                        dask_serial, dask_bulk = round_trips.with_options(task_runner=runner)(args.tasks)
        thread_serial, thread_bulk = round_trips.with_options(task_runner=ThreadPoolTaskRunner(max_workers=2))(args.tasks)
        threads = statistics.median(tracker_phase(videos, 2, None, args.window_s)[0] for _ in range(args.repeats))
        print(f"tracker stage, 2 threads in the flow's process (--runner thread): {threads:.2f} s")
    one, two = statistics.median(phases[1]), statistics.median(phases[2])
    print(f"speed-up 1 -> 2 workers: {one / two:.2f} (target >= 1.7)")
    print("empty task, ms per task    round trip   all in flight")
    print(f"  threads (2)              {thread_serial * 1e3:10.1f}   {thread_bulk * 1e3:13.1f}")
    print(f"  Dask (2 workers)         {dask_serial * 1e3:10.1f}   {dask_bulk * 1e3:13.1f}")
    shutil.rmtree(videos, ignore_errors=True)


if __name__ == "__main__":
    main()
