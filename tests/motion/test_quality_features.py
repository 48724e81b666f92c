"""Quality filters (hiw.motion.quality), the 198-number motion layout (hiw.motion.features) and the rotation
helpers they rest on (hiw.motion.rotations)."""

from __future__ import annotations

import numpy as np
import pytest
import roma
import torch

from conftest import DEFAULTS
from hiw.errors import StageError
from hiw.flows import settings
from hiw.motion.features import FEATURES, HAND_FEATURES, canonical_origin, motion_features
from hiw.motion.quality import QualityMetrics, QualitySettings, check, jitter, measure, top3_mean
from hiw.motion.rotations import angle_deg, interpolate, matrix_to_6d, project, rotation_between, sixd_to_matrix

FPS = 15.0  # the canonical rate the filters run at
J = 16


def rotvec_path(rotvec: np.ndarray) -> np.ndarray:
    return roma.rotvec_to_rotmat(torch.as_tensor(rotvec, dtype=torch.float64)).numpy()


def smooth_hand(n: int, seed: int = 0, fps: float = FPS) -> tuple[np.ndarray, np.ndarray]:
    """Global orientation (n, 3, 3) swinging ~0.5 rad at 0.5 Hz and a wrist drifting ~5 cm/s, in float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None] / fps
    orient = rotvec_path(0.5 * np.sin(2 * np.pi * 0.5 * t + rng.uniform(0, 6, (1, 3))))
    transl = np.array([0.0, -0.1, 0.4]) + rng.normal(0, 0.05, (1, 3)) * t + 0.03 * np.sin(2 * np.pi * 0.4 * t)
    return orient.astype(np.float32), transl.astype(np.float32)


# ---------------------------------------------------------------- jitter


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_jitter_of_constant_acceleration_is_that_acceleration(dtype) -> None:
    """transl = v0 t + a t^2 / 2 and a constant angular acceleration about a fixed axis: jitter == a, alpha."""
    n, a, alpha = 45, 2.0, 3.0  # m/s^2, rad/s^2
    t = np.arange(n)[:, None] / FPS
    direction = np.array([[0.6, 0.0, 0.8]])
    axis = np.array([[0.0, 0.6, -0.8]])
    transl = (np.array([0.1, 0.0, 0.4]) + 0.05 * t * direction + 0.5 * a * t**2 * direction).astype(dtype)
    orient = rotvec_path((0.4 * t + 0.5 * alpha * t**2) * axis).astype(dtype)  # up to 6 rad: wraps past pi, fine
    jt, jr = jitter(orient, transl, np.ones(n, bool), FPS)
    assert jt == pytest.approx(a, abs=1e-3)
    assert jr == pytest.approx(alpha, abs=1e-3)


def test_jitter_of_uniform_motion_is_zero() -> None:
    n = 30
    t = np.arange(n)[:, None] / FPS
    orient = rotvec_path(0.8 * t * np.array([[1.0, 0.0, 0.0]]))
    transl = 0.07 * t * np.ones((1, 3))
    jt, jr = jitter(orient, transl, np.ones(n, bool), FPS)
    assert jt == pytest.approx(0.0, abs=1e-9) and jr == pytest.approx(0.0, abs=1e-6)


def test_spikes_make_jitter_large() -> None:
    n = 60
    orient, transl = smooth_hand(n)
    valid = np.ones(n, bool)
    smooth_t, smooth_r = jitter(orient, transl, valid, FPS)
    assert smooth_t < 1.0 and smooth_r < 12.0  # 0.5 rad at 0.5 Hz peaks at ~5 rad/s^2 per axis

    spiky_transl = transl.copy()
    spiky_transl[[15, 40]] += [0.05, 0.0, 0.0]  # a 5 cm glitch on two frames
    spiky_orient = orient.copy()
    spiky_orient[[20, 45]] = orient[[20, 45]] @ rotvec_path(np.array([[0.0, 0.0, 0.3]]) * np.ones((2, 1))).astype(np.float32)
    jt, jr = jitter(spiky_orient, spiky_transl, valid, FPS)
    # two spikes d: second differences d, -2d, d each -> top 3 = 2d, 2d, d (+ the smooth motion)
    assert jt == pytest.approx(5 / 3 * 0.05 * FPS**2, abs=2 * smooth_t) and jt > 10 * smooth_t  # ~19 m/s^2
    assert jr == pytest.approx(5 / 3 * 0.3 * FPS**2, abs=2 * smooth_r) and jr > 10 * smooth_r  # ~112 rad/s^2


def test_an_isolated_spike_by_hand() -> None:
    """A spike d on one frame of a straight line: second differences d, -2d, d -> top-3 mean 4/3 d fps^2."""
    n, d, phi = 20, 0.02, 0.1
    t = np.arange(n)[:, None] / FPS
    transl = 0.04 * t * np.array([[1.0, 0.5, 0.0]])
    transl[10, 1] += d
    orient = np.broadcast_to(np.eye(3), (n, 3, 3)).copy()
    orient[7] = rotvec_path(np.array([0.0, phi, 0.0]))
    jt, jr = jitter(orient, transl, np.ones(n, bool), FPS)
    assert jt == pytest.approx(4 / 3 * d * FPS**2, rel=1e-6)  # 6 m/s^2
    assert jr == pytest.approx(4 / 3 * phi * FPS**2, rel=1e-5)  # 30 rad/s^2


def test_jitter_only_uses_consecutive_valid_frames() -> None:
    n = 30
    orient, transl = smooth_hand(n, seed=1)
    valid = np.ones(n, bool)
    valid[[10, 20]] = False
    orient[[10, 20]], transl[[10, 20]] = np.nan, np.nan  # as the pipeline leaves them
    transl[15] = np.nan  # a broken valid frame would poison it: keep it invalid too
    valid[15] = False
    orient_jump = orient.copy()
    orient_jump[11:] = orient[11:] @ rotvec_path(np.array([1.5, 0.0, 0.0])).astype(np.float32)  # a jump across a gap
    transl_jump = transl.copy()
    transl_jump[11:] += 0.3
    base = jitter(orient, transl, valid, FPS)
    jumped = jitter(orient_jump, transl_jump, valid, FPS)
    assert np.isfinite(base).all() and base[0] < 1.0 and base[1] < 12.0
    assert jumped == pytest.approx(base, abs=1e-3)
    assert jitter(orient[:2], transl[:2], valid[:2], FPS) == (0.0, 0.0)  # too short to measure
    assert jitter(orient, transl, np.zeros(n, bool), FPS) == (0.0, 0.0)


def test_top3_mean() -> None:
    assert top3_mean(np.array([1.0, 9.0, 2.0, 7.0, 8.0])) == pytest.approx(8.0)
    assert top3_mean(np.array([4.0])) == 4.0
    assert top3_mean(np.array([])) == 0.0


# ---------------------------------------------------------------- measure and check


def two_hands(n: int) -> tuple[dict, dict, dict]:
    orient, transl, valid = {}, {}, {}
    for i, side in enumerate(("left", "right")):
        orient[side], transl[side] = smooth_hand(n, seed=10 + i)
        valid[side] = np.ones(n, bool)
    return orient, transl, valid


def test_measure_motion_is_the_longest_span_with_every_seen_hand_valid() -> None:
    n = 60  # 4 s at 15 fps
    orient, transl, valid = two_hands(n)
    valid["left"][[5, 40]] = False  # runs 0-5, 6-40, 41-60
    valid["right"][20:25] = False  # together: 6-20 (14), 25-40 (15), 41-60 (19)
    for side in valid:
        orient[side][~valid[side]], transl[side][~valid[side]] = np.nan, np.nan
    m = measure(orient, transl, valid, FPS)
    assert m.motion_s == pytest.approx(19 / FPS)
    per_hand = [jitter(orient[s], transl[s], valid[s], FPS) for s in valid]
    assert m.jitter_translation == max(p[0] for p in per_hand)
    assert m.jitter_rotation == max(p[1] for p in per_hand)


def test_measure_one_handed_clip_counts_that_hand() -> None:
    n = 45
    orient, transl, valid = two_hands(n)
    valid["right"][:] = False
    orient["right"][:], transl["right"][:] = np.nan, np.nan
    valid["left"][30] = False
    m = measure(orient, transl, valid, FPS)
    assert m.motion_s == pytest.approx(30 / FPS)
    assert m.jitter_translation == jitter(orient["left"], transl["left"], valid["left"], FPS)[0]
    assert np.isfinite([m.jitter_translation, m.jitter_rotation]).all()


def test_measure_worse_hand_and_no_hands() -> None:
    n = 30
    orient, transl, valid = two_hands(n)
    transl["right"][12] += [0.0, 0.0, 0.05]
    m = measure(orient, transl, valid, FPS)
    assert m.jitter_translation == pytest.approx(jitter(orient["right"], transl["right"], valid["right"], FPS)[0])
    assert m.jitter_translation == pytest.approx(4 / 3 * 0.05 * FPS**2, abs=1.0)  # 15 m/s^2 from the spike
    assert m.jitter_translation > 10 * jitter(orient["left"], transl["left"], valid["left"], FPS)[0]
    assert m.motion_s == pytest.approx(n / FPS)
    for side in valid:
        valid[side][:] = False
    assert measure(orient, transl, valid, FPS) == QualityMetrics(0.0, 0.0, 0.0)


def test_check_passes_a_good_clip() -> None:
    check(QualityMetrics(jitter_translation=3.0, jitter_rotation=40.0, motion_s=2.0), settings.quality_settings(DEFAULTS))
    check(QualityMetrics(50.0, 500.0, 1.0), settings.quality_settings(DEFAULTS))  # thresholds are inclusive


@pytest.mark.parametrize(
    "metrics, reason, shown",
    [
        (QualityMetrics(3.0, 40.0, 0.4), "too_short", ["0.40 s", "min_motion_s=1"]),
        (QualityMetrics(72.25, 40.0, 2.0), "jitter_translation", ["72.2", "max_jitter_translation=50"]),
        (QualityMetrics(3.0, 812.0, 2.0), "jitter_rotation", ["812.0", "max_jitter_rotation=500"]),
        (QualityMetrics(72.0, 812.0, 0.2), "too_short", ["0.20 s"]),  # the first failing filter wins
        (QualityMetrics(72.0, 812.0, 2.0), "jitter_translation", ["72.0"]),
    ],
)
def test_check_names_the_failing_filter(metrics: QualityMetrics, reason: str, shown: list[str]) -> None:
    with pytest.raises(StageError) as info:
        check(metrics, settings.quality_settings(DEFAULTS))
    assert info.value.reason == reason
    for text in shown:
        assert text in info.value.detail
    assert str(info.value).startswith(f"{reason}: ")


def test_check_uses_the_configured_thresholds() -> None:
    settings = QualitySettings(max_jitter_translation=2.5, max_jitter_rotation=30.0, min_motion_s=3.0)
    with pytest.raises(StageError, match="min_motion_s=3") as info:
        check(QualityMetrics(1.0, 1.0, 2.5), settings)
    assert "2.50 s" in info.value.detail
    with pytest.raises(StageError, match=r"3\.0 m/s\^2 > max_jitter_translation=2\.5"):
        check(QualityMetrics(3.0, 1.0, 4.0), settings)
    with pytest.raises(StageError, match=r"31\.0 rad/s\^2 > max_jitter_rotation=30"):
        check(QualityMetrics(1.0, 31.0, 4.0), settings)


# ---------------------------------------------------------------- motion features


def hand_params(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    gen = torch.Generator().manual_seed(seed)
    rest = roma.random_rotmat(J, generator=gen)
    t = torch.arange(n, dtype=torch.float32)[:, None, None] / FPS
    sway = roma.rotvec_to_rotmat(0.3 * torch.sin(2 * torch.pi * 0.5 * t + torch.randn(1, J, 3, generator=gen)))
    transl = torch.tensor([0.1 - 0.2 * seed, -0.1, 0.45]) + 0.04 * t[:, 0] * torch.randn(3, generator=gen)
    return (rest @ sway).numpy(), transl.numpy()


def both_hands(n: int, left_invalid=(), right_invalid=()) -> tuple[dict, dict, dict]:
    rotations, transl, valid = {}, {}, {}
    for seed, (side, invalid) in enumerate((("left", left_invalid), ("right", right_invalid))):
        rotations[side], transl[side] = hand_params(n, seed)
        valid[side] = np.ones(n, bool)
        valid[side][list(invalid)] = False
        rotations[side][~valid[side]], transl[side][~valid[side]] = np.nan, np.nan
    return rotations, transl, valid


def test_feature_shapes_mask_and_missing_frames() -> None:
    n = 20
    rotations, transl, valid = both_hands(n, left_invalid=[0, 1, 2, 9], right_invalid=[1, 5, 19])
    feats, mask = motion_features(rotations, transl, valid)
    assert FEATURES == 198 and HAND_FEATURES == 99
    assert feats.shape == (n, 198) and feats.dtype == np.float32
    assert mask.shape == (n, 2) and mask.dtype == bool
    assert mask[:, 0].tolist() == valid["left"].tolist() and mask[:, 1].tolist() == valid["right"].tolist()
    assert np.isfinite(feats).all()
    assert (feats[[0, 1, 2, 9], :99] == 0).all() and (feats[[1, 5, 19], 99:] == 0).all()
    assert (np.abs(feats[valid["left"], :96]) > 0).any(axis=1).all()  # present frames are not blank


def test_origin_is_the_mean_of_the_wrists_at_the_first_frame_with_both() -> None:
    n = 12
    rotations, transl, valid = both_hands(n, left_invalid=[0, 1, 2], right_invalid=[1, 3])  # first with both: 4
    feats, _ = motion_features(rotations, transl, valid)
    origin = (transl["left"][4] + transl["right"][4]) / 2
    np.testing.assert_allclose(canonical_origin(transl, valid), origin)
    np.testing.assert_allclose((feats[4, 96:99] + feats[4, 195:198]) / 2, 0.0, atol=1e-7)
    for t in np.flatnonzero(valid["left"]):
        np.testing.assert_allclose(feats[t, 96:99], transl["left"][t] - origin, atol=1e-6)
    for t in np.flatnonzero(valid["right"]):
        np.testing.assert_allclose(feats[t, 195:198], transl["right"][t] - origin, atol=1e-6)
    np.testing.assert_allclose(feats[0, 195:198], transl["right"][0] - origin, atol=1e-6)  # right-only frame


def test_origin_with_one_hand_or_none() -> None:
    n = 8
    rotations, transl, valid = both_hands(n, left_invalid=range(n), right_invalid=[0, 1])
    feats, mask = motion_features(rotations, transl, valid)
    np.testing.assert_allclose(feats[2, 195:198], 0.0, atol=1e-7)  # origin = the first valid right wrist
    assert not mask[:, 0].any() and (feats[:, :99] == 0).all()
    valid["right"][:] = False
    np.testing.assert_array_equal(canonical_origin(transl, valid), np.zeros(3))
    feats, mask = motion_features(rotations, transl, valid)
    assert (feats == 0).all() and not mask.any()


def test_features_round_trip_through_6d() -> None:
    n = 10
    rotations, transl, valid = both_hands(n, right_invalid=[4])
    feats, _ = motion_features(rotations, transl, valid)
    for side, start in (("left", 0), ("right", 99)):
        ok = valid[side]
        sixd = torch.as_tensor(feats[ok, start : start + 96]).reshape(-1, J, 6)
        np.testing.assert_allclose(sixd_to_matrix(sixd).numpy(), rotations[side][ok], atol=1e-5)


def test_feature_column_layout_worked_example() -> None:
    """One frame, every block set to something recognisable."""
    rz90 = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], np.float32)  # 90 deg about z
    rx90 = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]], np.float32)  # 90 deg about x
    left = np.broadcast_to(np.eye(3, dtype=np.float32), (1, J, 3, 3)).copy()
    left[0, 0] = rz90  # global orientation
    left[0, 5] = rx90  # joint 5 (the 5th of the 15 finger joints)
    right = np.broadcast_to(rx90, (1, J, 3, 3)).copy()
    right[0, 15] = rz90  # the last finger joint
    transl = {"left": np.array([[0.1, 0.2, 0.5]], np.float32), "right": np.array([[0.3, 0.0, 0.3]], np.float32)}
    valid = {"left": np.array([True]), "right": np.array([True])}

    feats, mask = motion_features({"left": left, "right": right}, transl, valid)
    row = feats[0]

    eye6, z6, x6 = [1, 0, 0, 0, 1, 0], [0, -1, 0, 1, 0, 0], [1, 0, 0, 0, 0, -1]  # first two rows
    np.testing.assert_array_equal(row[0:6], z6)  # left global orientation
    for k in range(15):  # left joints 1..15 at 6 + 6 (j - 1)
        np.testing.assert_array_equal(row[6 + 6 * k : 12 + 6 * k], x6 if k + 1 == 5 else eye6)
    np.testing.assert_allclose(row[96:99], [-0.1, 0.1, 0.1], atol=1e-7)  # origin (0.2, 0.1, 0.4)
    np.testing.assert_array_equal(row[99:105], x6)  # right hand starts at 99
    for k in range(15):
        np.testing.assert_array_equal(row[105 + 6 * k : 111 + 6 * k], z6 if k + 1 == 15 else x6)
    np.testing.assert_allclose(row[195:198], [0.1, -0.1, -0.1], atol=1e-7)
    assert mask.tolist() == [[True, True]]


# ---------------------------------------------------------------- rotations


def test_matrix_to_6d_is_the_first_two_rows() -> None:
    rot = roma.random_rotmat((5, J), generator=torch.Generator().manual_seed(0))
    sixd = matrix_to_6d(rot)
    assert sixd.shape == (5, J, 6)
    torch.testing.assert_close(sixd[..., :3], rot[..., 0, :])
    torch.testing.assert_close(sixd[..., 3:], rot[..., 1, :])
    torch.testing.assert_close(sixd_to_matrix(sixd), rot, atol=1e-6, rtol=0)


def test_sixd_to_matrix_orthonormalises_like_pytorch3d() -> None:
    gen = torch.Generator().manual_seed(1)
    sixd = torch.randn(100, 6, generator=gen) * 3
    rot = sixd_to_matrix(sixd).double()
    torch.testing.assert_close(
        rot @ rot.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(100, 3, 3), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(torch.det(rot), torch.ones(100, dtype=torch.float64), atol=1e-5, rtol=0)
    a1, a2 = sixd[:, :3].double(), sixd[:, 3:].double()
    b1 = a1 / a1.norm(dim=-1, keepdim=True)
    b2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = b2 / b2.norm(dim=-1, keepdim=True)
    expected = torch.stack([b1, b2, torch.cross(b1, b2, dim=-1)], dim=-2)  # pytorch3d's rotation_6d_to_matrix
    torch.testing.assert_close(rot, expected, atol=1e-5, rtol=0)


def check_maps(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5) -> torch.Tensor:
    rot = rotation_between(a, b)
    a_hat = a / a.norm(dim=-1, keepdim=True)
    b_hat = b / b.norm(dim=-1, keepdim=True)
    torch.testing.assert_close((rot @ a_hat[..., None])[..., 0], b_hat, atol=atol, rtol=0)
    torch.testing.assert_close(torch.det(rot), torch.ones(rot.shape[:-2]), atol=1e-5, rtol=0)
    return rot


def test_rotation_between_maps_a_to_b_by_the_smallest_rotation() -> None:
    gen = torch.Generator().manual_seed(2)
    a, b = torch.randn(200, 3, generator=gen), torch.randn(200, 3, generator=gen) * 0.05  # bone lengths differ
    rot = check_maps(a, b)
    cos = (torch.nn.functional.normalize(a, dim=-1) * torch.nn.functional.normalize(b, dim=-1)).sum(-1)
    torch.testing.assert_close(roma.rotmat_to_rotvec(rot).norm(dim=-1), torch.arccos(cos.clamp(-1, 1)), atol=1e-4, rtol=0)
    torch.testing.assert_close(rotation_between(a, a * 2), torch.eye(3).expand(200, 3, 3), atol=1e-6, rtol=0)
    assert rotation_between(torch.tensor([0.0, 0.0, 1.0]), b).shape == (200, 3, 3)  # broadcasts


def test_rotation_between_opposite_directions() -> None:
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(500, 3, generator=gen)
    a_hat = torch.nn.functional.normalize(a, dim=-1)
    perp = torch.nn.functional.normalize(torch.cross(a_hat, torch.randn(500, 3, generator=gen), dim=-1), dim=-1)
    check_maps(a, -a)  # exactly opposite: a half turn about some perpendicular axis
    check_maps(torch.eye(3), -torch.eye(3))
    for tilt in (1e-9, 1e-6, 1e-3):  # nearly opposite
        check_maps(a, -a_hat * np.cos(tilt) + perp * np.sin(tilt))


def test_interpolate_is_slerp() -> None:
    gen = torch.Generator().manual_seed(4)
    r0, r1 = roma.random_rotmat(50, generator=gen), roma.random_rotmat(50, generator=gen)
    torch.testing.assert_close(interpolate(r0, r1, torch.zeros(50)), r0, atol=1e-5, rtol=0)
    torch.testing.assert_close(interpolate(r0, r1, torch.ones(50)), r1, atol=1e-5, rtol=0)
    w = torch.rand(50, generator=gen)
    mid = interpolate(r0, r1, w)
    total = roma.rotmat_geodesic_distance(r0, r1)
    torch.testing.assert_close(roma.rotmat_geodesic_distance(r0, mid), w * total, atol=1e-4, rtol=0)
    torch.testing.assert_close(roma.rotmat_geodesic_distance(mid, r1), (1 - w) * total, atol=1e-4, rtol=0)
    torch.testing.assert_close(angle_deg(r0, r1), torch.rad2deg(total))


def test_project_returns_the_nearest_rotation() -> None:
    gen = torch.Generator().manual_seed(5)
    rot = roma.random_rotmat(40, generator=gen)
    torch.testing.assert_close(project(rot), rot, atol=1e-5, rtol=0)
    noisy = rot + 0.05 * torch.randn(40, 3, 3, generator=gen)
    out = project(noisy)
    torch.testing.assert_close(out @ out.transpose(-1, -2), torch.eye(3).expand(40, 3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.det(out), torch.ones(40), atol=1e-5, rtol=0)
    assert (angle_deg(out, rot) < 10).all()
    assert ((out - noisy).norm(dim=(-2, -1)) <= (rot - noisy).norm(dim=(-2, -1)) + 1e-6).all()  # closer than the truth
    quarter = roma.rotvec_to_rotmat(torch.tensor([0.0, 0.0, np.pi / 2]))
    torch.testing.assert_close(angle_deg(torch.eye(3), quarter), torch.tensor(90.0))
