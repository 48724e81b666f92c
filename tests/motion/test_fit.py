"""Hand model and fitting: joint orders, the open skeleton, IK accuracy on real F-PHAB motion, MANO fits."""

import numpy as np
import pytest
import torch

from conftest import DEFAULTS, FPHAB, fixture_file
from hiw.errors import StageError
from hiw.flows import settings
from hiw.motion.evaluate import fit_error, robustness, roundtrip
from hiw.motion.fit import FitSettings, closed_form_pose, fit_hand
from hiw.motion.hand_model import (
    MANO21_FROM_FPHAB,
    MANO21_FROM_OPENPOSE,
    PARENTS21,
    forward_kinematics,
    from_mano21,
    to_mano21,
)
from hiw.motion.mano import ManoHand, random_mano_struct
from hiw.motion.open_skeleton import OpenSkeleton, template
from hiw.trackers.precomputed import read_fphab

BUILD = settings.motion_settings(DEFAULTS)  # the fit a build runs


def test_keypoint_orders_are_permutations_that_round_trip():
    for order in (MANO21_FROM_OPENPOSE, MANO21_FROM_FPHAB):
        assert sorted(order) == list(range(21))
    kp = np.random.default_rng(0).normal(size=(4, 21, 3))
    for layout in ("openpose21", "fphab21"):
        np.testing.assert_array_equal(from_mano21(to_mano21(kp, layout), layout), kp)
    # OpenPose: 1-4 thumb base..tip, 5-8 index. mano21: 13-15 thumb joints, 16 thumb tip, 1-3 index, 17 index tip
    assert list(MANO21_FROM_OPENPOSE[[13, 14, 15, 16]]) == [1, 2, 3, 4]
    assert list(MANO21_FROM_OPENPOSE[[1, 2, 3, 17]]) == [5, 6, 7, 8]


def test_template_is_a_plausible_right_hand_and_left_is_its_mirror():
    right, left = template("right"), template("left")
    assert 0.17 < np.linalg.norm(right[18]) < 0.20  # wrist to middle fingertip, metres
    np.testing.assert_allclose(left[:, 2], -right[:, 2])
    assert right[13, 2] < 0 < right[7, 2]  # thumb on -z, little finger on +z for a right hand
    assert (right[16:, 1] < 0).all()  # relaxed fingertips curl to the palm side (-y)


def test_forward_kinematics_at_rest_and_under_a_global_rotation():
    model = OpenSkeleton("right")
    eye = torch.eye(3).expand(2, 16, 3, 3).clone()
    out = model.forward(eye, torch.tensor([[0.0, 0, 0], [0.1, 0.2, 0.3]]))
    np.testing.assert_allclose(out[0].numpy(), model.rest.numpy(), atol=1e-6)
    np.testing.assert_allclose(out[1].numpy(), model.rest.numpy() + [0.1, 0.2, 0.3], atol=1e-6)
    bones = np.linalg.norm(out[1, 1:] - out[1, list(PARENTS21[1:])], axis=-1)
    rot = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    turned = forward_kinematics(model.rest, torch.cat([rot[None, None], eye[:1, 1:]], dim=1), torch.zeros(1, 3))
    np.testing.assert_allclose(turned[0].numpy(), (model.rest @ rot.T).numpy(), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(turned[0, 1:] - turned[0, list(PARENTS21[1:])], axis=-1), bones, atol=1e-6)


@pytest.fixture(scope="module")
def write_joints():
    return read_fphab(fixture_file(FPHAB / "S1_write_1_skeleton.txt"))  # (T, 21, 3) metres, OpenPose order


def test_calibration_takes_the_sequences_bone_lengths(write_joints):
    keypoints = to_mano21(write_joints, "openpose21")
    model = OpenSkeleton.calibrated("right", keypoints, np.ones(len(keypoints), bool))
    observed = np.median(np.linalg.norm(keypoints[:, 1:] - keypoints[:, list(PARENTS21[1:])], axis=-1), axis=0)
    rest = model.rest.numpy()
    fitted = np.linalg.norm(rest[1:] - rest[list(PARENTS21[1:])], axis=-1)
    np.testing.assert_allclose(fitted, observed, atol=1.5e-3)  # palm bones by Procrustes, finger bones by median


def test_absurd_bone_lengths_are_a_stage_error(write_joints):
    keypoints = to_mano21(write_joints * 10, "openpose21")
    with pytest.raises(StageError) as err:
        OpenSkeleton.calibrated("right", keypoints, np.ones(len(keypoints), bool))
    assert err.value.reason == "absurd_bone_lengths" and "template" in err.value.detail
    with pytest.raises(StageError, match="no frame"):
        OpenSkeleton.calibrated("right", keypoints, np.zeros(len(keypoints), bool))


def test_fit_on_real_fphab_motion_is_within_5_mm(write_joints):
    mean_mm, _ = fit_error(write_joints, BUILD.fit)
    assert mean_mm < 5.0
    closed, _ = fit_error(write_joints, FitSettings(iterations=0))  # the warm start alone is already close
    assert closed < 5.0


def test_noise_and_dropped_frames_are_reduced_by_the_motion_pipeline(write_joints):
    noisy_mm, out_mm, coverage = robustness(write_joints, noise_mm=5.0, drop=0.2, settings=BUILD, seed=3)
    assert 7.0 < noisy_mm < 9.0  # 5 mm per coordinate
    assert out_mm / noisy_mm < 0.7 and coverage > 0.95


def test_round_trip_recovers_random_plausible_parameters():
    joint_deg, global_deg = roundtrip(BUILD.fit, 64, seed=2)
    assert joint_deg < 0.05 and global_deg < 0.05
    joint_deg, _ = roundtrip(BUILD.fit, 64, seed=2, max_twist_deg=10)  # twist is invisible to keypoints: bounded loss
    assert 1.0 < joint_deg < 10.0


def test_missing_frames_get_no_parameters(write_joints):
    keypoints = to_mano21(write_joints[:40], "openpose21").copy()
    valid = np.ones(40, bool)
    valid[10:15] = False
    keypoints[20, 5] = np.nan  # a NaN keypoint invalidates its frame
    model = OpenSkeleton.calibrated("right", keypoints, valid & np.isfinite(keypoints).all(axis=(1, 2)))
    fit = fit_hand(model, keypoints, valid, BUILD.fit)
    assert not fit.valid[10:15].any() and not fit.valid[20] and fit.valid.sum() == 34
    assert np.isnan(fit.rotations[12]).all() and np.isfinite(fit.rotations[fit.valid]).all()
    assert np.nanmean(fit.error_mm) < 5.0


def test_mano_model_fit_recovers_pose_and_shape_from_its_own_keypoints():
    model = ManoHand("right", data_struct=random_mano_struct(seed=1))
    rng = np.random.default_rng(0)
    betas = torch.as_tensor(rng.normal(0, 0.5, 10), dtype=torch.float32)
    rest = model.rest_joints(betas)
    target_rot, target_t = closed_form_pose(rest, rest[None] + torch.tensor([0.0, 0.0, 0.4]))
    with torch.no_grad():
        keypoints = model.forward(target_rot.expand(20, -1, -1, -1), target_t.expand(20, -1), betas).numpy()
    keypoints += rng.normal(0, 0.0005, keypoints.shape).astype(np.float32)
    fit = fit_hand(model, keypoints, np.ones(20, bool), FitSettings(iterations=60))
    assert fit.betas.shape == (10,)
    assert np.nanmean(fit.error_mm) < 2.0
