"""`hiw shift train|tokenize|reconstruct|eval` as users run them, through the Prefect flows (training as a real subprocess)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conftest import hiw
from hiw.cli import app


def invoke(*args: str):
    """A command in this process (a subprocess pays ~7 s of imports here; training runs as a real one)."""
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "run"
    result = hiw(
        "shift", "train", "--data", "procedural", "--preset", "tiny", "--clips", "40", "--steps", "4", "--val-every", "2",
        "--run", str(run),
    )  # fmt: skip
    return run, result


def test_train_prints_progress_and_writes_a_checkpoint(cli_run):
    run, result = cli_run
    assert result.returncode == 0, result.stderr
    assert "training shift (tiny) on procedural (clips=40, seed=0) for 4 steps" in result.stdout
    assert "step 4/4" in result.stdout and "traj ppl" in result.stdout and "val_loss" in result.stdout
    assert f"best {run / 'checkpoints' / 'best.pt'} (val_loss" in result.stdout
    assert (run / "checkpoints" / "step-0000004.pt").is_file()
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 4
    again = invoke("shift", "train", "--preset", "tiny", "--clips", "40", "--steps", "6", "--run", str(run))
    assert again.exit_code == 0, again.output
    assert "resumed from step 4" in again.stdout and (run / "checkpoints" / "step-0000006.pt").is_file()


def test_tokenize_reconstruct_and_eval(cli_run):
    run, _ = cli_run
    tokens = invoke("shift", "tokenize", "--run", str(run))
    assert tokens.exit_code == 0, tokens.output
    assert "40 clips tokenized" in tokens.stdout
    assert pq.read_table(next((run / "tokens").glob("*.parquet"))).num_rows == 40
    recon = invoke("shift", "reconstruct", "--run", str(run))
    assert recon.exit_code == 0, recon.output
    assert pq.read_table(next((run / "reconstructions").glob("*.parquet"))).num_rows == 40
    result = invoke("shift", "eval", "--run", str(run))
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("mpjpe_mm=") and float(lines[-1].split("=")[1]) > 0
    assert any(line.startswith("codebook pose: usage=") for line in lines)


USAGE_ERRORS = [
    (["shift", "train", "--data", "/no/such/root"], "--data must be 'procedural' or a built dataset root"),
    (["shift", "train", "--preset", "huge"], "--preset must be one of"),
    (["shift", "train", "--variant", "vq"], "--variant must be shift, single or lr"),
    (["shift", "train", "--steps", "0"], "--steps must be at least 1"),
    (["shift", "train", "--schedule", "linear"], "--schedule must be one of constant, cosine"),
    (["shift", "train", "--clip-norm", "-1"], "--clip-norm must be a finite number >= 0"),
    (["shift", "train", "--device", "cuda:7"], "device 'cuda:7' is not usable here"),
    (["shift", "eval", "--run", "/no/such/run"], "no checkpoint at /no/such/run"),
    (["shift", "eval", "--split", "holdout"], "--split must be train, val or test"),
]


def _with_run(args: list[str], tmp_path) -> list[str]:
    return args if "--run" in args else [*args, "--run", str(tmp_path / "r")]


def test_a_usage_error_exits_2_with_one_line_from_the_real_command(tmp_path):
    args, message = USAGE_ERRORS[0]
    result = hiw(*_with_run(args, tmp_path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args, message", USAGE_ERRORS)
def test_usage_errors_exit_2_with_one_line(args, message, tmp_path):
    """The same command in this process (each subprocess pays ~7 s of imports here; one above runs for real)."""
    result = CliRunner().invoke(app, _with_run(args, tmp_path), env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.stderr
    assert isinstance(result.exception, SystemExit)  # typer.Exit(2), not an error escaping the command
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
