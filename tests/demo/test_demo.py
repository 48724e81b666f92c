"""The demo path: render a short synthetic clip, build it through the flow, score against ground truth."""

import re

import pytest
from rich.console import Console

from hiw.demo.run import run_demo
from hiw.storage import open_catalog

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
    last = out.strip().splitlines()[-1]
    assert re.fullmatch(r"wrist_3d_cm_left=[0-9.]+ wrist_3d_cm_right=[0-9.]+ world_wrist_cm=nan", last), last
    # the renderer's camera is static: the motion must say so, and the fit must explain the tracked hands
    with open_catalog(tmp_path / "demo") as con:
        rows = con.execute("SELECT coordinate_frame, head_rotation_deg, fit_error_mm, swapped_frames FROM motion").fetchall()
    assert rows, out
    for frame, head_deg, fit_mm, swapped in rows:
        assert frame == "camera_rotation_compensated" and head_deg < 2.0 and fit_mm < 15.0 and swapped == 0, rows
