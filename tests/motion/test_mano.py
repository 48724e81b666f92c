"""MANO through smplx on a random MANO-shaped model: the chumpy-free loader and the HandModel interface."""

from __future__ import annotations

import importlib
import math
import pickle
import sys

import numpy as np
import pytest
import torch

from hiw.errors import ConfigError
from hiw.motion.hand_model import N_JOINTS
from hiw.motion.mano import (
    MANO_ENV,
    TIP_VERTEX_IDS,
    ManoHand,
    find_mano_dir,
    load_mano_pkl,
    random_mano_struct,
    write_fake_mano_pkl,
)

B = 4


@pytest.fixture(scope="module")
def struct() -> dict[str, np.ndarray]:
    return random_mano_struct(seed=0)


@pytest.fixture(scope="module")
def hand(struct) -> ManoHand:
    return ManoHand("right", data_struct=struct).double()  # float64 so the checks below can be tight


def identity(batch: int = B) -> torch.Tensor:
    return torch.eye(3, dtype=torch.float64).expand(batch, N_JOINTS, 3, 3).clone()


def rotation_z(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)


def random_rotations(batch: int, seed: int = 0) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(batch, N_JOINTS, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)))
    return q * torch.linalg.det(q)[..., None, None]  # proper rotations (det +1)


# --- loader ---------------------------------------------------------------------------------


def test_fake_official_pickle_loads_without_chumpy(tmp_path, struct):
    path = write_fake_mano_pkl(tmp_path / "MANO_RIGHT.pkl", struct)
    raw = path.read_bytes()
    assert b"chumpy.ch\nCh" in raw and b"scipy.sparse.csc\ncsc_matrix" in raw  # looks like the official file
    data = load_mano_pkl(path)
    for key, value in struct.items():
        assert isinstance(data[key], np.ndarray), key
        np.testing.assert_array_equal(data[key], value, err_msg=key)
    assert data["bs_style"] == "lbs"
    # The shim left nothing behind: chumpy is still not importable.
    assert "chumpy" not in sys.modules and "chumpy.ch" not in sys.modules
    with pytest.raises(ImportError):
        importlib.import_module("chumpy")


def test_missing_or_foreign_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=MANO_ENV) as err:
        load_mano_pkl(tmp_path / "MANO_RIGHT.pkl")
    assert "MANO_RIGHT.pkl" in str(err.value)
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ConfigError, match=MANO_ENV):
        load_mano_pkl(tmp_path / "junk.pkl")
    write_fake_mano_pkl(tmp_path / "partial.pkl", {"v_template": np.zeros((778, 3)), "J_regressor": np.zeros((16, 778))})
    with pytest.raises(ConfigError, match="missing shapedirs"):
        load_mano_pkl(tmp_path / "partial.pkl")


class _Hostile:
    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))  # unpickling would create the file


def test_a_hostile_mano_pickle_runs_nothing(tmp_path):
    target = tmp_path / "created"
    (tmp_path / "MANO_RIGHT.pkl").write_bytes(pickle.dumps({"v_template": _Hostile(target)}, protocol=2))
    with pytest.raises(ConfigError, match="refused to load"):
        load_mano_pkl(tmp_path / "MANO_RIGHT.pkl")
    assert not target.exists()


def test_find_mano_dir(monkeypatch, tmp_path):
    monkeypatch.delenv(MANO_ENV, raising=False)
    assert find_mano_dir() is None
    with pytest.raises(ConfigError, match=MANO_ENV):
        ManoHand("right")
    monkeypatch.setenv(MANO_ENV, str(tmp_path))
    assert find_mano_dir() == tmp_path
    assert find_mano_dir(tmp_path / "other") == tmp_path / "other"


# --- the model ------------------------------------------------------------------------------


def test_random_struct_is_mano_shaped(struct):
    assert struct["J_regressor"].shape == (16, 778) and (struct["J_regressor"] >= 0).all()
    np.testing.assert_allclose(struct["J_regressor"].sum(1), 1.0)
    np.testing.assert_allclose(struct["weights"].sum(1), 1.0)
    assert struct["f"].shape == (1538, 3) and struct["f"].max() < 778
    assert struct["kintree_table"][0, 0] == 4294967295


