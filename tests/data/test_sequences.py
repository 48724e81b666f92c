"""Tokenizer inputs: splits, sequences (procedural and from a built dataset), screening, statistics, windows."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from scipy.spatial.transform import Rotation

from conftest import fixture_file
from hiw.config import load_config
from hiw.data.sequences import MotionSequence, dataset_sequences, procedural_sequences, screen
from hiw.data.sources import DataSource
from hiw.data.splits import SPLITS, dataset_splits, split_of
from hiw.data.stats import STD_FLOOR, compute_stats
from hiw.data.windows import crop, random_batch, tiles
from hiw.errors import ConfigError
from hiw.flows.build import build_plain
from hiw.motion.features import HAND_FEATURES, hand_features, hand_params
from hiw.motion.open_skeleton import template
from hiw.schemas.ids import file_digest
from hiw.storage import load_manifest, open_catalog, read_table

FPHAB_FILES = ("S1_write_1_skeleton.txt", "S1_stir_1_skeleton.txt", "Subject_1/open_juice_bottle/3/skeleton.txt")


def test_splits_are_stable_and_80_10_10():
    ids = [f"c_{i:05d}" for i in range(5000)]
    counts = Counter(split_of(i) for i in ids)
    assert set(counts) == set(SPLITS)
    assert counts["train"] / 5000 == pytest.approx(0.8, abs=0.02)
    assert counts["test"] / 5000 == pytest.approx(0.1, abs=0.015)
    assert [split_of(i) for i in ids[:50]] == [split_of(i) for i in ids[:50]]


def test_hand_params_invert_hand_features():
    rng = np.random.default_rng(0)
    rotations = Rotation.random(20 * 16, random_state=1).as_matrix().reshape(20, 16, 3, 3).astype(np.float32)
    transl = rng.normal(size=(20, 3)).astype(np.float32)
    back_rot, back_transl = hand_params(torch.from_numpy(hand_features(rotations, transl)))
    assert np.allclose(back_rot.numpy(), rotations, atol=1e-5)
    assert np.allclose(back_transl.numpy(), transl)


def test_procedural_sequences_follow_the_split_and_carry_templates():
    everything = procedural_sequences(40, seed=3)
    test = procedural_sequences(40, seed=3, split="test")
    assert {s.clip_id for s in test} == {s.clip_id for s in everything if split_of(s.clip_id) == "test"}
    seq = everything[0]
    assert seq.features.shape == (seq.n_frames, 198) and seq.mask.all()
    assert np.allclose(seq.rest[0], template("left")) and np.allclose(seq.rest[1], template("right"))
    # the canonical origin: the mean of the two wrists in the first frame sits at zero
    assert np.allclose((seq.features[0, 96:99] + seq.features[0, 195:198]) / 2, 0, atol=1e-6)
    with pytest.raises(ConfigError, match="--split must be train, val or test"):
        procedural_sequences(5, seed=0, split="holdout")


def _variant(seq: MotionSequence, clip_id: str, features=None, mask=None) -> MotionSequence:
    features = seq.features.copy() if features is None else features
    mask = seq.mask.copy() if mask is None else mask
    return MotionSequence(clip_id, features, mask, seq.rest, seq.origin, seq.fps, seq.text)


def test_screen_counts_nan_short_and_all_masked_sequences():
    seq = procedural_sequences(1, seed=0)[0]
    nan_valid = seq.features.copy()
    nan_valid[5, 10] = np.nan
    mask_left_gap = seq.mask.copy()
    mask_left_gap[5, 0] = False
    nan_masked = seq.features.copy()
    nan_masked[5, :HAND_FEATURES] = 0.0
    nan_masked[5, 10] = np.nan  # under the mask: never read, so the sequence is kept
    sequences = [
        seq,
        _variant(seq, "nan", nan_valid),
        _variant(seq, "nan-but-masked", nan_masked, mask_left_gap),
        _variant(seq, "short", seq.features[:3], seq.mask[:3]),
        _variant(seq, "masked", mask=np.zeros_like(seq.mask)),
    ]
    screened = screen(sequences, min_frames=4)
    assert [s.clip_id for s in screened.kept] == [seq.clip_id, "nan-but-masked"]
    assert screened.skipped == Counter(nan=1, too_short=1, all_masked=1)
    assert "2 sequences kept" in screened.describe()


def test_stats_use_valid_frames_only_and_floor_the_std():
    seqs = procedural_sequences(20, seed=2)
    stats = compute_stats(seqs, "d_test")
    poisoned = []
    for seq in seqs:
        features, mask = seq.features.copy(), seq.mask.copy()
        mask[::3, 1] = False
        features[::3, HAND_FEATURES:] = 1e6  # garbage under the mask must not move the statistics
        poisoned.append(_variant(seq, seq.clip_id, features, mask))
    masked_stats = compute_stats(poisoned, "d_test")
    assert np.abs(np.array(masked_stats.mean)).max() < 10
    assert masked_stats.frames[1] < masked_stats.frames[0] == stats.frames[0]
    assert min(stats.std) >= STD_FLOOR
    everything = np.concatenate([s.features for s in seqs])
    assert np.allclose(stats.mean, everything.mean(axis=0), atol=1e-5)
    z = stats.normalise(seqs[0].features, seqs[0].mask)
    assert np.allclose(stats.denormalise(torch.from_numpy(z)).numpy(), seqs[0].features, atol=1e-4)
    assert stats.stats_id == compute_stats(seqs, "d_test").stats_id != compute_stats(seqs[1:], "d_test").stats_id


def test_windows_pad_crop_and_tile():
    seq = procedural_sequences(1, seed=4)[0]
    stats = compute_stats([seq], "d")
    feats, mask = crop(seq, seq.n_frames - 10, 144, stats)
    assert feats.shape == (144, 198) and mask[:10].all() and not mask[10:].any()
    assert not feats[10:].any()  # padding is exactly zero
    all_tiles, tile_masks = tiles(seq, stats)
    assert all_tiles.shape[0] == -(-seq.n_frames // 144) and tile_masks.sum() == seq.mask.sum()


def test_random_batch_redraws_all_masked_windows():
    seq = procedural_sequences(1, seed=5)[0]
    long = np.concatenate([seq.features] * 4)
    mask = np.zeros((len(long), 2), bool)
    mask[:20] = True  # valid only at the start: most random crops of 16 frames are all masked
    sparse = _variant(seq, "sparse", long, mask)
    stats = compute_stats([sparse], "d")
    skipped = Counter()
    feats, masks = random_batch([sparse], np.random.default_rng(0), 8, stats, window=16, skipped=skipped)
    assert feats.shape == (8, 16, 198) and masks.any(axis=(1, 2)).all()
    assert skipped["all_masked_window"] > 0
    empty = _variant(seq, "empty", mask=np.zeros_like(seq.mask))
    with pytest.raises(ValueError, match="valid frame"):
        random_batch([empty], np.random.default_rng(0), 2, stats)


# ------------------------------------------------------------------ a built dataset as the source


@pytest.fixture(scope="module")
def fphab_dataset(tmp_path_factory, fphab_dir):
    inputs = tmp_path_factory.mktemp("fphab-seq-in")
    for i, name in enumerate(FPHAB_FILES):
        shutil.copy(fixture_file(fphab_dir / name), inputs / f"seq_{i}.txt")
    out = tmp_path_factory.mktemp("fphab-seq-out")
    build_plain(load_config(videos=str(inputs), out=out, tracker="precomputed", min_both_hands_frac=0, window_s=3.0))
    return out


def test_dataset_sequences_read_the_motion_table(fphab_dataset, fphab_dir):
    sequences = dataset_sequences(fphab_dataset)
    table = read_table(fphab_dataset, "motion").to_pylist()
    assert len(sequences) == len(table) > 3
    by_id = {row["clip_id"]: row for row in table}
    for seq in sequences:
        row = by_id[seq.clip_id]
        assert seq.n_frames == row["n_frames"] and seq.fps == 15.0
        assert not seq.mask[:, 0].any() and seq.mask[:, 1].sum() == sum(row["right_valid"])  # F-PHAB: one right hand
        assert not seq.features[:, :HAND_FEATURES].any()
        assert np.allclose(seq.rest[1].reshape(-1), row["right_rest_keypoints"])
        # features hold the table's parameters: the wrist translation, shifted by the recorded origin
        valid = seq.mask[:, 1]
        transl = np.asarray(row["right_transl"], np.float32)[valid]
        assert np.allclose(seq.features[valid, 195:198] + seq.origin, transl, atol=1e-5)
    assert screen(sequences, 4).kept == sequences
    train = dataset_sequences(fphab_dataset, "train")
    with open_catalog(fphab_dataset) as con:
        splits = dataset_splits(con).to_pylist()
    in_train = {row["clip_id"] for row in splits if row["split"] == "train"}  # a clip's split is its video's
    assert train and [s.clip_id for s in train] == [s.clip_id for s in sequences if s.clip_id in in_train]
    everything = {s.clip_id: s for s in sequences}
    assert all(np.array_equal(s.features, everything[s.clip_id].features) for s in train)


def test_dataset_source_fingerprint_follows_the_version(fphab_dataset, tmp_path):
    source = DataSource.parse(str(fphab_dataset))
    assert source.kind == "dataset" and source.fingerprint() == load_manifest(fphab_dataset).content_id(("motion",))
    copy = tmp_path / "copy"
    shutil.copytree(fphab_dataset, copy)
    assert DataSource.parse(str(copy)).fingerprint() == source.fingerprint()  # content, not location
    inputs = tmp_path / "in"
    inputs.mkdir()
    for path in sorted(Path(p) for p in read_table(copy, "clips", columns=["source_path"])["source_path"].to_pylist())[:2]:
        shutil.copy(path, inputs / path.name)
    build_plain(load_config(videos=str(inputs), out=copy, tracker="precomputed", min_both_hands_frac=0, window_s=3.0))
    assert DataSource.parse(str(copy)).fingerprint() != source.fingerprint()  # a new version with other motion
    with pytest.raises(ConfigError, match="procedural"):
        DataSource.parse(str(tmp_path / "nowhere"))


def test_dataset_rows_with_nan_parameters_are_screened_out(fphab_dataset, tmp_path):
    copy = tmp_path / "nan"
    shutil.copytree(fphab_dataset, copy)
    motion = next(copy / f.path for f in load_manifest(copy).files("motion") if f.rows)
    rows = pq.read_table(motion).to_pylist()
    valid = [i for i, v in enumerate(rows[0]["right_valid"]) if v]
    rows[0]["right_hand_pose"][valid[2]][4] = float("nan")  # a corrupted value in a valid frame
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(motion)), motion)
    # bad values that a build wrote, not a damaged file: the manifest describes the file as it now is
    manifest = copy / "versions" / "v1.json"
    record = json.loads(manifest.read_text())
    for group in record["groups"]:
        for shard in group["files"].values():
            if copy / shard["path"] == motion:
                shard.update(bytes=motion.stat().st_size, sha256=file_digest(motion))
    manifest.write_text(json.dumps(record))
    screened = screen(dataset_sequences(copy), 4)
    assert screened.skipped == Counter(nan=1) and len(screened.kept) == len(rows) - 1
