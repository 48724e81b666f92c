"""Temporal processing of one hand's parameters: gap filling, smoothing and resampling (hiw.motion.temporal)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import roma
import torch

from conftest import DEFAULTS
from hiw.flows import settings
from hiw.motion.temporal import (
    ParamSequence,
    fill_gaps,
    resample,
    resample_array,
    resample_positions,
    runs,
    smooth,
)

FPS = 30.0
J = 16  # MANO: global orientation + 15 joints


def trajectory(n: int, seed: int = 0, fps: float = FPS) -> tuple[np.ndarray, np.ndarray]:
    """A smooth hand motion: (n, 16, 3, 3) float32 rotations and (n, 3) float32 translation in metres.

    Every joint swings about a random rest pose (0.3-0.6 rad at 0.2-0.6 Hz); the wrist drifts a few cm/s
    with a gentle sway, about 40 cm in front of the camera.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None, None] / fps
    amp = rng.uniform(0.3, 0.6, (1, J, 3))
    freq = rng.uniform(0.2, 0.6, (1, J, 3))
    phase = rng.uniform(0, 2 * np.pi, (1, J, 3))
    rotvec = torch.as_tensor(amp * np.sin(2 * np.pi * freq * t + phase))
    rest = roma.random_rotmat(J, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    rot = (rest @ roma.rotvec_to_rotmat(rotvec)).float().numpy()
    tt = t[:, 0]
    transl = np.array([0.05, -0.10, 0.40]) + np.array([0.04, 0.02, -0.03]) * tt + 0.02 * np.sin(2 * np.pi * 0.5 * tt)
    return rot, transl.astype(np.float32)


def sequence(n: int, valid: np.ndarray | None = None, seed: int = 0) -> ParamSequence:
    rot, transl = trajectory(n, seed)
    valid = np.ones(n, bool) if valid is None else valid
    rot[~valid], transl[~valid] = np.nan, np.nan
    return ParamSequence.observed(rot, transl, valid)


def geodesic(r0: np.ndarray, r1: np.ndarray) -> np.ndarray:
    return roma.rotmat_geodesic_distance(
        torch.as_tensor(r0, dtype=torch.float64), torch.as_tensor(r1, dtype=torch.float64)
    ).numpy()


def assert_rotations(rot: np.ndarray, atol: float = 1e-5) -> None:
    rot = rot.astype(np.float64)
    eye = np.broadcast_to(np.eye(3), rot.shape)
    np.testing.assert_allclose(rot @ np.swapaxes(rot, -1, -2), eye, atol=atol)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=atol)


def mask(n: int, invalid: list[range | int]) -> np.ndarray:
    valid = np.ones(n, bool)
    for item in invalid:
        valid[item if isinstance(item, int) else list(item)] = False
    return valid


# ---------------------------------------------------------------- runs


def test_runs() -> None:
    assert runs(np.array([], bool)) == []
    assert runs(np.zeros(4, bool)) == []
    assert runs(np.ones(4, bool)) == [(0, 4)]
    assert runs(np.array([1, 1, 0, 1, 0, 0, 1, 1, 1], bool)) == [(0, 2), (3, 4), (6, 9)]


def test_observed_copies_valid_and_starts_unfilled() -> None:
    valid = mask(5, [2])
    seq = ParamSequence.observed(np.zeros((5, J, 3, 3)), np.zeros((5, 3)), valid)
    valid[0] = False
    assert seq.valid.tolist() == [True, True, False, True, True]
    assert not seq.filled.any() and seq.filled.dtype == bool


# ---------------------------------------------------------------- fill_gaps


