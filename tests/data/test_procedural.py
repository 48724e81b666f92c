"""Procedural hand motion (hiw.data.procedural): determinism, valid parameters, plausible hands under forward
kinematics, each action doing what its name says, smoothness, labels and the 198-number features."""

from __future__ import annotations

import numpy as np
import pytest
import roma
import torch
from scipy.signal import find_peaks

from conftest import DEFAULTS
from hiw.data.procedural import ACTIONS, FLEX_LIMITS, LABEL_VERBS, SPREAD_LIMIT, ProceduralClip, generate, to_param_sequences
from hiw.flows import settings
from hiw.motion.features import FEATURES
from hiw.motion.open_skeleton import OpenSkeleton
from hiw.motion.quality import check, measure
from hiw.schemas import HANDS

TIPS = slice(16, 21)  # mano21 fingertips: thumb, index, middle, ring, pinky
INDEX_TIP = 17
FINGER_TIPS = [17, 18, 19, 20]  # without the thumb


@pytest.fixture(scope="module")
def batch() -> list[ProceduralClip]:
    return generate(70, seed=0)


@pytest.fixture(scope="module")
def big() -> list[ProceduralClip]:
    """Enough clips that every action is done by a left and a right hand several times."""
    return generate(210, seed=11)


def keypoints(clip: ProceduralClip, side: str) -> np.ndarray:
    """(T, 21, 3) mano21 keypoints in the camera-like frame."""
    rot, transl = torch.as_tensor(clip.rotations[side]), torch.as_tensor(clip.transl[side])
    return OpenSkeleton(side).forward(rot, transl).numpy()


def in_hand_frame(clip: ProceduralClip, side: str) -> np.ndarray:
    """(T, 21, 3) keypoints in the hand's rest frame (x to the middle knuckle, y out of the back of the hand)."""
    kp = keypoints(clip, side) - clip.transl[side][:, None]
    return np.einsum("tij,tki->tkj", clip.rotations[side][:, 0], kp)  # R^T p


def acting(clips: list[ProceduralClip], action: str) -> list[tuple[ProceduralClip, str]]:
    return [(c, side) for c in clips if c.action == action for side in c.hands]


def swings(signal: np.ndarray, threshold: float) -> int:
    """Sign changes of ``signal`` counted with hysteresis: from above +threshold to below -threshold or back."""
    state, count = 0, 0
    for x in signal:
        if x > threshold and state <= 0:
            count, state = count + (state < 0), 1
        elif x < -threshold and state >= 0:
            count, state = count + (state > 0), -1
    return count


def body_angular_velocity_deg(rot: np.ndarray) -> np.ndarray:
    r = torch.as_tensor(rot, dtype=torch.float64)
    return np.degrees(roma.rotmat_to_rotvec(r[:-1].transpose(-1, -2) @ r[1:]).numpy())


def dominant_swings(global_orient: np.ndarray, threshold_deg: float = 3.0) -> int:
    """Most hysteresis sign changes of the angular velocity about any of its principal axes (deg/frame)."""
    omega = body_angular_velocity_deg(global_orient)
    _, _, axes = np.linalg.svd(omega, full_matrices=False)
    return max(swings(omega @ axis, threshold_deg) for axis in axes)


# ------------------------------------------------------------------------------------------------ basics


def test_same_seed_same_clips_other_seed_other_clips() -> None:
    a, b, c = generate(6, seed=7), generate(6, seed=7), generate(6, seed=8)
    for x, y in zip(a, b):
        assert (x.clip_id, x.action, x.hands, x.text) == (y.clip_id, y.action, y.hands, y.text)
        for side in HANDS:
            np.testing.assert_array_equal(x.rotations[side], y.rotations[side])
            np.testing.assert_array_equal(x.transl[side], y.transl[side])
    assert [x.clip_id for x in a] == [f"p_7_{i}" for i in range(6)]
    assert all(not np.array_equal(x.transl["right"], z.transl["right"]) for x, z in zip(a, c))
    prefix = generate(3, seed=7)  # clip i depends on (seed, i) only
    assert all(np.array_equal(p.rotations["left"], x.rotations["left"]) for p, x in zip(prefix, a))


def test_no_clips_and_bad_arguments() -> None:
    assert generate(0) == []
    with pytest.raises(ValueError):
        generate(2, actions=("juggle",))
    with pytest.raises(ValueError):
        generate(2, min_s=5.0, max_s=4.0)


def test_shapes_dtypes_and_proper_rotations(batch) -> None:
    for clip in batch:
        t = clip.n_frames
        assert set(clip.rotations) == set(clip.transl) == set(clip.valid) == set(HANDS)
        for side in HANDS:
            rot, transl, valid = clip.rotations[side], clip.transl[side], clip.valid[side]
            assert rot.shape == (t, 16, 3, 3) and rot.dtype == np.float32
            assert transl.shape == (t, 3) and transl.dtype == np.float32
            assert valid.shape == (t,) and valid.dtype == bool and valid.all()
            assert np.isfinite(rot).all() and np.isfinite(transl).all()
            r = rot.astype(np.float64)
            np.testing.assert_allclose(r @ r.transpose(0, 1, 3, 2), np.broadcast_to(np.eye(3), r.shape), atol=1e-5)
            np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-5)
        assert clip.hands in (("left",), ("right",), ("left", "right"))
        assert clip.action in ACTIONS and clip.fps == 15.0


