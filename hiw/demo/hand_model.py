"""Articulated hand model and the analytic primitives the demo renderer ray-casts.

The hand is posed in a *local* frame with axes (radial, distal, palmar): radial points to the
thumb side, distal from the wrist towards the middle fingertip, palmar out of the palm. The
skeleton is defined once, for a right hand; a left hand uses the same local coordinates, and
the mirroring happens in the local->camera rotation, whose radial column is flipped
(see `hand_axes`). Keypoints follow the 21-point mediapipe order (0 wrist, 1-4 thumb,
5-8 index, 9-12 middle, 13-16 ring, 17-20 pinky). Lengths are metres for an adult hand
whose wrist-to-middle-fingertip length is 0.182 m when straight.

Geometry is a union of rounded cones (two spheres joined by their tangent cone: tapered
fingers, metacarpals, forearms) and ellipsoids (palm, carpus, nails), intersected with rays
from the camera centre in closed form.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# material ids shared with the renderer's albedo table
SKIN, NAIL, SLEEVE = 0, 1, 2


@dataclass(frozen=True)
class Finger:
    mcp: tuple[float, float, float]  # local (radial, distal, palmar) position of the MCP joint
    splay: float  # rest angle towards the radial side, radians
    lengths: tuple[float, float, float]  # proximal, middle, distal phalanx
    radii: tuple[float, float, float, float]  # at MCP, PIP, DIP, tip
    curl: float  # how much more than the index this finger flexes in a grasp


# The knuckle row is arched (middle highest, i.e. most dorsal = most negative palmar).
FINGERS = (
    Finger((0.024, 0.086, 0.001), 0.10, (0.041, 0.024, 0.019), (0.0100, 0.0090, 0.0080, 0.0070), 1.00),
    Finger((0.003, 0.090, -0.001), 0.00, (0.045, 0.027, 0.020), (0.0102, 0.0092, 0.0081, 0.0071), 1.05),
    Finger((-0.017, 0.085, 0.001), -0.09, (0.042, 0.026, 0.020), (0.0097, 0.0087, 0.0077, 0.0068), 1.10),
    Finger((-0.035, 0.074, 0.004), -0.22, (0.033, 0.019, 0.018), (0.0088, 0.0078, 0.0070, 0.0062), 1.20),
)
THUMB_CMC = np.array([0.021, 0.026, 0.012])
THUMB_LENGTHS = (0.040, 0.032, 0.027)  # metacarpal, proximal, distal
THUMB_RADII = (0.0150, 0.0118, 0.0105, 0.0088)
# Absolute local bone directions of the thumb when the hand is open / closed on an object.
THUMB_OPEN = np.array([[0.48, 0.72, 0.50], [0.42, 0.86, 0.28], [0.32, 0.93, 0.16]])
THUMB_CLOSED = np.array([[0.35, 0.65, 0.68], [0.05, 0.72, 0.70], [-0.15, 0.65, 0.72]])
# Carpal ends of the metacarpals; together with a flat ellipsoid they fill the palm.
METACARPAL_BASES = np.array([[0.015, 0.014, 0.002], [0.003, 0.012, 0.000], [-0.010, 0.014, 0.002], [-0.021, 0.018, 0.004]])


@dataclass(frozen=True)
class Cone:
    """Rounded cone: spheres (a, ra) and (b, rb) plus the cone tangent to both."""

    a: np.ndarray
    b: np.ndarray
    ra: float
    rb: float
    material: int


@dataclass(frozen=True)
class Ellipsoid:
    center: np.ndarray
    axes: np.ndarray  # (3, 3) columns are the unit principal axes
    radii: np.ndarray  # (3,) semi-axis lengths
    material: int


Primitive = Cone | Ellipsoid


def hand_axes(distal: np.ndarray, palmar: np.ndarray, side: str) -> np.ndarray:
    """Rotation from the hand frame (columns radial, distal, palmar) to the frame of the inputs.

    It is a reflection for the left hand: the same local skeleton then comes out mirrored.
    """
    d = distal / np.linalg.norm(distal)
    p = palmar - d * (palmar @ d)
    p /= np.linalg.norm(p)
    # The thumb sits on the side of d x p for a right hand and of p x d for a left hand.
    r = np.cross(d, p) if side == "right" else np.cross(p, d)
    return np.stack([r, d, p], axis=1)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def pose_local(grasp: float, spread: float) -> tuple[np.ndarray, np.ndarray]:
    """Local keypoints (21, 3) and the local dorsal direction of each distal phalanx (5, 3).

    `grasp` in [0, 1] flexes every joint from a relaxed open hand to a closed grip;
    `spread` in [0, 1] scales the finger splay (fingers come together as they close).
    """
    kp = np.zeros((21, 3))
    nail_up = np.zeros((5, 3))
    p_axis = np.array([0.0, 0.0, 1.0])
    # Thumb: interpolate each bone's absolute direction between the open and closed shapes.
    dirs = _unit((1 - grasp) * _unit(THUMB_OPEN) + grasp * _unit(THUMB_CLOSED))
    kp[1] = THUMB_CMC
    for i in range(3):
        kp[2 + i] = kp[1 + i] + THUMB_LENGTHS[i] * dirs[i]
    # The thumbnail faces dorsally and towards the radial side of the thumb.
    up = np.array([0.6, 0.0, -0.8])
    nail_up[0] = _unit(up - dirs[2] * (up @ dirs[2]))
    for f, finger in enumerate(FINGERS):
        splay = finger.splay * (0.6 + 0.8 * spread) * (1 - 0.5 * grasp)
        d0 = np.array([np.sin(splay), np.cos(splay), 0.0])
        # joint flexions (MCP, PIP, DIP); a relaxed hand is never perfectly straight
        flex = finger.curl * np.array([0.15 + 1.00 * grasp, 0.20 + 0.90 * grasp, 0.10 + 0.50 * grasp])
        base = 5 + 4 * f
        kp[base] = finger.mcp
        angle = 0.0
        for j in range(3):
            angle += flex[j]
            # flexion rotates the bone inside the plane spanned by its rest direction and palmar
            bone = np.cos(angle) * d0 + np.sin(angle) * p_axis
            kp[base + j + 1] = kp[base + j] + finger.lengths[j] * bone
        nail_up[1 + f] = np.sin(angle) * d0 - np.cos(angle) * p_axis
    return kp, nail_up


def pose_hand(wrist: np.ndarray, axes: np.ndarray, grasp: float, spread: float) -> tuple[np.ndarray, list[Primitive]]:
    """Posed keypoints (21, 3) and the surface primitives of one hand, in the camera frame."""
    local, nail_up_local = pose_local(grasp, spread)
    kp = wrist + local @ axes.T

    def to_cam(v: np.ndarray) -> np.ndarray:
        return wrist + np.asarray(v) @ axes.T

    prims: list[Primitive] = []
    # Carpus and palm body: flat ellipsoids, about 3 cm thick, bridging the metacarpals.
    prims.append(Ellipsoid(to_cam([-0.002, 0.012, 0.004]), axes, np.array([0.030, 0.026, 0.017]), SKIN))
    prims.append(Ellipsoid(to_cam([-0.004, 0.052, 0.003]), axes, np.array([0.036, 0.040, 0.014]), SKIN))
    for f, finger in enumerate(FINGERS):
        mcp = 5 + 4 * f
        prims.append(Cone(to_cam(METACARPAL_BASES[f]), kp[mcp], 0.0125, finger.radii[0] + 0.0015, SKIN))
        for j in range(3):
            prims.append(Cone(kp[mcp + j], kp[mcp + j + 1], finger.radii[j], finger.radii[j + 1], SKIN))
    # Thumb: a fat metacarpal (thenar eminence) and a web of skin towards the index metacarpal.
    prims.append(Cone(kp[1], kp[2], THUMB_RADII[0], THUMB_RADII[1], SKIN))
    prims.append(Cone(kp[2], to_cam([0.018, 0.058, 0.004]), 0.0095, 0.0105, SKIN))
    prims.append(Cone(0.5 * (kp[1] + kp[2]), to_cam([0.016, 0.036, 0.004]), 0.0135, 0.0125, SKIN))
    for j in range(1, 3):
        prims.append(Cone(kp[1 + j], kp[2 + j], THUMB_RADII[j], THUMB_RADII[j + 1], SKIN))
    # Nails sit on the dorsal side of each distal phalanx, close to the tip.
    for i, (dip, tip) in enumerate(zip((3, 7, 11, 15, 19), (4, 8, 12, 16, 20))):
        along = _unit(kp[tip] - kp[dip])
        up = nail_up_local[i] @ axes.T
        side = np.cross(along, up)
        radius = THUMB_RADII[3] if i == 0 else FINGERS[i - 1].radii[3]
        center = kp[dip] + 0.58 * (kp[tip] - kp[dip]) + up * radius * 0.72
        size = np.array([radius * 0.72, 0.0068, 0.0022])
        prims.append(Ellipsoid(center, np.stack([side, along, up], axis=1), size, NAIL))
    return kp, prims


def arm_primitives(wrist: np.ndarray, elbow: np.ndarray) -> list[Primitive]:
    """Forearm from elbow to wrist, with a rolled-up sleeve covering its proximal half."""
    cuff = elbow + 0.55 * (wrist - elbow)
    return [
        Cone(elbow, wrist, 0.034, 0.022, SKIN),
        Cone(elbow, cuff, 0.046, 0.041, SLEEVE),
    ]


# ---------------------------------------------------------------------------------------------
# Ray casting. Rays start at the camera centre (the origin) with unit float32 directions `rd`
# (N, 3). Per-ray work is float32 (twice as fast); per-primitive constants stay float64.


def intersect(rd: np.ndarray, prim: Primitive, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rays that hit `prim` nearer than `depth` (N,): their indices, hit distances and unit normals."""
    if isinstance(prim, Cone):
        return _intersect_cone(rd, prim, depth)
    return _intersect_ellipsoid(rd, prim, depth)