def test_fill_gaps_midpoint_is_the_half_angle_rotation() -> None:
    """One missing frame between R0 and R0 @ exp(theta n): the fill is R0 @ exp(theta/2 n), translation the mean."""
    gen = torch.Generator().manual_seed(1)
    r0 = roma.random_rotmat(J, dtype=torch.float64, generator=gen)
    axis = torch.nn.functional.normalize(torch.randn(J, 3, dtype=torch.float64, generator=gen), dim=-1)
    theta = torch.linspace(0.1, 2.5, J, dtype=torch.float64)[:, None]  # up to 143 deg, far from linear blending
    rot = np.full((3, J, 3, 3), np.nan, np.float32)
    rot[0], rot[2] = r0.numpy(), (r0 @ roma.rotvec_to_rotmat(theta * axis)).numpy()
    transl = np.array([[0.1, 0.2, 0.4], [np.nan] * 3, [0.2, 0.0, 0.5]], np.float32)
    seq = ParamSequence.observed(rot, transl, np.array([True, False, True]))

    out = fill_gaps(seq, max_gap=1)

    expected = (r0 @ roma.rotvec_to_rotmat(theta / 2 * axis)).numpy()
    np.testing.assert_allclose(out.rotations[1], expected, atol=1e-5)
    np.testing.assert_allclose(geodesic(out.rotations[1], rot[0]), theta[:, 0].numpy() / 2, atol=1e-5)
    np.testing.assert_allclose(out.transl[1], [0.15, 0.1, 0.45], atol=1e-6)
    assert out.valid.all() and out.filled.tolist() == [False, True, False]
    assert np.isnan(seq.rotations[1]).all() and not seq.valid[1]  # the input is left alone


def test_fill_gaps_fills_exactly_the_short_interior_gaps() -> None:
    n = 60
    # leading gap, a 1-frame and a 5-frame interior gap (filled), a 6-frame interior gap (kept), trailing gap
    valid = mask(n, [range(3), 10, range(20, 25), range(35, 41), range(57, 60)])
    seq = sequence(n, valid)

    out = fill_gaps(seq, max_gap=5)

    filled = np.zeros(n, bool)
    filled[[10, *range(20, 25)]] = True
    assert out.filled.tolist() == filled.tolist()
    assert out.valid.tolist() == (valid | filled).tolist()
    for start, end in [(0, 3), (35, 41), (57, 60)]:  # too long or touching an end: still invalid, still NaN
        assert np.isnan(out.rotations[start:end]).all() and np.isnan(out.transl[start:end]).all()
    np.testing.assert_array_equal(out.rotations[valid], seq.rotations[valid])  # observed frames untouched
    np.testing.assert_array_equal(out.transl[valid], seq.transl[valid])

    # every filled frame is the geodesic interpolation between the gap's neighbours, translation linear
    for start, end in [(10, 11), (20, 25)]:
        r0, r1 = (
            torch.as_tensor(seq.rotations[start - 1], dtype=torch.float64),
            torch.as_tensor(seq.rotations[end], dtype=torch.float64),
        )
        for frame in range(start, end):
            w = (frame - start + 1) / (end - start + 1)
            expected = r0 @ roma.rotvec_to_rotmat(w * roma.rotmat_to_rotvec(r0.transpose(-1, -2) @ r1))
            np.testing.assert_allclose(out.rotations[frame], expected.numpy(), atol=1e-5)
            np.testing.assert_allclose(out.transl[frame], (1 - w) * seq.transl[start - 1] + w * seq.transl[end], atol=1e-6)
    assert_rotations(out.rotations[out.valid])


def test_fill_gaps_without_holes_returns_the_sequence() -> None:
    seq = sequence(20, mask(20, [0, range(5, 15), 19]))
    out = fill_gaps(seq, max_gap=3)
    assert out.valid.tolist() == seq.valid.tolist() and not out.filled.any()
    np.testing.assert_array_equal(out.rotations, seq.rotations)


# ---------------------------------------------------------------- smooth


def noisy(seq: ParamSequence, rot_sigma: float, transl_sigma: float, seed: int = 3) -> ParamSequence:
    rng = np.random.default_rng(seed)
    n = len(seq.valid)
    noise = roma.rotvec_to_rotmat(torch.as_tensor(rng.normal(0, rot_sigma, (n, J, 3)), dtype=torch.float32)).numpy()
    transl = seq.transl + rng.normal(0, transl_sigma, (n, 3)).astype(np.float32)
    return ParamSequence(seq.rotations @ noise, transl, seq.valid.copy(), seq.filled.copy())


