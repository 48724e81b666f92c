"""T2M / M2T embedding metrics on tiny inputs whose answers are counted by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hiw.errors import ConfigError
from hiw.eval import metrics
from hiw.eval.metrics import MetricSettings, TooFew


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def column(*values: float) -> np.ndarray:
    """1-D points as an (N, 1) embedding."""
    return np.array(values, dtype=float)[:, None]


# --- R-precision -------------------------------------------------------------------------------------------------


def test_r_precision_identity_is_all_hits():
    x = rng().normal(size=(64, 512))
    np.testing.assert_array_equal(metrics.r_precision(x, x), [1.0, 1.0, 1.0])


def test_r_precision_counts_a_known_ranking():
    motion = column(0, 10, 20, 30)
    # text 0, 1 sit on their motion (rank 0); text 2 (14) is closer to motion 1 (rank 1); text 3 (16) is closer to
    # motions 1 and 2 than to motion 3 (rank 2).
    text = column(0, 10, 14, 16)
    np.testing.assert_allclose(metrics.r_precision(text, motion, pool=4, top_k=3), [0.5, 0.75, 1.0])
    np.testing.assert_allclose(metrics.r_precision(text, motion, pool=4, top_k=1), [0.5])


def test_r_precision_tie_counts_against_the_match():
    # Text 0 is halfway between motion 0 (its match) and motion 1: the tie ranks the match second.
    text, motion = column(1, 2), column(0, 2)
    np.testing.assert_allclose(metrics.r_precision(text, motion, pool=2, top_k=2), [0.5, 1.0])


def test_r_precision_pools_are_separate_and_the_remainder_is_dropped():
    motion = column(0, 10, 1, 11, 1000)
    # Text 0 lies on motion 2, but motion 2 is in the next pool, so text 0 still ranks its own motion first.
    # Text 4 is the remainder (5 = 2 pools of 2 + 1) and is not scored: the denominator is 4.
    text = column(1, 10, 1, 11, 500)
    np.testing.assert_allclose(metrics.r_precision(text, motion, pool=2, top_k=2), [1.0, 1.0])
    # Swap texts 2 and 3 within their pool: both miss at top-1.
    text = column(1, 10, 11, 1, 500)
    np.testing.assert_allclose(metrics.r_precision(text, motion, pool=2, top_k=2), [0.5, 1.0])


def test_r_precision_too_few_clips():
    x = np.zeros((20, 8))
    with pytest.raises(TooFew, match=r"R-precision needs at least 32 clips for a pool of 32 \(have 20\)") as err:
        metrics.r_precision(x, x)
    assert (err.value.needed, err.value.have) == (32, 20)
    assert "--pool" in str(err.value)
    assert isinstance(err.value, ValueError) and isinstance(err.value, ConfigError)


def test_shuffled_keeps_pairs_together():
    text, motion = np.arange(10)[:, None], np.arange(10)[:, None] * 10
    t, m = metrics.shuffled(rng(3), text, motion)
    np.testing.assert_array_equal(m, t * 10)
    assert not np.array_equal(t, text)
    t2, _ = metrics.shuffled(rng(3), text, motion)
    np.testing.assert_array_equal(t, t2)


def test_non_finite_rows_name_the_metric():
    x = np.zeros((40, 4))
    x[7, 2] = np.nan
    with pytest.raises(ValueError, match="R-precision: text has non-finite values .* first 7"):
        metrics.r_precision(x, np.zeros((40, 4)))
    with pytest.raises(ValueError, match="FID: generated"):
        metrics.fid(np.zeros((40, 4)), np.where(np.isnan(x), np.inf, x))
    with pytest.raises(ValueError, match="Diversity"):
        metrics.diversity(x, rng(), pairs=4)


# --- Matching score / MM-Dist ------------------------------------------------------------------------------------


def test_matching_score_and_mm_dist_of_a_constant_shift():
    text = rng().normal(size=(70, 16))
    shift = np.zeros(16)
    shift[:2] = (3.0, 4.0)  # |shift| = 5
    assert metrics.matching_score(text, text + shift, pool=32) == pytest.approx(5.0)
    assert metrics.mm_dist(text, text + shift) == pytest.approx(5.0)


def test_matching_score_uses_full_pools_and_mm_dist_all_rows():
    text = np.zeros((5, 1))
    motion = column(1, 1, 1, 1, 11)  # the fifth row (distance 11) is outside the 2 pools of 2
    assert metrics.matching_score(text, motion, pool=2) == pytest.approx(1.0)
    assert metrics.mm_dist(text, motion) == pytest.approx(3.0)


def test_euclidean_matrix():
    d = metrics.euclidean([[0, 0], [3, 4]], [[0, 0], [0, 1], [6, 8]])
    np.testing.assert_allclose(d, [[0, 1, 10], [5, np.sqrt(18), 5]])


# --- FID -----------------------------------------------------------------------------------------------------------


def test_fid_of_identical_sets_is_zero():
    x = rng().normal(size=(300, 8))
    assert abs(metrics.fid(x, x)) < 1e-6


def test_fid_of_a_mean_shift_is_its_squared_length_and_grows_with_it():
    x = rng().normal(size=(300, 8)) @ rng(1).normal(size=(8, 8))  # correlated, same covariance after the shift
    d = np.arange(8) / 4
    assert metrics.fid(x, x + d) == pytest.approx(float(d @ d), rel=1e-6)
    values = [metrics.fid(x, x + s * d) for s in (0.5, 1, 2)]
    assert values == sorted(values) and values[0] > 0


def test_fid_with_fewer_rows_than_dimensions_is_finite():
    # 20 rows of 64-D: singular covariances (the usual case for 512-D embeddings and small test sets).
    x, y = rng().normal(size=(20, 64)), rng(1).normal(size=(20, 64))
    # The root's null directions are square roots of rounding noise, hence a looser zero than for full rank.
    assert abs(metrics.fid(x, x)) < 1e-4
    assert np.isfinite(metrics.fid(x, y)) and metrics.fid(x, y) > 0


def test_fid_needs_two_rows():
    with pytest.raises(TooFew, match="FID needs at least 2 generated clips"):
        metrics.fid(np.zeros((5, 3)), np.zeros((1, 3)))


# --- KID -----------------------------------------------------------------------------------------------------------


def brute_force_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD^2 written out term by term."""
    m, dim = len(x), x.shape[1]

    def k(a, b):
        return (float(a @ b) / dim + 1) ** 3

    pairs = [(i, j) for i, j in itertools.product(range(m), repeat=2) if i != j]
    kxx = sum(k(x[i], x[j]) for i, j in pairs) / len(pairs)
    kyy = sum(k(y[i], y[j]) for i, j in pairs) / len(pairs)
    kxy = sum(k(x[i], y[j]) for i, j in itertools.product(range(m), repeat=2)) / m**2
    return kxx + kyy - 2 * kxy


