"""The SHIFT tokenizer end to end on procedural motion: variants, training and resuming, tokens,
reconstructions, metrics, bad input. Small models and few steps: these test behaviour, not quality
(the reconstruction quality is measured by benchmarks/bench_shift.py)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from conftest import FPHAB, fixture_file
from hiw.config import load_config
from hiw.data.sequences import MotionSequence, procedural_sequences
from hiw.data.sources import DataSource
from hiw.data.stats import compute_stats
from hiw.data.windows import random_batch
from hiw.errors import ConfigError, HiwError
from hiw.flows.build import build_plain
from hiw.models import shift_runs as runs
from hiw.models.checkpoints import LATEST
from hiw.models.shift_checkpoint import cached_tokenizer, load_tokenizer
from hiw.models.shift_metrics import JointErrors, codebook_stats, keypoints
from hiw.models.shift_train import TrainSettings, train
from hiw.models.tokenizer import PRESETS, MotionTokenizer, TokenizerConfig, stream
from hiw.storage import open_catalog

SMALL = TokenizerConfig(codebook_size=64, code_dim=16, width=32, depth=1)
FAST = TrainSettings(steps=30, batch=16, lr=2e-3, log_every=10, checkpoint_every=10)
SOURCE = DataSource(kind="procedural", clips=60, seed=0)


def small(variant: str) -> TokenizerConfig:
    return SMALL.model_copy(update={"variant": variant})


@pytest.fixture(scope="module")
def batch():
    seqs = procedural_sequences(20, seed=0)
    stats = compute_stats(seqs, "d")
    feats, masks = random_batch(seqs, np.random.default_rng(0), 4, stats)
    return torch.from_numpy(feats), torch.from_numpy(masks)


@pytest.mark.parametrize(("variant", "width"), [("shift", 4), ("single", 1), ("lr", 2)])
def test_variants_encode_and_decode_in_stream_order(batch, variant, width):
    x, mask = batch
    model = MotionTokenizer(small(variant)).eval()
    codes = model.encode(x, mask)
    assert codes.shape == (4, 36, width) and codes.dtype == torch.int64
    assert codes.min() >= 0 and codes.max() < SMALL.codebook_size
    assert model.decode(codes).shape == x.shape
    out = model(x, mask)
    assert out.recon.shape == x.shape and torch.isfinite(out.loss)
    assert len(model.stream) == width


def test_shift_stream_interleaves_hands_and_parts(batch):
    assert stream("shift") == ["left-traj", "left-pose", "right-traj", "right-pose"]
    x, mask = batch
    model = MotionTokenizer(small("shift")).eval()
    codes = model.encode(x, mask)
    swapped = torch.cat([x[..., 99:], x[..., :99]], dim=-1)  # the hands exchanged: one shared codebook per part
    swapped_codes = model.encode(swapped, mask.flip(-1))
    assert torch.equal(codes[..., :2], swapped_codes[..., 2:]) and torch.equal(codes[..., 2:], swapped_codes[..., :2])


def test_a_missing_hand_does_not_touch_the_loss(batch):
    x, mask = batch
    one_hand = mask.clone()
    one_hand[..., 0] = False
    x = x.clone()
    x[..., :99] = 0.0
    garbage = x.clone()
    garbage[..., :99] = 1e3  # only under the mask
    model = MotionTokenizer(small("shift")).eval()
    assert model(x, one_hand).loss.item() == pytest.approx(model(garbage, one_hand).loss.item(), rel=1e-6)


def test_training_lowers_the_loss_and_resumes_exactly(tmp_path):
    seqs = procedural_sequences(60, seed=0, split="train")
    stats = compute_stats(seqs, SOURCE.fingerprint())
    data = {"source": SOURCE.model_dump(), "fingerprint": SOURCE.fingerprint()}
    log = []
    straight = train(tmp_path / "a", small("shift"), FAST, seqs, stats, data, torch.device("cpu"), log.append)
    assert log[-1]["recon"] < 0.7 * log[0]["recon"]
    assert [json.loads(line)["step"] for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()] == [10, 20, 30]
    # the same run stopped at step 20, then resumed: identical weights at step 30
    half = FAST.model_copy(update={"steps": 20})
    train(tmp_path / "b", small("shift"), half, seqs, stats, data, torch.device("cpu"))
    resumed = train(tmp_path / "b", small("shift"), FAST, seqs, stats, data, torch.device("cpu"))
    assert resumed.resumed_from == 20 and resumed.step == 30
    a = torch.load(straight.checkpoint, weights_only=False)["model"]
    b = torch.load(resumed.checkpoint, weights_only=False)["model"]
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    with pytest.raises(ConfigError, match="another model config"):
        train(tmp_path / "b", small("single"), FAST, seqs, stats, data, torch.device("cpu"))
    with pytest.raises(ConfigError, match="other data"):
        train(tmp_path / "b", small("shift"), FAST, seqs, stats, {**data, "fingerprint": "x"}, torch.device("cpu"))


def test_the_shared_loop_takes_the_steps_of_the_loop_it_replaced(tmp_path):
    """With its defaults (constant lr, no clipping, no validation, fp32) the loop is the tokenizer's old loop, step for step."""
    seqs = procedural_sequences(30, seed=0, split="train")
    stats = compute_stats(seqs, "d")
    settings = FAST.model_copy(update={"steps": 8, "log_every": 1})
    torch.manual_seed(settings.seed)  # the loop of hiw/models/train.py before the loop was shared
    model = MotionTokenizer(small("shift"))
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    rng = np.random.default_rng(settings.seed)
    model.train()
    losses = []
    for _ in range(settings.steps):
        feats, masks = random_batch(seqs, rng, settings.batch, stats, settings.window)
        out = model(torch.from_numpy(feats), torch.from_numpy(masks))
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        losses.append(out.terms["loss"])
    result = train(tmp_path, small("shift"), settings, seqs, stats, {"fingerprint": "d"}, torch.device("cpu"))
    assert [json.loads(line)["loss"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == losses
    shared = torch.load(result.checkpoint, weights_only=True)["model"]
    assert all(torch.equal(shared[k], v) for k, v in model.state_dict().items())


def test_a_checkpoint_from_before_the_shared_loop_loads_and_resumes(tmp_path):
    seqs = procedural_sequences(30, seed=0, split="train")
    stats = compute_stats(seqs, "d")
    half = FAST.model_copy(update={"steps": 10})
    train(tmp_path / "new", small("shift"), half, seqs, stats, {"fingerprint": "d"}, torch.device("cpu"))
    state = torch.load(tmp_path / "new" / "checkpoints" / LATEST, weights_only=True)
    old_settings = {
        k: state["settings"][k]
        for k in ("steps", "batch", "lr", "weight_decay", "seed", "log_every", "checkpoint_every", "window")
    }
    old = {k: state[k] for k in ("step", "model", "optimizer", "rng", "torch_rng", "model_config", "stats", "data")}
    folder = tmp_path / "old" / "checkpoints"  # the layout hiw/models/train.py wrote: no kind, no best
    folder.mkdir(parents=True)
    for name in ("step-0000010.pt", LATEST):
        torch.save(old | {"settings": old_settings}, folder / name)
    loaded = load_tokenizer(tmp_path / "old")
    assert loaded.step == 10 and loaded.path.name == "step-0000010.pt" and loaded.stats == stats
    resumed = train(tmp_path / "old", small("shift"), FAST, seqs, stats, {"fingerprint": "d"}, torch.device("cpu"))
    assert resumed.resumed_from == 10 and resumed.step == 30


def test_nan_input_stops_training_before_the_codebook_moves(tmp_path, monkeypatch):
    seqs = procedural_sequences(10, seed=0)
    stats = compute_stats(seqs, "d")
    bad = MotionSequence("bad", np.full_like(seqs[0].features, np.nan), seqs[0].mask, seqs[0].rest, seqs[0].origin)
    settings = FAST.model_copy(update={"steps": 3, "checkpoint_every": 1})
    with pytest.raises(HiwError, match="non-finite"):
        train(tmp_path, small("shift"), settings, [bad], stats, {"fingerprint": "d"}, torch.device("cpu"))
    assert not (tmp_path / "checkpoints").exists()


def test_metrics_in_joint_space():
    seq = procedural_sequences(1, seed=7)[0]
    truth = keypoints(torch.from_numpy(seq.features), torch.from_numpy(seq.rest))
    assert truth.shape == (seq.n_frames, 2, 21, 3)
    shifted = seq.features.copy()
    shifted[:, 96] += 0.01  # left wrist 10 mm along x: every left keypoint moves 10 mm
    errors = JointErrors()
    errors.add(truth, keypoints(torch.from_numpy(shifted), torch.from_numpy(seq.rest)), torch.from_numpy(seq.mask))
    assert errors.mpjpe_mm == pytest.approx(5.0, abs=1e-3)  # half of the hands are off by 10 mm
    assert errors.local_mpjpe_mm == pytest.approx(0.0, abs=1e-3)  # ... but not articulated differently
    assert errors.accel_mm == pytest.approx(0.0, abs=1e-3)  # a constant offset has no acceleration
    assert codebook_stats(np.array([1, 1, 2, 2]), 8) == (0.25, pytest.approx(2.0))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("shift-run")
    result = runs.train_run(run, SOURCE, small("shift"), FAST.model_copy(update={"val_every": 15}))
    return run, result


def test_train_run_writes_stats_checkpoint_and_run_file(trained_run):
    run, result = trained_run
    assert result.checkpoint.is_file() and result.step == 30
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in logged if "val_loss" in m] == [15, 30]  # on windows of the val split
    assert result.best.name == "best.pt" and result.best_val_loss == min(m["val_loss"] for m in logged if "val_loss" in m)
    assert load_tokenizer(result.best).step in (15, 30)
    stats = json.loads((run / "features" / "stats.json").read_text())
    assert stats["dataset"] == SOURCE.fingerprint() and len(stats["mean"]) == 198
    info = json.loads((run / "run.json").read_text())
    assert info["data"]["split"] == "train" and info["model"]["variant"] == "shift"


def test_tokenize_and_reconstruct_write_tables_with_lineage(trained_run):
    run, _ = trained_run
    tokens = runs.tokenize_run(run)
    rows = pq.read_table(tokens.path).to_pylist()
    sequences = {s.clip_id: s for s in procedural_sequences(SOURCE.clips, SOURCE.seed)}
    assert len(rows) == len(sequences) == tokens.rows
    loaded = load_tokenizer(run)
    assert cached_tokenizer(run) is cached_tokenizer(run / "checkpoints" / LATEST)  # loaded once per process
    for row in rows:
        assert row["n_steps"] == -(-row["n_frames"] // 4) and len(row["tokens"]) == 4 * row["n_steps"]
        assert row["stream"] == ["left-traj", "left-pose", "right-traj", "right-pose"]
        assert row["checkpoint_id"] == loaded.checkpoint_id and row["codebook_id"] == loaded.codebook_id
        assert row["checkpoint_path"].endswith("step-0000030.pt") and row["dataset"] == SOURCE.fingerprint()
        assert row["text"] == sequences[row["clip_id"]].text
    recon = runs.reconstruct_run(run)
    decoded = {r["clip_id"]: r for r in pq.read_table(recon.path).to_pylist()}
    assert set(decoded) == set(sequences)
    seq = sequences[rows[0]["clip_id"]]
    row = decoded[seq.clip_id]
    assert len(row["left_transl"]) == seq.n_frames and all(row["left_valid"])
    # translation is back in the clip's own frame: near the original wrist, not near the canonical origin
    original = seq.features[:, 96:99] + seq.origin
    assert np.abs(np.asarray(row["left_transl"]) - original).mean() < np.abs(original).mean()


def test_eval_reports_metrics_on_held_out_clips(trained_run):
    run, _ = trained_run
    report = runs.eval_run(run)
    held_out = procedural_sequences(SOURCE.clips, SOURCE.seed, "test")
    assert report.sequences == len(held_out) and report.data.endswith("[test]")
    assert set(report.codebooks) == {"traj", "pose"}
    assert 0 < report.codebooks["pose"].usage <= 1 and report.codebooks["pose"].perplexity >= 1
    assert 0 < report.mpjpe_mm < 500 and report.accel_mm > 0
    assert (run / "eval-test.json").is_file()


def test_tokens_of_a_dataset_root_become_catalog_views(trained_run, tmp_path):
    run, _ = trained_run
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "write.txt").write_bytes(fixture_file(FPHAB / "S1_write_1_skeleton.txt").read_bytes())
    root = tmp_path / "dataset"
    build_plain(load_config(videos=str(inputs), out=root, tracker="precomputed", min_both_hands_frac=0, window_s=3.0))
    source = DataSource.parse(str(root))
    result = runs.tokenize_run(run, source)
    assert result.path.parent == root / "tokens"
    runs.reconstruct_run(run, root)
    with open_catalog(root) as con:
        n_motion = con.execute("SELECT count(*) FROM motion").fetchone()[0]
        joined = con.execute(
            "SELECT count(*) FROM tokens t JOIN motion m USING (clip_id) JOIN reconstructions r USING (clip_id)"
        ).fetchone()[0]
        left_steps = con.execute("SELECT count(*) FROM (SELECT unnest(left_step_valid) AS v FROM tokens) WHERE v").fetchone()[0]
    assert joined == n_motion > 0
    assert left_steps == 0  # F-PHAB has no left hand: every left step is masked


def test_tokenize_skips_and_counts_bad_sequences(trained_run, monkeypatch):
    run, _ = trained_run
    good = procedural_sequences(6, seed=1)
    short = MotionSequence("short", good[0].features[:3], good[0].mask[:3], good[0].rest, good[0].origin)
    masked = MotionSequence("masked", good[1].features, np.zeros_like(good[1].mask), good[1].rest, good[1].origin)
    nan = good[2].features.copy()
    nan[4, 3] = np.nan
    poisoned = MotionSequence("nan", nan, good[2].mask, good[2].rest, good[2].origin)
    monkeypatch.setattr(DataSource, "load", lambda self, split: [*good, short, masked, poisoned])
    result = runs.tokenize_run(run)
    assert result.rows == len(good)
    assert Counter(result.skipped) == Counter(too_short=1, all_masked=1, nan=1)


def test_unknown_preset_and_bad_steps_are_usage_errors():
    with pytest.raises(ConfigError, match="preset"):
        runs.model_config("huge", "shift")
    with pytest.raises(ConfigError, match="--steps"):
        runs.train_settings("tiny", steps=0)


def test_feature_stats_are_reused_until_the_data_changes(tmp_path):
    first = runs.feature_stats(SOURCE, tmp_path)
    path = tmp_path / "features" / "stats.json"
    stamp = path.stat().st_mtime_ns
    assert runs.feature_stats(SOURCE, tmp_path) == first and path.stat().st_mtime_ns == stamp
    other = DataSource(kind="procedural", clips=SOURCE.clips + 10, seed=SOURCE.seed)
    second = runs.feature_stats(other, tmp_path)
    assert second.dataset == other.fingerprint() != first.dataset
    assert json.loads(path.read_text())["dataset"] == other.fingerprint()


def test_paper_preset_has_the_papers_sizes():
    model = MotionTokenizer(PRESETS["paper"]).eval()
    assert {name: tuple(book.shape) for name, book in model.codebooks().items()} == {"traj": (4096, 64), "pose": (4096, 64)}
    assert model.vqvaes["pose"].encoder.model[0].out_channels == 512
    x, mask = torch.zeros(1, 144, 198), torch.ones(1, 144, 2, dtype=torch.bool)
    assert model.encode(x, mask).shape == (1, 36, 4)  # 144 frames -> 36 steps x 4 tokens