def test_smooth_brings_noisy_motion_closer_to_the_clean_one() -> None:
    n = 120
    clean = sequence(n)
    obs = noisy(clean, rot_sigma=0.03, transl_sigma=0.004)  # ~3 deg and 4 mm of tracker noise

    out = smooth(obs, FPS, settings.temporal_settings(DEFAULTS))

    err_in, err_out = geodesic(obs.rotations, clean.rotations).mean(), geodesic(out.rotations, clean.rotations).mean()
    assert err_out < 0.7 * err_in, (err_in, err_out)
    t_in = np.linalg.norm(obs.transl - clean.transl, axis=-1).mean()
    t_out = np.linalg.norm(out.transl - clean.transl, axis=-1).mean()
    assert t_out < 0.7 * t_in, (t_in, t_out)
    assert_rotations(out.rotations)
    assert out.valid.tolist() == obs.valid.tolist() and out.rotations.shape == obs.rotations.shape


def test_smooth_keeps_a_clean_motion() -> None:
    clean = sequence(90)
    out = smooth(clean, FPS, settings.temporal_settings(DEFAULTS))
    rot_err, transl_err = geodesic(out.rotations, clean.rotations), np.abs(out.transl - clean.transl)
    assert rot_err[3:-3].max() < 0.015 and transl_err[3:-3].max() < 5e-4  # < 1 deg, 0.5 mm inside the run
    # the Gaussian pass pads a run's ends with its edge values, so the first and last frames lag a little
    assert rot_err.max() < 0.05 and transl_err.max() < 3e-3


def test_smooth_stays_within_runs() -> None:
    """NaN frames stay NaN, garbage in them changes nothing, and a step across a gap is not blurred."""
    n = 70
    valid = mask(n, [range(30, 40)])
    r_a, r_b = np.eye(3, dtype=np.float32), roma.rotvec_to_rotmat(torch.tensor([0.0, 2.0, 0.0])).numpy()
    rot = np.empty((n, J, 3, 3), np.float32)
    rot[:30], rot[40:] = r_a, r_b
    transl = np.empty((n, 3), np.float32)
    transl[:30], transl[40:] = [0.0, 0.0, 0.4], [0.3, -0.1, 0.5]
    rot[30:40], transl[30:40] = np.nan, np.nan
    out = smooth(ParamSequence.observed(rot, transl, valid), FPS, settings.temporal_settings(DEFAULTS))

    assert np.isnan(out.rotations[30:40]).all() and np.isnan(out.transl[30:40]).all()
    np.testing.assert_allclose(out.rotations[:30], np.broadcast_to(r_a, (30, J, 3, 3)), atol=1e-5)
    np.testing.assert_allclose(out.rotations[40:], np.broadcast_to(r_b, (30, J, 3, 3)), atol=1e-5)
    np.testing.assert_allclose(out.transl[:30], np.broadcast_to([0.0, 0.0, 0.4], (30, 3)), atol=1e-6)
    np.testing.assert_allclose(out.transl[40:], np.broadcast_to([0.3, -0.1, 0.5], (30, 3)), atol=1e-6)

    # realistic motion with noise: what sits in the invalid frames never reaches the valid ones
    seq = noisy(sequence(n, valid), 0.03, 0.004)
    garbage = ParamSequence(seq.rotations.copy(), seq.transl.copy(), seq.valid, seq.filled)
    garbage.rotations[30:40], garbage.transl[30:40] = 1e3, -1e3
    a, b = smooth(seq, FPS, settings.temporal_settings(DEFAULTS)), smooth(garbage, FPS, settings.temporal_settings(DEFAULTS))
    np.testing.assert_array_equal(a.rotations[valid], b.rotations[valid])
    np.testing.assert_array_equal(a.transl[valid], b.transl[valid])
    assert np.isfinite(a.rotations[valid]).all() and np.isnan(a.rotations[~valid]).all()


