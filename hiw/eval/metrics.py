"""Text-to-motion and motion-to-text metrics on evaluator embeddings (TM2T / T2M-GPT protocol, PAPER.md section 5).

Inputs are rows of the contrastive text-motion evaluator (512-D; any D works): ``text[i]`` pairs with ``motion[i]``.
Distances are Euclidean, in the evaluator's embedding units ("u" below). Sampling takes an ``np.random.Generator``,
so every metric is deterministic given its seed.

- R-precision top-k (fraction, 0..1): rows are cut into consecutive pools of ``pool`` (32); in each pool every text
  ranks the pool's motions by distance; a hit at k when its own motion is among the first k. Cumulative in k.
  Ties count against the match: rank = motions strictly closer + other motions at the same distance.
  The caller shuffles once per replication (``shuffled``); rows after the last full pool are left out.
- Matching score (u): mean text-motion distance of matching pairs over the full pools (sum of the pools' distance
  matrix traces / scored rows, the authors' group version). MM-Dist (u): the same mean over all N rows.
- FID (u^2): Fréchet distance between Gaussians fitted to real and generated motion embeddings.
- KID (u^6, the kernel is cubic): unbiased MMD^2 with the kernel (<x,y>/D + 1)^3, mean and std over random subsets.
- Diversity (u): mean distance between two random sets of ``pairs`` rows, each drawn without replacement, paired
  by position.
- MultiModality (u): per text, the same between two random sets of ``pairs`` of its R generations; mean over texts.
- ``mean_interval``: mean over replications and the 95% half-width 1.96 * std / sqrt(n), population std (ddof=0)
  as the authors (``get_metric_statistics``) and T2M-GPT do.

Where hiw differs from the authors' code (../shared/CLUTCH_CODE.md 3.3-3.4), each function says so in one line.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy import linalg
from scipy.spatial.distance import cdist

from hiw.errors import ConfigError

FID_EPS = 1e-6


class TooFew(ConfigError, ValueError):
    """Too few clips for a metric's setting; ``needed`` and ``have`` are clip counts."""

    def __init__(self, message: str, needed: int, have: int):
        super().__init__(message)
        self.needed = needed
        self.have = have


def _too_few(what: str, needed: int, have: int, setting: str | None = None) -> TooFew:
    lower = f" or lower --{setting.replace('_', '-')}" if setting else ""
    return TooFew(f"{what} (have {have}); use more clips{lower}", needed, have)


def _rows(x, metric: str, name: str = "embeddings", ndim: int = 2) -> np.ndarray:
    """``x`` as a float64 array of ``ndim`` dims with only finite values, or ValueError naming the metric."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != ndim:
        raise ValueError(f"{metric}: {name} must have {ndim} dimensions, got shape {x.shape}")
    if not np.isfinite(x).all():
        bad = np.unique(np.nonzero(~np.isfinite(x))[0])
        raise ValueError(f"{metric}: {name} has non-finite values (NaN/inf) in {len(bad)} rows, first {bad[0]}")
    return x


def _pairs(text, motion, metric: str) -> tuple[np.ndarray, np.ndarray]:
    text, motion = _rows(text, metric, "text"), _rows(motion, metric, "motion")
    if text.shape != motion.shape:
        raise ValueError(f"{metric}: text and motion must pair row by row, got shapes {text.shape} and {motion.shape}")
    return text, motion


def shuffled(rng: np.random.Generator, *arrays):
    """The arrays with their rows permuted by one shared permutation (pairs stay paired)."""
    lengths = {len(a) for a in arrays}
    if len(lengths) != 1:
        raise ValueError(f"shuffled: arrays differ in length {sorted(lengths)}")
    order = rng.permutation(lengths.pop())
    return tuple(np.asarray(a)[order] for a in arrays)


def euclidean(a, b) -> np.ndarray:
    """(N, M) matrix of Euclidean distances between the rows of ``a`` (N, D) and ``b`` (M, D)."""
    return cdist(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), metric="euclidean")


def _pools(text: np.ndarray, motion: np.ndarray, pool: int, metric: str):
    """The full pools' (text, motion) row blocks; TooFew when not even one pool fits."""
    n = len(text)
    if pool < 1:
        raise ValueError(f"{metric}: pool must be >= 1, got {pool}")
    if n < pool:
        raise _too_few(f"{metric} needs at least {pool} clips for a pool of {pool}", pool, n, "pool")
    return [(text[s : s + pool], motion[s : s + pool]) for s in range(0, n - pool + 1, pool)]


