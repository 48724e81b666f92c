"""Procedural egocentric demo clip: two hands working over a wooden table, with ground truth.

Scene. A head-mounted pinhole camera sits `CAMERA_HEIGHT` above a wooden table and looks
forward and down (`CAMERA_PITCH`), as a person seated at the table sees it. The table carries
a plate and a couple of objects; a wall closes the view at the top. Both forearms enter from
the bottom of the frame (left arm on the left, right arm on the right) with the back of the
hand towards the camera; the wrists follow smooth reach / grasp / lift / move / place /
release cycles while the fingers close and open. Everything is randomised by `seed` and is
deterministic for a given seed.

Rendering is a small software ray caster (numpy + cv2 only): each hand is a union of
rounded cones and ellipsoids (`hand_model`), intersected in closed form inside each
primitive's screen-space bounding box against a z-buffer that starts from the static
background (table, plate, objects, wall: rendered once per clip, supersampled). Hands are
shaded with wrapped Lambert + ambient + a little Blinn-Phong specular and cast a soft shadow
on the table; a light blur and sensor noise make the frames look like a camera's.

Ground truth conventions (`RenderGroundTruth`). World frame used internally: X right, Y
forward, Z up, table top at Z = 0. Exported keypoints are in the *camera* frame (x right,
y down, z forward, metres) and in pixels (x right, y down, pixel centres at integer
coordinates), 21 per hand in mediapipe order, keyed "left"/"right" by the person's own hands
(the video is not mirrored). `in_view` marks frames where the wrist and at least 16 of the 21
keypoints project inside the image.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.interpolate import PchipInterpolator

from hiw.demo.hand_model import (
    NAIL,
    SKIN,
    SLEEVE,
    Cone,
    Ellipsoid,
    Primitive,
    arm_primitives,
    bounding_spheres,
    hand_axes,
    intersect,
    pose_hand,
)
from hiw.schemas import HANDS

CAMERA_HEIGHT = 0.40  # m above the table top, a seated person's eyes
CAMERA_PITCH = np.deg2rad(45.0)  # looking down at the hands
HFOV = np.deg2rad(55.0)
# Unit vector towards the key light, above and behind the viewer. Lighting the backs of the hands
# from the camera side matters: under strong side light mediapipe's palm detector misses the hand
# whose thumb side is in shade (measured: ~45% vs ~95% of frames detected).
LIGHT_W = np.array([0.0, -1.0, 0.8]) / np.linalg.norm([0.0, -1.0, 0.8])
SIDES = HANDS  # the person's own left and right hands
SKIN_TONES = np.array([[0.90, 0.70, 0.58], [0.86, 0.64, 0.52], [0.80, 0.58, 0.45], [0.75, 0.53, 0.41]])
SLEEVE_COLOURS = np.array([[0.16, 0.22, 0.38], [0.30, 0.30, 0.32], [0.48, 0.14, 0.14], [0.18, 0.32, 0.22]])


@dataclass
class RenderGroundTruth:
    fps: float
    width: int
    height: int
    keypoints_2d: dict[str, np.ndarray]  # side -> (T, 21, 2) float32 pixels
    keypoints_3d: dict[str, np.ndarray]  # side -> (T, 21, 3) float32 metres, camera frame
    in_view: dict[str, np.ndarray]  # side -> (T,) bool
    intrinsics: np.ndarray  # (3, 3)


@dataclass(frozen=True)
class Camera:
    K: np.ndarray  # (3, 3) intrinsics
    R: np.ndarray  # world -> camera rotation (rows: camera x, y, z in world coordinates)
    C: np.ndarray  # camera centre in world coordinates
    width: int
    height: int

    @classmethod
    def egocentric(cls, width: int, height: int) -> Camera:
        f = 0.5 * width / np.tan(0.5 * HFOV)
        K = np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]])
        c, s = np.cos(CAMERA_PITCH), np.sin(CAMERA_PITCH)
        R = np.array([[1, 0, 0], [0, -s, -c], [0, c, -s]], dtype=float)
        return cls(K, R, np.array([0.0, 0.0, CAMERA_HEIGHT]), width, height)

    def to_cam(self, p_world: np.ndarray) -> np.ndarray:
        return (p_world - self.C) @ self.R.T

    def project(self, p_cam: np.ndarray) -> np.ndarray:
        uv = p_cam[..., :2] / p_cam[..., 2:3]
        return uv * np.diag(self.K)[:2] + self.K[:2, 2]

    def rays(self, scale: int = 1) -> np.ndarray:
        """Unit ray directions (H*scale, W*scale, 3) through the (sub)pixel centres."""
        xs = (np.arange(self.width * scale) + 0.5) / scale - 0.5
        ys = (np.arange(self.height * scale) + 0.5) / scale - 0.5
        x, y = np.meshgrid((xs - self.K[0, 2]) / self.K[0, 0], (ys - self.K[1, 2]) / self.K[1, 1])
        d = np.stack([x, y, np.ones_like(x)], axis=-1)
        return (d / np.linalg.norm(d, axis=-1, keepdims=True)).astype(np.float32)


# --------------------------------------------------------------------------- motion


@dataclass(frozen=True)
class HandScript:
    """Per-frame wrist position (world) and hand articulation of one hand."""

    wrist: np.ndarray  # (T, 3)
    grasp: np.ndarray  # (T,)
    spread: np.ndarray  # (T,)
    yaw: np.ndarray  # (T,) turn of the hand about the vertical, radians
    pitch: np.ndarray  # (T,) wrist flexion (negative bends the hand down)
    roll: np.ndarray  # (T,) pronation offset: positive lifts the thumb side


def _hand_script(side: str, times: np.ndarray, rng: np.random.Generator) -> HandScript:
    s = 1.0 if side == "right" else -1.0
    home = np.array([s * rng.uniform(0.11, 0.13), rng.uniform(0.21, 0.24), rng.uniform(0.12, 0.15)])
    # Keyframes of a manipulation loop: reach out, close, lift, carry sideways, set down, let go.
    keys_t, keys_p, keys_g = [0.0], [home], [0.1]
    t = rng.uniform(0.0, 0.4)
    while t < times[-1] + 1.0:
        reach = home + [s * rng.uniform(-0.02, 0.03), rng.uniform(0.03, 0.06), -0.04]
        carry = [s * rng.uniform(-0.05, 0.02), rng.uniform(-0.03, 0.03), 0.0]
        lift = [0.0, 0.0, rng.uniform(0.05, 0.08)]
        grip = rng.uniform(0.45, 0.6)  # a closed grip short of a claw, so fingers stay visible
        steps = [
            (reach, 0.05),
            (reach, grip),
            (reach + lift, grip),
            (reach + lift + carry, grip),
            (reach + carry, grip),
            (reach + carry, 0.05),
            (home, 0.1),
        ]
        for p, g in steps:
            t += rng.uniform(0.35, 0.6)
            keys_t.append(t)
            # keep each hand in its own half of the frame, clear of the centre and the edge
            keys_p.append(np.array([s * np.clip(s * p[0], 0.08, 0.15), p[1], p[2]]))
            keys_g.append(g)
    # PCHIP holds still at each keyframe and never overshoots: smooth, plausible reaching.
    wrist = PchipInterpolator(keys_t, np.stack(keys_p))(times)
    grasp = PchipInterpolator(keys_t, keys_g)(times)
    phase = rng.uniform(0, 2 * np.pi, 3)
    wrist += 0.008 * np.sin(2 * np.pi * 0.7 * times[:, None] + phase)  # small idle sway
    return HandScript(
        wrist=wrist,
        grasp=grasp,
        spread=0.5 + 0.5 * np.cos(np.pi * grasp),
        yaw=s * (0.08 + 0.08 * np.sin(2 * np.pi * 0.4 * times + phase[0])),
        pitch=-0.05 - 0.20 * grasp,
        roll=0.20 + 0.10 * np.sin(2 * np.pi * 0.3 * times + phase[1]),
    )


def _pose(cam: Camera, side: str, track: HandScript, i: int) -> tuple[np.ndarray, list[Primitive]]:
    """Keypoints (21, 3) and all primitives (hand + forearm) in the camera frame at frame i."""
    s = 1.0 if side == "right" else -1.0
    wrist = track.wrist[i]
    # The forearm points from a shoulder-side anchor below the camera to the wrist.
    anchor = np.array([s * 0.17, -0.12, 0.06])
    forearm = (wrist - anchor) / np.linalg.norm(wrist - anchor)
    heading = np.arctan2(forearm[0], forearm[1]) + track.yaw[i]
    elev = np.arcsin(forearm[2]) + track.pitch[i]
    distal = np.array([np.sin(heading) * np.cos(elev), np.cos(heading) * np.cos(elev), np.sin(elev)])
    down = np.array([0.0, 0.0, -1.0])
    r0, d, p0 = hand_axes(distal, down, side).T
    palmar = np.cos(track.roll[i]) * p0 + np.sin(track.roll[i]) * r0
    axes_w = hand_axes(d, palmar, side)
    wrist_c = cam.to_cam(wrist)
    kp, prims = pose_hand(wrist_c, cam.R @ axes_w, track.grasp[i], track.spread[i])
    elbow_c = cam.to_cam(wrist - 0.27 * forearm)
    # the forearm meets the hand slightly palmar of the wrist keypoint, under the flat carpus
    return kp, prims + arm_primitives(wrist_c + cam.R @ axes_w @ [0.0, -0.01, 0.005], elbow_c)


# --------------------------------------------------------------------------- rasterising


def _screen_boxes(cam: Camera, prims: list[Primitive], scale: int) -> np.ndarray:
    """Pixel boxes (P, 4) as x0, y0, x1, y1 covering the exact perspective outlines of the primitives."""
    centres, radii = bounding_spheres(prims)
    box = np.empty((len(prims), 4), int)
    for k in range(2):  # tangent planes through the origin, x = s z (k = 0) and y = s z (k = 1)
        dist = np.hypot(centres[..., k], centres[..., 2])
        mid = np.arctan2(centres[..., k], centres[..., 2])
        half = np.arcsin(np.minimum(radii / dist, 1.0))
        lo = np.tan(np.clip(mid - half, -1.5, 1.5)).min(axis=1)
        hi = np.tan(np.clip(mid + half, -1.5, 1.5)).max(axis=1)
        lo_px, hi_px = ((v * cam.K[k, k] + cam.K[k, 2] + 0.5) * scale for v in (lo, hi))
        size = (cam.width, cam.height)[k] * scale
        box[:, k] = np.clip(np.floor(lo_px) - 1, 0, size)
        box[:, k + 2] = np.clip(np.ceil(hi_px) + 1, 0, size)
    return box


def _raycast(
    cam: Camera, rays: np.ndarray, prims: list[Primitive], depth: np.ndarray, scale: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffer the primitives into `depth` (in place); return per-pixel normal and material (-1 = none)."""
    normal = np.zeros(rays.shape, np.float32)
    material = np.full(depth.shape, -1, np.int8)
    for prim, (x0, y0, x1, y1) in zip(prims, _screen_boxes(cam, prims, scale)):
        if x1 <= x0 or y1 <= y0:
            continue
        box = (slice(y0, y1), slice(x0, x1))
        idx, t, n = intersect(rays[box].reshape(-1, 3), prim, depth[box].ravel())
        rows, cols = np.divmod(idx, x1 - x0)
        depth[box][rows, cols] = t
        normal[box][rows, cols] = n
        material[box][rows, cols] = prim.material
    return normal, material


