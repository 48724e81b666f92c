"""Motion-to-text scoring: generated captions against the clips' real motion and every real caption they have.

R-precision and the matching distances put the generated caption's embedding against the real motion's, per
replication (a shuffle before the pools), beside a real caption of the clip drawn per replication (the ceiling).
BLEU-1/4, ROUGE-L, CIDEr and BERTScore (``hiw.eval.nlg``) are computed once: they draw nothing. Every caption of a
clip is a reference, as the authors' validation does; their test script keeps one random caption per clip.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hiw.eval import nlg
from hiw.eval.checkpoint import LoadedEvaluator
from hiw.eval.data import EvalSet
from hiw.eval.generations import Generated, GenerationSet
from hiw.eval.metrics import MetricSettings
from hiw.eval.report import Scores, Value
from hiw.eval.t2m import Captions, first_samples, paired, prompts, summarise


def score_m2t(
    evaluator: LoadedEvaluator,
    real: EvalSet,
    generated: GenerationSet,
    settings: MetricSettings,
    seed: int,
    progress: Callable[[str], None] | None = None,
    bertscore: bool = True,
) -> Scores:
    say = progress or (lambda _: None)
    first, _ = first_samples(generated.items)
    items = [generated.items[i] for i in first]
    settings.check(len(real.clips), len(items), motion=False)
    clips = {clip.clip_id: clip for clip in real.clips}
    texts = Captions(evaluator)
    say(f"embedding {len(items)} generated captions and the motion of their clips")
    motion = evaluator.embed_motions([clips[item.clip_id].motion for item in items])
    predicted = texts.embed([item.text for item in items])
    captions = {clip_id: clip.captions for clip_id, clip in clips.items()}
    real_items = [Generated(item.clip_id, None, 0) for item in items]
    ours, theirs = [], []
    for r in range(settings.replications):
        rng = np.random.default_rng([seed, r])
        ours.append(paired(predicted, motion, rng, settings.pool))
        theirs.append(paired(texts.embed(prompts(real_items, captions, rng)), motion, rng, settings.pool))
    say("scoring the captions against every reference (BLEU, ROUGE-L, CIDEr" + (", BERTScore)" if bertscore else ")"))
    scores = nlg.nlg_scores([item.text for item in items], [list(captions[item.clip_id]) for item in items], bertscore)
    return Scores(
        pairs=len(items),
        metrics=summarise(ours) | {name: Value(mean=value) for name, value in scores.items()},
        real=summarise(theirs),
    )
