"""Precomputed tracks: motion produced elsewhere, through the same filters and tables as video.

Two formats, chosen by suffix:
- ``.txt``, F-PHAB skeletons: a line per frame, the frame index then 21 joints x (x, y, z) in
  millimetres in the recording's world frame (one right hand; wrist, the five finger bases, then
  PIP/DIP/tip finger by finger). Fitted like tracker keypoints.
- ``.npz``, HaWoR-style per-hand MANO parameters, world frame unless ``coordinate_frame`` says
  "camera". Either HaWoR's own ``pred_trans`` (2, T, 3), ``pred_rot`` (2, T, 3) axis-angle,
  ``pred_hand_pose`` (2, T, 45), ``pred_betas`` (2, T, 10), ``pred_valid`` (2, T) with index 0 the
  left hand, or per-hand keys ``left_transl``, ``left_global_orient``, ``left_hand_pose``,
  ``left_betas``, ``left_valid`` (and ``right_*``). Instead of parameters a hand may give
  ``{side}_keypoints_3d`` (T, 21, 3), metres, OpenPose order: those are fitted. Optional ``fps``.
- ``.npy``, the CLUTCH authors' reconstruction files (CLUTCH_CODE.md 1.3, what ``hiw export --format clutch``
  writes): a pickled dict of torch tensors in HaWoR's keys (``pred_hand_pose`` may be (2, T, 15, 3)), 30 fps.
  As their loader does, the first and last frame are dropped (CLUTCH_CODE.md 1.4): what is built from an hiw
  export is then hiw's frames exactly.
  The pickle is read by ``hiw.pickles.load_npy``, which admits tensors, arrays and plain containers only: a file
  that names anything else is a ``bad_tracks`` reject, and nothing in it runs.
The "video" of such a source is the file itself: its id is the hash of its bytes.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import roma
import torch

from hiw.errors import StageError
from hiw.motion.hand_model import from_mano21, to_mano21
from hiw.motion.temporal import ParamSequence
from hiw.pickles import load_npy
from hiw.schemas import HANDS, ClipSpec, HandTrack, VideoSource
from hiw.schemas.ids import video_id
from hiw.trackers.base import ClipTracks

FPHAB_FPS = 30.0  # also the rate of parameter files that do not give one (the authors' raw rate, CLUTCH_CODE.md 1.4)
PARAM_SUFFIXES = (".npz", ".npy")
VERSION = "precomputed-v1"
HAWOR_KEYS = {
    "transl": "pred_trans",
    "global_orient": "pred_rot",
    "hand_pose": "pred_hand_pose",
    "betas": "pred_betas",
    "valid": "pred_valid",
}
FRAMES = ("world", "camera", "hand_centred")  # what an npz's 3D may be relative to
# per-frame shapes a hand's arrays may have (after the leading frame axis); betas are (n,) or (T, n)
FRAME_SHAPES = {
    "transl": [(3,)],
    "global_orient": [(3,), (1, 3), (3, 3), (1, 3, 3)],
    "hand_pose": [(45,), (15, 3), (15, 3, 3)],
    "valid": [()],
    "keypoints_3d": [(21, 3), (63,)],
    "betas": [(), (10,)],
}


def read_fphab(path: Path) -> np.ndarray:
    """(T, 21, 3) metres, OpenPose order."""
    try:
        rows = np.loadtxt(path, ndmin=2)
    except ValueError as err:
        raise StageError("bad_tracks", f"{path}: not an F-PHAB skeleton file ({err})") from None
    if rows.size == 0:
        raise StageError("empty_tracks", f"{path}: no frames")
    if rows.shape[1] != 64:
        raise StageError("bad_tracks", f"{path}: {rows.shape[1]} columns per line, expected 64 (index + 21 x 3)")
    return from_mano21(to_mano21(rows[:, 1:].reshape(-1, 21, 3) / 1000.0, "fphab21"), "openpose21").astype(np.float32)


def _hand_arrays(data: dict[str, np.ndarray], side: str) -> dict[str, np.ndarray]:
    i = HANDS.index(side)
    if HAWOR_KEYS["transl"] in data:
        return {ours: np.asarray(data[theirs][i]) for ours, theirs in HAWOR_KEYS.items() if theirs in data}
    return {
        k[len(side) + 1 :]: np.asarray(v)
        for k, v in data.items()
        if k[len(side) + 1 :] in FRAME_SHAPES and k.startswith(f"{side}_")
    }


def _check_shapes(path: Path, hands: dict[str, dict[str, np.ndarray]]) -> None:
    """Malformed arrays are bad input (a reject with a reason), not an error deep inside a later stage."""
    for side, h in hands.items():
        for key, a in h.items():
            numeric = a.dtype == bool or np.issubdtype(a.dtype, np.number)
            if not numeric or a.ndim < 1 or a.shape[1:] not in FRAME_SHAPES[key]:
                raise StageError("bad_tracks", f"{path}: {side} {key} has shape {a.shape} and dtype {a.dtype}")


def _arrays(path: Path) -> dict[str, np.ndarray]:
    """The file's named arrays: an .npz's members, or the entries of a pickled dict of tensors (.npy)."""
    try:
        if path.suffix == ".npy":
            data = load_npy(path)
            if not isinstance(data, dict):
                raise ValueError(f"it holds a {type(data).__name__}, not a dict of arrays")
            return _inner_frames({str(k): np.asarray(v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in data.items()})
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except Exception as err:  # untrusted bytes: whatever fails to parse is a bad file, not a crash
        reason = "empty_tracks" if path.stat().st_size == 0 else "bad_tracks"
        raise StageError(reason, f"{path}: not a readable {path.suffix} ({type(err).__name__}: {err})") from None


def _inner_frames(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The authors' files without their first and last frame, as their loader reads them (per-frame arrays only)."""
    trans = arrays.get(HAWOR_KEYS["transl"])
    if trans is None or trans.ndim < 2:
        return arrays  # not their layout: the checks that follow say what is wrong
    t = trans.shape[1]
    hawor = set(HAWOR_KEYS.values())
    betas = HAWOR_KEYS["betas"]  # (2, 10) or per frame (2, T, 10)
    per_frame = {k for k, a in arrays.items() if k in hawor and a.ndim >= (3 if k == betas else 2) and a.shape[1] == t}
    return {k: a[:, 1:-1] if k in per_frame else a for k, a in arrays.items()}


