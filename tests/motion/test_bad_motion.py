"""Bad tracker output through process_motion and through a build: repaired, or a recorded rejection, never a crash.

The hands are real: F-PHAB joints (a right hand; the left one is its mirror image), placed half a metre in front
of a 1920x1080 camera. Mediapipe-like tracks carry their exact projection as 2D keypoints and the hand-centred 3D
keypoints (OpenPose order), so PnP recovers the hands' camera-space placement.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from conftest import DEFAULTS, FPHAB, fixture_file, make_clip
from hiw.config import load_config
from hiw.errors import StageError
from hiw.flows import settings, stages
from hiw.flows.build import build_plain
from hiw.motion import quality
from hiw.motion.camera import Intrinsics
from hiw.motion.pipeline import process_motion, require_motion
from hiw.schemas import HANDS, HandTrack
from hiw.storage import read_table
from hiw.trackers.base import ClipTracks
from hiw.trackers.precomputed import read_fphab

FPS = 30.0
N = 48  # source frames (1.6 s): enough for the fit's smoothness terms, short enough to fit fast
K = Intrinsics.from_fov(1920, 1080)
CENTRES = {"left": np.array([-0.12, 0.05, 0.5]), "right": np.array([0.12, 0.05, 0.5])}
SETTINGS = settings.motion_settings(DEFAULTS)


@pytest.fixture(scope="module")
def world_hands() -> dict[str, np.ndarray]:
    """(N, 21, 3) metres, OpenPose order, camera frame: F-PHAB's right hand and its mirror image as the left."""
    joints = read_fphab(fixture_file(FPHAB / "S1_write_1_skeleton.txt"))[:N].astype(np.float64)
    right = joints - joints.mean(axis=(0, 1)) + CENTRES["right"]
    mirrored = joints * np.array([-1.0, 1.0, 1.0])
    left = mirrored - mirrored.mean(axis=(0, 1)) + CENTRES["left"]
    return {"left": left, "right": right}


def project(points: np.ndarray) -> np.ndarray:
    """(..., 21, 3) camera-space metres -> (..., 21, 3) pixels (x, y, confidence 1)."""
    uv = points[..., :2] / points[..., 2:] * [K.fx, K.fy] + [K.cx, K.cy]
    return np.concatenate([uv, np.ones_like(uv[..., :1])], axis=-1).astype(np.float32)


def mediapipe_like(hands: dict[str, np.ndarray], valid: dict[str, np.ndarray] | None = None) -> ClipTracks:
    """Tracks as mediapipe gives them: 2D in pixels, 3D centred on the hand."""
    tracks = {}
    for side, pts in hands.items():
        v = np.ones(len(pts), bool) if valid is None else valid[side]
        centred = (pts - pts.mean(axis=1, keepdims=True)).astype(np.float32)
        tracks[side] = HandTrack(side=side, valid=v, keypoints_2d=project(pts), keypoints_3d=centred)
    return ClipTracks(fps=FPS, hands=tracks, coordinate_frame="hand_centred")


def world_tracks(hands: dict[str, np.ndarray]) -> ClipTracks:
    """Precomputed-style tracks: metric 3D in a fixed frame, no 2D."""
    tracks = {
        side: HandTrack(
            side=side,
            valid=np.ones(len(pts), bool),
            keypoints_2d=np.full(pts.shape, np.nan, np.float32),
            keypoints_3d=pts.astype(np.float32),
        )
        for side, pts in hands.items()
    }
    return ClipTracks(fps=FPS, hands=tracks, coordinate_frame="world")


def canonical(n_source: int) -> int:
    return (n_source - 1) // 2 + 1  # 30 -> 15 fps


# ---------------------------------------------------------------- the reference: clean input fits


def test_clean_mediapipe_like_tracks_fit_in_camera_space(world_hands):
    motion = process_motion(mediapipe_like(world_hands), SETTINGS, intrinsics=K)
    require_motion(motion)
    assert motion.coordinate_frame == "camera" and motion.n_frames == canonical(N)
    assert motion.dropped_frames == 0 and motion.swapped_frames == 0
    for side in HANDS:
        hand = motion.hands[side]
        assert hand.params.valid.all()
        assert np.nanmax(hand.fit_error_mm) < 5.0
        # PnP put each hand back where it was: the wrist within a centimetre of the truth
        wrist = world_hands[side][::2, 0]
        assert np.linalg.norm(hand.params.transl - wrist, axis=-1).max() < 0.01


