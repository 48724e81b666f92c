"""The CLUTCH authors' layout: what their released loader reads (CLUTCH_CODE.md section 1, its section-6 checklist),
read back here the way the facts sheet says their loader reads it (reimplemented from the facts, not their code), the
token files, the small-split refusal, the import of their reconstruction files, and a hostile pickle.

The dataset is built from generated HaWoR-style parameter files (both hands, a left hand that starts late, a gap),
so these tests need no shared fixture."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pyarrow as pa
import pytest
import torch
import yaml
from scipy.spatial.transform import Rotation

from conftest import hawor_arrays
from hiw.config import load_config
from hiw.data.sequences import dataset_sequences
from hiw.data.splits import SPLITS
from hiw.errors import ConfigError
from hiw.export.clutch import MAX_FRAMES, export_clutch, loader_frames, raw_frames
from hiw.flows.build import build_plain
from hiw.motion.features import HAND_FEATURES
from hiw.pickles import load_npy
from hiw.schemas import HANDS
from hiw.storage import open_catalog, read_table

FILES = 10  # source "videos": splits are by video, so val and test each get whole files
SOURCE_FPS = 30
SECONDS = 12.0
NARRATIONS = [(0.5, 5.3, "the hands pick up the cup"), (6.0, 11.5, "the right hand stirs the pot")]
LATE_LEFT = 3  # in this file the left hand is untracked for the first second: missing at a clip's first frame
GAP = (7.0, 7.6)  # in every file the left hand drops out here: missing frames inside a clip


def parameters(seed: int) -> dict[str, np.ndarray]:
    """HaWoR-layout arrays (hand index 0 = left): a left-hand gap in every file, a late left hand in one."""
    data = hawor_arrays(seed, SECONDS, SOURCE_FPS)
    valid = data["pred_valid"]
    valid[0, int(GAP[0] * SOURCE_FPS) : int(GAP[1] * SOURCE_FPS)] = False
    if seed == LATE_LEFT:
        valid[0, : SOURCE_FPS * 1] = False
    return data


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    inputs = tmp_path_factory.mktemp("hawor-in")
    lines = ["video,start_s,end_s,text"]
    for i in range(FILES):
        np.savez(inputs / f"take_{i}.npz", **parameters(i))
        lines += [f"take_{i}.npz,{start},{end},{text}" for start, end, text in NARRATIONS]
    (inputs / "narrations.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path_factory.mktemp("hawor-out")
    cfg = load_config(manifest=inputs / "narrations.csv", out=out, tracker="precomputed", min_both_hands_frac=0)
    summary = build_plain(cfg)
    assert summary.clips_accepted == FILES * len(NARRATIONS), summary.rejects_by_reason
    return out


@pytest.fixture(scope="module")
def shift_run(dataset, tmp_path_factory):
    from typer.testing import CliRunner

    from hiw.cli import app

    run = tmp_path_factory.mktemp("shift") / "run"
    result = CliRunner().invoke(app, ["shift", "train", "--data", str(dataset), "--steps", "3", "--run", str(run)])
    assert result.exit_code == 0, result.output
    return run


@pytest.fixture(scope="module")
def export(dataset, shift_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("clutch-export") / "clutch"
    with open_catalog(dataset) as con:
        summary = export_clutch(con, out, dataset_version="v-test", tokens=shift_run)
    assert summary.format == "clutch" and summary.sequences == FILES * len(NARRATIONS) and summary.skipped == {}
    assert all(n >= 2 for n in summary.splits.values()), summary.splits
    return out


def their_features(path) -> np.ndarray:
    """What their loader makes of one reconstruction file (CLUTCH_CODE.md 1.3-1.5): the 198-D frames, right hand first."""
    data = np.load(path, allow_pickle=True).item()  # our own export: trusted here, as their loader trusts it
    streams = {k: data[k].detach().cpu() for k in ("pred_trans", "pred_rot", "pred_hand_pose")}
    streams = {k: v[:, 1:-1] for k, v in streams.items()}  # drop the first and last frame
    idx = np.arange(0, streams["pred_trans"].shape[1], 2)[:144]  # uniform_sampling, factor 2
    streams = {k: v[:, idx] for k, v in streams.items()}
    origin = (streams["pred_trans"][1, 0] + streams["pred_trans"][0, 0]) / 2  # shift_pos_to_origin
    hands = []
    for h in (1, 0):  # right hand (index 1) first
        rotvecs = torch.cat([streams["pred_rot"][h, :, None], streams["pred_hand_pose"][h]], dim=1).numpy()
        matrices = Rotation.from_rotvec(rotvecs.reshape(-1, 3)).as_matrix().reshape(len(idx), 16, 3, 3)
        sixd = matrices[:, :, :2, :].reshape(len(idx), 96)  # the first two rows, row-major
        hands.append(np.concatenate([sixd, (streams["pred_trans"][h] - origin).numpy()], axis=1))
    return np.concatenate(hands, axis=1)


def rows_to_matrices(sixd: np.ndarray) -> np.ndarray:
    """(..., 6) first-two-rows 6D -> (..., 3, 3) by Gram-Schmidt."""
    a, b = sixd[..., :3], sixd[..., 3:]
    r0 = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b - (r0 * b).sum(-1, keepdims=True) * r0
    r1 = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return np.stack([r0, r1, np.cross(r0, r1)], axis=-2)


@pytest.mark.parametrize("n", [1, 2, 72, 144, 145, 300])
def test_written_frames_are_the_ones_their_loader_keeps(n):
    written = raw_frames(n)
    assert len(written) == 2 * n + 1 and written[0] == 0 and written[-1] == n - 1
    kept = written[loader_frames(len(written))]
    np.testing.assert_array_equal(kept, np.arange(n))  # every hiw frame once, in order
    np.testing.assert_array_equal(kept[:MAX_FRAMES], np.arange(min(n, MAX_FRAMES)))  # their cut at 144 frames


def test_the_layout_holds_what_their_loader_reads(export):
    config = yaml.safe_load((export / "clutch_dataset.yaml").read_text())["DATASET"]
    assert config["dataset_dir"] == str(export) and config["dict_file_to_load"].endswith(".npy")
    assert config["annotation_file_to_load"] == ["vila_cpot_cls_summ.json", "naive_claude_summary.json"]
    assert config["ann_sample_probs"] == [0.5, 0.5] and "mean_std" in config["norm_dict_file_to_load"]
    assert (config["max_frames"], config["down_sample_factor"], config["fps"]) == (144, 2, 15)
    assert config["GRAB_to_load"] is False and config["egovid5M_to_load"] is True
    index = json.loads((export / config["index_file"]).read_text())
    assert list(index) == list(SPLITS)
    names = []
    for split in SPLITS:
        entries = index[split]
        assert config["seqs_split"][split] == [0, len(entries)] and len(entries) >= 2
        for entry in entries:
            recon = entry["hawor_recon_file"]
            assert recon.startswith("/") and recon.endswith(config["dict_file_to_load"])
            folder = export / "hawor_recon"
            parts = recon.split("/")
            names.append(parts[-2])  # their seq_name: the clip folder's name
            data = np.load(recon, allow_pickle=True).item()
            t = data["pred_trans"].shape[1]
            shapes = {"pred_trans": (2, t, 3), "pred_rot": (2, t, 3), "pred_hand_pose": (2, t, 15, 3)}
            for key, shape in shapes.items():
                assert isinstance(data[key], torch.Tensor) and data[key].dtype == torch.float32 and data[key].shape == shape
            assert t % 2 == 1 and data["pred_valid"].shape == (2, t)
            group, seq = parts[-3], parts[-2]
            assert (folder / group / seq / config["dict_file_to_load"]).is_file()
            notes = export / "VLM_annotations" / group / seq  # where their list mode reads captions
            for name in config["annotation_file_to_load"]:
                assert json.loads((notes / name).read_text())["summary"].strip()
            kinds = {p.stem for p in notes.glob("*.json")} - {n[:-5] for n in config["annotation_file_to_load"]}
            assert kinds == {"narration", "kinematic"}
    assert len(names) == len(set(names))  # seq_name is unique
    norm = np.load(export / config["norm_dict_file_to_load"], allow_pickle=True).item()
    assert norm["mean"].shape == norm["std"].shape == (1, 1, 198) and (norm["std"] > 0).all()
    for name in ("template_pretrain.json", "template_pretrain_w_hand_2_hand_w_text.json"):
        templates = json.loads((export / name).read_text())
        t2m = templates["Text-to-Motion"]["t2m"]
        assert t2m["class"] == "t2m" and "<Caption_Placeholder>" in t2m["input"][0] and t2m["output"] == ["<Motion_Placeholder>"]
        assert "<Motion_Placeholder_masked_hand>" in json.dumps(templates["Text-to-Motion"]["h2h"])
        assert list(templates) == ["Text-to-Motion", "Motion-to-Text"]
    instruct = json.loads((export / "template_instructions_hand_motion.json").read_text())
    assert set(instruct) == {"Text-to-Motion", "Motion-to-Text", "Text-to-Text"}
    assert "{" not in json.dumps(instruct).replace('{"', "").replace("{}", "")  # every hiw placeholder became theirs
    meta = json.loads((export / "meta.json").read_text())
    assert meta["format"] == "clutch" and meta["clips_beyond_max_frames"]["clips"] == 0


def test_their_loader_returns_hiw_frames_exactly(dataset, export):
    """Every rotation and relative wrist position on every valid frame, in their frame order, hand order and 6D."""
    sequences = {s.clip_id: s for s in dataset_sequences(dataset)}
    index = json.loads((export / "splits.json").read_text())
    late = partial = 0
    for entry in (e for s in SPLITS for e in index[s]):
        recon = entry["hawor_recon_file"]
        seq = sequences[recon.split("/")[-2]]
        theirs = their_features(recon)
        assert theirs.shape == (min(seq.n_frames, 144), 198)
        ours = seq.features[: len(theirs)]
        mask = seq.mask[: len(theirs)]
        late += not mask[0, 0]
        for our_hand, their_hand in ((0, 1), (1, 0)):  # hiw: left first; theirs: right first
            valid = mask[:, our_hand]
            o = ours[valid, our_hand * HAND_FEATURES : (our_hand + 1) * HAND_FEATURES]
            t = theirs[valid, their_hand * HAND_FEATURES : (their_hand + 1) * HAND_FEATURES]
            np.testing.assert_allclose(
                rows_to_matrices(t[:, :96].reshape(-1, 16, 6)), rows_to_matrices(o[:, :96].reshape(-1, 16, 6)), atol=1e-5
            )
            np.testing.assert_allclose(t[:, 96:], o[:, 96:], atol=1e-5)
        partial += not mask.all()
    assert late == 1  # the clip whose left hand starts late: its first frame sets their origin
    assert partial == FILES + 1  # each file's second clip has the gap (not filled: longer than max_gap_s)


def test_normalisation_is_the_train_split_in_their_layout(dataset, export):
    sequences = {s.clip_id: s for s in dataset_sequences(dataset)}
    index = json.loads((export / "splits.json").read_text())
    train = [sequences[e["hawor_recon_file"].split("/")[-2]] for e in index["train"]]
    norm = np.load(export / "mean_std.npy", allow_pickle=True).item()
    mean = norm["mean"].numpy().reshape(198)
    for our_hand, their_hand in ((0, 1), (1, 0)):
        frames = np.concatenate(
            [s.features[s.mask[:, our_hand], our_hand * HAND_FEATURES : (our_hand + 1) * HAND_FEATURES] for s in train]
        )
        np.testing.assert_allclose(mean[their_hand * HAND_FEATURES : (their_hand + 1) * HAND_FEATURES], frames.mean(0), atol=1e-4)


def test_token_files_follow_their_stream_order(dataset, export, shift_run):
    from hiw.models import codec
    from hiw.models.shift_checkpoint import load_tokenizer

    loaded = load_tokenizer(shift_run)
    k = loaded.model.config.codebook_size
    config = yaml.safe_load((export / "clutch_dataset.yaml").read_text())["DATASET"]
    meta = json.loads((export / "meta.json").read_text())
    assert meta["tokens"]["code_num"] == 2 * k and config["CODE_PATH"] == meta["tokens"]["code_path"]
    sequences = dataset_sequences(dataset)
    for seq, (codes, _) in zip(sequences, codec.encode(loaded.model, loaded.stats, sequences)):
        tokens = np.load(export / config["CODE_PATH"] / f"{seq.clip_id}.npy")
        steps = min(seq.n_frames, 144) // 4
        assert tokens.dtype == np.int64 and tokens.shape == (1, 4 * steps)
        per_step = tokens.reshape(steps, 4)
        assert (per_step[:, [0, 2]] < k).all() and ((per_step[:, [1, 3]] >= k) & (per_step[:, [1, 3]] < 2 * k)).all()
        # theirs: right traj, right pose + K, left traj, left pose + K; hiw's: left traj, left pose, right traj, right pose
        np.testing.assert_array_equal(per_step, codes[:steps][:, [2, 3, 0, 1]] + [0, k, 0, k])


def test_an_export_their_loader_would_fail_on_is_refused(dataset, tmp_path):
    with open_catalog(dataset) as con:
        clips = [r[0] for r in con.sql("SELECT clip_id FROM clips WHERE status = 'accepted' ORDER BY clip_id").fetchall()]
        splits = pa.table({"clip_id": clips[:5], "split": ["train", "train", "val", "test", "test"]})
        with pytest.raises(ConfigError, match=r"at least 2 clips in every split.*val has 1.*--fractions"):
            export_clutch(con, tmp_path / "small", splits=splits)
    assert not list(tmp_path.iterdir())  # nothing written, not even a partial folder


def test_export_then_import_gives_the_same_motion(dataset, export, tmp_path):
    """Their files, named by their index, through ``--tracker precomputed``: the same parameters and hand masks."""
    cfg = load_config(
        videos=str(export / "splits.json"),
        out=tmp_path / "imported",
        tracker="precomputed",
        min_both_hands_frac=0,
        window_s=60.0,
        min_clip_s=0.5,
        savgol_window_s=0,
        gaussian_sigma_s=0,
        max_gap_s=0,
    )
    summary = build_plain(cfg)
    assert summary.clips_accepted == FILES * len(NARRATIONS), summary.rejects_by_reason
    original = {r["clip_id"]: r for r in read_table(dataset, "motion").to_pylist()}
    clips = {r["clip_id"]: r["source_path"].split("/")[-2] for r in read_table(cfg.out, "clips").to_pylist()}
    for row in read_table(cfg.out, "motion").to_pylist():
        before = original[clips[row["clip_id"]]]
        assert row["n_frames"] == before["n_frames"] and row["fps"] == 15.0
        for side in HANDS:
            valid = np.array(before[f"{side}_valid"])
            assert np.array_equal(np.array(row[f"{side}_valid"]), valid)
            for key in ("global_orient", "hand_pose"):
                a = Rotation.from_rotvec(np.array(row[f"{side}_{key}"])[valid].reshape(-1, 3))
                b = Rotation.from_rotvec(np.array(before[f"{side}_{key}"])[valid].reshape(-1, 3))
                assert np.degrees((a.inv() * b).magnitude()).max() < 0.01
            np.testing.assert_allclose(
                np.array(row[f"{side}_transl"])[valid], np.array(before[f"{side}_transl"])[valid], atol=1e-5
            )


class _Hostile:
    """Unpickling it would create ``target``."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_a_hostile_reconstruction_file_is_rejected_without_running(tmp_path):
    target = tmp_path / "created-by-the-pickle"
    inputs = tmp_path / "in" / "hawor_recon" / "group" / "seq"
    inputs.mkdir(parents=True)
    hostile = inputs / "mano_smoothened_w_gaus_tr_sig2_rotated_180.npy"
    np.save(hostile, {"pred_trans": _Hostile(target)}, allow_pickle=True)
    assert b"builtins" in hostile.read_bytes() or b"io" in hostile.read_bytes()
    with pytest.raises(pickle.UnpicklingError, match="refused to load"):
        load_npy(hostile)
    cfg = load_config(videos=str(tmp_path / "in"), out=tmp_path / "out", tracker="precomputed")
    summary = build_plain(cfg)
    assert summary.rejects_by_reason == {"probe/bad_tracks": 1} and summary.clips_accepted == 0
    (reject,) = read_table(cfg.out, "rejects").to_pylist()
    assert "refused to load" in reject["detail"]
    assert not target.exists()


def test_the_cli_exports_and_refuses_in_one_line(dataset, shift_run, tmp_path):
    from typer.testing import CliRunner

    from hiw.cli import app

    def hiw(*args):
        return CliRunner().invoke(app, ["export", "--root", str(dataset), *map(str, args)], env={"COLUMNS": "200"})

    result = hiw("--format", "clutch", "--out", tmp_path / "ok", "--tokens", shift_run)
    assert result.exit_code == 0, result.output
    assert f"exported {FILES * len(NARRATIONS)} sequences" in result.output
    assert len(list((tmp_path / "ok").glob("tokens/*/npy/*.npy"))) == FILES * len(NARRATIONS)
    for args, message in (
        (("--format", "humanml3d", "--tokens", shift_run), "--tokens goes with --format clutch"),
        (("--format", "clutch", "--tokens", tmp_path / "nowhere"), "does not exist"),
        (("--format", "parquet"), "--format must be one of clutch, humanml3d, npy"),
        (("--format", "clutch", "--where", "c.source_path LIKE '%take_1.npz'"), "at least 2 clips in every split"),
    ):
        result = hiw(*args, "--out", tmp_path / "refused")
        assert result.exit_code == 2 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "refused").exists()