@pytest.mark.parametrize(("fps", "min_s", "max_s"), [(15.0, 2.0, 9.6), (30.0, 3.0, 3.5), (15.0, 4.0, 4.0)])
def test_durations_within_bounds(fps, min_s, max_s) -> None:
    clips = generate(20, seed=3, fps=fps, min_s=min_s, max_s=max_s)
    for clip in clips:
        assert min_s - 1e-9 <= clip.n_frames / clip.fps <= max_s + 1e-9
        assert clip.fps == fps


def test_every_action_occurs_and_a_subset_is_respected(batch) -> None:
    assert {c.action for c in batch} == set(ACTIONS)
    assert {len(c.hands) for c in batch} == {1, 2}
    assert {c.action for c in generate(10, seed=1, actions=("tap", "wave"))} <= {"tap", "wave"}


# ------------------------------------------------------------------------------------------------ anatomy


def test_hands_are_plausible_under_forward_kinematics(batch) -> None:
    for clip in batch:
        for side in HANDS:
            kp = keypoints(clip, side)
            reach = np.linalg.norm(kp[:, TIPS] - kp[:, :1], axis=-1)
            assert 0.05 <= reach.min() and reach.max() <= 0.22, (clip.clip_id, side, reach.min(), reach.max())
            wrist_range = np.linalg.norm(clip.transl[side], axis=-1)
            assert 0.15 <= wrist_range.min() and wrist_range.max() <= 0.8, (clip.clip_id, side)
            assert (kp[..., 2] > 0).all()
            x = clip.transl[side][:, 0]
            assert (x < 0).mean() > 0.9 if side == "left" else (x > 0).mean() > 0.9, (clip.clip_id, side)  # on its side
            # palm-down start poses put the thumb on the inner side: right thumb left of the little finger
            if clip.action in ("reach", "grasp", "tap", "type"):
                inner = kp[0, 16, 0] < kp[0, 20, 0] if side == "right" else kp[0, 16, 0] > kp[0, 20, 0]
                assert inner, (clip.clip_id, side)


def test_joint_angles_stay_within_anatomical_limits(batch) -> None:
    mcp_limit = np.hypot(np.abs(FLEX_LIMITS[:4, 0]).max(), SPREAD_LIMIT)
    limits = np.concatenate([[mcp_limit, *np.abs(FLEX_LIMITS[f, 1:]).max(axis=-1)] for f in range(4)])
    limits = np.concatenate([limits, np.abs(FLEX_LIMITS[4]).max(axis=-1)])  # thumb CMC, MCP, IP
    for clip in batch:
        for side in HANDS:
            joints = torch.as_tensor(clip.rotations[side][:, 1:], dtype=torch.float64)
            angle = np.degrees(roma.rotmat_to_rotvec(joints).norm(dim=-1).numpy())  # (T, 15)
            assert (angle <= limits + 0.5).all(), (clip.clip_id, side, (angle - limits).max())
    assert FLEX_LIMITS[:4, :, 1].tolist() == [[90, 110, 80]] * 4 and SPREAD_LIMIT <= 20


@pytest.mark.parametrize("side", HANDS)
def test_grasp_closes_the_fingers_towards_the_palm_and_release_opens_them(big, side) -> None:
    grasps = [c for c, s in acting(big, "grasp") if s == side]
    releases = [c for c, s in acting(big, "release") if s == side]
    assert len(grasps) >= 3 and len(releases) >= 3
    for clip in grasps:
        kp, local = keypoints(clip, side), in_hand_frame(clip, side)
        reach = np.linalg.norm(kp[:, TIPS] - kp[:, :1], axis=-1).mean(axis=1)
        assert reach[-1] <= 0.85 * reach[0], (clip.clip_id, reach[0], reach[-1])
        # flexion moves each fingertip to the palm side (-y of the rest frame) and ends there, for both hands
        assert (local[:, FINGER_TIPS, 1].min(axis=0) < local[0, FINGER_TIPS, 1] - 0.01).all(), clip.clip_id
        assert (local[-1, FINGER_TIPS, 1] < 0).all(), clip.clip_id
    for clip in releases:
        kp, local = keypoints(clip, side), in_hand_frame(clip, side)
        reach = np.linalg.norm(kp[:, TIPS] - kp[:, :1], axis=-1).mean(axis=1)
        assert reach[-1] >= 1.15 * reach[0], (clip.clip_id, reach[0], reach[-1])
        assert (local[-1, FINGER_TIPS, 0] > local[0, FINGER_TIPS, 0] + 0.03).all(), clip.clip_id  # fingers extend


