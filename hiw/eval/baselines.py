"""Baselines, scored by the same harness as any generator: each writes a ``generations`` table (and, where it makes
captions, a ``generated_captions`` table) that scoring then reads back like an outside model's output.

- ``real``: each test clip's own motion. The upper reference for text-to-motion.
- ``shuffled``: the motion (caption) of another test clip. Chance level: R@3 = 3/32 for pools of 32.
- ``retrieval``: text-to-motion returns the motion of the training clip whose caption is nearest to the prompt
  in sentence embedding (all-MiniLM-L6-v2, the annotators' embedder); motion-to-text returns the caption of the
  training clip whose motion is nearest in normalised-feature statistics (per-feature mean and std over valid
  frames), which uses nothing of the evaluator that scores it.
With ``samples`` > 1 each prompt gets that many generations (the next other clips, the next nearest neighbours),
so MultiModality has something to measure.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

from hiw.data.sequences import MotionSequence
from hiw.data.stats import FeatureStats
from hiw.eval.data import EvalSet
from hiw.motion.features import HAND_FEATURES

BASELINES = ("real", "shuffled", "retrieval")
MotionItem = tuple[str | None, str | None, int, MotionSequence]


def _others(n: int, rng: np.random.Generator, samples: int) -> np.ndarray:
    """(n, samples) indices, row i never i: positions after i in one random cycle through all n."""
    order = rng.permutation(n)
    at = np.empty(n, np.int64)
    at[order] = np.arange(n)
    return np.stack([order[(at + k) % n] for k in range(1, samples + 1)], axis=1)


def _nearest(queries: np.ndarray, keys: np.ndarray, samples: int) -> np.ndarray:
    """(len(queries), samples) indices of the nearest keys, by Euclidean distance (cosine for unit vectors)."""
    return np.argsort(cdist(queries, keys), axis=1, kind="stable")[:, :samples]


def motion_baseline(name: str, test: EvalSet, train: EvalSet, rng: np.random.Generator, samples: int = 1) -> list[MotionItem]:
    clips = test.clips
    if name == "real":
        return [(clip.clip_id, None, 0, clip.motion) for clip in clips]
    if name == "shuffled":
        picks = _others(len(clips), rng, min(samples, len(clips) - 1))
        return [(clip.clip_id, None, s, clips[j].motion) for clip, row in zip(clips, picks) for s, j in enumerate(row)]
    from hiw.annotators.embed import load_embedder

    embedder = load_embedder()
    # a test clip's prompt: the mean of its captions' embeddings (scoring draws one caption per replication)
    queries = np.stack([embedder.encode(list(clip.captions)).mean(0) for clip in clips])
    keys = [(i, c) for i, clip in enumerate(train.clips) for c in clip.captions]
    nearest = _nearest(queries, embedder.encode([c for _, c in keys]), len(keys))
    items = []
    for clip, row in zip(clips, nearest):
        chosen = list(dict.fromkeys(keys[k][0] for k in row))[:samples]  # distinct training clips, nearest first
        items += [(clip.clip_id, None, s, train.clips[j].motion) for s, j in enumerate(chosen)]
    return items


def caption_baseline(
    name: str, test: EvalSet, train: EvalSet, stats: FeatureStats, rng: np.random.Generator
) -> list[tuple[str, str, int]]:
    """(clip_id, caption, 0) per test clip: ``shuffled`` or ``retrieval`` (``real`` would be its own reference)."""
    clips = test.clips
    if name == "shuffled":
        return [(clip.clip_id, clips[row[0]].captions[0], 0) for clip, row in zip(clips, _others(len(clips), rng, 1))]
    nearest = _nearest(
        np.stack([_summary(c.motion, stats) for c in clips]), np.stack([_summary(c.motion, stats) for c in train.clips]), 1
    )
    return [(clip.clip_id, train.clips[row[0]].captions[0], 0) for clip, row in zip(clips, nearest)]


def _summary(seq: MotionSequence, stats: FeatureStats) -> np.ndarray:
    """Per-feature mean and std of the normalised features over each hand's valid frames (zeros without any)."""
    z = stats.normalise(seq.features, seq.mask)
    parts = []
    for hand in range(2):
        rows = z[seq.mask[:, hand], hand * HAND_FEATURES : (hand + 1) * HAND_FEATURES]
        parts += [rows.mean(0), rows.std(0)] if len(rows) else [np.zeros(HAND_FEATURES)] * 2
    return np.concatenate(parts)
