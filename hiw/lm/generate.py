"""Text-to-motion and motion-to-text with a trained language model.

Motion: the phase's first t2m template around the caption, sampled (top-k 50, temperature 1, as the authors'
decoding) under the well-formedness constraint of ``hiw.lm.decode`` (``free=True`` drops it and relies on the
repair rules), then SHIFT-decoded to the ``motion`` table's parameters. Captions: the first m2t template around the
clip's motion stream, greedy, motion tokens suppressed, at most ``CAPTION_TOKENS`` new tokens (the authors' 40).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import torch

from hiw.data.sequences import MotionSequence
from hiw.data.windows import WINDOW
from hiw.lm.checkpoint import LoadedLM
from hiw.lm.data import LMClip
from hiw.lm.decode import MotionCodes, allowed_tokens, read_motion
from hiw.lm.samples import SampleMaker
from hiw.models import codec
from hiw.motion.features import HAND_FEATURES

TOP_K = 50
CAPTION_TOKENS = 40
PROMPTS_PER_BATCH = 16


def _maker(lm: LoadedLM) -> SampleMaker:
    return SampleMaker(lm.tokenizer, lm.vocab, lm.motion_base, lm.templates, [], lm.max_length)


def _encode(lm: LoadedLM, texts: list[str], counts: Counter) -> dict[str, torch.Tensor]:
    maker = _maker(lm)
    ids = maker.encode(texts, "input")
    counts.update(maker.counts)
    width = max(len(i) for i in ids)
    device = next(lm.model.parameters()).device
    input_ids = torch.full((len(ids), width), lm.tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for row, i in enumerate(ids):
        input_ids[row, : len(i)] = torch.tensor(i)
        mask[row, : len(i)] = 1
    return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device)}


@torch.no_grad()
def generate_motion(
    lm: LoadedLM,
    captions: Sequence[str],
    n: int,
    seed: int,
    free: bool = False,
    counts: Counter | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[list[MotionSequence | None]]:
    """``n`` motions per caption (None where the output was empty after repair, counted as ``empty``)."""
    counts = counts if counts is not None else Counter()
    torch.manual_seed(seed)
    # the window the model learned (36 steps), and what fits beside start, end and </s>
    max_steps = min(WINDOW // lm.shift.model.step, (lm.max_length - 3) // lm.vocab.width)
    constraint = (
        None
        if free
        else allowed_tokens(lm.vocab, lm.motion_base, lm.tokenizer.eos_token_id, lm.tokenizer.pad_token_id, max_steps)
    )
    out: list[list[MotionSequence | None]] = []
    for at in range(0, len(captions), PROMPTS_PER_BATCH):
        chunk = list(captions[at : at + PROMPTS_PER_BATCH])
        prompts = [lm.templates.prompt("t2m", {"caption": c}) for c in chunk]
        ids = lm.model.generate(
            **_encode(lm, prompts, counts),
            do_sample=True,
            top_k=TOP_K,
            temperature=1.0,
            max_length=lm.max_length,
            num_return_sequences=n,
            prefix_allowed_tokens_fn=constraint,
        )
        codes = [read_motion(row.tolist(), lm.vocab, lm.motion_base, counts) for row in ids]
        motions = _to_motion(lm, codes)
        out.extend(motions[i * n : (i + 1) * n] for i in range(len(chunk)))
        if progress:
            progress(len(out))
    return out


def _to_motion(lm: LoadedLM, codes: list[MotionCodes | None]) -> list[MotionSequence | None]:
    step = lm.shift.model.step
    made = [c for c in codes if c is not None]
    features = iter(codec.decode(lm.shift.model, lm.shift.stats, [c.codes for c in made], [len(c.codes) * step for c in made]))
    out = []
    for c in codes:
        if c is None:
            out.append(None)
            continue
        mask = np.repeat(c.step_valid, step, axis=0)
        feats = next(features) * np.repeat(mask, HAND_FEATURES, axis=1)  # zero where a hand is absent
        out.append(
            MotionSequence("generated", feats.astype(np.float32), mask, np.zeros((2, 21, 3), np.float32), np.zeros(3, np.float32))
        )
    return out


@torch.no_grad()
def generate_captions(lm: LoadedLM, clips: Sequence[LMClip], counts: Counter | None = None) -> list[str]:
    counts = counts if counts is not None else Counter()
    maker = _maker(lm)
    motion_ids = list(range(lm.motion_base, lm.motion_base + lm.vocab.size))
    out = []
    for at in range(0, len(clips), PROMPTS_PER_BATCH):
        chunk = clips[at : at + PROMPTS_PER_BATCH]
        prompts = [lm.templates.prompt("m2t", {"motion": maker.motion(c)}) for c in chunk]
        ids = lm.model.generate(
            **_encode(lm, prompts, counts), do_sample=False, max_new_tokens=CAPTION_TOKENS, suppress_tokens=motion_ids
        )
        out.extend(t.strip() for t in lm.tokenizer.batch_decode(ids, skip_special_tokens=True))
    counts["empty_caption"] += sum(1 for t in out if not t)
    return out