def test_wave_oscillates_the_hand_and_other_actions_do_not(big) -> None:
    waves = acting(big, "wave")
    assert {s for _, s in waves} == set(HANDS)
    for clip, side in waves:
        assert dominant_swings(clip.rotations[side][:, 0]) >= 2, clip.clip_id
        assert clip.transl[side][:, 1].min() < 0.1  # raised: wrist at most 10 cm below the camera
    for clip, side in acting(big, "grasp") + acting(big, "reach"):
        assert dominant_swings(clip.rotations[side][:, 0]) < 2, clip.clip_id  # idle wobble is not a wave


def test_reach_moves_the_wrist_at_least_10_cm(big) -> None:
    for clip, side in acting(big, "reach"):
        displacement = np.linalg.norm(clip.transl[side] - clip.transl[side][0], axis=-1).max()
        assert displacement >= 0.10, (clip.clip_id, displacement)
        assert clip.transl[side][:, 2].max() - clip.transl[side][0, 2] >= 0.05  # mostly forward


def test_tap_oscillates_the_index_tip_with_the_wrist_still(big) -> None:
    taps = acting(big, "tap")
    assert {s for _, s in taps} == set(HANDS)
    for clip, side in taps:
        kp = keypoints(clip, side)
        index_reach = np.linalg.norm(kp[:, INDEX_TIP] - kp[:, 0], axis=-1)
        troughs, _ = find_peaks(-index_reach, prominence=0.005)
        assert len(troughs) >= 2, (clip.clip_id, len(troughs))
        assert np.linalg.norm(clip.transl[side] - clip.transl[side][0], axis=-1).max() < 0.03


def test_rotate_turns_the_hand_about_its_own_long_axis(big) -> None:
    for clip, side in acting(big, "rotate"):
        rot = torch.as_tensor(clip.rotations[side][:, 0], dtype=torch.float64)
        rel = roma.rotmat_to_rotvec(rot[:1].transpose(-1, -2) @ rot).numpy()  # in the start pose's hand frame
        i = np.linalg.norm(rel, axis=-1).argmax()
        angle = np.degrees(np.linalg.norm(rel[i]))
        assert 55 <= angle <= 160, (clip.clip_id, angle)
        assert abs(rel[i, 0]) / np.linalg.norm(rel[i]) > 0.95  # about x: pronation / supination


def test_type_alternates_finger_presses(big) -> None:
    for clip, side in acting(big, "type"):
        kp = keypoints(clip, side)
        reach = np.linalg.norm(kp[:, FINGER_TIPS] - kp[:, :1], axis=-1)  # a press pulls the tip in
        presses = [len(find_peaks(-reach[:, f], prominence=0.004)[0]) for f in range(4)]
        assert sum(p > 0 for p in presses) >= 2, (clip.clip_id, presses)
        assert np.ptp(clip.transl[side][:, 0]) > 0.008 or clip.duration_s < 3  # and the wrist shifts sideways


def test_motion_is_smooth(batch) -> None:
    for clip in batch:
        metrics = measure({s: clip.rotations[s][:, 0] for s in HANDS}, clip.transl, clip.valid, clip.fps)
        check(metrics, settings.quality_settings(DEFAULTS))  # the paper's jitter filters would keep every clip
        for side in HANDS:
            speed = np.linalg.norm(np.diff(clip.transl[side], axis=0), axis=-1) * clip.fps
            assert speed.max() < 2.5, (clip.clip_id, side, speed.max())
            r = torch.as_tensor(clip.rotations[side], dtype=torch.float64)
            step = np.degrees(roma.rotmat_geodesic_distance(r[:-1], r[1:]).numpy())
            assert step.max() < 25.0, (clip.clip_id, side, step.max())


# ------------------------------------------------------------------------------------------------ labels, features


def test_labels_name_the_hands_and_the_action(batch) -> None:
    for clip in batch:
        text = clip.text
        assert text == text.strip() and "{" not in text and "  " not in text
        if len(clip.hands) == 2:
            assert "both hands" in text, text
        else:
            assert f"{clip.hands[0]} hand" in text and "hands" not in text, text
    assert set(LABEL_VERBS) == set(ACTIONS)
    assert len({c.text for c in batch}) > 50  # varied


def test_features_and_param_sequences(batch) -> None:
    for clip in batch[:10]:
        feats, mask = clip.features()
        assert feats.shape == (clip.n_frames, FEATURES) and feats.dtype == np.float32 and np.isfinite(feats).all()
        assert mask.shape == (clip.n_frames, 2) and mask.all()
        seqs = to_param_sequences(clip)
        assert set(seqs) == set(HANDS)
        np.testing.assert_array_equal(seqs["left"].rotations, clip.rotations["left"])
        assert seqs["right"].valid.all() and not seqs["right"].filled.any()
