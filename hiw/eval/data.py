"""The clips an evaluator trains and scores on: each clip's motion with every caption it has.

Procedural clips have one label each. A built dataset's clips have all their captions that passed QA, of every
kind (narration, kinematic, pcot_summary, closed_vocab): the evaluator learns from all of them, and motion-to-text
scores use them all as references. A clip is set aside, and counted, when its motion is unusable (``nan``,
``too_short``, ``all_masked``, as for the tokenizer) or when no caption has a word in it (``no_caption``).

Motion goes to the evaluator as one 144-frame window: the first 144 frames in evaluation, a random 144-frame
crop in training (clips are rarely longer), z-scored with the data's statistics.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hiw.data.captions import captions_by_kind
from hiw.data.counts import kept_and_skipped
from hiw.data.sequences import MotionSequence, screen
from hiw.data.sources import DataSource
from hiw.data.stats import FeatureStats
from hiw.data.windows import WINDOW, crop
from hiw.eval.evaluator import DOWNSAMPLE
from hiw.eval.text import TextProcessor

MotionBatch = tuple[np.ndarray, np.ndarray, np.ndarray]  # features (B, window, 198), mask (B, window, 2), frames (B,)


@dataclass(frozen=True)
class EvalClip:
    clip_id: str
    motion: MotionSequence = field(repr=False)
    captions: tuple[str, ...]
    verbs: frozenset[str]  # lemmas of the verbs of all its captions: negatives are preferred from clips sharing none


@dataclass
class EvalSet:
    clips: list[EvalClip]
    skipped: Counter = field(default_factory=Counter)
    split: str | None = None

    def describe(self) -> str:
        return kept_and_skipped(len(self.clips), "clips", self.skipped)


def clip_captions(source: DataSource, clip_ids: Sequence[str]) -> dict[str, list[str]]:
    """Every QA-passed caption of the clips, in a stable order (kind, then caption id); procedural: the label."""
    if source.kind == "procedural":
        raise ValueError("procedural clips carry their label in MotionSequence.text")
    return {clip: [text for _, text in pairs] for clip, pairs in captions_by_kind(Path(source.root), clip_ids).items()}


def load_eval_set(source: DataSource, split: str | None, processor: TextProcessor) -> EvalSet:
    screened = screen(source.load(split), min_frames=DOWNSAMPLE)
    kept = screened.kept
    if source.kind == "procedural":
        captions = {seq.clip_id: [seq.text] for seq in kept}
    else:
        captions = clip_captions(source, [seq.clip_id for seq in kept])
    out = EvalSet([], Counter(screened.skipped), split)
    usable = {seq.clip_id: [c for c in captions.get(seq.clip_id, []) if processor.is_usable(c)] for seq in kept}
    verbs = processor.verbs([c for texts in usable.values() for c in texts])
    at = 0
    for seq in kept:
        texts = usable[seq.clip_id]
        clip_verbs = frozenset().union(*verbs[at : at + len(texts)])
        at += len(texts)
        if not texts:
            out.skipped["no_caption"] += 1
            continue
        out.clips.append(EvalClip(seq.clip_id, seq, tuple(texts), clip_verbs))
    return out


def motion_batch(
    sequences: Sequence[MotionSequence], stats: FeatureStats, rng: np.random.Generator | None = None, window: int = WINDOW
) -> MotionBatch:
    """One window per sequence: its first ``window`` frames, or a random crop when ``rng`` is given."""
    feats, masks, frames = [], [], []
    for seq in sequences:
        start = int(rng.integers(max(seq.n_frames - window, 0) + 1)) if rng is not None else 0
        f, m = crop(seq, start, window, stats)
        feats.append(f)
        masks.append(m)
        frames.append(min(seq.n_frames - start, window))
    return np.stack(feats), np.stack(masks), np.asarray(frames, np.int64)