def read_params(path: Path) -> dict:
    """A parameter file (.npz or .npy) checked and split per hand: ``hands``, ``n`` frames, ``fps``, ``frame``."""
    data = _arrays(path)
    hawor = [theirs for theirs in HAWOR_KEYS.values() if theirs in data]
    if HAWOR_KEYS["transl"] in data and any(data[k].ndim < 1 or len(data[k]) != len(HANDS) for k in hawor):
        raise StageError("bad_tracks", f"{path}: HaWoR arrays need a leading axis of {len(HANDS)} hands (left, right)")
    hands = {side: _hand_arrays(data, side) for side in HANDS}
    _check_shapes(path, hands)
    lengths = {len(a) for h in hands.values() for k, a in h.items() if k != "betas" or a.ndim == 2}
    if len(lengths) != 1:
        raise StageError("bad_tracks", f"{path}: hand arrays have different frame counts {sorted(lengths)} or none at all")
    if 0 in lengths:
        raise StageError("empty_tracks", f"{path}: no frames")
    for side, h in hands.items():
        if h and not ({"transl", "global_orient", "hand_pose"} <= h.keys() or "keypoints_3d" in h):
            raise StageError("bad_tracks", f"{path}: {side} hand needs transl/global_orient/hand_pose or keypoints_3d")
    frame = str(data.get("coordinate_frame", "world"))
    if frame not in FRAMES:
        raise StageError("bad_tracks", f"{path}: coordinate_frame {frame!r} is not one of {', '.join(FRAMES)}")
    fps = np.asarray(data.get("fps", FPHAB_FPS))
    if not (fps.shape == () and np.issubdtype(fps.dtype, np.number) and np.isfinite(fps) and fps > 0):
        raise StageError("bad_tracks", f"{path}: fps must be one positive number, got {fps!r}")
    return {"hands": hands, "n": lengths.pop(), "fps": float(fps), "frame": frame}


