"""Camera model of a clip: intrinsics, each hand's camera-space position, and the head's rotation.

Hand position: mediapipe's 3D keypoints are metric but centred on the hand; solving PnP between
them and the 2D keypoints gives the rigid pose that places the hand in the camera frame.

Head rotation: background corners are tracked from frame to frame (hands and forearms masked out); each
frame is matched to a keyframe (replaced when its view is mostly gone, so a still head does not drift) and
fitted with a rotation-only model (RANSAC homography, then the nearest rotation to K^-1 H K), and
the keyframe rotations are chained. The model is good when the head's translation is small against
the scene depth (a turning head, a far background); near surfaces seen from a moving head bias it,
lens distortion is not modelled, and per-pair errors accumulate, so drift grows with clip length.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from hiw.errors import StageError

# Head-mounted action cameras (GoPro-like "linear" mode) see about 85-95 degrees horizontally.
# This is a default for uncalibrated video, not a calibration: a sidecar or config value wins.
DEFAULT_HFOV_DEG = 90.0
MAX_HAND_DEPTH_M = 5.0  # a hand solved farther than this is a failed PnP, not a hand

# Head rotation tracking, in pixels of the downscaled (max_side) frame.
MAX_CORNERS = 400
MIN_CORNER_DISTANCE = 6
FB_MAX_ERROR_PX = 1.0  # forward-backward disagreement above which a track is dropped
RANSAC_THRESHOLD_PX = 1.0
MIN_INLIERS = 10
KEYFRAME_MIN_INLIERS = 40  # a frame matched with fewer inliers than this becomes the next keyframe
BORDER_FRAC = 0.03  # frame edges: warping/compression artefacts and points leaving the view
HAND_PAD_FRAC = 0.25  # hands are masked generously: fingers move, keypoints miss the sleeve
FOREARM_LENGTH = 4.0  # the forearm is masked as a band from the wrist, away from the knuckles, this many hand sizes long
FOREARM_WIDTH = 0.8  # band width in hand sizes
WRIST, MIDDLE_MCP = 0, 9  # OpenPose keypoint indices


@dataclass(frozen=True)
class Intrinsics:
    fx: float
    fy: float
    cx: float
    cy: float
    source: str  # "config", "sidecar" or "fov_default"

    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def scaled(self, s: float) -> Intrinsics:
        """The same camera for frames resized by ``s`` (pixel-centre offsets are ignored)."""
        return Intrinsics(self.fx * s, self.fy * s, self.cx * s, self.cy * s, self.source)

    @classmethod
    def from_fov(cls, width: int, height: int, hfov_deg: float = DEFAULT_HFOV_DEG) -> Intrinsics:
        f = (width / 2) / np.tan(np.radians(hfov_deg) / 2)
        return cls(float(f), float(f), width / 2, height / 2, "fov_default")


def load_intrinsics(
    video_path: str | Path,
    width: int,
    height: int,
    explicit: tuple[float, float, float, float] | None = None,
    hfov_deg: float = DEFAULT_HFOV_DEG,
) -> Intrinsics:
    """Intrinsics in source-video pixels: ``explicit`` > ``<stem>.camera.json`` sidecar > FOV default."""
    if explicit is not None:
        return Intrinsics(*map(float, explicit), source="config")
    sidecar = Path(video_path).with_name(Path(video_path).stem + ".camera.json")
    if sidecar.exists():
        try:
            data = json.loads(sidecar.read_text())
            values = [float(data[key]) for key in ("fx", "fy", "cx", "cy")]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise StageError("bad_intrinsics", f"{sidecar}: needs numeric fx, fy, cx, cy ({err!r})") from err
        if not (np.all(np.isfinite(values)) and values[0] > 0 and values[1] > 0):
            raise StageError("bad_intrinsics", f"{sidecar}: fx, fy must be positive and all values finite, got {values}")
        return Intrinsics(*values, source="sidecar")
    return Intrinsics.from_fov(width, height, hfov_deg)


@dataclass(frozen=True)
class CameraSpace:
    keypoints: np.ndarray  # (T, 21, 3) float32, camera-space metres, NaN where not solved
    valid: np.ndarray  # (T,) bool
    reprojection_px: np.ndarray  # (T,) float32, mean reprojection error, NaN where not solved


def camera_space_keypoints(kp2d: np.ndarray, kp3d: np.ndarray, valid: np.ndarray, K: Intrinsics) -> CameraSpace:
    """Place one hand in the camera frame per frame by PnP (2D pixels vs hand-centred metric 3D)."""
    n = len(kp2d)
    out = np.full((n, 21, 3), np.nan, np.float32)
    err = np.full(n, np.nan, np.float32)
    ok = np.zeros(n, bool)
    Km = K.matrix()
    for t in np.flatnonzero(valid):
        obj, img = kp3d[t].astype(np.float64), kp2d[t, :, :2].astype(np.float64)
        if not (np.isfinite(obj).all() and np.isfinite(img).all()):
            continue  # mediapipe gives all 21 points or none; partial NaNs mean a corrupt frame
        try:
            # SQPNP: global (no initial guess, no planar special case; near-flat hands are common) and, as it
            # minimises an object-space error, less thrown by mediapipe's imperfect 3D hand shape than a
            # reprojection-error fit (ITERATIVE, or LM refinement), which trades depth for shape.
            found, rvec, tvec = cv2.solvePnP(obj, img, Km, None, flags=cv2.SOLVEPNP_SQPNP)
        except cv2.error:  # degenerate input (e.g. all points on one spot) fails OpenCV's own checks
            continue
        if not found:
            continue
        cam = obj @ cv2.Rodrigues(rvec)[0].T + tvec.ravel()
        if not (np.isfinite(cam).all() and cam[:, 2].min() > 0 and cam[:, 2].max() <= MAX_HAND_DEPTH_M):
            continue
        proj = cv2.projectPoints(obj, rvec, tvec, Km, None)[0].reshape(-1, 2)
        out[t], err[t], ok[t] = cam, np.linalg.norm(proj - img, axis=1).mean(), True
    return CameraSpace(keypoints=out, valid=ok, reprojection_px=err)


@dataclass(frozen=True)
class CameraRotations:
    rotations: np.ndarray  # (T, 3, 3) float32: directions in camera t -> camera 0; rotations[0] = I
    ok: np.ndarray  # (T,) bool: False where the pair (t-1, t) failed and the previous rotation was carried
    n_inliers: np.ndarray  # (T,) int: inlier tracks of the pair (t-1, t); 0 for frame 0

    def angles_deg(self) -> np.ndarray:
        """Rotation angle of each frame's camera against the first frame's."""
        rel = np.swapaxes(self.rotations[:1], 1, 2) @ self.rotations
        return np.degrees(Rotation.from_matrix(rel.astype(np.float64)).magnitude())

    def total_angle_deg(self) -> float:
        return float(self.angles_deg()[-1])

    def max_angle_deg(self) -> float:
        return float(self.angles_deg().max())


def hand_mask(shape: tuple[int, int], hands_px: list[np.ndarray], border_frac: float = BORDER_FRAC) -> np.ndarray:
    """uint8 mask (255 = usable background) without the frame border, each hand's padded convex hull and
    its forearm (a band from the wrist away from the knuckles: arms move with the hands, not the head)."""
    h, w = shape
    mask = np.zeros((h, w), np.uint8)
    b = round(border_frac * min(h, w))
    mask[b : h - b, b : w - b] = 255
    for keypoints in hands_px:
        pts = keypoints[np.isfinite(keypoints).all(axis=1)]
        if len(pts) < 3:
            continue
        hull = cv2.convexHull(np.round(pts).astype(np.int32))
        size = float(np.ptp(pts, axis=0).max())
        pad = max(2, round(HAND_PAD_FRAC * size))
        cv2.fillConvexPoly(mask, hull, 0)
        cv2.polylines(mask, [hull], True, 0, thickness=2 * pad + 1)  # a thick outline dilates the hull by `pad`
        if len(keypoints) > MIDDLE_MCP and np.isfinite(keypoints[[WRIST, MIDDLE_MCP]]).all():
            wrist, knuckle = keypoints[WRIST], keypoints[MIDDLE_MCP]
            away = (wrist - knuckle) / max(float(np.linalg.norm(wrist - knuckle)), 1e-6)
            end = wrist + away * FOREARM_LENGTH * size
            width = max(3, round(FOREARM_WIDTH * size))
            cv2.line(mask, tuple(np.round(wrist).astype(int)), tuple(np.round(end).astype(int)), 0, thickness=width)
    return mask


def _track(prev: np.ndarray, cur: np.ndarray, prev_mask: np.ndarray, cur_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Background corners of ``prev`` (N, 2) and where they are in ``cur`` (N, 2), forward-backward checked."""
    p0 = cv2.goodFeaturesToTrack(prev, MAX_CORNERS, 0.01, MIN_CORNER_DISTANCE, mask=prev_mask)
    if p0 is None or len(p0) < MIN_INLIERS:
        return np.empty((0, 2), np.float32), np.empty((0, 2), np.float32)
    p1, st1, _ = cv2.calcOpticalFlowPyrLK(prev, cur, p0, None)
    back, st0, _ = cv2.calcOpticalFlowPyrLK(cur, prev, p1, None)
    p0, p1 = p0.reshape(-1, 2), p1.reshape(-1, 2)
    keep = (st1.ravel() == 1) & (st0.ravel() == 1) & (np.linalg.norm(back.reshape(-1, 2) - p0, axis=1) < FB_MAX_ERROR_PX)
    # tracks that land on a hand (or off the frame) in the second frame are not background either
    xi, yi = np.round(p1).astype(int).T
    inside = (xi >= 0) & (yi >= 0) & (xi < cur.shape[1]) & (yi < cur.shape[0])
    keep &= inside & (cur_mask[np.clip(yi, 0, cur.shape[0] - 1), np.clip(xi, 0, cur.shape[1] - 1)] > 0)
    return p0[keep], p1[keep]


