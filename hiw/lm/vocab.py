"""The motion vocabulary a SHIFT checkpoint adds to the language model (PAPER.md section 4, CLUTCH_CODE.md 2.2-2.3).

For K codes per codebook there are 2K + 3 tokens ``<motion_id_0>`` .. ``<motion_id_{2K+2}>``: trajectory codes
(0..K-1), pose codes offset by K (K..2K-1), then start, end and mask, as the authors lay them out. A motion is
start + its token stream + end; the stream follows the tokenizer's ``stream`` order (hiw: left-traj, left-pose,
right-traj, right-pose per 4-frame step). Both hands share the two code ranges.

Where a hand is missing at a step (``*_step_valid`` false), its slots carry the mask token instead of a code: the
model learns, and says, which hand is there. The authors' data has both hands everywhere (HaWoR infills), so their
mask token only ever stands for the hand a hand-to-hand task hides; here it means "no hand" in both uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PREFIX = "<motion_id_"


@dataclass(frozen=True)
class MotionVocab:
    codebook_size: int  # K: codes per codebook
    stream: tuple[str, ...]  # slot names of one step, e.g. ("left-traj", "left-pose", "right-traj", "right-pose")

    @property
    def size(self) -> int:
        return 2 * self.codebook_size + 3

    @property
    def start(self) -> int:
        return 2 * self.codebook_size

    @property
    def end(self) -> int:
        return 2 * self.codebook_size + 1

    @property
    def mask(self) -> int:
        return 2 * self.codebook_size + 2

    @property
    def width(self) -> int:
        """Tokens per step."""
        return len(self.stream)

    def tokens(self) -> list[str]:
        return [f"{PREFIX}{i}>" for i in range(self.size)]

    def offset(self, slot: int) -> int:
        """Where slot ``slot``'s codes start: pose slots use the upper range, every other slot the lower."""
        return self.codebook_size if self.stream[slot].endswith("pose") else 0

    def hand(self, slot: int) -> int:
        """0 (left) or 1 (right) for a per-hand slot; -1 for a slot that covers both hands (the ``single`` variant)."""
        name = self.stream[slot]
        return 0 if name.startswith("left-") else 1 if name.startswith("right-") else -1

    def encode(self, codes: np.ndarray, step_valid: np.ndarray | None = None) -> list[int]:
        """Codes (L, width) and per-hand step validity (L, 2) -> motion ids: start, the stream, end."""
        ids = codes.astype(np.int64) + np.array([self.offset(s) for s in range(self.width)])
        if step_valid is not None:
            for slot in range(self.width):
                if (hand := self.hand(slot)) >= 0:
                    ids[~step_valid[:, hand].astype(bool), slot] = self.mask
        return [self.start, *ids.reshape(-1).tolist(), self.end]

    def string(self, ids: list[int]) -> str:
        """Motion ids as the text the language model reads: ``<motion_id_8192><motion_id_17>...`` (no spaces)."""
        return "".join(f"{PREFIX}{i}>" for i in ids)

    def slot_range(self, slot: int) -> range:
        return range(self.offset(slot), self.offset(slot) + self.codebook_size)

    def describe(self) -> dict:
        return {"codebook_size": self.codebook_size, "stream": list(self.stream), "size": self.size}