def test_rest_pose_and_shapes(hand):
    rest = hand.rest_joints()
    assert rest.shape == (21, 3)
    gaps = torch.cdist(rest, rest) + torch.eye(21, dtype=rest.dtype)
    assert gaps.min() > 0.005  # distinct joints
    out = hand(identity(), torch.zeros(B, 3, dtype=torch.float64))
    assert out.shape == (B, 21, 3)
    torch.testing.assert_close(out, rest.expand(B, 21, 3))
    torch.testing.assert_close(hand.rest_joints(torch.zeros(10, dtype=torch.float64)), rest)
    assert hand.faces.shape == (1538, 3) and hand.name == "mano" and hand.side == "right" and hand.n_betas == 10


def test_tips_are_the_chosen_vertices(hand):
    rotations, transl = random_rotations(B), torch.randn(B, 3, dtype=torch.float64)
    betas = torch.randn(B, 10, dtype=torch.float64)
    keypoints = hand(rotations, transl, betas)
    verts = hand.vertices(rotations, transl, betas)
    assert verts.shape == (B, 778, 3)
    torch.testing.assert_close(keypoints[:, 16:], verts[:, list(TIP_VERTEX_IDS)])


def test_transl_shifts_everything(hand):
    rotations = random_rotations(B, seed=1)
    transl = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64).expand(B, 3)
    moved = hand(rotations, transl)
    still = hand(rotations, torch.zeros(B, 3, dtype=torch.float64))
    torch.testing.assert_close(moved, still + transl[:, None])


def test_global_orientation_rotates_about_the_rest_wrist(hand):
    rest = hand.rest_joints()
    wrist = rest[0]
    assert wrist.norm() > 0.05  # MANO-like: the rest wrist is off the origin, so the pivot matters
    turn = rotation_z(0.7)
    rotations = identity(1)
    rotations[:, 0] = turn
    out = hand(rotations, torch.zeros(1, 3, dtype=torch.float64))[0]
    torch.testing.assert_close(out, (rest - wrist) @ turn.T + wrist)


def test_betas_change_the_hand(hand):
    betas = torch.full((10,), 2.0, dtype=torch.float64)
    assert (hand.rest_joints(betas) - hand.rest_joints()).abs().max() > 1e-4


def test_forward_is_differentiable(hand):
    rotations = random_rotations(2, seed=2).requires_grad_()
    transl = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    betas = torch.zeros(10, dtype=torch.float64, requires_grad=True)
    target = torch.randn(2, 21, 3, dtype=torch.float64)
    ((hand(rotations, transl, betas) - target) ** 2).sum().backward()
    for grad in (rotations.grad, transl.grad, betas.grad):
        assert grad is not None and grad.abs().sum() > 0


# --- from a MANO_DIR folder -----------------------------------------------------------------


def test_both_sides_load_from_a_mano_dir(tmp_path, monkeypatch, struct):
    left = {**struct, "v_template": struct["v_template"] * np.array([-1.0, 1.0, 1.0])}  # mirrored template...
    write_fake_mano_pkl(tmp_path / "MANO_RIGHT.pkl", struct)
    write_fake_mano_pkl(tmp_path / "MANO_LEFT.pkl", left)  # ...with the right's shapedirs, as the official file has
    monkeypatch.setenv(MANO_ENV, str(tmp_path))
    right_hand, left_hand = ManoHand("right").double(), ManoHand("left").double()
    assert left_hand.side == "left"
    keypoints = right_hand(random_rotations(B), torch.zeros(B, 3, dtype=torch.float64))
    assert keypoints.shape == (B, 21, 3) and torch.isfinite(keypoints).all()
    # The left shapedirs fix: the same betas now give mirror-image hands.
    betas = torch.linspace(-2.0, 2.0, 10, dtype=torch.float64)
    mirror = torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(left_hand.rest_joints(betas), right_hand.rest_joints(betas) * mirror)
    unfixed = ManoHand("left", tmp_path, fix_left_shapedirs=False).double()
    assert not torch.allclose(unfixed.rest_joints(betas), right_hand.rest_joints(betas) * mirror)


def test_an_already_fixed_left_file_is_not_flipped_back(tmp_path, struct):
    shapedirs = struct["shapedirs"].copy()
    shapedirs[:, 0, :] *= -1
    write_fake_mano_pkl(tmp_path / "MANO_RIGHT.pkl", struct)
    write_fake_mano_pkl(tmp_path / "MANO_LEFT.pkl", {**struct, "shapedirs": shapedirs})
    left_hand = ManoHand("left", tmp_path)
    np.testing.assert_allclose(left_hand.layer.shapedirs.numpy(), shapedirs, rtol=1e-6)