def _fit_rotation(p0: np.ndarray, p1: np.ndarray, K: np.ndarray) -> tuple[np.ndarray | None, int]:
    """Rotation taking directions of camera 1 to camera 0 from matched pixels, and its inlier count (None: failed)."""
    if len(p0) < MIN_INLIERS:
        return None, 0
    H, inl = cv2.findHomography(p1, p0, cv2.RANSAC, RANSAC_THRESHOLD_PX)
    if H is None or inl.sum() < MIN_INLIERS:
        return None, 0
    # A pure rotation gives H = K R K^-1; the nearest rotation to K^-1 H K (SVD) also keeps the angle when
    # the focal length is off (the matrix is then only similar to R) and absorbs part of any translation.
    M = np.linalg.inv(K) @ H @ K
    U, _, Vt = np.linalg.svd(M * np.sign(np.linalg.det(M)))
    return U @ np.diag([1.0, 1.0, np.linalg.det(U @ Vt)]) @ Vt, int(inl.sum())


def estimate_camera_rotations(
    frames: np.ndarray,
    hand_kp2d: list[np.ndarray],
    K: Intrinsics,
    source_to_frame: float,
    max_side: int = 320,
) -> CameraRotations:
    """Head rotation per frame relative to the first, from background feature tracks (rotation-only model).

    ``frames`` are RGB (T, H, W, 3) with intrinsics ``K`` at that size; ``hand_kp2d`` holds each hand's
    (T, 21, 3) keypoints in source pixels (NaN where missing), masked out so hands do not count as scene.
    """
    n, h, w = frames.shape[:3]
    s = min(1.0, max_side / max(h, w))
    size = (max(1, round(w * s)), max(1, round(h * s)))
    Ks = K.scaled(s).matrix()
    gray = [cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA) for f in frames]
    masks = [hand_mask((size[1], size[0]), [kp[t, :, :2] * (source_to_frame * s) for kp in hand_kp2d]) for t in range(n)]

    rotations = np.repeat(np.eye(3)[None], n, axis=0)
    ok = np.ones(n, bool)
    n_inliers = np.zeros(n, int)
    key = 0  # frames are matched to a keyframe, not only to their predecessor: errors then do not add up per frame
    for t in range(1, n):
        rel, n_inliers[t] = _fit_rotation(*_track(gray[key], gray[t], masks[key], masks[t]), Ks)
        if rel is None and key != t - 1:  # the keyframe's view is gone: fall back to the previous frame
            key = t - 1
            rel, n_inliers[t] = _fit_rotation(*_track(gray[key], gray[t], masks[key], masks[t]), Ks)
        ok[t] = rel is not None
        rotations[t] = rotations[key] @ rel if rel is not None else rotations[t - 1]
        if rel is not None and n_inliers[t] < KEYFRAME_MIN_INLIERS:
            key = t  # the view is moving on: later frames are matched to this one
    return CameraRotations(rotations=rotations.astype(np.float32), ok=ok, n_inliers=n_inliers)


def compensate_rotation(points: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """Camera-space points of frame t (T, ..., 3) expressed in the first frame's camera orientation."""
    return np.einsum("tij,t...j->t...i", rotations, points)
