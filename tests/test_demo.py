"""The demo path: render a short synthetic clip, build it through the flow, score against ground truth."""

import pytest
from rich.console import Console

from hiw.demo.run import run_demo

pytestmark = pytest.mark.slow


def test_demo_render_track_build(tmp_path):
    console = Console(record=True, width=160)
    accuracy = run_demo(tmp_path / "demo", seconds=2.0, seed=1, console=console)
    out = console.export_text()
    assert accuracy.frames == 60
    assert accuracy.any_hand_frac >= 0.8, out
    assert accuracy.worst_wrist_error_frac() < 0.05, out
    assert accuracy.handedness_agreement >= 0.9, out
    assert "tracking vs the renderer's ground truth" in out and "clips accepted" in out
    assert (tmp_path / "demo" / "catalog.duckdb").exists()
