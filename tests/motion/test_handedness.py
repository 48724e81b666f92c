"""Left/right label repair (hiw.motion.handedness) on 2D wrist tracks in a 1920x1080 egocentric frame."""

from __future__ import annotations

import numpy as np
import pytest

from hiw.motion.handedness import apply_swaps, swap_frames

WIDTH = 1920
JUMP = 0.15 * WIDTH  # what the pipeline passes for 2D wrists


def hands(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two wrists (n, 2) in pixels, swaying smoothly (~40 px, 0.3-0.8 Hz at 30 fps): left around x=650, right x=1250."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None] / 30.0

    def sway() -> np.ndarray:
        return 40 * np.sin(2 * np.pi * rng.uniform(0.3, 0.8, (1, 2)) * t + rng.uniform(0, 2 * np.pi, (1, 2)))

    left = np.array([650.0, 700.0]) + sway() + rng.normal(0, 1.5, (n, 2))
    right = np.array([1250.0, 680.0]) + sway() + rng.normal(0, 1.5, (n, 2))
    return left, right


def tracker(left: np.ndarray, right: np.ndarray, swapped: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What a tracker reports when it mixes up the labels on ``swapped`` frames."""
    return apply_swaps(left, right, swapped)


def repair(left: np.ndarray, right: np.ndarray, left_valid=None, right_valid=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(left)
    lv = np.ones(n, bool) if left_valid is None else left_valid
    rv = np.ones(n, bool) if right_valid is None else right_valid
    swap = swap_frames(left, right, lv, rv, JUMP)
    assert swap.shape == (n,) and swap.dtype == bool
    return (swap, *apply_swaps(left, right, swap))


# ---------------------------------------------------------------- apply_swaps


def test_apply_swaps_exchanges_only_the_marked_frames() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(6, 21, 3)), rng.normal(size=(6, 21, 3))
    swap = np.array([0, 1, 0, 0, 1, 1], bool)
    left, right = apply_swaps(a, b, swap)
    np.testing.assert_array_equal(left[swap], b[swap])
    np.testing.assert_array_equal(right[swap], a[swap])
    np.testing.assert_array_equal(left[~swap], a[~swap])
    np.testing.assert_array_equal(right[~swap], b[~swap])
    back = apply_swaps(left, right, swap)
    np.testing.assert_array_equal(back[0], a)
    np.testing.assert_array_equal(back[1], b)
    lv, rv = apply_swaps(np.array([1, 1, 0], bool), np.array([0, 1, 1], bool), np.array([1, 0, 1], bool))  # 1-D masks too
    assert lv.tolist() == [False, True, True] and rv.tolist() == [True, True, False]


# ---------------------------------------------------------------- swap_frames


def test_clean_tracks_are_left_alone() -> None:
    left, right = hands(90)
    assert not repair(left, right)[0].any()


@pytest.mark.parametrize("first_wrong", [False, True])
def test_labels_flipping_every_other_frame_are_repaired(first_wrong: bool) -> None:
    """A tie between the two labellings: the track on the image's left becomes the left hand."""
    n = 60
    left, right = hands(n, seed=2)
    swapped = np.arange(n) % 2 == (0 if first_wrong else 1)
    swap, new_left, new_right = repair(*tracker(left, right, swapped))
    assert swap.tolist() == swapped.tolist()
    np.testing.assert_array_equal(new_left, left)
    np.testing.assert_array_equal(new_right, right)
    assert new_left[:, 0].mean() < new_right[:, 0].mean()


def test_labels_flipping_every_other_frame_odd_length_first_right() -> None:
    n = 61
    left, right = hands(n, seed=3)
    swapped = np.arange(n) % 2 == 1
    _, new_left, new_right = repair(*tracker(left, right, swapped))
    np.testing.assert_array_equal(new_left, left)
    np.testing.assert_array_equal(new_right, right)


def test_labels_flipping_every_other_frame_odd_length_first_wrong() -> None:
    n = 61
    left, right = hands(n, seed=3)
    swapped = np.arange(n) % 2 == 0
    _, new_left, new_right = repair(*tracker(left, right, swapped))
    assert new_left[:, 0].mean() < new_right[:, 0].mean()


def test_a_swapped_stretch_is_repaired() -> None:
    n = 60
    left, right = hands(n, seed=4)
    swapped = np.zeros(n, bool)
    swapped[20:40] = True
    swap, new_left, new_right = repair(*tracker(left, right, swapped))
    assert swap.tolist() == swapped.tolist()
    np.testing.assert_array_equal(new_left, left)
    np.testing.assert_array_equal(new_right, right)


def test_a_swapped_stretch_at_the_start_is_repaired() -> None:
    """The tracker starts with the wrong labels for 15 frames: the majority of the clip decides."""
    n = 60
    left, right = hands(n, seed=5)
    swapped = np.arange(n) < 15
    swap, new_left, _ = repair(*tracker(left, right, swapped))
    assert swap.tolist() == swapped.tolist()
    np.testing.assert_array_equal(new_left, left)


@pytest.mark.parametrize("dy", [40.0, 100.0])
def test_hands_that_really_cross_are_not_swapped(dy: float) -> None:
    """The left hand slowly moves to the image's right and the right hand to its left, passing each other."""
    n = 90
    x = np.linspace(500.0, 1400.0, n)  # 10 px per frame, ~10 cm/s for a hand at arm's length
    left = np.stack([x, np.full(n, 700.0 + dy)], axis=1)
    right = np.stack([x[::-1], np.full(n, 700.0)], axis=1)
    swap, new_left, _ = repair(left, right)
    assert not swap.any()
    np.testing.assert_array_equal(new_left, left)


def test_a_single_hand_near_its_own_track_keeps_its_label() -> None:
    n = 60
    left, right = hands(n, seed=6)
    right_valid = np.ones(n, bool)
    right_valid[25:40] = False  # the right hand leaves the frame; the left hand keeps moving
    right[~right_valid] = np.nan
    left[25:40] += np.linspace(0, 150, 15)[:, None]  # drifts towards the right hand's last place, but stays near its track
    swap, *_ = repair(left, right, right_valid=right_valid)
    assert not swap.any()


def test_a_single_hand_that_jumps_onto_the_other_track_is_relabelled() -> None:
    """The tracker calls the right hand 'left' while the left one is out of view."""
    n = 60
    left, right = hands(n, seed=7)
    left_valid, right_valid = np.ones(n, bool), np.ones(n, bool)
    right_valid[30:40] = False
    left_obs, right_obs = left.copy(), right.copy()
    left_obs[30:40], right_obs[30:40] = right[30:40], np.nan  # only one hand seen, with the wrong label
    swap, new_left, new_right = repair(left_obs, right_obs, left_valid, right_valid)
    assert np.flatnonzero(swap).tolist() == list(range(30, 40))
    np.testing.assert_array_equal(new_right[30:40], right[30:40])
    assert np.isnan(new_left[30:40]).all()


def test_missing_frames_do_not_crash_or_get_swapped() -> None:
    n = 80
    rng = np.random.default_rng(8)
    left, right = hands(n, seed=8)
    left_valid, right_valid = rng.random(n) > 0.3, rng.random(n) > 0.3
    left_valid[:5] = right_valid[:5] = False  # starts with no hands at all
    right_valid[5:10] = False  # then only the left one
    left[~left_valid], right[~right_valid] = np.nan, np.nan
    swapped = np.zeros(n, bool)
    swapped[50:65] = True
    left_obs, right_obs = tracker(left, right, swapped)
    lv_obs, rv_obs = tracker(left_valid, right_valid, swapped)

    swap = swap_frames(left_obs, right_obs, lv_obs, rv_obs, JUMP)

    seen = left_valid | right_valid
    assert not swap[~seen].any()  # frames without hands are never marked
    assert swap.tolist() == (swapped & seen).tolist()
    new_left, _ = apply_swaps(left_obs, right_obs, swap)
    np.testing.assert_array_equal(new_left[left_valid], left[left_valid])


def test_degenerate_inputs() -> None:
    n = 10
    nan = np.full((n, 2), np.nan)
    none = np.zeros(n, bool)
    assert not swap_frames(nan, nan, none, none, JUMP).any()
    left, right = hands(n)
    assert not swap_frames(left, nan, np.ones(n, bool), none, JUMP).any()  # one hand only
    assert not swap_frames(nan, right, none, np.ones(n, bool), JUMP).any()
    assert swap_frames(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0, bool), np.zeros(0, bool), JUMP).shape == (0,)
    left3 = np.concatenate([left, np.full((n, 1), 0.4)], axis=1)  # 3D positions (metres or not) work the same way
    right3 = np.concatenate([right, np.full((n, 1), 0.4)], axis=1)
    assert not swap_frames(left3, right3, np.ones(n, bool), np.ones(n, bool), 0.15).any()