# ---------------------------------------------------------------- missing hands


def test_all_hands_missing_is_no_motion(world_hands):
    none = {side: np.zeros(N, bool) for side in HANDS}
    motion = process_motion(mediapipe_like(world_hands, none), SETTINGS, intrinsics=K)
    assert not any(h.params.valid.any() for h in motion.hands.values())
    with pytest.raises(StageError) as err:
        require_motion(motion)
    assert err.value.reason == "no_motion"


def test_hands_marked_valid_but_all_nan_is_no_motion(world_hands):
    nan = {side: np.full_like(pts, np.nan) for side, pts in world_hands.items()}
    for tracks, intrinsics in ((mediapipe_like(nan), K), (world_tracks(nan), None)):
        motion = process_motion(tracks, SETTINGS, intrinsics=intrinsics)
        assert motion.dropped_frames == 2 * N  # every claimed observation was impossible
        with pytest.raises(StageError) as err:
            require_motion(motion)
        assert err.value.reason == "no_motion"


def test_one_hand_missing_keeps_the_other(world_hands):
    valid = {"left": np.zeros(N, bool), "right": np.ones(N, bool)}
    motion = process_motion(mediapipe_like(world_hands, valid), SETTINGS, intrinsics=K)
    require_motion(motion)
    assert not motion.hands["left"].params.valid.any() and np.isnan(motion.hands["left"].keypoints_3d).all()
    assert motion.hands["right"].params.valid.all()


# ---------------------------------------------------------------- a single frame


def test_single_frame_gives_one_frame_then_too_short(world_hands):
    one = {side: pts[:1] for side, pts in world_hands.items()}
    motion = process_motion(mediapipe_like(one), SETTINGS, intrinsics=K)
    require_motion(motion)
    assert motion.n_frames == 1
    for hand in motion.hands.values():
        assert hand.params.valid.tolist() == [True] and hand.keypoints_3d.shape == (1, 21, 3)
        assert np.isfinite(hand.keypoints_3d).all() and hand.fit_error_mm[0] < 5.0
    metrics = quality.measure(
        {s: motion.hands[s].params.rotations[:, 0] for s in HANDS},
        {s: motion.hands[s].params.transl for s in HANDS},
        {s: motion.hands[s].params.valid for s in HANDS},
        motion.fps,
    )
    with pytest.raises(StageError) as err:
        quality.check(metrics, settings.quality_settings(DEFAULTS))
    assert err.value.reason == "too_short"


def test_single_frame_with_no_hand_is_no_motion(world_hands):
    one = {side: pts[:1] for side, pts in world_hands.items()}
    motion = process_motion(mediapipe_like(one, {s: np.zeros(1, bool) for s in HANDS}), SETTINGS, intrinsics=K)
    with pytest.raises(StageError, match="no_motion"):
        require_motion(motion)


# ---------------------------------------------------------------- NaNs from the tracker


def test_nan_frames_are_dropped_and_the_rest_fits(world_hands):
    tracks = mediapipe_like(world_hands)
    right = tracks.hands["right"]
    kp2d, kp3d = right.keypoints_2d.reshape(N, 21, 3).copy(), right.keypoints_3d.reshape(N, 21, 3).copy()
    kp2d[10], kp3d[10] = np.nan, np.nan  # the whole frame
    kp3d[20, 7] = np.nan  # one 3D keypoint
    kp2d[30, 12, :2] = np.nan  # one 2D keypoint: PnP cannot place the hand
    tracks.hands["right"] = HandTrack(side="right", valid=right.valid, keypoints_2d=kp2d, keypoints_3d=kp3d)

    motion = process_motion(tracks, SETTINGS, intrinsics=K)
    assert motion.dropped_frames == 3
    assert motion.swapped_frames == 0  # a NaN wrist must not confuse left and right
    for side in HANDS:
        hand = motion.hands[side]
        assert hand.params.valid.all()  # short gaps are filled
        fitted = np.isfinite(hand.fit_error_mm)
        assert fitted.sum() >= canonical(N) - 3 and hand.fit_error_mm[fitted].max() < 5.0
        assert np.isfinite(hand.keypoints_3d).all()
        wrist = world_hands[side][::2, 0]
        assert np.linalg.norm(hand.params.transl - wrist, axis=-1).max() < 0.01
    right = motion.hands["right"]
    for source in (10, 20, 30):  # canonical frames on a dropped source frame: filled, no fit error
        k = source // 2
        assert right.params.filled[k] and np.isnan(right.fit_error_mm[k])
    assert not motion.hands["left"].params.filled.any()


