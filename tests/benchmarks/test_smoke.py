"""Every benchmark runs end to end in its smoke mode (tiny inputs, one repeat), so none can rot unnoticed.

These check that a script runs and prints its figures, not the figures' values: those are for `make bench` on a
quiet machine (docs/BENCHMARKS.md)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import FPHAB, KITCHEN, PROJECT

pytestmark = pytest.mark.slow

# script -> (fixtures it reads, lines its report must hold)
BENCHMARKS = {
    "bench_build.py": ([KITCHEN], ["| track | 1 |", "prefect fixed cost per flow run", "whole build wall: Prefect flow"]),
    "bench_motion.py": ([KITCHEN, FPHAB], ["Cost on ego_kitchen_plate.mp4", "fit error (open skeleton", "round trip, 20 random"]),
    "bench_shift.py": ([FPHAB], ["fphab: shift/single  mpjpe ratio=", "paper-size shift:"]),
    "bench_storage.py": ([], ["## writes:", "## queries:", "## rebuilds:"]),
    "bench_vlm.py": ([], ["## client throughput: loopback server"]),
    "bench_orchestration.py": ([KITCHEN], ["speed-up 1 -> 2 workers:", "Dask (2 workers)"]),
    "bench_eval.py": ([FPHAB], ["fphab: real-data R@3 =", "motion-to-text | real data", "evaluator training:"]),
    "bench_lm.py": ([], ["procedural: alignment ablation at equal steps", "stage 3 (60+4+4)", "tiny | 0.9 M |"]),
    "bench_tracking.py": ([], ["## tracking at a stride", "15 | "]),
    "bench_browse.py": ([], ["## per-clip cost of hiw browse", "after a rebuild that changed one file", "filter by verb"]),
}


@pytest.mark.parametrize("script", BENCHMARKS)
def test_benchmark_runs_in_its_smoke_mode(script):
    fixtures, expected = BENCHMARKS[script]
    if missing := [str(f) for f in fixtures if not f.exists()]:
        pytest.skip(f"shared fixtures missing: {', '.join(missing)} (see ../shared/fixtures/FIXTURES.md)")
    result = subprocess.run(
        [sys.executable, str(PROJECT / "benchmarks" / script), "--smoke"], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = result.stdout + result.stderr
    for line in expected:
        assert line in report, f"{script} --smoke printed no {line!r}:\n{report[-3000:]}"
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
