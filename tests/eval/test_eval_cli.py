"""`hiw eval train|baselines|t2m|m2t` as users run them, through the Prefect flows, on procedural clips.

The commands run in this process (each subprocess pays ~7 s of imports here); one runs as a real subprocess, to
see what a user's terminal shows.
"""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from conftest import hiw
from hiw.cli import app
from hiw.errors import ConfigError
from hiw.eval.checkpoint import load_evaluator

CLIPS = ["--clips", "400"]  # ~40 test clips: enough for pools of 32
SMALL = ["--replications", "3", "--diversity-pairs", "30", "--kid-subset-size", "32"]


def run_cli(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("eval") / "run"
    result = run_cli("eval", "train", "--data", "procedural", *CLIPS, "--steps", "120", "--val-every", "60", "--run", str(run))
    assert result.exit_code == 0, result.output
    return run, result


@pytest.fixture(scope="module")
def baselines(trained):
    run, _ = trained
    result = run_cli(
        "eval", "baselines", "--run", str(run), *CLIPS, *SMALL, "--samples", "2", "--mm-pairs", "2", "--no-bertscore"
    )
    assert result.exit_code == 0, result.output
    return run, result


def test_train_prints_progress_and_the_checkpoint_carries_its_lineage(trained):
    run, result = trained
    assert "training the evaluator (tiny) on procedural (clips=400, seed=0) for 120 steps" in result.stdout
    assert "step 120  loss" in result.stdout and "val_loss" in result.stdout and "batch_top1" in result.stdout
    loaded = load_evaluator(run)
    lineage = loaded.lineage()
    assert lineage["split"] == "train" and lineage["dataset"].startswith("procedural-v1-n400")
    assert lineage["stats_id"].startswith("s_") and lineage["checkpoint_id"].startswith("e_") and lineage["code_version"]
    assert lineage["text"]["id"] == loaded.processor.id and lineage["text"]["vectors"]["name"] == "minilm"
    assert loaded.embed_texts(["the right hand opens", "both hands wave"]).shape == (2, 128)


def test_baselines_separate_real_pairs_from_shuffled_ones(baselines):
    run, result = baselines
    lines = result.stdout.strip().splitlines()
    values = dict(line.split("=") for line in lines[-3:])
    assert list(values) == ["real_r_precision_top3", "shuffled_r_precision_top3", "retrieval_r_precision_top3"]
    real, shuffled = float(values["real_r_precision_top3"]), float(values["shuffled_r_precision_top3"])
    assert real > 0.35 and real > 3 * shuffled, values  # chance is 3/32
    assert "t2m baselines on test" in result.stdout and "m2t baselines on test" in result.stdout
    assert "multimodality" in result.stdout and "bleu4" in result.stdout
    # every report is data: JSON beside the run, rows of the evaluations table (procedural data: in the run folder)
    report = json.loads((run / "eval" / "t2m-real-test.json").read_text())
    assert report["real"]["fid"]["mean"] == pytest.approx(0.0, abs=1e-3)  # real against itself
    rows = duckdb.sql(
        f"SELECT generator, mean FROM read_parquet('{run}/evaluations/*.parquet') "
        "WHERE task = 't2m' AND metric = 'r_precision_top3' ORDER BY generator"
    ).fetchall()
    assert [g for g, _ in rows] == ["real", "retrieval", "shuffled"]
    assert dict(rows)["real"] == pytest.approx(real, abs=1e-4)


def _with_bad_rows(source, dest, edits):
    rows = pq.read_table(source).to_pylist()
    pq.write_table(pa.Table.from_pylist(rows + [dict(rows[0], **e) for e in edits], schema=pq.read_schema(source)), dest)
    return dest


def test_t2m_scores_a_generations_file_and_records_bad_rows(baselines, tmp_path):
    run, _ = baselines
    every = pq.read_table(run / "baselines" / "test" / "generations")
    real_file = tmp_path / "real.parquet"
    pq.write_table(every.filter(pa.compute.equal(every["generator"], "real")), real_file)
    frames = len(pq.read_table(real_file)["left_transl"][0])
    gen = _with_bad_rows(
        real_file,
        tmp_path / "gen.parquet",
        [
            {"generation_id": "g1", "clip_id": "c_elsewhere"},
            {"generation_id": "g2", "clip_id": None, "text": "   "},
            {"generation_id": "g3", "sample": 1, "left_transl": [[float("nan")] * 3] * frames},
        ],
    )
    result = run_cli("eval", "t2m", "--run", str(run), *CLIPS, *SMALL, "--generations", str(gen))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1].startswith("r_precision_top3=")
    assert "rejected: 1 clip_not_in_split, 1 empty_caption, 1 nan" in result.stdout
    assert "r_precision_top3" in result.stdout and "± " in result.stdout


def test_m2t_scores_captions_against_every_reference(baselines, tmp_path):
    run, _ = baselines
    folder = run / "baselines" / "test"
    result = run_cli(
        "eval", "m2t", "--run", str(run), *CLIPS, "--replications", "3", "--captions", str(folder), "--generator", "retrieval"
    )
    assert result.exit_code == 0, result.output
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("bleu4=") and 0.0 < float(last.split("=")[1]) <= 1.0
    assert "bertscore_f1" in result.stdout and "rouge_l" in result.stdout and "cider" in result.stdout
    several = run_cli("eval", "m2t", "--run", str(run), *CLIPS, "--captions", str(folder))
    assert (
        several.exit_code == 2 and "holds several generators (retrieval, shuffled); choose one with --generator" in several.output
    )


def test_a_set_too_small_for_the_settings_is_a_usage_error_in_one_line(trained):
    run, _ = trained
    result = hiw(
        "eval", "t2m", "--run", str(run), *CLIPS, "--generations", str(run / "baselines" / "test"), "--generator", "real"
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Diversity needs at least 300 clips for 300 pairs" in result.stderr and "--diversity-pairs" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


USAGE_ERRORS = [
    (["eval", "train", "--preset", "huge"], "--preset must be one of"),
    (["eval", "train", "--tagger", "nltk"], "tagger"),
    (["eval", "train", "--margin", "0"], "--margin must be > 0"),
    (["eval", "train", "--word-vectors", "/no/such/glove"], "/no/such/glove"),
    (["eval", "baselines", "--run", "/no/such/run"], "no checkpoint at /no/such/run (train one first, e.g. `hiw eval train"),
    (["eval", "baselines", "--split", "holdout"], "--split must be train, val or test"),
    (["eval", "t2m", "--generations", "/no/such.parquet"], "no generations at /no/such.parquet"),
    (["eval", "t2m", "--generations", "x", "--pool", "1"], "--pool"),
]


@pytest.mark.parametrize("args, message", USAGE_ERRORS)
def test_usage_errors_exit_2_with_one_line(args, message, trained, tmp_path):
    run, _ = trained
    if "--run" not in args:
        args = [*args, "--run", str(tmp_path / "r") if args[1] == "train" else str(run)]
    result = run_cli(*args, *CLIPS, "--steps", "1") if args[1] == "train" else run_cli(*args, *CLIPS)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_a_checkpoint_refuses_changed_text_processing(trained, tmp_path):
    run, _ = trained
    state = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    state["text"]["id"] = "tp_another"
    torch.save(state, tmp_path / "edited.pt")
    with pytest.raises(ConfigError, match="trained with other text processing"):
        load_evaluator(tmp_path / "edited.pt")
