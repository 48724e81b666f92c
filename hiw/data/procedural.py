"""Procedural two-hand motion with text labels, so the motion tokenizer and the text-to-motion model can be
trained and tested at scale on a CPU, without video.

Each clip holds both hands' MANO-style parameters for the open skeleton (``hiw.motion.open_skeleton``) at
``fps``: ``rotations`` (T, 16, 3, 3) = global orientation then 15 joint rotations relative to the rest pose,
and ``transl`` (T, 3) = the wrist in a camera-like frame (x right, y down, z forward, metres). One or both
hands perform one of ``ACTIONS``; a hand that is not acting rests with a little idle motion, so both hands
are present and valid in every frame and the two-hand features are complete.

How the motion is made. Every hand is first generated as a right hand and mirrored to a left one when
needed: the skeleton's left hand is the right one with its z negated (M = diag(1, 1, -1)), so a left hand
mirroring a right hand across the camera's x = 0 plane (S = diag(-1, 1, 1)) has global orientation S R M,
joint rotations M R M and wrist S t. A right hand is:

- a start pose: wrist 0.3-0.6 m from the camera, below and to the right of it; palm facing down or turned
  up to 45 degrees inward, fingers forward, turned inward and tilted down by random amounts;
- a finger pose per frame, as degrees about anatomical axes computed from the rest skeleton: flexion of
  each finger's three joints about the axis perpendicular to the finger (MCP to tip) and to the back of
  the hand (y), whose positive sense moves the fingertip to the palm side (-y: checked with forward
  kinematics in the tests), spread (abduction) at the MCP about the back-of-hand axis, and for the thumb
  an opposition swing at the CMC that brings its tip over the palm, then MCP/IP flexion towards the palm
  and the little finger. No axis has a twist component, and every angle stays within ``FLEX_LIMITS`` and
  ``SPREAD_LIMIT``;
- action curves built only from smooth pieces: minimum-jerk transitions, Hann-window bumps and sinusoids
  faded in and out by minimum-jerk ramps (all C1, C2 for the transitions), with durations lengthened
  where needed to keep joints under ``MAX_JOINT_SPEED`` and the wrist under ``MAX_WRIST_SPEED``;
- idle motion on top: slow sums of sinusoids (a few millimetres, a few degrees).

Randomised per clip: the action, the active hands, the duration (whole frames within [min_s, max_s]), a
speed level and an amplitude level (shared by both hands, with a small per-hand jitter; the label says
"slowly"/"quickly", "loosely"/"tightly" and the like only in the outer quarters of their ranges), start
poses, targets, frequencies, onsets and per-finger timing. ``generate(n, seed)`` is deterministic, and
clip i depends only on (seed, i): ``generate(5, s)`` is a prefix of ``generate(50, s)``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from hiw.motion.features import motion_features
from hiw.motion.open_skeleton import RIGHT_REST
from hiw.motion.temporal import ParamSequence
from hiw.schemas import HANDS

VERSION = "procedural-v1"  # bump when a change alters what generate() returns for a seed
ACTIONS = ("reach", "grasp", "release", "wave", "rotate", "tap", "type")

# Verbs for each action, base form, without objects (the labels conjugate them for one hand).
LABEL_VERBS: dict[str, tuple[str, ...]] = {
    "reach": ("reach", "reach out", "stretch out", "extend"),
    "grasp": ("close", "clench", "grasp", "grip", "curl up"),
    "release": ("open", "open up", "release", "let go", "spread out"),
    "wave": ("wave", "wave hello", "wave goodbye", "wave back and forth"),
    "rotate": ("rotate", "turn", "twist"),
    "tap": ("tap", "tap repeatedly", "drum", "poke"),
    "type": ("type", "type away", "touch-type"),
}

FINGERS = ("index", "middle", "pinky", "ring", "thumb")  # MANO's joint blocks, in order
# Joint angle limits in degrees, (finger, joint, [min, max]): MCP, PIP, DIP for the fingers; for the thumb
# the CMC opposition swing, MCP and IP flexion. Positive = flexion (opposition for the thumb's CMC).
FLEX_LIMITS = np.array([[[-20, 90], [-5, 110], [-5, 80]]] * 4 + [[[-20, 60], [-10, 60], [-15, 80]]], dtype=float)
SPREAD_LIMIT = 20.0  # degrees of MCP abduction either way
MAX_JOINT_SPEED = 300.0  # deg/s a planned joint or wrist rotation may reach (idle motion comes on top)
MAX_WRIST_SPEED = 1.4  # m/s a planned wrist movement may reach

_BLOCKS = ((1, 2, 3, 17), (4, 5, 6, 18), (7, 8, 9, 20), (10, 11, 12, 19), (13, 14, 15, 16))  # joints + tip
_MIRROR_HAND = np.diag([1.0, 1.0, -1.0])  # skeleton frame: right hand -> left hand
_MIRROR_CAM = np.diag([-1.0, 1.0, 1.0])  # camera frame: across x = 0
_X, _Y = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
# hand -> camera: fingers forward (hand x -> camera z), back of the hand up (hand y -> camera -y)
_PALM_DOWN = np.array([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])
# raised to wave: fingers up (hand x -> camera -y), palm away from the camera (hand y -> camera -z)
_PALM_FORWARD = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
_SPREAD_SHAPE = np.array([1.0, 0.0, -1.0, -0.5, 0.0])  # MCP abduction per finger for a spread hand (+ = radial)
_CASCADE = np.array([0.0, 3.0, 10.0, 6.0])  # a relaxed hand curls its ulnar fingers a little more


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _anatomical_axes() -> tuple[np.ndarray, np.ndarray]:
    """Flexion axes (5, 3, 3) and abduction axes (5, 3) of the right rest skeleton, in its frame."""
    rest = RIGHT_REST.astype(np.float64)
    flex = np.zeros((5, 3, 3))
    abd = np.zeros((5, 3))
    for f, (mcp, _, _, tip) in enumerate(_BLOCKS[:4]):
        d = _unit(rest[tip] - rest[mcp])
        flex[f] = _unit(np.cross(_Y, d))  # rotating d about y x d moves it towards -y
        abd[f] = _unit(_Y - (_Y @ d) * d)  # the back-of-hand axis made perpendicular to the finger: no twist
    cmc, mcp, ip, tip = _BLOCKS[4]
    over_palm = np.array([0.085, -0.05, 0.015])  # in front of the middle/ring bases, on the palm side
    flex[4, 0] = _unit(np.cross(rest[tip] - rest[cmc], over_palm - rest[cmc]))  # swings the tip towards it
    towards = _unit(np.array([0.0, -1.0, 1.0]))  # palm side and little-finger side
    flex[4, 1] = _unit(np.cross(rest[ip] - rest[mcp], towards))
    flex[4, 2] = _unit(np.cross(rest[tip] - rest[ip], towards))
    return flex, abd


_FLEX_AXES, _ABD_AXES = _anatomical_axes()


# ------------------------------------------------------------------------------------------------ clips


@dataclass(frozen=True)
class ProceduralClip:
    """One generated clip: both hands' parameters (left and right always present) and a text label."""

    clip_id: str
    action: str
    hands: tuple[str, ...]  # the hands performing the action, in HANDS order
    text: str
    fps: float
    rotations: dict[str, np.ndarray] = field(repr=False)  # side -> (T, 16, 3, 3) float32
    transl: dict[str, np.ndarray] = field(repr=False)  # side -> (T, 3) float32, camera-like frame, metres
    valid: dict[str, np.ndarray] = field(repr=False)  # side -> (T,) bool, all True

    @property
    def n_frames(self) -> int:
        return len(self.transl[HANDS[0]])

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps

    def features(self) -> tuple[np.ndarray, np.ndarray]:
        """The paper's layout: ((T, 198) float32 features, (T, 2) bool mask), left hand first."""
        return motion_features(self.rotations, self.transl, self.valid)


