"""Real MANO through smplx, for users who have the licensed model files (MANO_RIGHT.pkl / MANO_LEFT.pkl).

The official pickles were written by Python 2 with chumpy objects inside; chumpy does not work on
modern Python, so ``load_mano_pkl`` unpickles them with stand-ins and returns plain numpy arrays.
``ManoHand`` implements ``HandModel``: it runs smplx's linear blend skinning on rotation matrices and
appends five fingertip vertices, giving the 21 keypoints in mano21 order.

``random_mano_struct`` and ``write_fake_mano_pkl`` build a random MANO-shaped model (and a pickle
that looks like the official one) so tests run without the licensed files.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse
import smplx
import torch
from smplx.lbs import lbs
from smplx.vertex_ids import vertex_ids

from hiw.errors import ConfigError
from hiw.motion.hand_model import FINGERS_MANO, N_JOINTS, N_KEYPOINTS, PARENTS, PARENTS21
from hiw.pickles import NUMPY

MANO_ENV = "MANO_DIR"
N_VERTICES = 778
N_BETAS = 10
TIP_FINGERS = ("thumb", "index", "middle", "ring", "pinky")  # mano21 keypoints 16..20
TIP_VERTEX_IDS = tuple(vertex_ids["mano"][finger] for finger in TIP_FINGERS)
ROOT_PARENT = 4294967295  # MANO's kintree_table stores the root's parent as uint32 -1
MANO_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")
MANO_KEYS += ("hands_components", "hands_mean")
_HELP = f"download MANO from https://mano.is.tue.mpg.de and set {MANO_ENV} to the folder holding MANO_RIGHT.pkl / MANO_LEFT.pkl"


def find_mano_dir(explicit: str | Path | None = None) -> Path | None:
    """The MANO model folder: ``explicit``, else $MANO_DIR, else None."""
    chosen = explicit or os.environ.get(MANO_ENV)
    return Path(chosen).expanduser() if chosen else None


def mano_file(mano_dir: str | Path, side: str) -> Path:
    return Path(mano_dir) / f"MANO_{side.upper()}.pkl"


# ---------------------------------------------------------------------------------------------
# Loading the official pickles without chumpy


class _ChumpyStandIn:
    """Takes the place of any chumpy class while unpickling; keeps the pickled state."""

    chumpy_class = "chumpy"

    def __setstate__(self, state: Any) -> None:
        self.state = state

    @property
    def array(self) -> Any:
        # A plain chumpy.ch.Ch keeps its value under "x"; expressions (e.g. chumpy.reordering) do not.
        return self.state.get("x") if isinstance(self.state, dict) else None


_PLAIN_TYPES = ("set", "frozenset", "object", "bytes", "bytearray", "list", "dict", "tuple", "int", "float", "str", "bool")
# What else the official (Python 2, protocol 2) files name: numpy arrays, plain types, latin-1 bytes. Python 2 module names
# come as written (find_class is overridden, so pickle's own renaming happens only in super().find_class).
_MANO_GLOBALS = (
    NUMPY
    | {(module, name) for module in ("__builtin__", "builtins") for name in _PLAIN_TYPES}
    | {("_codecs", "encode"), ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor")}
)


class _ManoUnpickler(pickle.Unpickler):
    """Admits chumpy (as stand-ins), scipy's sparse matrices and ``_MANO_GLOBALS``: a MANO file is a download from
    outside, and any other global is how a pickle would run code."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "chumpy" or module.startswith("chumpy."):
            return type(name, (_ChumpyStandIn,), {"chumpy_class": f"{module}.{name}"})
        if module.startswith("scipy.sparse.") and name.endswith(("_matrix", "_array")):
            # Old files name private modules (scipy.sparse.csc) that newer scipy deprecates or drops.
            return getattr(scipy.sparse, name)
        if (module, name) in _MANO_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name} (not something a MANO model file holds)")


