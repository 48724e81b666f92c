"""The `hiw` command as users run it: a real subprocess, exit codes, one-line errors."""

import json
import os
import subprocess

import pytest

from conftest import HIW, hiw, textured_frames, write_video
from hiw.cli import build as build_command
from hiw.config import BuildConfig


def test_every_config_field_has_a_flag():
    import inspect

    params = inspect.signature(build_command).parameters
    assert set(BuildConfig.model_fields) <= set(params)
    out = hiw("build", "--help").stdout
    for flag in ("--videos", "--manifest", "--config", "--out", "--window-s", "--stride-s", "--tracker", "--vlm"):
        assert flag in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["build", "--videos", "/no/such/folder"], "input folder or file does not exist: /no/such/folder"),
        (["build", "--videos", ".", "--window-s", "-3"], "invalid config: window_s: Input should be greater than 0"),
        (["build", "--videos", ".", "--tracker", "hamer"], "invalid config: tracker"),
        (["build", "--config", "/no/such.toml"], "config file does not exist"),
        (["query", "--root", "/no/such/root", "SELECT 1"], "no dataset at /no/such/root"),
    ],
)
def test_usage_and_config_errors_exit_2_with_one_line(args, message):
    result = hiw(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_invalid_toml_is_a_config_error(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("window_s = [unclosed\n")
    result = hiw("build", "--config", str(config))
    assert result.returncode == 2 and "is not valid TOML" in result.stderr


@pytest.mark.slow
def test_build_from_toml_then_query_in_three_formats(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "empty_table.mp4", textured_frames(75, 320, 240))
    config = tmp_path / "build.toml"
    config.write_text(f'[build]\nvideos = "{videos}"\nwindow_s = 3.0\nmin_clip_s = 1.0\n')
    root = tmp_path / "out"
    result = hiw("build", "--config", str(config), "--out", str(root), "--window-s", "2.5")
    assert result.returncode == 0, result.stderr  # a build whose clips are all rejected still succeeds
    assert "clips rejected" in result.stdout and "filter/no_hands" in result.stdout
    assert "[1/1] c_" in result.stdout and "rejected (no_hands)" in result.stdout  # per-clip progress off a terminal
    report = json.loads((root / "build.json").read_text())
    assert report["config"]["window_s"] == 2.5 and report["config"]["min_clip_s"] == 1.0  # flag beats TOML

    as_json = hiw("query", "--root", str(root), "--format", "json", "SELECT stage, reason, detail FROM rejects")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == [
        {"stage": "filter", "reason": "no_hands", "detail": "no hand detected in any of 75 frames"}
    ]
    as_csv = hiw("query", "--root", str(root), "--format", "csv", "SELECT status, frames_decoded FROM clips")
    assert as_csv.stdout.splitlines() == ["status,frames_decoded", "rejected,75"]
    table = hiw("query", "--root", str(root), "SELECT count(*) AS n FROM motion")
    assert table.returncode == 0 and "1 row(s)" in table.stdout

    bad_sql = hiw("query", "--root", str(root), "SELECT nope FROM clips")
    assert bad_sql.returncode == 1 and "query failed" in bad_sql.stderr and "Traceback" not in bad_sql.stderr


def test_eval_fit_reports_fit_error_and_robustness(fphab_dir):
    files = [str(fphab_dir / "S1_write_1_skeleton.txt"), str(fphab_dir / "S1_stir_1_skeleton.txt")]
    clean = hiw("eval-fit", *files)
    assert clean.returncode == 0, clean.stderr
    lines = clean.stdout.strip().splitlines()
    assert len(lines) == 3 and all("fit_mm=" in line for line in lines[:2])
    assert lines[-1].startswith("mean_mm=") and float(lines[-1].split("=")[1]) < 5.0
    noisy = hiw("eval-fit", *files, "--noise-mm", "5", "--drop", "0.2")
    last = noisy.stdout.strip().splitlines()[-1]
    assert last.startswith("ratio=") and float(last.split("=")[1]) < 0.7


def test_eval_fit_bad_input(tmp_path):
    empty = tmp_path / "empty_skeleton.txt"
    empty.write_text("")
    result = hiw("eval-fit", str(empty), str(tmp_path / "missing.txt"))
    assert result.returncode == 1
    assert "no frames" in result.stderr and "no such file" in result.stderr and "no file could be evaluated" in result.stderr
    assert hiw("eval-fit", str(empty), "--drop", "1.5").returncode == 2


def test_help_at_80_columns_shows_every_flag_whole_and_errors_stay_on_one_line(tmp_path):
    narrow = {**os.environ, "COLUMNS": "80"}
    text = subprocess.run([str(HIW), "build", "--help"], capture_output=True, text=True, env=narrow, timeout=120).stdout
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    for name in BuildConfig.model_fields:
        assert f"--{name.replace('_', '-')}" in text, name
    long_path = tmp_path / ("a-folder-with-a-long-name-" * 4)
    error = subprocess.run(
        [str(HIW), "build", "--videos", str(long_path)], capture_output=True, text=True, env=narrow, timeout=120
    ).stderr
    assert len(error.strip().splitlines()) == 1 and str(long_path) in error


@pytest.mark.parametrize(
    "args, message",
    [
        (["verify", "--all", "--root", "/no/such/root"], "no dataset at /no/such/root"),
        (["versions", "--format", "xml", "--root", "/no/such/root"], "'xml' is not one of 'table', 'json'"),
        (["diff", "v1", "--format", "yaml", "--root", "/no/such/root"], "'yaml' is not one of 'table', 'json'"),
    ],
)
def test_a_typo_in_a_root_or_a_format_is_a_usage_error(args, message):
    result = hiw(*args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