def to_param_sequences(clip: ProceduralClip) -> dict[str, ParamSequence]:
    """Each hand as a ``ParamSequence`` (for the temporal tools and the motion tables)."""
    return {side: ParamSequence.observed(clip.rotations[side], clip.transl[side], clip.valid[side]) for side in HANDS}


def generate(
    n: int,
    seed: int = 0,
    fps: float = 15.0,
    min_s: float = 2.0,
    max_s: float = 9.6,
    actions: Sequence[str] = ACTIONS,
) -> list[ProceduralClip]:
    """``n`` random clips, deterministic for ``seed`` (a non-negative integer); clip i depends on (seed, i) only."""
    actions = tuple(actions)
    unknown = [a for a in actions if a not in ACTIONS]
    if unknown or not actions:
        raise ValueError(f"actions must be a non-empty subset of {ACTIONS}; got {actions}")
    if fps <= 0 or min_s < 1.0 or max_s < min_s:
        raise ValueError(f"need fps > 0 and 1 <= min_s <= max_s; got fps={fps}, min_s={min_s}, max_s={max_s}")
    lo, hi = int(np.ceil(min_s * fps - 1e-6)), int(np.floor(max_s * fps + 1e-6))
    if lo > hi:
        raise ValueError(f"no whole number of frames at {fps} fps lasts between {min_s} and {max_s} s")
    return [_clip(np.random.default_rng([seed, i]), f"p_{seed}_{i}", fps, lo, hi, actions) for i in range(max(n, 0))]