def _shade(
    normal: np.ndarray,
    rays: np.ndarray,
    albedo: np.ndarray,
    light: np.ndarray,
    up: np.ndarray,
    gloss: float | np.ndarray,
) -> np.ndarray:
    """Wrapped Lambert (soft, skin-like falloff) + sky ambient + Blinn-Phong highlight."""
    ndl = normal @ light
    diffuse = np.clip((ndl + 0.3) / 1.3, 0.0, 1.0)
    ambient = 0.30 + 0.10 * (normal @ up)
    half = light - rays
    half /= np.linalg.norm(half, axis=-1, keepdims=True)
    spec = gloss * np.clip(np.einsum("...i,...i->...", normal, half), 0.0, 1.0) ** 24
    return albedo * (ambient + 0.72 * diffuse)[..., None] + spec[..., None]


# --------------------------------------------------------------------------- scene


@dataclass(frozen=True)
class Background:
    image: np.ndarray  # (H, W, 3) float32 RGB in [0, 1]
    depth: np.ndarray  # (H, W) float32 ray distance to the static scene


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: tuple[float, float]) -> np.ndarray:
    """Unit-variance smooth random field, blurred more along y than x for sigma[1] > sigma[0]."""
    field = rng.standard_normal(shape).astype(np.float32)
    field = cv2.GaussianBlur(field, (0, 0), sigmaX=sigma[0], sigmaY=sigma[1])
    return field / (field.std() + 1e-6)