def test_smooth_handles_very_short_runs() -> None:
    n = 12
    valid = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1], bool)  # runs of 1, 2, 3 and 1 frames
    seq = noisy(sequence(n, valid), 0.03, 0.004)
    out = smooth(seq, FPS, settings.temporal_settings(DEFAULTS))
    assert out.valid.tolist() == valid.tolist()
    assert np.isfinite(out.rotations[valid]).all() and np.isnan(out.rotations[~valid]).all()
    assert_rotations(out.rotations[valid])
    for frame in (0, 2, 3, 11):  # runs of 1-2 frames are too short to filter: unchanged
        np.testing.assert_allclose(out.rotations[frame], seq.rotations[frame], atol=1e-5)
        np.testing.assert_allclose(out.transl[frame], seq.transl[frame], atol=1e-6)

    single = smooth(sequence(1), FPS, settings.temporal_settings(DEFAULTS))
    assert single.rotations.shape == (1, J, 3, 3) and np.isfinite(single.rotations).all()
    empty = smooth(sequence(5, np.zeros(5, bool)), FPS, settings.temporal_settings(DEFAULTS))
    assert np.isnan(empty.rotations).all()


def test_smooth_without_gaussian_pass() -> None:
    seq = noisy(sequence(60), 0.03, 0.004)
    out = smooth(seq, FPS, dataclasses.replace(settings.temporal_settings(DEFAULTS), gaussian_sigma_s=0.0))
    assert_rotations(out.rotations)
    assert geodesic(out.rotations, seq.rotations).mean() > 1e-3  # the Savitzky-Golay pass alone still filters


# ---------------------------------------------------------------- resample


def test_resample_positions() -> None:
    np.testing.assert_allclose(resample_positions(60, 30, 15), np.arange(30) * 2.0)
    np.testing.assert_allclose(resample_positions(61, 30, 15), np.arange(31) * 2.0)
    np.testing.assert_allclose(resample_positions(51, 25, 10), np.arange(21) * 2.5)
    np.testing.assert_allclose(resample_positions(50, 25, 10), np.arange(20) * 2.5)  # 47.5 is the last one inside
    np.testing.assert_allclose(resample_positions(45, 30, 30), np.arange(45))
    assert len(resample_positions(1, 30, 15)) == 1
    pos = resample_positions(100, 29.97, 15)
    assert pos[-1] <= 99 and pos[-1] + 29.97 / 15 > 99


def test_resample_30_to_15_takes_every_other_frame() -> None:
    n = 60
    valid = mask(n, [7, 20])  # an odd frame (never used) and an even one (dropped)
    seq = sequence(n, valid)
    seq.filled[[12, 13]] = True

    out = resample(seq, resample_positions(n, 30, 15))

    assert len(out.valid) == 30
    expected_valid = valid[::2]
    assert out.valid.tolist() == expected_valid.tolist() and not out.valid[10]
    np.testing.assert_allclose(out.rotations[expected_valid], seq.rotations[::2][expected_valid], atol=1e-6)
    np.testing.assert_allclose(out.transl[expected_valid], seq.transl[::2][expected_valid], atol=1e-7)
    assert np.isnan(out.rotations[10]).all() and np.isnan(out.transl[10]).all()
    assert np.flatnonzero(out.filled).tolist() == [6]  # frame 12; frame 13 is skipped