@dataclass
class _Hand:
    """A right hand's motion plan, camera frame; degrees for angles."""

    pos: np.ndarray  # (T, 3) wrist
    orient0: np.ndarray  # (3, 3) start orientation
    flex: np.ndarray  # (T, 5, 3)
    spread: np.ndarray  # (T, 5)
    roll: np.ndarray  # (T,) about the hand's x axis; + = supination (palm turns up, thumb side first)
    swing: np.ndarray  # (T,) about swing_axis (hand frame)
    swing_axis: np.ndarray = field(default_factory=lambda: _Y.copy())
    raised: np.ndarray | None = None  # (3, 3) orientation blended in by raise_env
    raise_env: np.ndarray | None = None  # (T,)


Facts = dict[str, object]  # what an action did that its label should say (returns, side, lifts, ...)


def _clip(rng: np.random.Generator, clip_id: str, fps: float, lo: int, hi: int, actions: tuple[str, ...]) -> ProceduralClip:
    action = actions[rng.integers(len(actions))]
    hands = HANDS if rng.random() < 0.35 else (HANDS[rng.integers(2)],)
    n_frames = int(rng.integers(lo, hi + 1))
    t = np.arange(n_frames) / fps
    speed, amp = rng.random(), rng.random()  # levels in [0, 1], shared by the active hands
    shared = {"lateral": rng.uniform(-0.6, 0.6), "supinate": rng.random() < 0.5}
    rotations, transl, facts = {}, {}, []
    for side in HANDS:
        hand = _start_pose(rng, t)
        if side in hands:
            v = float(np.clip(speed + rng.normal(0, 0.05), 0, 1))
            u = float(np.clip(amp + rng.normal(0, 0.05), 0, 1))
            shared["hand"] = side
            facts.append(_ACTION_FUNCS[action](hand, rng, t, u, 0.6 * (1.6 / 0.6) ** v, shared))
        rot, pos = _realise(hand, rng, t)
        if side == "left":
            rot[:, 0] = _MIRROR_CAM @ rot[:, 0] @ _MIRROR_HAND
            rot[:, 1:] = _MIRROR_HAND @ rot[:, 1:] @ _MIRROR_HAND
            pos = pos @ _MIRROR_CAM
        rotations[side], transl[side] = rot.astype(np.float32), pos.astype(np.float32)
    valid = {side: np.ones(n_frames, bool) for side in HANDS}
    text = _text(rng, action, hands, facts, speed, amp)
    return ProceduralClip(clip_id, action, tuple(hands), text, float(fps), rotations, transl, valid)


# ------------------------------------------------------------------------------------------------ curves


def _minjerk(t: np.ndarray, start: float, duration: float) -> np.ndarray:
    """0 -> 1 minimum-jerk transition over [start, start + duration] (C2)."""
    s = np.clip((t - start) / max(duration, 1e-6), 0.0, 1.0)
    return s**3 * (10 - 15 * s + 6 * s**2)


def _bump(t: np.ndarray, start: float, duration: float) -> np.ndarray:
    """0 -> 1 -> 0 Hann window over [start, start + duration] (C1)."""
    s = np.clip((t - start) / duration, 0.0, 1.0)
    return 0.5 * (1 - np.cos(2 * np.pi * s))


def _window(t: np.ndarray, on: float, off: float, ramp: float) -> np.ndarray:
    """1 between on and off, faded in and out by minimum-jerk ramps."""
    ramp = min(ramp, (off - on) / 2)
    return _minjerk(t, on, ramp) * (1 - _minjerk(t, off - ramp, ramp))


def _drift(rng: np.random.Generator, t: np.ndarray, shape: tuple[int, ...], amplitude: float, fmax: float = 0.6) -> np.ndarray:
    """Slow idle motion: per channel a sum of three sinusoids, about ``amplitude`` in size, (T, *shape)."""
    freq = rng.uniform(0.1, fmax, (3, *shape))
    phase = rng.uniform(0, 2 * np.pi, (3, *shape))
    weight = rng.uniform(0.3, 1.0, (3, *shape))
    weight /= weight.sum(axis=0)
    tt = t.reshape(-1, 1, *([1] * len(shape)))
    return amplitude * (weight * np.sin(2 * np.pi * freq * tt + phase)).sum(axis=1)