def _wood(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Wood colour at table coordinates (metres): planks running away from the viewer."""
    res = 0.004  # noise texel size in metres; the texture covers X in [-1, 1], Y in [0, 2]
    warp = _smooth_noise(rng, (500, 500), (6.0, 30.0))  # grain drifts slowly along the plank
    fine = _smooth_noise(rng, (500, 500), (0.7, 6.0))
    mx, my = ((x + 1.0) / res).astype(np.float32), (y / res).astype(np.float32)
    warp_v = cv2.remap(warp, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    fine_v = cv2.remap(fine, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    plank_w = 0.14
    plank = np.floor(x / plank_w)
    grain = np.sin(2 * np.pi * (x * 45.0 + 0.6 * warp_v + plank * 0.37))
    tone = 1.0 + 0.07 * grain + 0.05 * fine_v + 0.05 * np.sin(plank * 2.3)
    seam = np.abs((x / plank_w) - np.round(x / plank_w)) * plank_w < 0.0012
    base = np.array([0.40, 0.26, 0.16]) * rng.uniform(0.9, 1.1)
    colour = base * tone[..., None]
    colour[seam] *= 0.55
    return colour


def _render_background(cam: Camera, rng: np.random.Generator, scale: int = 2) -> Background:
    """Table, plate, objects and wall, supersampled `scale` x `scale` then averaged."""
    rays = cam.rays(scale)
    rays_w = rays @ cam.R  # world directions
    up_c = cam.R @ np.array([0.0, 0.0, 1.0])
    light_c = cam.R @ LIGHT_W
    with np.errstate(divide="ignore"):
        t_table = np.where(rays_w[..., 2] < 0, -cam.C[2] / rays_w[..., 2], np.inf)
    hit = cam.C + rays_w * t_table[..., None]
    table_far, wall_y = 0.72, 0.80
    on_table = hit[..., 1] < table_far
    image = _wood(hit[..., 0], hit[..., 1], rng)
    # Plate: a white disk with a slightly darker, raised-looking rim.
    # (beyond the reach of the fingertips: pale skin over a white plate is hard to see)
    centre = np.array([rng.uniform(-0.04, 0.04), rng.uniform(0.58, 0.61)])
    rad = np.hypot(hit[..., 0] - centre[0], hit[..., 1] - centre[1])
    image[rad < 0.10] = [0.90, 0.90, 0.88]
    image[(rad > 0.07) & (rad < 0.10)] *= 0.9
    image[(rad > 0.098) & (rad < 0.104)] *= 0.7
    # Wall beyond the table's far edge, darker lower down; a shadow gap under the edge.
    t_wall = (wall_y - cam.C[1]) / np.maximum(rays_w[..., 1], 1e-6)
    wall_z = cam.C[2] + rays_w[..., 2] * t_wall
    wall = np.array([0.80, 0.78, 0.72]) * (0.75 + 0.25 * np.clip(wall_z / 0.6, 0, 1))[..., None]
    wall[wall_z < 0] = [0.18, 0.16, 0.14]
    image = np.where(on_table[..., None], image, wall)
    depth = np.where(on_table, t_table, t_wall).astype(np.float32)
    # Soft contact shadows of the objects, then the objects themselves.
    objects = _table_objects(rng)
    for obj, _ in objects:
        c = obj.center if isinstance(obj, Ellipsoid) else obj.a
        r = np.hypot(hit[..., 0] - c[0], hit[..., 1] - c[1] - 0.02)
        image *= (1 - 0.4 * np.exp(-((r / 0.06) ** 2)) * on_table)[..., None]
    prims = [_to_camera(cam, obj) for obj, _ in objects]
    normal, material = _raycast(cam, rays, prims, depth, scale)
    for k, (_, colour) in enumerate(objects):
        m = material == prims[k].material
        image[m] = _shade(normal[m], rays[m], np.asarray(colour), light_c, up_c, 0.25)
    # gentle lamp falloff away from the centre of the table
    image *= (1.0 - 0.25 * np.clip(np.hypot(hit[..., 0] / 1.2, (hit[..., 1] - 0.45) / 1.2), 0, 1))[..., None]
    h, w = cam.height, cam.width
    image = image.reshape(h, scale, w, scale, 3).mean(axis=(1, 3))
    depth = depth.reshape(h, scale, w, scale).min(axis=(1, 3))
    return Background(image.astype(np.float32), depth)


def _table_objects(rng: np.random.Generator) -> list[tuple[Primitive, tuple[float, float, float]]]:
    """A fruit and a canister on the table (world frame), each with its own material id."""
    fruit_x = rng.choice([-1, 1]) * rng.uniform(0.22, 0.28)
    fruit = Ellipsoid(np.array([fruit_x, rng.uniform(0.50, 0.58), 0.038]), np.eye(3), np.full(3, 0.04), 10)
    can_x = -np.sign(fruit_x) * rng.uniform(0.25, 0.32)
    can = Cone(np.array([can_x, 0.62, -0.02]), np.array([can_x, 0.62, 0.08]), 0.035, 0.035, 11)
    colours = [(0.90, 0.45, 0.08), tuple(rng.uniform(0.2, 0.8, 3))]
    return list(zip([fruit, can], colours))


def _to_camera(cam: Camera, prim: Primitive) -> Primitive:
    if isinstance(prim, Cone):
        return Cone(cam.to_cam(prim.a), cam.to_cam(prim.b), prim.ra, prim.rb, prim.material)
    return Ellipsoid(cam.to_cam(prim.center), cam.R @ prim.axes, prim.radii, prim.material)


def _shadow(cam: Camera, prims: list[Primitive], light_c: np.ndarray, up_c: np.ndarray) -> np.ndarray:
    """Soft shadow factor (H, W) in [0, 1]: the primitives projected along the light onto the table."""
    small = np.zeros((cam.height // 2, cam.width // 2), np.float32)
    for prim in prims:
        pts, r = (
            ([prim.a, prim.b], min(prim.ra, prim.rb))
            if isinstance(prim, Cone)
            else ([prim.center], float(np.sort(prim.radii)[1]))
        )
        on_table = [p - light_c * (p @ up_c + CAMERA_HEIGHT) / (light_c @ up_c) for p in pts]
        uv = cam.project(np.array(on_table)) / 2
        thick = max(int(2 * r * cam.K[0, 0] / on_table[0][2] / 2), 1)
        pix = [tuple(int(v) for v in np.clip(q, -1e4, 1e4)) for q in uv]
        if len(pix) == 2:
            cv2.line(small, pix[0], pix[1], 1.0, thick)
        else:
            cv2.circle(small, pix[0], thick // 2, 1.0, -1)
    small = cv2.GaussianBlur(small, (0, 0), 5.0)
    return cv2.resize(small, (cam.width, cam.height), interpolation=cv2.INTER_LINEAR)


# --------------------------------------------------------------------------- API


def render_frames(
    seconds: float = 4.0, fps: float = 30.0, width: int = 640, height: int = 480, seed: int = 0
) -> tuple[Iterator[np.ndarray], RenderGroundTruth]:
    """Lazily rendered RGB uint8 frames (H, W, 3) of the demo clip and its ground truth."""
    rng = np.random.default_rng(seed)
    cam = Camera.egocentric(width, height)
    n = int(round(seconds * fps))
    times = np.arange(n) / fps
    tracks = {side: _hand_script(side, times, rng) for side in SIDES}
    kp3 = {side: np.stack([_pose(cam, side, tracks[side], i)[0] for i in range(n)]) for side in SIDES}
    kp2 = {side: cam.project(kp3[side]) for side in SIDES}
    inside = {s: (kp2[s] >= 0).all(-1) & (kp2[s] < [width, height]).all(-1) for s in SIDES}
    gt = RenderGroundTruth(
        fps=fps,
        width=width,
        height=height,
        keypoints_2d={s: kp2[s].astype(np.float32) for s in SIDES},
        keypoints_3d={s: kp3[s].astype(np.float32) for s in SIDES},
        in_view={s: inside[s][:, 0] & (inside[s].sum(1) >= 16) for s in SIDES},
        intrinsics=cam.K.copy(),
    )
    background = _render_background(cam, rng)
    albedo = np.zeros((3, 3), np.float32)
    albedo[SKIN] = SKIN_TONES[rng.integers(len(SKIN_TONES))]
    albedo[NAIL] = 0.55 * albedo[SKIN] + 0.45 * np.array([0.95, 0.85, 0.85])
    albedo[SLEEVE] = SLEEVE_COLOURS[rng.integers(len(SLEEVE_COLOURS))]
    # A few fixed sensor-noise patterns, cycled, are far cheaper than fresh noise per frame.
    noise = rng.normal(0.0, 0.012, (4, height, width, 1)).astype(np.float32)
    return _frames(cam, tracks, background, albedo, noise, n), gt


def _frames(
    cam: Camera,
    tracks: dict[str, HandScript],
    background: Background,
    albedo: np.ndarray,
    noise: np.ndarray,
    n: int,
) -> Iterator[np.ndarray]:
    rays = cam.rays()
    up_c = (cam.R @ np.array([0.0, 0.0, 1.0])).astype(np.float32)
    light_c = (cam.R @ LIGHT_W).astype(np.float32)
    gloss = np.array([0.10, 0.35, 0.02], np.float32)  # skin, nail, sleeve
    for i in range(n):
        prims = [p for side in SIDES for p in _pose(cam, side, tracks[side], i)[1]]
        depth = background.depth.copy()
        normal, material = _raycast(cam, rays, prims, depth)
        image = background.image * (1.0 - 0.45 * _shadow(cam, prims, light_c, up_c))[..., None]
        hand = material >= 0
        mat = material[hand]
        image[hand] = _shade(normal[hand], rays[hand], albedo[mat], light_c, up_c, gloss[mat])
        # Lens softness and sensor noise, so edges are not perfectly crisp synthetic steps.
        image = cv2.GaussianBlur(image, (0, 0), 0.6) + noise[i % len(noise)]
        yield (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def write_demo_video(
    path: Path, seconds: float = 4.0, fps: float = 30.0, width: int = 640, height: int = 480, seed: int = 0
) -> RenderGroundTruth:
    """Render the demo clip to an MPEG-4 (mp4v) file at `path` and return its ground truth."""
    frames, gt = render_frames(seconds, fps, width, height, seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"cv2.VideoWriter cannot open {path}")
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return gt