def _intersect_cone(rd: np.ndarray, c: Cone, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Closed-form rounded cone of I. Quilez (iquilezles.org, "intersectors") with origin 0.
    ba = c.b - c.a
    rr = c.ra - c.rb
    m0, m1, m5, m7 = float(ba @ ba), float(-ba @ c.a), float(c.a @ c.a), float(c.b @ c.b)
    m2 = rd @ ba.astype(np.float32)
    m3 = rd @ -c.a.astype(np.float32)
    m6 = rd @ -c.b.astype(np.float32)
    d2 = m0 - rr * rr
    k2 = d2 - m2 * m2
    k1 = d2 * m3 - m1 * m2 + m2 * (rr * c.ra)
    k0 = d2 * m5 - m1 * m1 + 2.0 * m1 * rr * c.ra - m0 * c.ra * c.ra
    h = k1 * k1 - k0 * k2
    with np.errstate(invalid="ignore", divide="ignore"):
        t_body = (-np.sqrt(h) - k1) / k2
        y = (m1 - c.ra * rr) + t_body * m2
        body = (h >= 0) & (y > 0) & (y < d2)
        # Outside the body's span the surface is one of the two end spheres.
        h1 = m3 * m3 - (m5 - c.ra * c.ra)
        h2 = m6 * m6 - (m7 - c.rb * c.rb)
        t1 = np.where(h1 > 0, -m3 - np.sqrt(h1), np.inf)
        t2 = np.where(h2 > 0, -m6 - np.sqrt(h2), np.inf)
    t = np.where(body, t_body, np.minimum(t1, t2))
    idx = np.flatnonzero((t > 0) & (t < depth))
    # Normals only for the rays that won the depth test.
    t, body, y, cap_a = t[idx], body[idx], y[idx], t1[idx] <= t2[idx]
    p = rd[idx] * t[:, None]
    n = np.where(
        body[:, None],
        d2 * (p - c.a) - ba * y[:, None],
        np.where(cap_a[:, None], (p - c.a) / c.ra, (p - c.b) / c.rb),
    )
    return idx, t, _unit(n).astype(np.float32)


def _intersect_ellipsoid(rd: np.ndarray, e: Ellipsoid, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Map the ellipsoid to the unit sphere; t is unchanged by that affine map.
    o = (-e.center @ e.axes) / e.radii
    d = rd @ (e.axes / e.radii).astype(np.float32)
    a = np.einsum("ij,ij->i", d, d)
    b = d @ o.astype(np.float32)
    h = b * b - a * float(o @ o - 1.0)
    with np.errstate(invalid="ignore"):
        t = (-b - np.sqrt(h)) / a
    idx = np.flatnonzero((h > 0) & (t > 0) & (t < depth))
    t = t[idx]
    q = o + d[idx] * t[:, None]
    n = (q / e.radii) @ e.axes.T  # gradient of |x / radii|^2 in camera coordinates
    return idx, t, _unit(n).astype(np.float32)


def bounding_spheres(prims: list[Primitive]) -> tuple[np.ndarray, np.ndarray]:
    """Two spheres per primitive, centres (P, 2, 3) and radii (P, 2), whose union covers it."""
    centres = [(p.a, p.b) if isinstance(p, Cone) else (p.center, p.center) for p in prims]
    radii = [(p.ra, p.rb) if isinstance(p, Cone) else (p.radii.max(),) * 2 for p in prims]
    return np.array(centres), np.array(radii)
