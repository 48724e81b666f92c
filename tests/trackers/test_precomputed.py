"""Precomputed tracks through the build: real F-PHAB skeletons (.txt) and HaWoR-style MANO parameters (.npz)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from conftest import fixture_file
from hiw.config import load_config
from hiw.flows.build import build_flow, build_plain
from hiw.motion.hand_model import PARENTS21, to_mano21
from hiw.schemas import HANDS
from hiw.storage import load_manifest, read_table
from hiw.trackers.precomputed import read_fphab

pytestmark = pytest.mark.filterwarnings("ignore:loadtxt. input contained no data")  # the empty F-PHAB file

TABLES = ("clips", "motion", "captions", "rejects")
# F-PHAB files (fixture path -> name in the build, narration): the action name is the text
FPHAB_FILES = {
    "S1_write_1_skeleton.txt": ("write_1.txt", "write"),
    "S1_stir_1_skeleton.txt": ("stir_1.txt", "stir"),
    "Subject_1/open_juice_bottle/3/skeleton.txt": ("open_juice_bottle_3.txt", "open juice bottle"),
}
EMPTY_FPHAB = "Subject_2/close_milk/4/skeleton.txt"  # FIXTURES.md: a few sequences are empty


def tables(root) -> dict[str, list[dict]]:
    return {name: read_table(root, name).to_pylist() for name in TABLES}


def by_file(rows: list[dict]) -> dict[str, dict]:
    return {row["source_path"].rsplit("/", 1)[-1]: row for row in rows}


def keypoints(row: dict, side: str) -> np.ndarray:
    return np.array(row[f"{side}_keypoints_3d"], np.float64).reshape(-1, 21, 3)


def write_manifest(folder, rows: list[tuple[str, float, str]]) -> None:
    lines = ["video,start_s,end_s,text"] + [f"{name},0.0,{end_s:.3f},{text}" for name, end_s, text in rows]
    (folder / "narrations.csv").write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------- F-PHAB skeletons


@pytest.fixture(scope="module")
def fphab_build(tmp_path_factory, fphab_dir):
    inputs = tmp_path_factory.mktemp("fphab-in")
    rows = []
    for source, (name, text) in FPHAB_FILES.items():
        path = shutil.copy(fixture_file(fphab_dir / source), inputs / name)
        rows.append((name, len(read_fphab(path)) / 30.0, text))
    empty = fphab_dir / EMPTY_FPHAB
    if empty.exists() and empty.stat().st_size == 0:
        shutil.copy(empty, inputs / "close_milk_4.txt")
    else:
        (inputs / "close_milk_4.txt").write_text("")
    rows.append(("close_milk_4.txt", 3.0, "close milk"))
    write_manifest(inputs, rows)
    out = tmp_path_factory.mktemp("fphab-out")
    # F-PHAB records one right hand: no clip would pass the both-hands filter
    cfg = load_config(manifest=inputs / "narrations.csv", out=out, tracker="precomputed", min_both_hands_frac=0)
    return cfg, build_plain(cfg)


def test_fphab_build_writes_every_table(fphab_build):
    cfg, summary = fphab_build
    manifest = load_manifest(cfg.out)
    assert manifest.version == summary.version == "v1" and summary.published
    assert {name for name in TABLES if manifest.files(name)} == set(TABLES) - {"responses", "vocabulary"}  # kinematic build
    assert (cfg.out / "catalog.duckdb").exists() and (cfg.out / "build.json").exists()
    assert summary.videos_found == 4 and summary.videos_probed == 3
    assert summary.clips_accepted == 3 and summary.clips_rejected == 0
    assert summary.rejects_by_reason == {"probe/empty_tracks": 1}


def test_fphab_empty_file_is_a_probe_reject(fphab_build):
    cfg, _ = fphab_build
    (reject,) = tables(cfg.out)["rejects"]
    assert (reject["stage"], reject["reason"]) == ("probe", "empty_tracks"), reject["detail"]
    assert reject["source_path"].endswith("close_milk_4.txt") and reject["clip_id"] is None


def test_fphab_clips_are_narration_anchored(fphab_build):
    cfg, _ = fphab_build
    clips = by_file(tables(cfg.out)["clips"])
    assert set(clips) == {name for name, _ in FPHAB_FILES.values()}
    for name, text in FPHAB_FILES.values():
        clip = clips[name]
        assert clip["status"] == "accepted" and clip["plan"] == "narration" and clip["narration"] == text
        assert clip["tracker"] == "precomputed" and clip["tracker_version"] == "precomputed-v1"
        assert clip["source_fps"] == 30.0 and clip["frames_right"] == clip["frames_decoded"] and clip["frames_left"] == 0


def test_fphab_motion_is_the_files_right_hand(fphab_build, fphab_dir):
    cfg, _ = fphab_build
    t = tables(cfg.out)
    clips = by_file(t["clips"])
    motion = {row["clip_id"]: row for row in t["motion"]}
    assert len(motion) == 3
    for source, (name, _) in FPHAB_FILES.items():
        row = motion[clips[name]["clip_id"]]
        joints = read_fphab(fphab_dir / source)  # metres, OpenPose order, 30 fps
        truth = joints[::2]  # canonical frame k (15 fps) is source frame 2k
        assert row["fps"] == 15.0 and row["n_frames"] == len(truth) == (len(joints) - 1) // 2 + 1
        assert row["hand_model"] == "open-skeleton-v1" and row["coordinate_frame"] == "world"
        assert row["tracker"] == "precomputed" and row["dropped_frames"] == 0 and row["swapped_frames"] == 0
        assert all(row["right_valid"]) and not any(row["right_filled"])
        assert not any(row["left_valid"]) and np.isnan(keypoints(row, "left")).all()
        assert row["fit_error_mm"] < 5.0 and np.nanmax(row["right_fit_error_mm"]) < 5.0
        right = keypoints(row, "right")
        error_mm = np.linalg.norm(right - truth, axis=-1) * 1000
        assert error_mm.mean() < 5.0, f"{name}: keypoints {error_mm.mean():.1f} mm off the file's joints"
        assert np.median(error_mm, axis=1).max() < 10.0  # no frame is off as a whole
        # the open skeleton's rest wrist is the origin: transl is the wrist
        wrist_mm = np.linalg.norm(np.array(row["right_transl"]) - truth[:, 0], axis=-1) * 1000
        assert wrist_mm.mean() < 5.0
        # the calibrated skeleton has the recorded hand's size (summed bone lengths)
        rest = np.array(row["right_rest_keypoints"]).reshape(21, 3)
        observed = to_mano21(joints, "openpose21")
        parents = list(PARENTS21[1:])
        size = np.median(np.linalg.norm(observed[:, 1:] - observed[:, parents], axis=-1).sum(-1))
        assert abs(np.linalg.norm(rest[1:] - rest[parents], axis=-1).sum() / size - 1) < 0.05


def test_fphab_captions_carry_the_narration(fphab_build):
    cfg, _ = fphab_build
    t = tables(cfg.out)
    clip_text = {c["clip_id"]: c["narration"] for c in t["clips"]}
    narrations = {c["clip_id"]: c["text"] for c in t["captions"] if c["kind"] == "narration"}
    assert narrations == clip_text
    kinematic = [c for c in t["captions"] if c["kind"] == "kinematic"]
    assert len(kinematic) == 3 and all("right hand" in c["text"] for c in kinematic)


@pytest.mark.slow
def test_fphab_build_through_prefect(tmp_path, fphab_dir):
    source = fixture_file(fphab_dir / "Subject_1/open_juice_bottle/3/skeleton.txt")
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(source, inputs / "open_juice_bottle_3.txt")
    write_manifest(inputs, [("open_juice_bottle_3.txt", len(read_fphab(source)) / 30.0, "open juice bottle")])
    cfg = load_config(manifest=inputs / "narrations.csv", out=tmp_path / "out", tracker="precomputed", min_both_hands_frac=0)

    summary = build_flow(cfg)
    assert summary.clips_accepted == 1 and summary.rejects_by_reason == {}
    assert summary.stage_times["load"].calls == 1 and summary.stage_times["motion"].calls == 1
    t = tables(cfg.out)
    (row,) = t["motion"]
    assert row["hand_model"] == "open-skeleton-v1" and row["coordinate_frame"] == "world"
    error_mm = np.linalg.norm(keypoints(row, "right") - read_fphab(source)[::2], axis=-1) * 1000
    assert error_mm.mean() < 5.0
    assert {c["text"] for c in t["captions"] if c["kind"] == "narration"} == {"open juice bottle"}


# ---------------------------------------------------------------- HaWoR-style MANO parameters

T = 66  # source frames at 30 fps (2.2 s)
GAP = slice(20, 24)  # left hand not tracked: a 4-frame gap, filled
NAN_FRAME = 30  # right hand marked valid, one hand_pose entry NaN: dropped, then filled


def hand_parameters(seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Plausible, smooth MANO parameters for both hands: small per-joint axis-angles, translations moving a few cm."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)[:, None] / 30.0
    params = {}
    for side, x in (("left", -0.15), ("right", 0.15)):

        def wave(amplitude, width):
            period = rng.uniform(1.5, 3.0, width)
            return amplitude * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi, width))

        axis = rng.normal(size=3)
        params[side] = {
            "global_orient": axis / np.linalg.norm(axis) * rng.uniform(0.8, 1.5) + wave(0.25, 3),
            "hand_pose": rng.normal(0.0, 0.2, 45) + wave(0.15, 45),
            "transl": np.array([x, 0.05, 0.4]) + wave(0.03, 3),
            "betas": rng.normal(0.0, 0.5, (T, 10)),
        }
    return params


def hawor_layout(params) -> dict[str, np.ndarray]:
    names = {"transl": "pred_trans", "global_orient": "pred_rot", "hand_pose": "pred_hand_pose", "betas": "pred_betas"}
    data = {theirs: np.stack([params[side][ours] for side in HANDS]).astype(np.float32) for ours, theirs in names.items()}
    data["pred_valid"] = np.ones((2, T), bool)
    data["pred_valid"][0, GAP] = False
    data["pred_hand_pose"][1, NAN_FRAME, 7] = np.nan
    return data | {"fps": np.float32(30.0)}


def per_hand_layout(params) -> dict[str, np.ndarray]:
    data = {f"{side}_{key}": value.astype(np.float32) for side in HANDS for key, value in params[side].items()}
    for side in HANDS:
        data[f"{side}_betas"] = data[f"{side}_betas"].mean(0)  # one shape per hand
    return data


def angle_deg(rotvec_a: np.ndarray, rotvec_b: np.ndarray) -> np.ndarray:
    """Geodesic angle between axis-angle rotations (..., 3), degrees."""
    a, b = (Rotation.from_rotvec(np.asarray(r, np.float64).reshape(-1, 3)) for r in (rotvec_a, rotvec_b))
    return np.degrees((a.inv() * b).magnitude()).reshape(np.shape(rotvec_a)[:-1])


def motion_row(root, name: str) -> dict:
    t = tables(root)
    clip = by_file(t["clips"])[name]
    assert clip["status"] == "accepted", clip["reject_reason"]
    (row,) = [m for m in t["motion"] if m["clip_id"] == clip["clip_id"]]
    return row


def compare(row: dict, params, side: str, frames: np.ndarray) -> tuple[float, float, float]:
    """Worst global-orientation and joint error (degrees) and translation error (mm) at canonical ``frames``."""
    truth = {key: value[2 * frames] for key, value in params[side].items()}
    go = np.array(row[f"{side}_global_orient"])[frames]
    pose = np.array(row[f"{side}_hand_pose"])[frames].reshape(-1, 15, 3)
    transl = np.array(row[f"{side}_transl"])[frames]
    return (
        float(angle_deg(go, truth["global_orient"]).max()),
        float(angle_deg(pose, truth["hand_pose"].reshape(-1, 15, 3)).max()),
        float(np.linalg.norm(transl - truth["transl"], axis=-1).max() * 1000),
    )


@pytest.fixture(scope="module")
def hawor_build(tmp_path_factory):
    """Both layouts, smoothing off (so parameters pass through exactly), plus malformed files."""
    inputs = tmp_path_factory.mktemp("hawor-in")
    params = hand_parameters(seed=1)
    np.savez(inputs / "hawor.npz", **hawor_layout(params))
    np.savez(inputs / "per_hand.npz", **per_hand_layout(params))
    good = per_hand_layout(params)
    np.savez(inputs / "missing_key.npz", **{k: v for k, v in good.items() if k != "left_global_orient"})
    np.savez(inputs / "lengths_differ.npz", **(good | {"right_transl": good["right_transl"][:-5]}))
    np.savez(inputs / "bad_shape.npz", **(good | {"left_hand_pose": good["left_hand_pose"][:, :44]}))
    np.savez(inputs / "one_hand_axis.npz", **{k: v[1:] for k, v in hawor_layout(params).items() if k != "fps"})
    np.savez(inputs / "no_hands.npz", fps=np.float32(30.0))
    (inputs / "not_a_zip.npz").write_bytes(b"PK\x03\x04 truncated")
    cfg = load_config(
        videos=str(inputs),
        out=tmp_path_factory.mktemp("hawor-out"),
        tracker="precomputed",
        savgol_window_s=0,
        gaussian_sigma_s=0,
    )
    return cfg, build_plain(cfg), params


def test_hawor_layouts_reproduce_the_parameters(hawor_build):
    cfg, summary, params = hawor_build
    assert summary.clips_accepted == 2
    for name in ("hawor.npz", "per_hand.npz"):
        row = motion_row(cfg.out, name)
        assert row["hand_model"] == "mano" and row["coordinate_frame"] == "world" and row["tracker"] == "precomputed"
        assert row["n_frames"] == (T - 1) // 2 + 1 and row["fps"] == 15.0 and row["swapped_frames"] == 0
        for side in HANDS:
            valid, filled = np.array(row[f"{side}_valid"]), np.array(row[f"{side}_filled"])
            assert valid.all()
            exact = np.flatnonzero(~filled)
            go, pose, transl = compare(row, params, side, exact)
            assert go < 0.05 and pose < 0.05 and transl < 0.1, (name, side, go, pose, transl)
            betas = params[side]["betas"].mean(0)
            np.testing.assert_allclose(row[f"{side}_betas"], betas, atol=1e-5)


def test_hawor_gaps_and_nan_parameters_are_filled(hawor_build):
    cfg, _, params = hawor_build
    row = motion_row(cfg.out, "hawor.npz")
    assert row["dropped_frames"] == 1  # the NaN frame; the untracked gap was never an observation
    left_filled, right_filled = np.array(row["left_filled"]), np.array(row["right_filled"])
    assert np.flatnonzero(left_filled).tolist() == [10, 11]  # source 20, 22 (the gap 20-23)
    assert np.flatnonzero(right_filled).tolist() == [NAN_FRAME // 2]
    for side, filled in (("left", left_filled), ("right", right_filled)):
        assert np.isfinite(np.array(row[f"{side}_hand_pose"])).all()
        go, pose, transl = compare(row, params, side, np.flatnonzero(filled))
        assert go < 2.0 and pose < 2.0 and transl < 2.0, (side, go, pose, transl)  # SLERP across a short gap


def test_malformed_npz_are_bad_tracks_rejects(hawor_build):
    cfg, summary, _ = hawor_build
    rejects = {name: (r["stage"], r["reason"]) for name, r in by_file(tables(cfg.out)["rejects"]).items()}
    bad = ("missing_key", "lengths_differ", "bad_shape", "one_hand_axis", "no_hands", "not_a_zip")
    assert rejects == {f"{name}.npz": ("probe", "bad_tracks") for name in bad}
    assert summary.videos_found == 8 and summary.videos_probed == 2


def test_hawor_parameters_survive_default_smoothing(tmp_path):
    params = hand_parameters(seed=2)
    inputs = tmp_path / "in"
    inputs.mkdir()
    np.savez(inputs / "per_hand.npz", **per_hand_layout(params))
    cfg = load_config(videos=str(inputs), out=tmp_path / "out", tracker="precomputed")
    summary = build_plain(cfg)
    assert summary.clips_accepted == 1, summary.rejects_by_reason
    row = motion_row(cfg.out, "per_hand.npz")
    assert row["hand_model"] == "mano" and row["coordinate_frame"] == "world"
    for side in HANDS:
        assert all(row[f"{side}_valid"])
        go, pose, transl = compare(row, params, side, np.arange(row["n_frames"]))
        assert go < 2.0 and pose < 2.0 and transl < 5.0, (side, go, pose, transl)