def _min_duration(degrees: float = 0.0, metres: float = 0.0) -> float:
    """Shortest minimum-jerk transition (peak speed 1.875 x mean) that keeps under the speed limits."""
    return 1.875 * max(abs(degrees) / MAX_JOINT_SPEED, abs(metres) / MAX_WRIST_SPEED)


def _fit(nominal: Sequence[float], minimum: Sequence[float], available: float) -> list[float] | None:
    """Phase durations shrunk (not below their minimum) to fit ``available`` seconds; None if impossible."""
    nominal, minimum = np.asarray(nominal, float), np.asarray(minimum, float)
    if minimum.sum() > available:
        return None
    scale = min(1.0, available / nominal.sum())
    out = np.maximum(nominal * scale, minimum)
    while out.sum() > available + 1e-9:  # shrink the phases still above their minimum
        free = out > minimum + 1e-9
        excess = out.sum() - available
        out[free] = np.maximum(out[free] - excess / free.sum(), minimum[free])
    return out.tolist()


def _rotmat(rotvec: np.ndarray) -> np.ndarray:
    return Rotation.from_rotvec(rotvec.reshape(-1, 3)).as_matrix().reshape(*rotvec.shape[:-1], 3, 3)


def _about(axis: np.ndarray, degrees: np.ndarray | float) -> np.ndarray:
    return _rotmat(np.radians(np.asarray(degrees, float))[..., None] * axis)


# ------------------------------------------------------------------------------------------------ poses


def _start_pose(rng: np.random.Generator, t: np.ndarray) -> _Hand:
    """A resting right hand: palm down to half inward, fingers forward, relaxed finger curl."""
    n = len(t)
    pos0 = np.array([rng.uniform(0.07, 0.22), rng.uniform(0.12, 0.28), rng.uniform(0.28, 0.45)])
    yaw_in, pitch_down = rng.uniform(-5, 35), rng.uniform(-10, 30)
    orient0 = _about(_Y, -yaw_in) @ _about(_X, -pitch_down) @ _PALM_DOWN
    flex = np.zeros((5, 3))
    flex[:4, 0] = rng.uniform(-5, 12) + _CASCADE + rng.normal(0, 2, 4)
    flex[:4, 1] = rng.uniform(3, 18) + _CASCADE + rng.normal(0, 2, 4)
    flex[:4, 2] = rng.uniform(0, 10) + rng.normal(0, 2, 4)
    flex[4] = rng.uniform([0, 0, 0], [15, 15, 15])
    spread = rng.uniform(0, 8) * _SPREAD_SHAPE
    return _Hand(
        pos=np.tile(pos0, (n, 1)),
        orient0=orient0,
        flex=np.tile(flex, (n, 1, 1)),
        spread=np.tile(spread, (n, 1)),
        roll=np.full(n, rng.uniform(-15, 45)),
        swing=np.zeros(n),
    )


def _open_pose(rng: np.random.Generator, u: float) -> tuple[np.ndarray, np.ndarray]:
    """Flexion (5, 3) and spread (5,) of an open hand; ``u`` = how wide."""
    flex = np.zeros((5, 3))
    flex[:4, 0] = rng.uniform(-8, 5, 4) - 6 * u
    flex[:4, 1] = rng.uniform(-3, 6, 4)
    flex[:4, 2] = rng.uniform(-3, 5, 4)
    flex[4] = [rng.uniform(-15, 0) * u, rng.uniform(-5, 5), rng.uniform(-10, 5)]
    return flex, (5 + 10 * u + rng.uniform(-2, 2)) * _SPREAD_SHAPE


def _closed_pose(rng: np.random.Generator, u: float) -> np.ndarray:
    """Flexion (5, 3) of a grasp; ``u`` = how tight."""
    flex = np.zeros((5, 3))
    flex[:4, 0] = 45 + 25 * u + rng.uniform(-4, 4, 4)  # tightest (70, 80, 50): fingertips against the palm
    flex[:4, 1] = 50 + 30 * u + rng.uniform(-4, 4, 4)
    flex[:4, 2] = 25 + 25 * u + rng.uniform(-4, 4, 4)
    flex[4] = [25 + 15 * u + rng.uniform(-3, 3), 10 + 15 * u + rng.uniform(-3, 3), 15 + 20 * u + rng.uniform(-3, 3)]
    return flex