# ---------------------------------------------------------------- left/right swaps


def _left_hand_like_the_right(world_hands) -> np.ndarray:
    """The left hand turned in the image plane so that, centred on the hand, its wrist sits where the right's does.

    Hand-centred 3D then cannot tell the hands apart: only their 2D positions can.
    """
    left = world_hands["left"] - CENTRES["left"]
    wrist_l = (left - left.mean(axis=1, keepdims=True))[0, 0]
    wrist_r = (world_hands["right"] - world_hands["right"].mean(axis=1, keepdims=True))[0, 0]
    angle = np.arctan2(wrist_r[1], wrist_r[0]) - np.arctan2(wrist_l[1], wrist_l[0])
    turn = Rotation.from_rotvec([0.0, 0.0, angle]).as_matrix()
    return left @ turn.T + CENTRES["left"]


@pytest.mark.parametrize("nan_frame", [None, 10], ids=["clean", "one-nan-frame"])
def test_labels_swapped_every_other_frame_are_undone(world_hands, nan_frame):
    hands = dict(world_hands, left=_left_hand_like_the_right(world_hands))
    tracks = mediapipe_like(hands)
    odd = (np.arange(N) % 2 == 1)[:, None]
    left, right = tracks.hands["left"], tracks.hands["right"]
    swapped = {}
    for side, (a, b) in {"left": (left, right), "right": (right, left)}.items():
        kp2d = np.where(odd, b.keypoints_2d, a.keypoints_2d)
        kp3d = np.where(odd, b.keypoints_3d, a.keypoints_3d)
        if nan_frame is not None and side == "right":  # the tracker lost the 2D and 3D of one frame
            kp2d[nan_frame], kp3d[nan_frame] = np.nan, np.nan
        swapped[side] = HandTrack(side=side, valid=a.valid, keypoints_2d=kp2d, keypoints_3d=kp3d)
    tracks.hands = swapped

    motion = process_motion(tracks, SETTINGS, intrinsics=K)
    assert motion.swapped_frames == N // 2
    assert motion.dropped_frames == (nan_frame is not None)
    left, right = motion.hands["left"], motion.hands["right"]
    assert left.params.valid.all() and right.params.valid.all()
    assert (left.params.transl[:, 0] < right.params.transl[:, 0]).all()
    assert (left.keypoints_3d[:, :, 0].max(axis=1) < right.keypoints_3d[:, :, 0].min(axis=1)).all()
    for side in HANDS:  # each hand's fit saw only its own hand's frames
        assert np.nanmax(motion.hands[side].fit_error_mm) < 5.0
        wrist = hands[side][::2, 0]
        assert np.linalg.norm(motion.hands[side].params.transl - wrist, axis=-1).max() < 0.01


# ---------------------------------------------------------------- absurd bone lengths


def test_hand_scaled_tenfold_is_absurd_bone_lengths(world_hands):
    giant = dict(world_hands, right=CENTRES["right"] + 10 * (world_hands["right"] - CENTRES["right"]))
    with pytest.raises(StageError) as err:
        process_motion(world_tracks(giant), SETTINGS)
    assert err.value.reason == "absurd_bone_lengths" and "right" in err.value.detail


def test_hand_scaled_tenfold_in_the_build_stage_is_a_reject(world_hands):
    """Through the motion stage as the build calls it: the StageError propagates (the wiring records it)."""
    giant = {side: CENTRES[side] + 10 * (pts - CENTRES[side]) for side, pts in world_hands.items()}
    cfg = load_config(tracker="precomputed", min_both_hands_frac=0)
    with pytest.raises(StageError) as err:
        stages.motion(world_tracks(giant), None, make_clip(n_frames=N, size=(0, 0)), cfg, "test")
    assert err.value.reason == "absurd_bone_lengths"


