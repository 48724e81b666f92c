import json
import time

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from conftest import KITCHEN, fixture_file
from hiw.errors import StageError
from hiw.motion.camera import (
    DEFAULT_HFOV_DEG,
    Intrinsics,
    camera_space_keypoints,
    compensate_rotation,
    estimate_camera_rotations,
    hand_mask,
    load_intrinsics,
)

W, H = 1920, 1080


def _hand_model() -> np.ndarray:
    """A right hand in metres (wrist at origin, fingers up -y), a fan of 5 slightly curled fingers ~18 cm long."""
    pts = np.zeros((21, 3))
    for finger in range(5):
        angle = np.radians(-50 + 22 * finger)  # thumb splayed out, pinky in
        base = 0.035 if finger else 0.02
        radii = base + np.array([0.0, 0.04, 0.065, 0.085]) * (0.8 if finger in (0, 4) else 1.0)
        idx = slice(1 + 4 * finger, 5 + 4 * finger)
        pts[idx, 0] = radii * np.sin(angle)
        pts[idx, 1] = -radii * np.cos(angle)
        pts[idx, 2] = np.array([0.0, 0.005, 0.012, 0.02])  # curl toward the palm side
    return pts


# ---------------------------------------------------------------- intrinsics


def test_from_fov_and_scaled():
    k = Intrinsics.from_fov(W, H)
    assert k.source == "fov_default" and DEFAULT_HFOV_DEG == 90.0
    assert k.fx == pytest.approx(960.0) and k.fy == pytest.approx(960.0)
    assert (k.cx, k.cy) == (960.0, 540.0)
    assert Intrinsics.from_fov(W, H, 60.0).fx == pytest.approx(960.0 / np.tan(np.radians(30)))
    half = k.scaled(0.5)
    assert (half.fx, half.fy, half.cx, half.cy) == pytest.approx((480.0, 480.0, 480.0, 270.0)) and half.source == "fov_default"
    np.testing.assert_allclose(half.matrix(), [[480, 0, 480], [0, 480, 270], [0, 0, 1]])


def test_load_intrinsics_precedence(tmp_path):
    video = tmp_path / "clip.mp4"
    assert load_intrinsics(video, W, H).source == "fov_default"
    (tmp_path / "clip.camera.json").write_text(json.dumps({"fx": 1000, "fy": 1001, "cx": 950, "cy": 530}))
    k = load_intrinsics(video, W, H)
    assert (k.fx, k.fy, k.cx, k.cy, k.source) == (1000.0, 1001.0, 950.0, 530.0, "sidecar")
    k = load_intrinsics(str(video), W, H, explicit=(800, 800, 960, 540))
    assert (k.fx, k.source) == (800.0, "config")


@pytest.mark.parametrize("content", ["{not json", json.dumps({"fx": 1000, "fy": 1000, "cx": 960}), json.dumps([1, 2])])
def test_malformed_sidecar(tmp_path, content):
    (tmp_path / "clip.camera.json").write_text(content)
    with pytest.raises(StageError) as err:
        load_intrinsics(tmp_path / "clip.mp4", W, H)
    assert err.value.reason == "bad_intrinsics" and "clip.camera.json" in err.value.detail


# ---------------------------------------------------------------- PnP


