"""The evaluation suite on a built dataset: real F-PHAB motion with narrations, every caption a reference, and the
reports as an ``evaluations`` view in the dataset's own catalog."""

from __future__ import annotations

import csv

import pytest
from typer.testing import CliRunner

from conftest import FPHAB_SETTINGS, copy_fphab
from hiw.cli import app
from hiw.config import load_config
from hiw.data.sources import DataSource
from hiw.eval.data import load_eval_set
from hiw.eval.text import load_text_processor
from hiw.flows.build import build_plain
from hiw.storage import open_catalog

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def narrated_fphab(fphab_dir, tmp_path_factory):
    """40 F-PHAB sequences, one narrated clip each ("the right hand pour milk"), built with the precomputed tracker."""
    inputs, root = tmp_path_factory.mktemp("fphab-in"), tmp_path_factory.mktemp("fphab") / "data"
    names = sorted(str(p.parent.relative_to(fphab_dir)) for p in fphab_dir.glob("Subject_*/*/*/skeleton.txt"))[::19]
    rows = []
    for name in names:
        track = copy_fphab(fphab_dir, inputs, name)
        frames = sum(1 for line in track.read_text().splitlines() if line.strip())
        rows.append(
            {
                "video": track.name,
                "start_s": 0,
                "end_s": frames / 30,
                "text": f"the right hand {name.split('/')[1].replace('_', ' ')}",
            }
        )
    rows[0]["text"] = "..."  # a narration with no word: the clip keeps its kinematic caption only
    with open(inputs / "narrations.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    build_plain(load_config(manifest=inputs / "narrations.csv", out=root, **{**FPHAB_SETTINGS, "clip_mode": "narration"}))
    return root


def test_clips_carry_every_caption_that_passed_qa(narrated_fphab):
    evals = load_eval_set(DataSource.parse(str(narrated_fphab)), None, load_text_processor(tagger="rules"))
    assert len(evals.clips) >= 35 and not evals.skipped
    unnarrated = [clip for clip in evals.clips if len(clip.captions) == 1]
    assert len(unnarrated) == 1 and unnarrated[0].captions[0].startswith("Kinematic")
    for clip in evals.clips:
        if clip.clip_id != unnarrated[0].clip_id:  # the kinematic caption and the narration
            assert sorted(c.split()[0] for c in clip.captions) == ["Kinematic", "the"], clip.captions
    assert any("pour" in clip.verbs for clip in evals.clips)


def test_train_and_score_on_a_dataset_root(narrated_fphab, tmp_path):
    run = tmp_path / "run"
    runner = CliRunner()
    trained = runner.invoke(
        app, ["eval", "train", "--data", str(narrated_fphab), "--steps", "20", "--batch", "16", "--run", str(run)]
    )
    assert trained.exit_code == 0, trained.output
    small = ["--pool", "4", "--kid-subset-size", "4", "--diversity-pairs", "4", "--replications", "2", "--no-bertscore"]
    scored = runner.invoke(app, ["eval", "baselines", "--run", str(run), *small], env={"COLUMNS": "200"})
    assert scored.exit_code == 0, scored.output
    assert scored.stdout.strip().splitlines()[-1].startswith("retrieval_r_precision_top3=")
    with open_catalog(narrated_fphab) as con:  # the reports landed beside the dataset's tables, in its catalog
        rows = con.sql("SELECT task, generator, count(*) FROM evaluations GROUP BY ALL ORDER BY ALL").fetchall()
        fingerprint = con.sql("SELECT DISTINCT dataset, dataset_version FROM evaluations").fetchall()
    assert [(t, g) for t, g, _ in rows] == [
        ("m2t", "retrieval"),
        ("m2t", "shuffled"),
        ("t2m", "real"),
        ("t2m", "retrieval"),
        ("t2m", "shuffled"),
    ]
    assert fingerprint == [(DataSource.parse(str(narrated_fphab)).fingerprint(("motion", "captions")), "v1")]