def test_kid_matches_a_brute_force_unbiased_mmd():
    x, y = rng().normal(size=(5, 3)), rng(1).normal(size=(5, 3)) + 0.5
    # A subset of all 5 rows is the whole set in some order, so every subset gives the same MMD^2.
    mean, std = metrics.kid(x, y, rng(), subsets=3, subset_size=5)
    assert mean == pytest.approx(brute_force_mmd2(x, y), rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_kid_near_zero_for_one_distribution_and_positive_for_a_shift():
    real, gen = rng().normal(size=(2000, 16)), rng(1).normal(size=(2000, 16))
    same, same_std = metrics.kid(real, gen, rng(2))
    shifted, _ = metrics.kid(real, gen + 1.0, rng(2))
    assert abs(same) < 3 * same_std / np.sqrt(50) + 1e-3
    assert shifted > 0.5 and shifted > 50 * abs(same)


def test_kid_is_deterministic_given_the_generator():
    real, gen = rng().normal(size=(100, 4)), rng(1).normal(size=(100, 4))
    assert metrics.kid(real, gen, rng(7)) == metrics.kid(real, gen, rng(7))


def test_kid_too_few():
    with pytest.raises(TooFew, match=r"KID needs at least 64 real clips .*\(have 10\).*--kid-subset-size"):
        metrics.kid(np.zeros((10, 4)), np.zeros((100, 4)), rng())


# --- Diversity / MultiModality -------------------------------------------------------------------------------------


def test_diversity_of_a_simplex():
    # 10 one-hot points: every two distinct points are sqrt(2) apart, so each value is sqrt(2) * (share of the
    # pairs that are not the same point). Two random orderings of 10 share 1 point on average: mean 0.9 * sqrt(2).
    emb = np.eye(10)
    values = np.array([metrics.diversity(emb, rng(seed), pairs=10) for seed in range(2000)])
    np.testing.assert_allclose(values * 10 / np.sqrt(2), np.round(values * 10 / np.sqrt(2)), atol=1e-9)
    assert values.mean() == pytest.approx(0.9 * np.sqrt(2), abs=0.01)


def test_diversity_of_identical_rows_is_zero_and_too_few_says_what_to_lower():
    assert metrics.diversity(np.ones((300, 8)), rng()) == 0.0
    with pytest.raises(TooFew, match=r"Diversity needs at least 300 clips for 300 pairs \(have 299\).*--diversity-pairs"):
        metrics.diversity(np.ones((299, 8)), rng())


def test_multimodality():
    repeats = np.repeat(rng().normal(size=(4, 1, 8)), 10, axis=1)  # 4 texts, 10 identical generations each
    assert metrics.multimodality(repeats, rng()) == 0.0
    # Per text, generations on a simplex scaled by (t + 1): the mean over texts scales the simplex value by 2.5.
    simplex = np.stack([np.eye(10) * (t + 1) for t in range(4)])
    values = [metrics.multimodality(simplex, rng(seed)) for seed in range(500)]
    assert np.mean(values) == pytest.approx(2.5 * 0.9 * np.sqrt(2), abs=0.02)
    with pytest.raises(TooFew, match=r"MultiModality needs at least 10 generations per text .*\(have 5\).*--mm-pairs"):
        metrics.multimodality(np.zeros((4, 5, 8)), rng())


# --- Intervals and settings ----------------------------------------------------------------------------------------


def test_mean_interval():
    mean, half = metrics.mean_interval([1, 2, 3, 4])
    assert mean == 2.5
    assert half == pytest.approx(1.96 * np.sqrt(1.25) / 2)  # population std sqrt(1.25)
    assert metrics.mean_interval([0.7]) == (0.7, 0.0)
    with pytest.raises(ValueError):
        metrics.mean_interval([])


def test_settings_check_lists_every_shortfall():
    settings = MetricSettings()
    settings.check(n_real=300, n_gen=300, mm_repeats=10)
    with pytest.raises(TooFew) as err:
        settings.check(n_real=1000, n_gen=40, mm_repeats=5)
    message = str(err.value)
    assert "KID needs at least 64 clips for subsets of 64 (have 40 generated) or lower --kid-subset-size" in message
    assert "Diversity needs at least 300 clips" in message and "--diversity-pairs" in message
    assert "MultiModality" in message and "--mm-pairs" in message
    assert "R-precision" not in message
    assert (err.value.needed, err.value.have) == (300, 5)
    MetricSettings(pool=8, kid_subset_size=16, diversity_pairs=20).check(n_real=20, n_gen=20)