def _synthetic_hands(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    K = Intrinsics.from_fov(W, H)
    model = _hand_model()
    kp2d, kp3d, wrist = np.zeros((n, 21, 3)), np.zeros((n, 21, 3)), np.zeros((n, 3))
    for t in range(n):
        R = Rotation.from_rotvec(rng.normal(size=3) * 0.5).as_matrix()
        z = rng.uniform(0.3, 0.8)
        # keep the hand in view: a lateral offset up to ~60% of the half-frame at that depth
        tvec = np.array([rng.uniform(-0.6, 0.6) * z * K.cx / K.fx, rng.uniform(-0.6, 0.6) * z * K.cy / K.fy, z])
        cam = model @ R.T + tvec
        img = cv2.projectPoints(cam, np.zeros(3), np.zeros(3), K.matrix(), None)[0].reshape(-1, 2)
        kp2d[t, :, :2], kp2d[t, :, 2] = img + rng.normal(size=img.shape), 0.9
        # what mediapipe gives: metric, centred on the hand, axes only roughly camera-aligned, shape a bit off
        tilt = Rotation.from_rotvec(rng.normal(size=3) * 0.05).as_matrix()
        kp3d[t] = (cam - cam.mean(axis=0)) @ tilt.T + rng.normal(scale=0.002, size=(21, 3))
        wrist[t] = cam[0]
    return K, kp2d, kp3d, wrist


def test_pnp_recovers_wrist_position():
    K, kp2d, kp3d, wrist = _synthetic_hands(200)
    res = camera_space_keypoints(kp2d, kp3d, np.ones(len(kp2d), bool), K)
    assert res.keypoints.dtype == np.float32 and res.keypoints.shape == (200, 21, 3)
    assert res.valid.mean() > 0.95
    err = np.linalg.norm(res.keypoints[res.valid, 0] - wrist[res.valid], axis=1)
    print(f"PnP wrist error: median {np.median(err) * 100:.2f} cm, p90 {np.percentile(err, 90) * 100:.2f} cm")
    assert np.median(err) < 0.015
    assert np.nanmedian(res.reprojection_px) < 10.0  # 1 px image noise plus 2 mm shape noise, seen at 0.3-0.8 m


def test_pnp_invalid_and_nan_frames():
    K, kp2d, kp3d, _ = _synthetic_hands(6)
    valid = np.array([True, False, True, True, True, True])
    kp2d[2, 5] = np.nan  # a partial NaN in the image points
    kp3d[3] = np.nan  # no 3D at all
    kp2d[4, :, :2] = kp2d[4, :, :2] * 1e-3  # all points squashed into a corner: a degenerate, absurd solve
    res = camera_space_keypoints(kp2d, kp3d, valid, K)
    assert list(res.valid) == [True, False, False, False, False, True]
    assert np.isnan(res.keypoints[~res.valid]).all() and np.isnan(res.reprojection_px[~res.valid]).all()
    assert np.isfinite(res.keypoints[res.valid]).all()


def test_pnp_is_fast():
    K, kp2d, kp3d, _ = _synthetic_hands(120)
    valid = np.ones(120, bool)
    start = time.perf_counter()
    for _ in range(2):
        camera_space_keypoints(kp2d, kp3d, valid, K)
    elapsed = time.perf_counter() - start
    print(f"PnP: {elapsed * 1000:.1f} ms for 2 hands x 120 frames")
    assert elapsed < 0.1


# ---------------------------------------------------------------- head rotation

FW, FH = 960, 540
MARGIN = 200  # scene canvas margin around the first view, enough for ~20 degrees of turn


def _scene(seed: int = 0) -> np.ndarray:
    """A textured backdrop: multi-scale colour noise (blobs from ~40 px down to ~5 px)."""
    rng = np.random.default_rng(seed)
    size = (FW + 2 * MARGIN, FH + 2 * MARGIN)
    img = np.zeros((size[1], size[0], 3), np.float32)
    for cell in (40, 15, 5):
        noise = rng.uniform(-1, 1, (size[1] // cell + 1, size[0] // cell + 1, 3)).astype(np.float32)
        img += cv2.resize(noise, size, interpolation=cv2.INTER_CUBIC) * (cell / 40) ** 0.3
    return np.clip(128 + 45 * img, 0, 255).astype(np.uint8)


def _rotating_video(rotvecs: np.ndarray, with_hand: bool = True):
    """Frames of a camera turning by ``rotvecs`` (camera t -> camera 0) in front of a far scene, plus a hand blob."""
    K = Intrinsics.from_fov(FW, FH)
    Km, K_scene = K.matrix(), K.matrix() + np.array([[0, 0, MARGIN], [0, 0, MARGIN], [0, 0, 0]])
    scene = _scene()
    frames, hand = [], np.full((len(rotvecs), 21, 3), np.nan)
    for t, rv in enumerate(rotvecs):
        R = Rotation.from_rotvec(rv).as_matrix()
        frame = cv2.warpPerspective(
            scene, K_scene @ R @ np.linalg.inv(Km), (FW, FH), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR
        )
        if with_hand:
            # a skin-coloured hand that moves on its own across the view (keypoints in 1920-px source pixels)
            centre = np.array([300 + 12 * t, 330 - 3 * t])
            cv2.ellipse(frame, tuple(int(v) for v in centre), (70, 100), 20, 0, 360, (224, 172, 140), -1)
            angles = np.linspace(0, 2 * np.pi, 21, endpoint=False)
            ring = centre + np.stack([70 * np.cos(angles), 100 * np.sin(angles)], axis=1) * 0.9
            hand[t, :, :2], hand[t, :, 2] = ring * 2.0, 0.9
        frames.append(frame)
    return np.stack(frames), [hand], K


def _geodesic_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(Rotation.from_matrix(np.swapaxes(a, 1, 2) @ b).magnitude())


def test_rotation_recovers_known_head_turn():
    n = 30
    s = np.linspace(0, 1, n)
    # smooth yaw to 10 degrees, pitch up and back, a little roll
    truth_rv = np.radians(np.stack([4 * np.sin(np.pi * s), 10 * (3 * s**2 - 2 * s**3), 2 * s], axis=1))
    frames, hands, K = _rotating_video(truth_rv)
    start = time.perf_counter()
    rot = estimate_camera_rotations(frames, hands, K, source_to_frame=0.5)
    elapsed = time.perf_counter() - start
    truth = Rotation.from_rotvec(truth_rv).as_matrix()
    err = _geodesic_deg(rot.rotations.astype(np.float64), truth)
    print(f"rotation error: max {err.max():.3f} deg, final {err[-1]:.3f} deg, {elapsed / (n - 1) * 1000:.1f} ms/pair")
    assert rot.rotations.shape == (n, 3, 3) and rot.rotations.dtype == np.float32
    np.testing.assert_allclose(rot.rotations[0], np.eye(3), atol=1e-6)
    assert rot.ok.all() and (rot.n_inliers[1:] >= 30).all()  # keyframes are replaced near 40 inliers
    assert err.max() < 0.5
    true_total = np.degrees(np.linalg.norm(truth_rv[-1]))
    assert rot.total_angle_deg() == pytest.approx(true_total, abs=0.5)
    assert rot.max_angle_deg() >= rot.total_angle_deg() - 1e-6


def test_hand_mask_pads_hull_and_border():
    square = np.array([[100, 100], [140, 100], [140, 140], [100, 140], [np.nan, np.nan]] * 4 + [[120, 120]], float)
    mask = hand_mask((240, 320), [square, np.full((21, 2), np.nan)])  # a missing hand masks nothing
    assert mask[120, 120] == 0 and mask[120, 140 + 8] == 0  # inside, and within 25% of the 40 px size
    assert mask[120, 140 + 14] == 255 and mask[50, 250] == 255
    assert mask[2, 160] == 0 and mask[120, 318] == 0  # the border


def test_rotation_textureless_video_is_identity():
    frames = np.full((5, 240, 320, 3), 128, np.uint8)
    rot = estimate_camera_rotations(frames, [], Intrinsics.from_fov(320, 240), source_to_frame=1.0)
    np.testing.assert_allclose(rot.rotations, np.repeat(np.eye(3)[None], 5, axis=0))
    assert not rot.ok[1:].any() and (rot.n_inliers == 0).all()
    assert rot.total_angle_deg() == 0.0


def test_compensate_rotation_preserves_nan():
    R = Rotation.from_rotvec([[0, 0, 0], [0, np.pi / 2, 0]]).as_matrix()
    pts = np.array([[[1.0, 2.0, 3.0], [np.nan] * 3], [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    out = compensate_rotation(pts, R)
    np.testing.assert_allclose(out[0, 0], [1, 2, 3])
    assert np.isnan(out[0, 1]).all()
    np.testing.assert_allclose(out[1], [[0, 0, -1], [1, 0, 0]], atol=1e-12)


def test_rotation_on_real_kitchen_video():
    cap = cv2.VideoCapture(str(fixture_file(KITCHEN)))
    frames = []
    while len(frames) < 60:
        ok, bgr = cap.read()
        if not ok:
            break
        h, w = bgr.shape[:2]
        frames.append(cv2.cvtColor(cv2.resize(bgr, (640, round(h * 640 / w)), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
    cap.release()
    frames = np.stack(frames)
    K = Intrinsics.from_fov(w, h).scaled(640 / w)
    start = time.perf_counter()
    rot = estimate_camera_rotations(frames, [], K, source_to_frame=640 / w)
    per_pair = (time.perf_counter() - start) / (len(frames) - 1)
    pair_deg = _geodesic_deg(rot.rotations[:-1].astype(np.float64), rot.rotations[1:].astype(np.float64))
    print(
        f"kitchen {len(frames)} frames: total {rot.total_angle_deg():.2f} deg, max {rot.max_angle_deg():.2f} deg, "
        f"max/pair {pair_deg.max():.2f} deg, ok {rot.ok.mean():.0%}, median inliers {np.median(rot.n_inliers[1:]):.0f}, "
        f"{per_pair * 1000:.1f} ms/pair"
    )
    assert np.isfinite(rot.rotations).all()
    assert rot.ok.mean() > 0.9
    # no head turns faster than ~300 deg/s: at 30 fps a pair differs by less than 10 degrees
    assert pair_deg.max() < 10
    # the wearer turns from the table toward the counter, looking down: mostly a roll of the image
    assert 20 < rot.total_angle_deg() < 150