def r_precision(text, motion, pool: int = 32, top_k: int = 3) -> np.ndarray:
    """R-precision at 1..top_k (shape (top_k,), cumulative), over floor(N/pool) consecutive pools."""
    text, motion = _pairs(text, motion, "R-precision")
    if not 1 <= top_k <= pool:
        raise ValueError(f"R-precision: top_k must be in 1..pool ({pool}), got {top_k}")
    hits = np.zeros(top_k)
    pools = _pools(text, motion, pool, "R-precision")
    for t, m in pools:
        dist = euclidean(t, m)
        own = np.diag(dist)
        # Rank = other motions at a distance <= the match's (ties count against it; the authors' argsort breaks
        # ties arbitrarily). The diagonal is subtracted out: the match is not ranked against itself.
        rank = (dist <= own[:, None]).sum(axis=1) - 1
        hits += (rank[:, None] < np.arange(1, top_k + 1)).sum(axis=0)
    return hits / (len(pools) * pool)


def matching_score(text, motion, pool: int = 32) -> float:
    """Mean matching-pair distance over the full pools (sum of pool traces / scored rows), in embedding units."""
    text, motion = _pairs(text, motion, "Matching score")
    pools = _pools(text, motion, pool, "Matching score")
    traces = sum(np.trace(euclidean(t, m)) for t, m in pools)
    return float(traces / (len(pools) * pool))


def mm_dist(text, motion) -> float:
    """MM-Dist: mean of ||text_i - motion_i|| over all N rows, in embedding units."""
    text, motion = _pairs(text, motion, "MM-Dist")
    if len(text) == 0:
        raise ValueError("MM-Dist: no rows")
    return float(np.linalg.norm(text - motion, axis=1).mean())


def fid(real, gen) -> float:
    """Fréchet distance between Gaussians fitted to the raw real and generated embeddings (units^2).

    Differs from the authors: no ``expit`` squashing of the embeddings first (T2M-GPT fits the raw ones).
    """
    real, gen = _rows(real, "FID", "real"), _rows(gen, "FID", "generated")
    for name, x in (("real", real), ("generated", gen)):
        if len(x) < 2:
            raise _too_few(f"FID needs at least 2 {name} clips to fit a covariance", 2, len(x))
    if real.shape[1] != gen.shape[1]:
        raise ValueError(f"FID: real and generated dimensions differ ({real.shape[1]} vs {gen.shape[1]})")
    mu1, mu2 = real.mean(axis=0), gen.mean(axis=0)
    s1, s2 = np.atleast_2d(np.cov(real, rowvar=False)), np.atleast_2d(np.cov(gen, rowvar=False))
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        # A singular product has no usable root: regularise both covariances (as pytorch-fid does).
        offset = np.eye(len(s1)) * FID_EPS
        covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    # Rounding leaves tiny imaginary parts on a real PSD root; the real part is the answer.
    covmean = np.real(covmean)
    diff = mu1 - mu2
    # never below 0: identical sets otherwise print as -0.0000 from rounding
    return max(0.0, float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean)))