def _realise(hand: _Hand, rng: np.random.Generator, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Add idle motion, clamp to the joint limits; (T, 16, 3, 3) rotations and (T, 3) wrist of a right hand."""
    n = len(t)
    flex = hand.flex + _drift(rng, t, (5, 3), rng.uniform(1.0, 3.0))
    lo, hi = FLEX_LIMITS[..., 0], FLEX_LIMITS[..., 1]
    flex = np.clip(flex, lo, hi)  # the plans stay inside; this only guards the idle motion at the limits
    spread = np.clip(hand.spread + _drift(rng, t, (5,), 1.0) * (_SPREAD_SHAPE != 0), -SPREAD_LIMIT, SPREAD_LIMIT)
    rot = np.empty((n, 16, 3, 3))
    orient = np.tile(hand.orient0, (n, 1, 1))
    if hand.raised is not None:
        keys = Rotation.from_matrix(np.stack([hand.orient0, hand.raised]))
        orient = Slerp([0.0, 1.0], keys)(hand.raise_env).as_matrix()
    wobble = _rotmat(np.radians(_drift(rng, t, (3,), rng.uniform(1.5, 3.0))))
    rot[:, 0] = orient @ _about(_X, hand.roll) @ _about(hand.swing_axis, hand.swing) @ wobble
    for f in range(5):
        for k in range(3):
            r = _about(_FLEX_AXES[f, k], flex[:, f, k])
            if k == 0 and f < 4:
                r = _about(_ABD_AXES[f], spread[:, f]) @ r
            rot[:, 1 + 3 * f + k] = r
    pos = hand.pos + _drift(rng, t, (3,), rng.uniform(0.003, 0.006), fmax=0.5)
    return rot, pos


# ------------------------------------------------------------------------------------------------ actions


def _reach(hand: _Hand, rng: np.random.Generator, t: np.ndarray, u: float, speed: float, shared: dict) -> Facts:
    """The wrist moves 15-35 cm forward (and sideways/up), and comes back or stays there."""
    end = t[-1]
    lateral, vertical = shared["lateral"] + rng.normal(0, 0.1), rng.uniform(-0.5, 0.2)
    start = hand.pos[0]
    length = 0.15 + 0.2 * u + rng.uniform(-0.02, 0.02)
    while lateral < 0 and start[0] + length * _unit(np.array([lateral, vertical, 1.0]))[0] < 0.03:
        lateral = min(lateral + 0.05, 0.0)  # reaching inward stops short of the body's midline
    direction = _unit(np.array([lateral, vertical, 1.0]))
    while length > 0.15 and np.linalg.norm(start + length * direction) > 0.72:  # stay within arm's reach
        length -= 0.01
    length = max(length, 0.15)
    t_on = rng.uniform(0.1, min(0.6, 0.2 * end))
    out_min, out_nom = _min_duration(metres=length), rng.uniform(0.6, 1.1) / speed
    phases = None
    if rng.random() < 0.6:  # out, hold, back
        phases = _fit([out_nom, rng.uniform(0.2, 0.8), rng.uniform(0.6, 1.1) / speed], [out_min, 0.1, out_min], end - t_on - 0.1)
    if phases is None:
        phases = _fit([out_nom], [out_min], end - t_on - 0.05)
    env = _minjerk(t, t_on, phases[0])
    if len(phases) == 3:
        env = env - _minjerk(t, t_on + phases[0] + phases[1], phases[2])
    hand.pos = hand.pos + length * direction * env[:, None]
    opened, _ = _open_pose(rng, 0.3)
    hand.flex = hand.flex + (opened - hand.flex[0]) * 0.5 * env[:, None, None]  # pre-shapes the hand on the way out
    side = "out" if lateral > 0.3 else "in" if lateral < -0.3 else ""
    return {"returns": len(phases) == 3, "side": side, "up": vertical < -0.3, "hand": shared["hand"]}


def _grasp(hand: _Hand, rng: np.random.Generator, t: np.ndarray, u: float, speed: float, shared: dict) -> Facts:
    """Open hand -> grasp: every finger flexes at MCP, PIP and DIP, the thumb opposes; holds at the end."""
    open_flex, open_spread = _open_pose(rng, 0.3 * rng.random())
    closed = _closed_pose(rng, u)
    _transition(hand, rng, t, speed, (open_flex, open_spread), (closed, np.zeros(5)))
    return {}


def _release(hand: _Hand, rng: np.random.Generator, t: np.ndarray, u: float, speed: float, shared: dict) -> Facts:
    """Grasp -> open hand (the reverse of ``_grasp``); ``u`` = how wide it opens."""
    closed = _closed_pose(rng, 0.2 + 0.8 * rng.random())
    _transition(hand, rng, t, speed, (closed, np.zeros(5)), _open_pose(rng, u))
    return {}


def _transition(
    hand: _Hand,
    rng: np.random.Generator,
    t: np.ndarray,
    speed: float,
    start: tuple[np.ndarray, np.ndarray],
    goal: tuple[np.ndarray, np.ndarray],
) -> None:
    """Fingers from one pose to another by minimum-jerk, each finger with its own onset; the wrist drifts a little."""
    end = t[-1]
    delta = goal[0] - start[0]
    lag = rng.uniform(0, 0.15, 5)
    lag[rng.integers(5)] = 0.0
    move = _fit([rng.uniform(0.6, 1.2) / speed], [_min_duration(np.abs(delta).max())], end - lag.max() - 0.25)
    duration = move[0] if move else _min_duration(np.abs(delta).max())
    t_on = rng.uniform(0.1, max(0.1, min(0.35 * end, end - duration - lag.max() - 0.15)))
    env = np.stack([_minjerk(t, t_on + lag[f], duration) for f in range(5)], axis=1)  # (T, 5)
    hand.flex = start[0] + delta * env[:, :, None]
    hand.spread = start[1] + (goal[1] - start[1]) * env
    shift = np.array([rng.uniform(-0.01, 0.01), rng.uniform(-0.005, 0.02), rng.uniform(0.0, 0.03)])
    hand.pos = hand.pos + shift * env[:, :1]


def _wave(hand: _Hand, rng: np.random.Generator, t: np.ndarray, u: float, speed: float, shared: dict) -> Facts:
    """The hand is raised, palm forward, and swings side to side (about its back-of-hand axis) at 1.5-3 Hz."""
    end = t[-1]
    raised = _about(_Y, -rng.uniform(-10, 25)) @ _about(_X, -rng.uniform(0, 20)) @ _PALM_FORWARD
    up = np.array([rng.uniform(0.1, 0.26), rng.uniform(-0.06, 0.08), rng.uniform(0.32, 0.48)])
    open_flex, open_spread = _open_pose(rng, rng.uniform(0.2, 0.8))
    freq = float(np.clip(1.5 + 1.5 * (speed - 0.6) + rng.uniform(-0.15, 0.15), 1.5, 3.0))
    hi = min(35.0, 0.9 * MAX_JOINT_SPEED / (2 * np.pi * freq))  # peak angular speed 2 pi f A
    amplitude = min(15.0, hi * 0.8) + (hi - min(15.0, hi * 0.8)) * u
    t_on = rng.uniform(0.05, min(0.4, 0.1 * end))
    lifts = end >= 3.2 and rng.random() < 0.7
    if lifts:
        angle = np.degrees(Rotation.from_matrix(hand.orient0.T @ raised).magnitude())
        lift = max(rng.uniform(0.6, 1.0) / speed, _min_duration(angle, np.linalg.norm(up - hand.pos[0])))
        lift = min(lift, 1.3)
        env = _minjerk(t, t_on, lift)
        hand.raised, hand.raise_env = raised, env
        hand.pos = hand.pos + (up - hand.pos[0]) * env[:, None]
        hand.roll = hand.roll * (1 - env)  # the start's forearm roll unwinds as the palm turns forward
        wave_on = t_on + 0.7 * lift
    else:
        hand.orient0, hand.pos, hand.roll = raised, np.tile(up, (len(t), 1)), np.zeros(len(t))
        env, wave_on = np.ones(len(t)), t_on
    hand.flex = hand.flex + (open_flex - hand.flex[0]) * env[:, None, None]
    hand.spread = hand.spread + (open_spread - hand.spread[0]) * env[:, None]
    wave_off = end - rng.uniform(0.05, 0.4)
    tilt = np.radians(rng.uniform(0, 35))
    hand.swing_axis = np.cos(tilt) * _Y + np.sin(tilt) * _X * rng.choice([-1, 1])
    phase = rng.choice([0.0, np.pi])
    hand.swing = amplitude * np.sin(2 * np.pi * freq * (t - wave_on) + phase) * _window(t, wave_on, wave_off, 0.3)
    return {"lifts": lifts}


def _rotate(hand: _Hand, rng: np.random.Generator, t: np.ndarray, u: float, speed: float, shared: dict) -> Facts:
    """Forearm pronation/supination: the hand turns about its own x axis by 60-150 degrees (and maybe back)."""
    end = t[-1]
    angle = float(np.clip(60 + 90 * u + rng.uniform(-5, 5), 60, 150))
    low = rng.uniform(-20, max(-20.0, min(30.0, 170 - angle)))  # the roll range used: [low, low + angle]
    supinate = shared["supinate"]
    rate = (60 + 80 * (speed - 0.6)) * rng.uniform(0.9, 1.1)  # deg/s on average
    t_on = rng.uniform(0.1, min(0.6, 0.2 * end))
    minimum = _min_duration(angle)
    phases = None
    if rng.random() < 0.35:
        phases = _fit([angle / rate, rng.uniform(0.2, 0.6), angle / rate], [minimum, 0.1, minimum], end - t_on - 0.1)
    if phases is None:
        phases = _fit([angle / rate], [minimum], end - t_on - 0.05) or [minimum]
    env = _minjerk(t, t_on, phases[0])
    if len(phases) == 3:
        env = env - _minjerk(t, t_on + phases[0] + phases[1], phases[2])
    hand.roll = (low + angle * env) if supinate else (low + angle * (1 - env))
    return {"supinate": supinate, "returns": len(phases) == 3, "over": angle >= 100}


def _tap(hand: _Hand, rng: np.random.Generator, t: np.ndarray, u: float, speed: float, shared: dict) -> Facts:
    """The index finger taps (MCP/PIP/DIP flexion, 2-4 Hz) while the wrist stays still."""
    end = t[-1]
    if rng.random() < 0.6:  # pointing: the other fingers curled in for the whole clip
        hand.flex[:, 1:4] = np.array([rng.uniform(40, 70), rng.uniform(60, 90), rng.uniform(20, 40)])
        hand.flex[:, 4] = [rng.uniform(20, 40), rng.uniform(10, 30), rng.uniform(10, 30)]
    hand.flex[:, 0] = [rng.uniform(-5, 5), rng.uniform(0, 10), rng.uniform(0, 8)]
    freq = float(np.clip(2.0 + 2.0 * (speed - 0.6) + rng.uniform(-0.2, 0.2), 2.0, 4.0))
    hi = min(35.0, 0.9 * MAX_JOINT_SPEED / (np.pi * freq))  # (1 - cos) / 2 taps peak at pi f A
    amplitude = min(15.0, 0.8 * hi) + (hi - min(15.0, 0.8 * hi)) * u
    on, off = rng.uniform(0.1, min(0.5, 0.15 * end)), end - rng.uniform(0.05, min(0.5, 0.15 * end))
    taps = amplitude * 0.5 * (1 - np.cos(2 * np.pi * freq * (t - on))) * _window(t, on, off, 0.25)
    hand.flex[:, 0] += taps[:, None] * np.array([1.0, 0.5, 0.3])
    return {}


def _type(hand: _Hand, rng: np.random.Generator, t: np.ndarray, u: float, speed: float, shared: dict) -> Facts:
    """Fingers press one after another (never the same twice in a row) while the wrist shifts sideways."""
    end = t[-1]
    posture = np.array([rng.uniform(5, 20), rng.uniform(10, 30), rng.uniform(5, 15)])
    hand.flex[:, :4] = posture + rng.normal(0, 3, (4, 3))
    hand.flex[:, 4] = [rng.uniform(5, 20), rng.uniform(5, 20), rng.uniform(5, 20)]
    hand.pos = hand.pos + np.array([0.0, rng.uniform(0.0, 0.04), 0.0])
    interval = (0.45 - 0.15 * (speed - 0.6)) * rng.uniform(0.9, 1.1)
    amplitude = 15 + 15 * u
    width = max(rng.uniform(0.22, 0.32), np.pi * amplitude / (0.9 * MAX_JOINT_SPEED))
    tp, finger = rng.uniform(0.05, 0.2), -1
    while tp + width <= end:
        finger = int(rng.choice([f for f in range(4) if f != finger]))
        a = amplitude * rng.uniform(0.8, 1.0)
        hand.flex[:, finger] += a * _bump(t, tp, width)[:, None] * np.array([1.0, 0.7, 0.3])
        tp += interval * rng.uniform(0.8, 1.2)
    shift, ts = 0.0, rng.uniform(0.2, 0.8)
    while True:
        dur = rng.uniform(0.3, 0.5)
        if ts + dur > end:
            break
        step = rng.uniform(0.01, 0.04) * (-1 if shift > 0.02 else 1 if shift < -0.02 else rng.choice([-1, 1]))
        hand.pos[:, 0] += step * _minjerk(t, ts, dur)
        shift += step
        ts += dur + rng.uniform(0.4, 1.2)
    return {}


# (hand, rng, t, u = amplitude level in [0, 1], speed = tempo factor in [0.6, 1.6], shared draws) -> label facts
_ACTION_FUNCS = {
    "reach": _reach,
    "grasp": _grasp,
    "release": _release,
    "wave": _wave,
    "rotate": _rotate,
    "tap": _tap,
    "type": _type,
}


# ------------------------------------------------------------------------------------------------ labels

_SLOW = ("slowly ", "gradually ", "calmly ")
_FAST = ("quickly ", "rapidly ", "briskly ")


def _conjugate(verb: str, plural: bool) -> str:
    """Third person singular of a (phrasal) verb's first word, unless plural."""
    if plural:
        return verb
    first, _, rest = verb.partition(" ")
    if re.search(r"(s|sh|ch|x|z)$", first):
        first += "es"
    elif re.search(r"[^aeiou]y$", first):
        first = first[:-1] + "ies"
    else:
        first += "s"
    return f"{first} {rest}".strip()


def _text(rng: np.random.Generator, action: str, hands: tuple[str, ...], facts: list[Facts], speed: float, amp: float) -> str:
    """A short label: who (the left/right hand, both hands), a speed word when notably slow/fast, the action."""
    plural = len(hands) == 2
    subject = "both hands" if plural else f"the {hands[0]} hand"
    adverb = str(rng.choice(_SLOW)) if speed < 0.25 else str(rng.choice(_FAST)) if speed > 0.75 else ""
    size = "small" if amp < 0.25 else "large" if amp > 0.75 else ""
    verb = str(rng.choice(LABEL_VERBS[action]))
    template = str(rng.choice(_templates(action, facts[0], plural, size)))
    text = template.replace("SUBJ", subject).replace("ADV", adverb).replace("<V>", f"<{verb}>")
    text = re.sub(r"<([^>]+)>", lambda m: _conjugate(m.group(1), plural), text)
    return re.sub(r"\s+", " ", text).strip()


def _templates(action: str, facts: Facts, plural: bool, size: str) -> list[str]:
    """Label templates: SUBJ the hand(s), ADV a speed adverb (or nothing), <V> a verb of the action, <verb> a verb."""

    def word(small: str, large: str) -> str:
        return {"small": small, "large": large}.get(size, "")

    if action == "reach":
        side = str(facts.get("side", ""))
        if side and not plural:  # outward is to the right for a right hand
            side = "to the right" if (facts["hand"], side) in (("right", "out"), ("left", "in")) else "to the left"
        elif side:
            side = f"{side}ward"
        up = facts.get("up")
        where = f"up and {side}" if up and side else "forward and up" if up else f"forward and {side}" if side else "forward"
        dist = word(" a little", " far")
        if facts.get("returns"):
            joint = " and" if where == "forward" else ", then"
            return [
                f"SUBJ ADV<V>{dist} {where}{joint} <pull> back",
                f"SUBJ ADV<V>{dist} {where}, then <return>",
                f"SUBJ ADV<move>{dist} {where}{joint} back",
            ]
        return [f"SUBJ ADV<V>{dist} {where}", f"SUBJ ADV<V>{dist} {where} and <stay> there", f"SUBJ ADV<move>{dist} {where}"]
    if action == "grasp":
        adverb, adjective = word(" loosely", " tightly"), word("loose ", "tight ")
        return [
            f"SUBJ ADV<V>{adverb}",
            f"SUBJ ADV<close> into a {adjective}fist",
            f"SUBJ ADV<make> a {adjective}grasp",
            f"SUBJ ADV<close>{adverb} into a grasp",
        ]
    if action == "release":
        adverb = word(" slightly", " wide")
        return ["SUBJ ADV<V>", f"SUBJ ADV<open>{adverb}", "SUBJ ADV<open> up from a fist", "SUBJ ADV<relax> the grip and <V>"]
    if action == "wave":
        adverb, adjective = word(" gently", " widely"), word("small ", "big ")
        if facts.get("lifts"):
            return [f"SUBJ <rise> and ADV<V>{adverb}", "SUBJ <rise>, then ADV<V>"]
        return [f"SUBJ ADV<V>{adverb}", "SUBJ ADV<V>", f"SUBJ ADV<make> a {adjective}wave"]
    if action == "rotate":
        back = " and back" if facts.get("returns") else ""
        adverb = word(" slightly", " all the way")
        options = [f"SUBJ ADV<V>{adverb} at the wrist{back}", f"SUBJ ADV<V>{adverb}{back}"]
        if facts.get("over"):  # turned far enough to speak of the palm facing up or down
            palm = "up" if facts.get("supinate") else "down"
            options.append(f"SUBJ ADV<turn> {'their palms' if plural else 'the palm'} {palm}{back}")
        return options
    if action == "tap":
        adverb = word(" lightly", " firmly")
        finger = "the index fingers of SUBJ ADVtap" if plural else "the index finger of SUBJ ADV<tap>"
        return [f"SUBJ ADV<V>{adverb} with the index finger", f"SUBJ ADV<V>{adverb}", finger]
    return ["SUBJ ADV<V>", "SUBJ ADV<V>, fingers pressing one after another", "SUBJ ADV<V> as if on a keyboard"]
