"""Text-to-motion scoring: generated motion against the captions that prompted it and the split's real motion.

Each replication r (``settings.replications``, 20 by default) draws with its own generator (seed, r): a caption per
clip where the prompt was a clip rather than a text (the authors draw one at random too), a shuffle of the pairs
before they are cut into pools, and the KID subsets and Diversity pairs. Every metric is the mean over the
replications ± the 95% half-width. The real rows put the split's own motion in the generator's place: R-precision
and Diversity of real data are the ceiling and the spread to compare with, and FID of real against itself is 0.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np

from hiw.eval import metrics
from hiw.eval.checkpoint import LoadedEvaluator
from hiw.eval.data import EvalSet
from hiw.eval.generations import Generated, GenerationSet
from hiw.eval.metrics import MetricSettings
from hiw.eval.report import Scores, Value

TOP_K = 3


class Captions:
    """Text embeddings, each distinct caption encoded once however many replications draw it."""

    def __init__(self, evaluator: LoadedEvaluator):
        self.evaluator, self.cache = evaluator, {}

    def embed(self, captions: list[str]) -> np.ndarray:
        missing = sorted({c for c in captions if c not in self.cache})
        for caption, row in zip(missing, self.evaluator.embed_texts(missing)):
            self.cache[caption] = row
        return np.stack([self.cache[c] for c in captions])


def prompts(items: list[Generated], captions: dict[str, tuple[str, ...]], rng: np.random.Generator) -> list[str]:
    """Each item's text: its own, else one of its clip's captions drawn with ``rng``."""
    return [item.text if item.text is not None else str(rng.choice(captions[item.clip_id])) for item in items]


def first_samples(items: list[Generated]) -> tuple[list[int], dict[tuple, list[int]]]:
    """The index of one item per prompt (its lowest sample) for the paired metrics, and every item's by prompt."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        groups[(item.clip_id, item.text)].append(i)
    return [min(rows, key=lambda i: items[i].sample) for rows in groups.values()], groups


def paired(text: np.ndarray, motion: np.ndarray, rng: np.random.Generator, pool: int) -> dict[str, float]:
    text, motion = metrics.shuffled(rng, text, motion)
    top = metrics.r_precision(text, motion, pool, TOP_K)
    out = {f"r_precision_top{k + 1}": float(top[k]) for k in range(TOP_K)}
    return out | {"matching_score": metrics.matching_score(text, motion, pool), "mm_dist": metrics.mm_dist(text, motion)}


def summarise(runs: list[dict[str, float | None]]) -> dict[str, Value]:
    out = {}
    for name in runs[0]:
        values = [r[name] for r in runs]
        if values[0] is None:
            out[name] = Value(mean=None)
        else:
            mean, half = metrics.mean_interval(values)
            out[name] = Value(mean=mean, interval=half, replications=len(values))
    return out


def score_t2m(
    evaluator: LoadedEvaluator,
    real: EvalSet,
    generated: GenerationSet,
    settings: MetricSettings,
    seed: int,
    progress: Callable[[str], None] | None = None,
) -> Scores:
    say = progress or (lambda _: None)
    first, groups = first_samples(generated.items)
    firsts = [generated.items[i] for i in first]
    repeats = [len(rows) for rows in groups.values() if len(rows) > 1]
    settings.check(len(real.clips), len(firsts), min(repeats) if repeats else None)
    captions = {clip.clip_id: clip.captions for clip in real.clips}
    texts = Captions(evaluator)
    say(f"embedding {len(generated.items)} generated and {len(real.clips)} real motions")
    gen_all = evaluator.embed_motions([item.motion for item in generated.items])
    gen = gen_all[first]
    real_motion = evaluator.embed_motions([clip.motion for clip in real.clips])
    real_items = [Generated(clip.clip_id, None, 0) for clip in real.clips]
    fid, real_fid = metrics.fid(real_motion, gen), metrics.fid(real_motion, real_motion)
    ours, theirs = [], []
    for r in range(settings.replications):
        rng = np.random.default_rng([seed, r])
        row = paired(texts.embed(prompts(firsts, captions, rng)), gen, rng, settings.pool)
        row["fid"] = fid
        row["kid"] = metrics.kid(real_motion, gen, rng, settings.kid_subsets, settings.kid_subset_size)[0]
        row["diversity"] = metrics.diversity(gen, rng, settings.diversity_pairs)
        row["multimodality"] = _multimodality(gen_all, groups, rng, settings.mm_pairs) if repeats else None
        ours.append(row)
        gt = paired(texts.embed(prompts(real_items, captions, rng)), real_motion, rng, settings.pool)
        gt |= {"fid": real_fid, "kid": None, "diversity": metrics.diversity(real_motion, rng, settings.diversity_pairs)}
        theirs.append(gt | {"multimodality": None})
        if (r + 1) % 5 == 0 or r + 1 == settings.replications:
            say(f"replication {r + 1}/{settings.replications}")
    return Scores(pairs=len(firsts), metrics=summarise(ours), real=summarise(theirs))


def _multimodality(emb: np.ndarray, groups: dict[tuple, list[int]], rng: np.random.Generator, pairs: int) -> float:
    """Over the prompts generated more than once, each cut to the fewest repeats any of them has."""
    repeated = [rows for rows in groups.values() if len(rows) > 1]
    least = min(len(rows) for rows in repeated)
    return metrics.multimodality(np.stack([emb[rows[:least]] for rows in repeated]), rng, pairs)