def _poly_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 of two equal-sized samples: the within-set sums skip the i == j terms."""
    m = len(x)
    kxx, kyy, kxy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within - 2.0 * kxy.sum() / (m * m))


def kid(real, gen, rng: np.random.Generator, subsets: int = 50, subset_size: int = 64) -> tuple[float, float]:
    """KID: mean and std (ddof=0) of the unbiased MMD^2 over ``subsets`` random subsets of ``subset_size`` rows.

    Differs from the authors: rows are drawn without replacement (theirs draw with replacement when N > 64).
    """
    real, gen = _rows(real, "KID", "real"), _rows(gen, "KID", "generated")
    if subset_size < 2:
        raise ValueError(f"KID: subset_size must be >= 2, got {subset_size}")
    if subsets < 1:
        raise ValueError(f"KID: subsets must be >= 1, got {subsets}")
    for name, x in (("real", real), ("generated", gen)):
        if len(x) < subset_size:
            raise _too_few(
                f"KID needs at least {subset_size} {name} clips for subsets of {subset_size}",
                subset_size,
                len(x),
                "kid_subset_size",
            )
    if real.shape[1] != gen.shape[1]:
        raise ValueError(f"KID: real and generated dimensions differ ({real.shape[1]} vs {gen.shape[1]})")
    values = [
        _mmd2_unbiased(
            real[rng.choice(len(real), subset_size, replace=False)], gen[rng.choice(len(gen), subset_size, replace=False)]
        )
        for _ in range(subsets)
    ]
    return float(np.mean(values)), float(np.std(values))


def _paired_distance(x: np.ndarray, rng: np.random.Generator, pairs: int) -> float:
    """Mean distance between rows of two index sets of ``pairs``, each drawn without replacement."""
    first = rng.choice(len(x), pairs, replace=False)
    second = rng.choice(len(x), pairs, replace=False)
    return float(np.linalg.norm(x[first] - x[second], axis=1).mean())


def diversity(emb, rng: np.random.Generator, pairs: int = 300) -> float:
    """Diversity: mean distance over ``pairs`` random row pairs (embedding units)."""
    emb = _rows(emb, "Diversity")
    if pairs < 1:
        raise ValueError(f"Diversity: pairs must be >= 1, got {pairs}")
    if len(emb) < pairs:
        raise _too_few(f"Diversity needs at least {pairs} clips for {pairs} pairs", pairs, len(emb), "diversity_pairs")
    return _paired_distance(emb, rng, pairs)


def multimodality(emb, rng: np.random.Generator, pairs: int = 10) -> float:
    """MultiModality of (T texts, R generations, D): per text the Diversity of its generations, mean over texts.

    Differs from T2M-GPT: index sets are drawn per text (theirs share one draw across texts).
    """
    emb = _rows(emb, "MultiModality", ndim=3)
    if pairs < 1:
        raise ValueError(f"MultiModality: pairs must be >= 1, got {pairs}")
    if len(emb) == 0:
        raise ValueError("MultiModality: no texts")
    repeats = emb.shape[1]
    if repeats < pairs:
        raise _too_few(f"MultiModality needs at least {pairs} generations per text for {pairs} pairs", pairs, repeats, "mm_pairs")
    return float(np.mean([_paired_distance(gens, rng, pairs) for gens in emb]))


def mean_interval(values) -> tuple[float, float]:
    """Mean over replications and its 95% half-width 1.96 * std / sqrt(n) (population std, ddof=0; 0 when n == 1)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if len(values) == 0:
        raise ValueError("mean_interval: no values")
    if not np.isfinite(values).all():
        raise ValueError("mean_interval: non-finite values (NaN/inf)")
    return float(values.mean()), float(1.96 * values.std() / np.sqrt(len(values)))


class MetricSettings(BaseModel):
    """The sampling settings of one evaluation; ``check`` fails early when the clips cannot support them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pool: int = Field(32, ge=2, description="R-precision / matching-score pool size")
    kid_subsets: int = Field(50, ge=1)
    kid_subset_size: int = Field(64, ge=2)
    diversity_pairs: int = Field(300, ge=1)
    mm_pairs: int = Field(10, ge=1, description="MultiModality pairs per text")
    replications: int = Field(20, ge=1)

    def check(self, n_real: int, n_gen: int, mm_repeats: int | None = None, motion: bool = True) -> None:
        """Raise one TooFew listing every setting that ``n_real`` real / ``n_gen`` generated clips cannot support;
        ``motion=False`` (motion-to-text scoring) checks only what it computes, the pools."""
        needs = [("R-precision", self.pool, f"a pool of {self.pool}", "pool")]
        if motion:
            needs += [
                ("KID", self.kid_subset_size, f"subsets of {self.kid_subset_size}", "kid_subset_size"),
                ("Diversity", self.diversity_pairs, f"{self.diversity_pairs} pairs", "diversity_pairs"),
                ("FID", 2, "a covariance", None),
            ]
        problems, needed, have = [], 0, min(n_real, n_gen)
        for metric, count, why, setting in needs:
            short = [f"{n} {kind}" for kind, n in (("real", n_real), ("generated", n_gen)) if n < count]
            if short:
                lower = f" or lower --{setting.replace('_', '-')}" if setting else ""
                problems.append(f"{metric} needs at least {count} clips for {why} (have {', '.join(short)}){lower}")
                needed = max(needed, count)
        if mm_repeats is not None and mm_repeats < self.mm_pairs:
            problems.append(
                f"MultiModality needs at least {self.mm_pairs} generations per text for {self.mm_pairs} pairs "
                f"(have {mm_repeats}) or lower --mm-pairs"
            )
            needed, have = max(needed, self.mm_pairs), min(have, mm_repeats)
        if problems:
            raise TooFew("too few clips for the metric settings: " + "; ".join(problems), needed, have)