def test_resample_25_to_10_interpolates_geodesically() -> None:
    n = 51
    valid = mask(n, [5, 18])
    src_fps, fps = 25.0, 10.0
    rot, transl = trajectory(n, seed=4, fps=src_fps)
    rot[~valid], transl[~valid] = np.nan, np.nan
    seq = ParamSequence.observed(rot, transl, valid)
    seq.filled[12] = True
    positions = resample_positions(n, src_fps, fps)

    out = resample(seq, positions)

    assert len(out.valid) == 21
    # 5.0 is an exact hit on an invalid frame; 17.5 and 45 need frame 18; 2.5 -> frames 2, 3 are both fine
    expected_valid = np.ones(21, bool)
    expected_valid[[2, 7]] = False
    assert out.valid.tolist() == expected_valid.tolist()
    assert np.isnan(out.rotations[~expected_valid]).all() and np.isnan(out.transl[~expected_valid]).all()
    assert np.flatnonzero(out.filled).tolist() == [5]  # 12.5 sits between frames 12 (filled) and 13

    for k in np.flatnonzero(expected_valid):
        i0 = int(np.floor(positions[k]))
        if positions[k] == i0:
            np.testing.assert_allclose(out.rotations[k], rot[i0], atol=1e-6)
            np.testing.assert_allclose(out.transl[k], transl[i0], atol=1e-7)
        else:  # halfway: SLERP midpoint, same angle to both neighbours
            r0, r1 = torch.as_tensor(rot[i0], dtype=torch.float64), torch.as_tensor(rot[i0 + 1], dtype=torch.float64)
            expected = roma.rotmat_slerp(r0, r1, torch.tensor([0.5], dtype=torch.float64))[0]
            np.testing.assert_allclose(out.rotations[k], expected.numpy(), atol=1e-5)
            half = geodesic(rot[i0], rot[i0 + 1]) / 2
            np.testing.assert_allclose(geodesic(out.rotations[k], rot[i0]), half, atol=1e-5)
            np.testing.assert_allclose(geodesic(out.rotations[k], rot[i0 + 1]), half, atol=1e-5)
            np.testing.assert_allclose(out.transl[k], (transl[i0] + transl[i0 + 1]) / 2, atol=1e-6)
    assert_rotations(out.rotations[out.valid])


def test_resample_array() -> None:
    n = 26
    rng = np.random.default_rng(5)
    values = rng.uniform(0, 640, (n, 21, 3)).astype(np.float32)
    valid = mask(n, [10])
    values[10] = np.nan
    positions = resample_positions(n, 25, 10)  # 0, 2.5, ..., 25

    out = resample_array(values, valid, positions)

    assert out.shape == (11, 21, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], values[0])
    np.testing.assert_allclose(out[1], (values[2] + values[3]) / 2, rtol=1e-6)
    assert np.isnan(out[4]).all()  # 10.0: the frame itself is missing
    np.testing.assert_allclose(out[3], (values[7] + values[8]) / 2, rtol=1e-6)
    np.testing.assert_allclose(out[10], values[25])
    assert np.isfinite(out[[0, 1, 2, 3, 5, 6, 7, 8, 9, 10]]).all()
    valid[8] = False
    assert np.isnan(resample_array(values, valid, positions)[3]).all()  # 7.5 needs frame 8


def test_pipeline_order_keeps_invariants() -> None:
    """fill -> smooth -> resample, as the pipeline runs them, on a noisy clip with a short and a long gap."""
    n = 90
    valid = mask(n, [range(2), range(20, 24), range(50, 70)])
    seq = noisy(sequence(n, valid), 0.03, 0.004)
    seq.rotations[~valid], seq.transl[~valid] = np.nan, np.nan
    positions = resample_positions(n, FPS, 15)

    out = resample(
        smooth(
            fill_gaps(seq, max_gap=int(settings.temporal_settings(DEFAULTS).max_gap_s * FPS)),
            FPS,
            settings.temporal_settings(DEFAULTS),
        ),
        positions,
    )

    assert len(out.valid) == 45
    assert out.valid.tolist() == [(p >= 2 and not 50 <= p < 70) for p in positions]
    assert out.filled.tolist() == [20 <= p < 24 for p in positions]
    assert_rotations(out.rotations[out.valid])
    assert np.isnan(out.rotations[~out.valid]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fill_and_resample_accept_either_precision(dtype) -> None:
    seq = sequence(10, mask(10, [4]))
    seq = ParamSequence(seq.rotations.astype(dtype), seq.transl.astype(dtype), seq.valid, seq.filled)
    out = resample(fill_gaps(seq, 2), np.arange(10) * 1.0)
    assert out.valid.all() and np.isfinite(out.rotations).all()