def probe_tracks(path: Path) -> VideoSource:
    if path.suffix in PARAM_SUFFIXES:
        info = read_params(path)
        n, fps, codec = info["n"], info["fps"], f"hawor-{path.suffix[1:]}"
    else:
        n, fps, codec = len(read_fphab(path)), FPHAB_FPS, "fphab-txt"
    return VideoSource(
        video_id=video_id(path),
        path=str(path),
        size_bytes=path.stat().st_size,
        fps=fps,
        n_frames=n,
        width=0,
        height=0,
        duration_s=n / fps,
        codec=codec,
        rotation=0,
    )


def _rotmats(values: np.ndarray, n_joints: int) -> np.ndarray:
    """Axis-angle (T, 3k) / (T, k, 3) or matrices (T, k, 3, 3) -> (T, k, 3, 3)."""
    values = np.asarray(values, np.float32)
    if values.shape[-2:] == (3, 3):
        return values.reshape(len(values), n_joints, 3, 3)
    return roma.rotvec_to_rotmat(torch.as_tensor(values.reshape(len(values), n_joints, 3))).numpy()


def _read_once(path: Path, reader):
    """The file read by ``reader``, parsed once for all the clips of one file (not once per clip)."""
    stat = path.stat()
    return _parsed(str(path), stat.st_size, stat.st_mtime_ns, reader)


@functools.lru_cache(maxsize=4)  # a few files' arrays: the clips of one file are processed close together
def _parsed(path: str, size: int, mtime_ns: int, reader):
    return reader(Path(path))


def load_tracks(clip: ClipSpec) -> ClipTracks:
    """The clip's span of a precomputed track file."""
    path = Path(clip.source_path)
    span = slice(clip.start_frame, clip.end_frame)
    if path.suffix not in PARAM_SUFFIXES:
        kp = _read_once(path, read_fphab)[span].copy()
        n = len(kp)
        hands = {
            "right": HandTrack(side="right", valid=np.ones(n, bool), keypoints_2d=np.full_like(kp, np.nan), keypoints_3d=kp),
            "left": _without_keypoints("left", np.zeros(n, bool)),
        }
        return ClipTracks(fps=clip.source_fps, hands=hands, coordinate_frame="world")
    info = _read_once(path, read_params)
    n = len(range(info["n"])[span])
    hands, params, betas = {}, {}, {}
    for side in HANDS:
        h = info["hands"][side]
        valid = h["valid"][span].astype(bool) if "valid" in h else np.ones(n, bool) if h else np.zeros(n, bool)
        if "keypoints_3d" in h:
            kp = h["keypoints_3d"][span].astype(np.float32).reshape(n, 21, 3)
            hands[side] = HandTrack(side=side, valid=valid, keypoints_2d=np.full_like(kp, np.nan), keypoints_3d=kp)
            continue
        hands[side] = _without_keypoints(side, valid)
        if h:
            rot = np.concatenate([_rotmats(h["global_orient"][span], 1), _rotmats(h["hand_pose"][span], 15)], axis=1)
            transl = h["transl"][span].astype(np.float32)
            params[side] = ParamSequence.observed(rot, transl, valid & np.isfinite(transl).all(-1))
            b = h.get("betas", np.zeros(10, np.float32))
            betas[side] = (b[span].mean(0) if b.ndim == 2 else b).astype(np.float32)
    if params and len(params) < len(HANDS):
        raise StageError("bad_tracks", f"{path}: parameters for one hand and keypoints for the other are not supported")
    return ClipTracks(
        fps=clip.source_fps,
        hands=hands,
        coordinate_frame=info["frame"],
        params=params or None,
        betas=betas or None,
        hand_model="mano" if params else None,
    )


def _without_keypoints(side: str, valid: np.ndarray) -> HandTrack:
    empty = np.full((len(valid), 21, 3), np.nan, np.float32)
    return HandTrack(side=side, valid=valid, keypoints_2d=empty, keypoints_3d=empty)
