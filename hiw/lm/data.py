"""The clips the language model learns from: each clip's SHIFT codes, its captions by kind, and (for geometric
alignment) the normalised features those codes stand for.

Motion is the clip's first 144 frames (36 token steps, as in the paper and the evaluation suite), encoded by the
run's SHIFT checkpoint. A clip is set aside, and counted, when its motion is unusable (``nan``, ``too_short``,
``all_masked``, as for the tokenizer) or it has no caption (``no_caption``).

Captions are drawn per sample as the paper does: ``closed_vocab`` or ``pcot_summary`` with p = 0.5 each (whichever
the clip has), else ``narration``, else ``kinematic``, else any other kind. Procedural clips have one label.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hiw.data.captions import FALLBACK, PREFERRED, captions_by_kind
from hiw.data.counts import kept_and_skipped
from hiw.data.sequences import screen
from hiw.data.sources import DataSource
from hiw.data.windows import WINDOW, crop
from hiw.models import codec
from hiw.models.shift_checkpoint import LoadedTokenizer


@dataclass(frozen=True)
class LMClip:
    clip_id: str
    captions: dict[str, tuple[str, ...]]  # kind -> texts
    codes: np.ndarray = field(repr=False)  # (L, len(stream)) int64, L = ceil(frames / step) <= 36
    step_valid: np.ndarray = field(repr=False)  # (L, 2) bool: left, right hand present at each step
    features: np.ndarray = field(repr=False)  # (L * step, 198) normalised, zero past the clip's end
    mask: np.ndarray = field(repr=False)  # (L * step, 2) per-hand frame validity
    rest: np.ndarray = field(repr=False)  # (2, 21, 3) rest skeletons, for the keypoint loss
    fps: float = 15.0

    def all_captions(self) -> list[str]:
        return [t for texts in self.captions.values() for t in texts]


@dataclass
class LMSet:
    clips: list[LMClip]
    skipped: Counter = field(default_factory=Counter)

    def describe(self) -> str:
        return kept_and_skipped(len(self.clips), "clips", self.skipped)


def sample_caption(captions: dict[str, tuple[str, ...]], rng: np.random.Generator) -> str:
    preferred = [k for k in PREFERRED if captions.get(k)]
    if preferred:
        kind = preferred[int(rng.integers(len(preferred)))]
    else:
        kind = next(k for k in (*FALLBACK, *sorted(captions)) if captions.get(k))
    texts = captions[kind]
    return texts[int(rng.integers(len(texts)))]


def load_lm_set(source: DataSource, split: str | None, shift: LoadedTokenizer, window: int = WINDOW) -> LMSet:
    step = shift.model.step
    screened = screen(source.load(split), min_frames=step)
    out = LMSet([], Counter(screened.skipped))
    if source.kind == "procedural":
        captions = {seq.clip_id: _by_kind([("label", seq.text)]) for seq in screened.kept}
    else:
        pairs = captions_by_kind(Path(source.root), [seq.clip_id for seq in screened.kept])
        captions = {clip: _by_kind(p) for clip, p in pairs.items()}
    kept = [seq for seq in screened.kept if captions.get(seq.clip_id)]
    out.skipped["no_caption"] += len(screened.kept) - len(kept)
    if not out.skipped["no_caption"]:
        del out.skipped["no_caption"]
    encoded = codec.encode(shift.model, shift.stats, kept, window)
    max_steps = window // step
    for seq, (codes, steps) in zip(kept, encoded):
        n = min(len(codes), max_steps)
        feats, mask = crop(seq, 0, n * step, shift.stats)
        out.clips.append(LMClip(seq.clip_id, captions[seq.clip_id], codes[:n], steps[:n], feats, mask, seq.rest, seq.fps))
    return out


def _by_kind(pairs: list[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
    kinds: dict[str, list[str]] = {}
    for kind, text in pairs:
        if text and text.strip():
            kinds.setdefault(kind, []).append(text.strip())
    return {k: tuple(v) for k, v in kinds.items()}
