"""Trainer exports of a real built dataset: hiw's npy layout, the HumanML3D layout read the way its loaders do,
statistics from the train split only, and a folder that is published whole or not at all."""

from __future__ import annotations

import csv
import json
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from conftest import fixture_file
from hiw.annotators.pos import make_tagger
from hiw.config import load_config
from hiw.data.sequences import dataset_sequences
from hiw.data.splits import SPLITS, dataset_splits
from hiw.data.stats import STD_FLOOR
from hiw.errors import ConfigError
from hiw.export.humanml3d import export_humanml3d, text_lines
from hiw.export.npy import export_npy
from hiw.flows.build import build_plain
from hiw.motion.features import FEATURES, HAND_FEATURES
from hiw.storage import load_manifest, open_catalog

UPOS = {"ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "SCONJ", "VERB", "X"}
# (subject, action, narration or None): narrated recordings become one clip, the others 3 s windows
RECORDINGS = [
    ("Subject_1", "open_juice_bottle", "#C C opens the juice bottle"),
    ("Subject_1", "pour_milk", "#C C pours the milk"),
    ("Subject_2", "write", None),
    ("Subject_1", "stir", None),
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, fphab_dir) -> Path:
    inputs = tmp_path_factory.mktemp("export-in")
    rows = []
    for subject, action, text in RECORDINGS:
        for n in (1, 2, 3):
            name = f"{action}_{n}.txt"
            shutil.copy(fixture_file(fphab_dir / subject / action / str(n) / "skeleton.txt"), inputs / name)
            rows.append({"video": name, "start_s": 0.0 if text else "", "end_s": 2.0 if text else "", "text": text or ""})
    with open(inputs / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["video", "start_s", "end_s", "text"])
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path_factory.mktemp("export-out")
    build_plain(
        load_config(manifest=inputs / "manifest.csv", out=out, tracker="precomputed", min_both_hands_frac=0, window_s=3.0)
    )
    return out


@pytest.fixture(scope="module")
def exports(dataset, tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("exports")
    calls = []
    with open_catalog(dataset) as con:
        npy = export_npy(con, base / "npy", dataset_version="v-test", progress=lambda done, total: calls.append((done, total)))
        humanml = export_humanml3d(con, base / "humanml3d")
    assert npy.format == "npy" and humanml.format == "humanml3d"
    assert npy.sequences == humanml.sequences == sum(npy.splits.values()) > 10 and npy.fps == 15.0
    assert npy.skipped == {} and calls[-1] == (npy.sequences, npy.sequences)
    return {"npy": base / "npy", "humanml3d": base / "humanml3d", "base": base}


def _clip_videos(dataset: Path) -> dict[str, str]:
    with open_catalog(dataset) as con:
        return dict(con.sql("SELECT clip_id, video_id FROM clips WHERE status = 'accepted'").fetchall())


def _train_stats(features: list[np.ndarray], masks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean/std over the frames where that feature's hand is valid."""
    mean, std = np.zeros(FEATURES), np.zeros(FEATURES)
    for hand in range(2):
        cols = slice(hand * HAND_FEATURES, (hand + 1) * HAND_FEATURES)
        rows = np.concatenate([f[m[:, hand], cols] for f, m in zip(features, masks)]).astype(np.float64)
        if len(rows):
            mean[cols], std[cols] = rows.mean(axis=0), rows.std(axis=0)
    return mean, np.maximum(std, STD_FLOOR)


def test_npy_export_holds_the_paper_features_split_by_video(dataset, exports):
    out = exports["npy"]
    splits = json.loads((out / "splits.json").read_text())
    captions = json.loads((out / "captions.json").read_text())
    meta = json.loads((out / "meta.json").read_text())
    ids = [c for s in SPLITS for c in splits[s]]
    assert list(splits) == list(SPLITS) and all(splits[s] for s in SPLITS)
    assert len(ids) == len(set(ids)) == meta["sequences"]  # no clip in two splits
    videos = _clip_videos(dataset)
    split_of_video = defaultdict(set)
    for split in SPLITS:
        for clip_id in splits[split]:
            split_of_video[videos[clip_id]].add(split)
    assert all(len(s) == 1 for s in split_of_video.values())  # no video in two splits
    assert sorted(captions) == sorted(ids) and {p.stem for p in (out / "motions").glob("*.npy")} == set(ids)

    sequences = {s.clip_id: s for s in dataset_sequences(dataset)}
    for clip_id in ids:
        motion, mask = np.load(out / "motions" / f"{clip_id}.npy"), np.load(out / "masks" / f"{clip_id}.npy")
        assert motion.dtype == np.float32 and motion.shape == (sequences[clip_id].n_frames, 198)
        assert mask.dtype == bool and mask.shape == (len(motion), 2)
        assert np.array_equal(motion, sequences[clip_id].features) and np.array_equal(mask, sequences[clip_id].mask)
        assert not motion[~mask[:, 0], :HAND_FEATURES].any()  # missing hand: zeros
    narrated = [c for c in ids if len(captions[c]) == 2]
    assert narrated and all(captions[c][0].startswith("C ") and captions[c][1].startswith("Kinematic") for c in narrated)

    train = splits["train"]
    mean, std = _train_stats(
        [np.load(out / "motions" / f"{c}.npy") for c in train], [np.load(out / "masks" / f"{c}.npy") for c in train]
    )
    saved_mean, saved_std = np.load(out / "mean.npy"), np.load(out / "std.npy")
    assert saved_mean.dtype == saved_std.dtype == np.float32 and saved_mean.shape == (198,)
    assert np.allclose(saved_mean, mean, atol=1e-6) and np.allclose(saved_std, std, atol=1e-6)
    every = list(sequences.values())
    all_mean, _ = _train_stats([s.features for s in every], [s.mask for s in every])
    assert not np.allclose(saved_mean, all_mean, atol=1e-6)  # val/test frames are left out
    assert meta["fps"] == 15.0 and meta["dataset_version"] == "v-test" and meta["features"]["layout"] == "hiw-motion-198-v1"
    assert meta["code_version"] and meta["splits"] == {s: len(splits[s]) for s in SPLITS}


def test_humanml3d_export_loads_like_humanml3d(exports):
    out = exports["humanml3d"]
    mean, std = np.load(out / "Mean.npy"), np.load(out / "Std.npy")
    assert np.array_equal(mean, np.load(exports["npy"] / "mean.npy")) and np.array_equal(std, np.load(exports["npy"] / "std.npy"))
    all_ids = (out / "all.txt").read_text().split()
    seen = []
    for split in SPLITS:  # what a HumanML3D Text2MotionDataset does: ids from the split file, a vec and a text file each
        for name in (out / f"{split}.txt").read_text().splitlines():
            seen.append(name)
            motion = np.load(out / "new_joint_vecs" / f"{name}.npy")
            assert motion.shape[1] == 198 and np.array_equal(motion, np.load(exports["npy"] / "motions" / f"{name}.npy"))
            assert np.isfinite((motion - mean) / std).all()
            lines = (out / "texts" / f"{name}.txt").read_text().splitlines()
            assert lines
            for line in lines:
                caption, tokens, f_tag, to_tag = line.strip().split("#")
                assert caption and float(f_tag) == 0.0 and float(to_tag) == 0.0
                pairs = [t.split("/") for t in tokens.split(" ")]
                assert all(len(p) == 2 and p[0].isalpha() and p[1] in UPOS for p in pairs)
    assert sorted(seen) == sorted(all_ids) and len(set(seen)) == len(seen)
    assert json.loads((out / "meta.json").read_text())["format"] == "humanml3d"


def test_text_lines_follow_humanml3d_conventions():
    lines = text_lines(make_tagger("spacy"), ["The right hand slowly lifts the cups (about 10 cm/s).", "C picks up a knife"])
    assert lines == [
        "The right hand slowly lifts the cups (about 10 cm/s).#the/DET right/ADJ hand/NOUN slowly/ADV lift/VERB the/DET "
        "cup/NOUN about/ADV cm/NOUN s/NOUN#0.0#0.0",
        "C picks up a knife#c/NOUN pick/VERB up/ADP a/DET knife/NOUN#0.0#0.0",
    ]


def test_export_refuses_a_foreign_folder_and_replaces_its_own(dataset, exports, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with open_catalog(dataset) as con:
        with pytest.raises(ConfigError, match="refusing to write a npy export into non-empty"):
            export_npy(con, foreign)
        with pytest.raises(ConfigError, match="a humanml3d export"):
            export_npy(con, exports["humanml3d"])
        target = tmp_path / "npy"
        export_npy(con, target)
        (target / "stale.npy").write_bytes(b"old")
        first = (target / "splits.json").read_text()

        def fail(done: int, total: int) -> None:
            if done == 3:
                raise RuntimeError("interrupted")

        with pytest.raises(RuntimeError, match="interrupted"):
            export_npy(con, target, progress=fail)
        assert (target / "stale.npy").exists()  # the previous export is untouched
        export_npy(con, target)  # a previous export of the same format is replaced whole
        with pytest.raises(ConfigError, match="in two splits"):
            export_npy(con, tmp_path / "dup", splits=pa.table({"clip_id": ["c_a", "c_a"], "split": ["train", "val"]}))
    assert not (target / "stale.npy").exists() and (target / "splits.json").read_text() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign", "npy"]  # no .partial or .old folder left


def test_export_of_a_filtered_split_table(dataset, tmp_path):
    with open_catalog(dataset) as con:
        splits = dataset_splits(con, where="c.source_path LIKE '%write%' OR c.source_path LIKE '%stir%'")
        summary = export_humanml3d(con, tmp_path / "subset", splits=splits)
    assert summary.sequences == splits.num_rows > 0
    assert sorted((tmp_path / "subset" / "all.txt").read_text().split()) == sorted(splits["clip_id"].to_pylist())


def test_hugging_face_datasets_reads_the_tables(dataset, tmp_path, monkeypatch):
    for var in ("HF_HOME", "HF_DATASETS_CACHE"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    with open_catalog(dataset) as con:
        counts = {t: con.sql(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in ("captions", "motion")}
        kinds = con.sql("SELECT kind FROM captions").fetchall()
    for table, rows in counts.items():
        files = [str(dataset / f.path) for f in load_manifest(dataset).files(table)]  # as README shows
        loaded = datasets.load_dataset("parquet", data_files={"train": files}, cache_dir=str(tmp_path / "cache"))["train"]
        assert loaded.num_rows == rows > 0 and "clip_id" in loaded.column_names
        if table == "captions":
            assert sorted(loaded["kind"]) == sorted(k for (k,) in kinds)
