"""From generated token ids back to SHIFT codes: the repair rules for malformed output, and the constraint that
keeps sampling well formed in the first place.

``allowed_tokens`` (used by ``generate`` unless ``--free``) lets the decoder emit only a start token, then at each
position its slot's code range or the mask token, an end token only at a step boundary, then the end of sequence.
A constrained stream needs no repair. Free sampling (and any outside model) can produce anything, so
``read_motion`` repairs it by these rules, each counted:

- ``no_start``: no start token; the stream begins at the first motion token.
- ``no_end``: no end token after the start; the stream runs to the end of the output.
- ``text_in_motion``: non-motion tokens (text, a second start) inside the stream are dropped.
- ``wrong_range``: a code from the other codebook's range in a slot (a pose code where a trajectory code belongs)
  is replaced by that slot's code at the previous step (at the first step, the next in-range one); with no
  in-range code in that slot at all, the slot is masked.
- ``partial_step``: tokens after the last whole step are dropped.
- ``empty``: no whole step, or no step with a hand; nothing is made (the caller counts it and writes no row).

The authors instead take the text between the last start and the first end, clamp wrong-range codes into range,
and turn an empty stream into zero motion (CLUTCH_CODE.md 2.8).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hiw.lm.vocab import MotionVocab


@dataclass
class MotionCodes:
    codes: np.ndarray  # (L, width) codes within their codebook; 0 where masked
    step_valid: np.ndarray  # (L, 2) bool: a hand is present at a step when all its slots carry codes


def read_motion(ids: Sequence[int], vocab: MotionVocab, base: int, counts: Counter) -> MotionCodes | None:
    """Generated token ids -> codes, repaired by the module's rules (counted in ``counts``); None when empty."""
    motion = [i - base if base <= i < base + vocab.size else -1 for i in ids]
    if vocab.start in motion:
        begin = motion.index(vocab.start) + 1
    else:
        counts["no_start"] += 1
        begin = next((k for k, m in enumerate(motion) if m >= 0), len(motion))
    if vocab.end in motion[begin:]:
        stop = begin + motion[begin:].index(vocab.end)
    else:
        counts["no_end"] += 1
        stop = len(motion)
    body = [m for m in motion[begin:stop] if 0 <= m < 2 * vocab.codebook_size or m == vocab.mask]
    if len(body) < stop - begin:
        counts["text_in_motion"] += 1
    whole = len(body) // vocab.width * vocab.width
    if whole < len(body):
        counts["partial_step"] += 1
    if not whole:
        counts["empty"] += 1
        return None
    grid = np.asarray(body[:whole]).reshape(-1, vocab.width)
    codes = np.zeros(grid.shape, np.int64)
    present = np.ones(grid.shape, bool)
    for slot in range(vocab.width):
        in_range = np.isin(grid[:, slot], vocab.slot_range(slot))
        masked = grid[:, slot] == vocab.mask
        wrong = ~in_range & ~masked
        column = grid[:, slot] - vocab.offset(slot)
        if wrong.any():
            counts["wrong_range"] += int(wrong.sum())
            good = np.flatnonzero(in_range)
            for row in np.flatnonzero(wrong):
                earlier, later = good[good < row], good[good > row]
                source = earlier[-1] if len(earlier) else later[0] if len(later) else None
                if source is None:
                    masked[row] = True
                else:
                    column[row] = column[source]
        codes[:, slot] = np.where(masked, 0, column)
        present[:, slot] = ~masked
    step_valid = np.zeros((len(grid), 2), bool)
    for hand in (0, 1):
        slots = [s for s in range(vocab.width) if vocab.hand(s) in (hand, -1)]
        step_valid[:, hand] = present[:, slots].all(axis=1)
    if not step_valid.any():
        counts["empty"] += 1
        return None
    return MotionCodes(codes, step_valid)


def allowed_tokens(vocab: MotionVocab, base: int, eos: int, pad: int, max_steps: int):
    """``prefix_allowed_tokens_fn`` for transformers' ``generate``: well-formed motion streams only."""
    slots = [list(range(base + r.start, base + r.stop)) + [base + vocab.mask] for r in map(vocab.slot_range, range(vocab.width))]
    start, end = base + vocab.start, base + vocab.end

    def allowed(_: int, prefix) -> list[int]:
        generated = prefix.tolist()[1:]  # after the decoder's start token
        if not generated:
            return [start]
        if generated[-1] in (eos, pad):
            return [pad]
        if generated[-1] == end:
            return [eos]
        made = len(generated) - 1  # motion tokens after the start
        if made == max_steps * vocab.width:
            return [end]
        options = slots[made % vocab.width]
        return options + [end] if made and made % vocab.width == 0 else options

    return allowed