def test_single_absurd_frames_are_dropped(world_hands):
    bad = [5, 17, 33]
    right = world_hands["right"].copy()
    right[bad] = CENTRES["right"] + 10 * (right[bad] - CENTRES["right"])
    motion = process_motion(world_tracks(dict(world_hands, right=right)), SETTINGS)
    require_motion(motion)
    assert motion.coordinate_frame == "world" and motion.dropped_frames == len(bad)
    hand = motion.hands["right"]
    assert hand.params.valid.all() and np.nanmax(hand.fit_error_mm) < 5.0
    # the calibrated skeleton has the real hand's size, and the motion follows the real wrist
    assert np.linalg.norm(hand.params.transl - world_hands["right"][::2, 0], axis=-1).max() < 0.01

    # the same frames, mediapipe-like: 3D ten times too big against the 2D puts the hand ~5 m away, a bad frame too
    tracks = mediapipe_like(world_hands)
    kp3d = tracks.hands["right"].keypoints_3d.reshape(N, 21, 3).copy()
    kp3d[bad] *= 10
    tracks.hands["right"] = HandTrack(
        side="right", valid=np.ones(N, bool), keypoints_2d=tracks.hands["right"].keypoints_2d, keypoints_3d=kp3d
    )
    motion = process_motion(tracks, SETTINGS, intrinsics=K)
    assert motion.dropped_frames == len(bad) and motion.hands["right"].params.valid.all()
    assert np.nanmax(motion.hands["right"].fit_error_mm) < 5.0


# ---------------------------------------------------------------- the same in a build


def _keypoints_npz(path, hands: dict[str, np.ndarray], **extra) -> None:
    np.savez(
        path, fps=np.float32(FPS), **{f"{side}_keypoints_3d": pts.astype(np.float32) for side, pts in hands.items()}, **extra
    )


def test_build_keeps_the_good_file_and_rejects_the_bad_ones(tmp_path, world_hands):
    inputs = tmp_path / "tracks"
    inputs.mkdir()
    long = {side: np.concatenate([pts, pts[::-1]]) for side, pts in world_hands.items()}  # 3.2 s: past min_clip_s
    _keypoints_npz(inputs / "good.npz", long)
    _keypoints_npz(inputs / "all_nan.npz", {side: np.full_like(pts, np.nan) for side, pts in long.items()})
    _keypoints_npz(inputs / "giant.npz", {side: CENTRES[side] + 10 * (pts - CENTRES[side]) for side, pts in long.items()})
    _keypoints_npz(inputs / "one_frame.npz", {side: pts[:1] for side, pts in long.items()})
    untracked = {f"{side}_valid": np.zeros(len(long[side]), bool) for side in HANDS}
    _keypoints_npz(inputs / "untracked.npz", {side: np.full_like(pts, np.nan) for side, pts in long.items()}, **untracked)
    cfg = load_config(videos=str(inputs), out=tmp_path / "out", tracker="precomputed", workers=2)

    summary = build_plain(cfg)
    t = {name: read_table(cfg.out, name).to_pylist() for name in ("clips", "motion", "captions", "rejects")}
    clips = {c["source_path"].rsplit("/", 1)[-1]: c for c in t["clips"]}
    assert set(clips) == {"good.npz", "all_nan.npz", "giant.npz", "untracked.npz"}  # one_frame.npz is too short to plan a clip
    assert clips["good.npz"]["status"] == "accepted"
    assert {c["status"] for name, c in clips.items() if name != "good.npz"} == {"rejected"}
    (motion,) = t["motion"]
    assert motion["clip_id"] == clips["good.npz"]["clip_id"] and motion["coordinate_frame"] == "world"
    assert all(motion["left_valid"]) and all(motion["right_valid"]) and motion["fit_error_mm"] < 5.0
    assert {c["clip_id"] for c in t["captions"]} == {motion["clip_id"]}
    rejects = {r["source_path"].rsplit("/", 1)[-1]: (r["stage"], r["reason"]) for r in t["rejects"]}
    assert rejects == {
        "all_nan.npz": ("motion", "no_motion"),
        "giant.npz": ("motion", "absurd_bone_lengths"),
        "one_frame.npz": ("plan", "too_short"),
        "untracked.npz": ("filter", "no_hands"),
    }
    assert summary.clips_accepted == 1 and summary.clips_rejected == 3
    assert (cfg.out / "catalog.duckdb").exists() and (cfg.out / "build.json").exists()
