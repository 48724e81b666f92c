"""`hiw clutch train|generate|caption` as users run them, through the Prefect flows, on procedural clips, and the
evaluation suite scoring what they wrote. Commands run in this process (a subprocess pays ~7 s of imports)."""

from __future__ import annotations

import json
import shutil

import duckdb
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from hiw.cli import app

CLIPS = ["--clips", "200"]  # 147 train clips, 33 test clips
SMALL = ["--batch", "8", "--val-every", "0"]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def train(stage: str, shift, run, *options: str):
    return invoke("clutch", "train", "--stage", stage, "--shift", str(shift), *CLIPS, *options, "--run", str(run))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("clutch")
    shift, run = root / "shift", root / "run"
    result = invoke("shift", "train", "--data", "procedural", *CLIPS, "--steps", "40", "--batch", "16", "--run", str(shift))
    assert result.exit_code == 0, result.output
    outputs = {}
    for stage, steps in (("pretrain", "100"), ("align", "6"), ("instruct", "6")):
        result = train(stage, shift, run, "--steps", steps, *SMALL)
        assert result.exit_code == 0, result.output
        outputs[stage] = result.stdout
    return root, shift, run, outputs


def test_three_phases_train_each_from_the_last_and_record_their_lineage(trained):
    root, shift, run, outputs = trained
    assert "training CLUTCH (tiny) phase pretrain on procedural (clips=200, seed=0) for 100 steps" in outputs["pretrain"]
    assert "step 100  loss" in outputs["pretrain"] and "lm " in outputs["pretrain"]
    assert "rec " in outputs["align"] and "keypoints" in outputs["align"] and "tau 0.10" in outputs["align"]
    info = json.loads((run / "run.json").read_text())
    assert info["vocab"]["size"] == 2 * 256 + 3 and info["shift"]["checkpoint_id"].startswith("k_")
    # the tiny preset's base went through save_pretrained and is loaded back like any --lm folder
    assert (run / "base" / "config.json").is_file() and info["base"] == str((run / "base").resolve())
    for stage, earlier in (("align", "pretrain"), ("instruct", "align")):
        started = json.loads((run / stage / "run.json").read_text())["started_from"]
        assert started == str(run / earlier / "checkpoints" / "latest.pt")


def test_a_copied_run_resumes_its_phase_from_the_latest_checkpoint(trained, tmp_path):
    _, shift, run, _ = trained
    shutil.copytree(run, tmp_path / "moved")
    result = train("pretrain", shift, tmp_path / "moved", "--steps", "102", *SMALL)
    assert result.exit_code == 0, result.output
    assert "resumed from step 100" in result.output and "(step 102)" in result.output


@pytest.fixture(scope="module")
def evaluator(trained):
    run = trained[0] / "evaluator"
    result = invoke("eval", "train", *CLIPS, "--steps", "10", "--batch", "8", "--run", str(run))
    assert result.exit_code == 0, result.output
    return run


SCORING = ["--pool", "8", "--replications", "2"]


def test_generate_writes_the_evaluation_suites_generations_and_t2m_scores_them(trained, evaluator, tmp_path):
    root, shift, run, _ = trained
    free = invoke("clutch", "generate", "--run", str(run), "--text", "the right hand waves", "--n", "3")
    assert free.exit_code == 0, free.output
    rows = pq.read_table(run / "instruct" / "generations.parquet").to_pylist()  # the default --out: next to the phase
    assert len(rows) == 3 and {r["sample"] for r in rows} == {0, 1, 2} and rows[0]["clip_id"] is None
    assert rows[0]["text"] == "the right hand waves" and rows[0]["generator"] == "clutch" and rows[0]["n_frames"] % 4 == 0
    assert all(r["n_frames"] <= 144 for r in rows)  # never longer than the 36-step window the model learned
    lineage = json.loads(rows[0]["generator_lineage"])
    assert lineage["lm"]["phase"] == "instruct" and lineage["constrained"] is True
    split = invoke("clutch", "generate", "--run", str(run), "--split", "test", "--out", str(tmp_path / "root"))
    assert split.exit_code == 0, split.output
    assert "wrote 33 motions for 33 prompt(s)" in split.stdout
    small = ["--diversity-pairs", "10", "--kid-subset-size", "8", "--mm-pairs", "1"]
    result = invoke("eval", "t2m", "--run", str(evaluator), *CLIPS, "--generations", str(tmp_path / "root"), *SCORING, *small)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1].startswith("r_precision_top3=")
    generators = duckdb.sql(f"SELECT DISTINCT generator FROM read_parquet('{evaluator}/evaluations/*.parquet')").fetchall()
    assert generators == [("clutch",)]


def test_caption_writes_generated_captions_that_m2t_scores(trained, evaluator, tmp_path):
    root, shift, run, _ = trained
    result = invoke("clutch", "caption", "--run", str(run / "pretrain"), "--split", "test", "--out", str(tmp_path / "c.parquet"))
    assert result.exit_code == 0, result.output
    assert "captioning 33 clip(s) with pretrain step 100" in result.stdout
    rows = pq.read_table(tmp_path / "c.parquet").to_pylist()
    assert f"wrote {len(rows)} captions for 33 prompt(s)" in result.stdout  # an empty caption is counted, not written
    assert rows and rows[0]["generator"] == "clutch" and json.loads(rows[0]["generator_lineage"])["lm"]["phase"] == "pretrain"
    result = invoke(
        "eval", "m2t", "--run", str(evaluator), *CLIPS, "--captions", str(tmp_path / "c.parquet"), *SCORING, "--no-bertscore"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1].startswith("bleu4=")


def test_a_run_refuses_another_shift_checkpoint(trained, tmp_path):
    root, shift, run, _ = trained
    other = tmp_path / "other-shift"
    shutil.copytree(shift, other)
    result = invoke("shift", "train", *CLIPS, "--steps", "41", "--batch", "16", "--run", str(other))
    assert result.exit_code == 0, result.output
    result = train("align", other, run, "--steps", "7", *SMALL)
    assert result.exit_code == 2 and "was built on SHIFT checkpoint" in result.output and "Traceback" not in result.output


USAGE_ERRORS = [
    (["clutch", "train", "--stage", "finetune", "--shift", "x"], "--stage must be one of pretrain, align, instruct"),
    (["clutch", "train", "--stage", "pretrain", "--shift", "/no/such/shift"], "no checkpoint at /no/such/shift"),
    (["clutch", "generate", "--out", "x.parquet"], "give --text (one or more) or --split, not both"),
    (["clutch", "generate", "--run", "/no/such/run", "--text", "hi", "--out", "x.parquet"], "no checkpoint at /no/such/run"),
    (["clutch", "caption", "--split", "holdout", "--out", "x.parquet"], "--split must be train, val or test"),
]


@pytest.mark.parametrize("args, message", USAGE_ERRORS)
def test_usage_errors_exit_2_with_one_line(args, message):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_a_later_phase_before_pretrain_and_a_bad_lm_folder_are_usage_errors(trained, tmp_path):
    _, shift, _, _ = trained
    result = train("instruct", shift, tmp_path / "new")
    assert result.exit_code == 2 and "train --stage pretrain first" in result.output
    result = train("pretrain", shift, tmp_path / "n2", "--lm", str(tmp_path))
    assert result.exit_code == 2 and "is not a Hugging Face model folder" in result.output