def _plain(value: Any) -> Any:
    """A pickled value as numpy (dense), a str unchanged, or None for a chumpy expression we cannot evaluate."""
    while isinstance(value, _ChumpyStandIn):
        value = value.array
    if value is None or isinstance(value, (str, bytes)):
        return value
    if scipy.sparse.issparse(value):
        return value.toarray()
    return np.asarray(value)


def load_mano_pkl(path: str | Path) -> dict[str, Any]:
    """The official MANO_RIGHT.pkl / MANO_LEFT.pkl as a dict of numpy arrays (chumpy not needed)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"MANO model file not found: {path}; {_HELP}")
    try:
        with path.open("rb") as handle:
            raw = _ManoUnpickler(handle, encoding="latin1").load()
    except Exception as err:  # a user-supplied file: any unpickling failure means "not a MANO pickle"
        raise ConfigError(f"cannot read {path} as a MANO pickle ({type(err).__name__}: {err}); {_HELP}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} is not a MANO model (a pickled {type(raw).__name__}, not a dict); {_HELP}")
    data = {str(key): _plain(value) for key, value in raw.items()}
    data = {key: value for key, value in data.items() if value is not None}
    missing = [key for key in MANO_KEYS if key not in data]
    if missing:
        raise ConfigError(f"{path} is not a MANO model (missing {', '.join(missing)}); {_HELP}")
    return data


def _fix_left_shapedirs(left: dict[str, Any], right_path: Path) -> dict[str, Any]:
    """Mirror the x component of the left hand's shape directions (smplx issue #48).

    The official MANO_LEFT.pkl ships the right hand's shapedirs unchanged although its template is
    mirrored in x, so one set of betas gives visibly different left and right hands. The common fix
    (smplx#48, InterHand2.6M, DexYCB, ARCTIC, HaWoR) negates shapedirs[:, 0, :] for the left hand.
    Where MANO_RIGHT.pkl sits alongside, flip only if the two still match, so a fixed file is not flipped back.
    """
    if right_path.is_file() and not np.allclose(left["shapedirs"], load_mano_pkl(right_path)["shapedirs"]):
        return left
    shapedirs = np.array(left["shapedirs"], dtype=np.float64)
    shapedirs[:, 0, :] *= -1
    return {**left, "shapedirs": shapedirs}


# ---------------------------------------------------------------------------------------------
# The model


class ManoHand(torch.nn.Module):
    """MANO as a ``HandModel``: (rotations, transl, betas) -> 21 mano21 keypoints or 778 vertices.

    Build it from ``mano_dir`` (default $MANO_DIR) or from a ``data_struct`` dict (the loaded pickle's
    arrays). Inputs must share the model's dtype and device (float32 unless ``.double()`` / ``.to()``).
    ``fix_left_shapedirs`` applies the known left-file fix when loading a real MANO_LEFT.pkl.
    """

    name = "mano"
    n_betas = N_BETAS

    def __init__(
        self,
        side: str = "right",
        mano_dir: str | Path | None = None,
        data_struct: dict[str, Any] | None = None,
        fix_left_shapedirs: bool = True,
    ):
        super().__init__()
        if side not in ("left", "right"):
            raise ConfigError(f"hand side must be 'left' or 'right', not {side!r}")
        self.side = side
        if data_struct is None:
            folder = find_mano_dir(mano_dir)
            if folder is None:
                raise ConfigError(f"the MANO hand model needs the licensed model files: {_HELP}")
            data_struct = load_mano_pkl(mano_file(folder, side))
            if side == "left" and fix_left_shapedirs:
                data_struct = _fix_left_shapedirs(data_struct, mano_file(folder, "right"))
        # smplx prints a warning about MANO having only 10 shape coefficients; that is expected here.
        with contextlib.redirect_stdout(io.StringIO()):
            self.layer = smplx.MANO(
                model_path="",
                data_struct=smplx.utils.Struct(**data_struct),
                is_rhand=side == "right",
                use_pca=False,
                flat_hand_mean=True,
                num_betas=N_BETAS,
                create_global_orient=False,
                create_hand_pose=False,
                create_betas=False,
                create_transl=False,
            )
        self.register_buffer("tip_ids", torch.tensor(TIP_VERTEX_IDS, dtype=torch.long), persistent=False)

    @property
    def faces(self) -> np.ndarray:
        """(1538, 3) int64 triangle vertex indices."""
        return self.layer.faces_tensor.cpu().numpy()

    def _skin(
        self, rotations: torch.Tensor, transl: torch.Tensor, betas: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 778, 3) vertices and (B, 21, 3) keypoints."""
        batch = rotations.shape[0]
        if betas is None:
            betas = rotations.new_zeros(N_BETAS)
        betas = betas.reshape(-1, N_BETAS).expand(batch, N_BETAS)  # lbs needs one row per pose
        layer = self.layer
        # pose2rot=False takes rotation matrices as they are: no axis-angle round trip.
        verts, joints = lbs(
            betas,
            rotations.contiguous(),
            layer.v_template,
            layer.shapedirs,
            layer.posedirs,
            layer.J_regressor,
            layer.parents,
            layer.lbs_weights,
            pose2rot=False,
        )
        keypoints = torch.cat([joints, verts[:, self.tip_ids]], dim=1)
        shift = transl[:, None, :]
        return verts + shift, keypoints + shift

    def forward(self, rotations: torch.Tensor, transl: torch.Tensor, betas: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 16, 3, 3), (B, 3)[, (10,) or (B, 10)] -> (B, 21, 3) mano21 keypoints in metres."""
        return self._skin(rotations, transl, betas)[1]

    def vertices(self, rotations: torch.Tensor, transl: torch.Tensor, betas: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 16, 3, 3), (B, 3)[, betas] -> (B, 778, 3) mesh vertices in metres."""
        return self._skin(rotations, transl, betas)[0]

    def rest_joints(self, betas: torch.Tensor | None = None) -> torch.Tensor:
        """(21, 3) mano21 keypoints of the flat rest pose (MANO's own frame: the wrist is not at 0)."""
        template = self.layer.v_template
        identity = torch.eye(3, dtype=template.dtype, device=template.device).expand(1, N_JOINTS, 3, 3)
        return self.forward(identity, template.new_zeros(1, 3), betas)[0]


# ---------------------------------------------------------------------------------------------
# A random MANO-shaped model, for tests (the real one is licensed)

_FINGER_BASES = {  # metres from the wrist; fingers point along -x, the thumb side is +z
    "index": (-0.090, 0.000, 0.025),
    "middle": (-0.095, 0.000, 0.004),
    "ring": (-0.088, 0.000, -0.016),
    "pinky": (-0.078, 0.000, -0.034),
    "thumb": (-0.025, -0.012, 0.030),
}
_THUMB_DIRECTION = (-0.6, -0.2, 0.75)
_PHALANGES = (0.035, 0.024, 0.020)  # base->2, 2->3, 3->tip (the thumb reuses them)
_REST_WRIST = (0.095, 0.006, 0.006)  # off the origin, like MANO's, so "rotate about the wrist" is tested


def _random_skeleton() -> np.ndarray:
    """(21, 3) mano21 keypoints of a flat right hand."""
    keypoints = np.zeros((N_KEYPOINTS, 3))
    for block, finger in enumerate(FINGERS_MANO):
        direction = np.array(_THUMB_DIRECTION if finger == "thumb" else (-1.0, 0.0, 0.0))
        direction /= np.linalg.norm(direction)
        chain = [1 + 3 * block, 2 + 3 * block, 3 + 3 * block, N_JOINTS + TIP_FINGERS.index(finger)]
        keypoints[chain[0]] = _FINGER_BASES[finger]
        for joint, length in zip(chain[1:], _PHALANGES):
            keypoints[joint] = keypoints[PARENTS21[joint]] + length * direction
    return keypoints + np.array(_REST_WRIST)


def random_mano_struct(seed: int = 0) -> dict[str, np.ndarray]:
    """A random model with MANO's array shapes and a hand-like layout (for tests; not a real hand)."""
    rng = np.random.default_rng(seed)
    keypoints = _random_skeleton()
    # Vertices scattered around the 20 bones (parent keypoint -> child keypoint); tip vertices sit on the tips.
    bone = rng.integers(1, N_KEYPOINTS, N_VERTICES)
    along = rng.uniform(0.0, 1.0, (N_VERTICES, 1))
    tips = np.array(TIP_VERTEX_IDS)
    bone[tips], along[tips] = np.arange(N_JOINTS, N_KEYPOINTS), 1.0
    parent = np.array(PARENTS21)[bone]
    v_template = keypoints[parent] + along * (keypoints[bone] - keypoints[parent])
    jitter = rng.normal(0.0, 0.004, (N_VERTICES, 3))
    jitter[tips] = 0.0
    v_template += jitter
    # Skinning: mostly the joint that moves the bone, a little its parent (the root keeps everything).
    weights = np.zeros((N_VERTICES, N_JOINTS))
    grand = np.array(PARENTS)[parent].clip(min=0)
    np.add.at(weights, (np.arange(N_VERTICES), parent), np.where(parent == 0, 1.0, 0.8))
    np.add.at(weights, (np.arange(N_VERTICES), grand), np.where(parent == 0, 0.0, 0.2))
    # Each joint regressed from its 4 nearest vertices with positive weights summing to 1.
    j_regressor = np.zeros((N_JOINTS, N_VERTICES))
    for joint in range(N_JOINTS):
        near = np.argsort(np.linalg.norm(v_template - keypoints[joint], axis=1))[:4]
        share = rng.uniform(0.5, 1.0, 4)
        j_regressor[joint, near] = share / share.sum()
    start = rng.integers(0, N_VERTICES, 1538)
    faces = np.stack([start, (start + 1) % N_VERTICES, (start + 2) % N_VERTICES], axis=1)
    return {
        "v_template": v_template,
        "shapedirs": rng.normal(0.0, 1e-3, (N_VERTICES, 3, N_BETAS)),
        "posedirs": rng.normal(0.0, 1e-4, (N_VERTICES, 3, 9 * (N_JOINTS - 1))),
        "J_regressor": j_regressor,
        "weights": weights,
        "kintree_table": np.array([[ROOT_PARENT, *PARENTS[1:]], range(N_JOINTS)], dtype=np.int64),
        "f": faces.astype(np.uint32),
        "hands_components": np.linalg.qr(rng.normal(size=(45, 45)))[0],
        "hands_mean": rng.normal(0.0, 0.1, 45),
    }


_WRAPPED_IN_CH = ("v_template", "shapedirs", "posedirs", "weights")


def write_fake_mano_pkl(path: str | Path, struct: dict[str, np.ndarray]) -> Path:
    """Pickle ``struct`` the way the official MANO files are: chumpy Ch values, a sparse J_regressor, protocol 2.

    A throwaway ``chumpy.ch`` module lives in sys.modules only while pickling (pickle looks classes up
    by module), so the file references chumpy.ch.Ch although chumpy is not installed.
    """
    path = Path(path)
    package, module = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    ch_class = type("Ch", (), {"__module__": "chumpy.ch"})
    module.Ch, package.ch = ch_class, module

    def wrap(array: np.ndarray) -> object:
        value = ch_class()
        value.__dict__.update(x=array, _dirty_vars=set(), _itr=None)  # chumpy's state keeps the array under "x"
        return value

    payload: dict[str, Any] = {key: wrap(v) if key in _WRAPPED_IN_CH else v for key, v in struct.items()}
    payload["J_regressor"] = scipy.sparse.csc_matrix(struct["J_regressor"])
    payload.update(bs_style="lbs", bs_type="lrotmin")
    saved = {name: sys.modules.get(name) for name in ("chumpy", "chumpy.ch")}
    sys.modules.update({"chumpy": package, "chumpy.ch": module})
    try:
        data = pickle.dumps(payload, protocol=2)
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
    # The official files name scipy's old public module; mimic that (protocol 2 spells modules out as text).
    path.write_bytes(data.replace(b"scipy.sparse._csc\n", b"scipy.sparse.csc\n"))
    return path
