"""Training samples of the language model: template tasks and T5 span corruption, tokenised into batches.

Tasks (``hiw.lm.tasks``): ``t2m`` caption -> motion, ``m2t`` motion -> caption, ``h2h`` one hand's motion from the
other's (the target hand and the source hand are drawn once per sample, so input and output always agree; the
authors draw them separately), ``t2t`` caption -> another caption of the clip.

Span corruption follows T5: about 15% of the tokens, in spans of mean length 3, are replaced in the input by
sentinels ``<extra_id_k>``; the target is each sentinel followed by the tokens it hid. ``text`` corrupts a caption,
``motion`` a motion stream (start, codes, end).

Inputs and targets longer than ``max_length`` are cut there and counted (``truncated_input``, ``truncated_target``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch

from hiw.lm.data import LMClip, sample_caption
from hiw.lm.tasks import Templates
from hiw.lm.vocab import MotionVocab

HANDS = ("left", "right")
IGNORE = -100  # label positions the loss skips


def noise_mask(length: int, rng: np.random.Generator, density: float = 0.15, mean_span: float = 3.0) -> np.ndarray:
    """Which of ``length`` tokens to hide: about ``density`` of them, in spans of mean length ``mean_span``,
    alternating with kept spans and starting with a kept one (T5's ``random_spans_noise_mask``)."""
    mask = np.zeros(length, bool)
    if length < 2:
        return mask
    n_noise = min(max(round(length * density), 1), length - 1)
    n_spans = max(min(round(n_noise / mean_span), n_noise, length - n_noise), 1)

    def segments(items: int) -> np.ndarray:
        cuts = np.sort(rng.choice(np.arange(1, items), n_spans - 1, replace=False)) if n_spans > 1 else np.array([], int)
        return np.diff(np.concatenate([[0], cuts, [items]]))

    at = 0
    for keep, hide in zip(segments(length - n_noise), segments(n_noise)):
        at += keep
        mask[at : at + hide] = True
        at += hide
    return mask


def span_corrupt(ids: list[int], sentinels: list[int], rng: np.random.Generator) -> tuple[list[int], list[int]]:
    """(input ids, target ids) without the end-of-sequence token."""
    mask = noise_mask(len(ids), rng)
    source, target, k = [], [], 0
    for i, token in enumerate(ids):
        if mask[i]:
            if i == 0 or not mask[i - 1]:
                source.append(sentinels[k])
                target.append(sentinels[k])
                k += 1
            target.append(token)
        else:
            source.append(token)
    return source, target


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, S)
    attention_mask: torch.Tensor  # (B, S)
    labels: torch.Tensor  # (B, T), IGNORE at padding
    aligned: list[int] = field(default_factory=list)  # rows whose target is a whole t2m motion (geometric alignment)
    clips: list[LMClip] = field(default_factory=list)  # each row's clip

    def to(self, device: torch.device) -> Batch:
        return Batch(self.input_ids.to(device), self.attention_mask.to(device), self.labels.to(device), self.aligned, self.clips)


class SampleMaker:
    """Turns clips into tokenised samples for one template set."""

    def __init__(
        self, tokenizer, vocab: MotionVocab, motion_base: int, templates: Templates, sentinels: list[int], max_length: int
    ):
        self.tokenizer, self.vocab, self.base, self.templates = tokenizer, vocab, motion_base, templates
        self.sentinels, self.max_length = sentinels, max_length
        self.counts: Counter = Counter()  # truncations, and tasks a clip could not serve (h2h with one hand)

    def motion(self, clip: LMClip, hand: int | None = None, masked: int | None = None) -> str:
        """The clip's motion string: both hands, one ``hand``'s slots only, or both with ``masked``'s slots masked."""
        valid = clip.step_valid.copy()
        if masked is not None:
            valid[:, masked] = False
        ids = self.vocab.encode(clip.codes, valid)
        if hand is not None:
            slots = [s for s in range(self.vocab.width) if self.vocab.hand(s) == hand]
            body = np.asarray(ids[1:-1]).reshape(-1, self.vocab.width)[:, slots].reshape(-1).tolist()
            ids = [self.vocab.start, *body, self.vocab.end]
        return self.vocab.string(ids)

    def supervised(self, clip: LMClip, task: str, rng: np.random.Generator) -> tuple[str, str, str]:
        """(task actually used, input text, target text); h2h falls back to t2m for a clip without both hands."""
        caption = sample_caption(clip.captions, rng)
        values = {"caption": caption}
        both = clip.step_valid.all(axis=1).any()
        if task == "h2h" and (not both or self.vocab.hand(0) < 0):
            self.counts["h2h_needs_both_hands"] += 1
            task = "t2m"
        if task in ("t2m", "m2t"):
            values["motion"] = self.motion(clip)
        elif task == "h2h":
            src = int(rng.integers(2))
            trg = 1 - src
            values |= {
                "src_hand": HANDS[src],
                "trg_hand": HANDS[trg],
                "src_motion": self.motion(clip, hand=src),
                "trg_motion": self.motion(clip, hand=trg),
                "masked_motion": self.motion(clip, masked=trg),
            }
        elif task == "t2t":
            others = [c for c in clip.all_captions() if c != caption] or [caption]
            values["other_caption"] = others[int(rng.integers(len(others)))]
        source, target = self.templates.render(task, rng, values)
        return task, source, target

    def encode(self, texts: list[str], what: str) -> list[list[int]]:
        """Token ids with the end token, cut at ``max_length`` (counted)."""
        out = []
        for ids in self.tokenizer(texts, add_special_tokens=True).input_ids:
            if len(ids) > self.max_length:
                self.counts[f"truncated_{what}"] += 1
                ids = ids[: self.max_length - 1] + [self.tokenizer.eos_token_id]
            out.append(ids)
        return out

    def corrupted(self, clip: LMClip, mode: str, rng: np.random.Generator) -> tuple[list[int], list[int]]:
        if mode == "text":
            ids = self.tokenizer(sample_caption(clip.captions, rng), add_special_tokens=False).input_ids
        else:
            ids = [self.base + i for i in self.vocab.encode(clip.codes, clip.step_valid)]
        ids = ids[: self.max_length - 1]
        source, target = span_corrupt(ids, self.sentinels, rng)
        eos = self.tokenizer.eos_token_id
        return source + [eos], target[: self.max_length - 1] + [eos]

    def batch(self, clips: list[LMClip], mode: str, tasks: list[str], rng: np.random.Generator) -> Batch:
        """``mode`` text/motion (span corruption) or supervised (one task per clip from ``tasks``)."""
        aligned = []
        if mode == "supervised":
            sources, targets = [], []
            for row, (clip, task) in enumerate(zip(clips, tasks)):
                used, source, target = self.supervised(clip, task, rng)
                sources.append(source)
                targets.append(target)
                if used == "t2m":
                    aligned.append(row)
            source_ids, target_ids = self.encode(sources, "input"), self.encode(targets, "target")
        else:
            pairs = [self.corrupted(clip, mode, rng) for clip in clips]
            source_ids, target_ids = [p[0] for p in pairs], [p[1] for p in pairs]
        return Batch(*pad(source_ids, self.tokenizer.pad_token_id), pad(target_ids, IGNORE)[0], aligned, list(clips))


def pad(rows: list[list[int]], value: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (B, longest) ids and the attention mask."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), value, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, mask
