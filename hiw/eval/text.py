"""Captions -> words, part-of-speech categories and word vectors: the input of the evaluator's text encoder.

The TM2T-style evaluator encodes a caption with a BiGRU over one word vector plus a 15-way part-of-speech
one-hot per word. This module reproduces the authors' text pipeline (HumanML3D's ``process_text`` and
``WordVectorizer``, copied into CLUTCH) so an evaluator sees captions the way theirs does:

- words, tags and lemmas as ``hiw.annotators.pos.kept_words`` makes them (spaCy's en_core_web_sm, or the rule
  tagger without it): alphabetic tokens, NOUN/VERB as lemmas, lower-cased (unlike the authors');
- the category is the tagger's universal POS if it is one of the nine below, else OTHER; a word in one of
  HumanML3D's VIP lists (plus hand parts in Body) overrides it (in order: Loc, Body, Obj, Act, Desc). An
  out-of-vocabulary word gets the ``unk`` vector and OTHER; ``Token.pos`` holds the category before that check
  (with MiniLM vectors no word is out of vocabulary);
- ``["sos"] + words[:40] + ["eos"] + ["unk"] * pad``: 42 rows; the length counts sos and eos.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hiw.annotators.pos import Tagger, kept_words, make_tagger
from hiw.eval.word_vectors import WordVectors, load_word_vectors
from hiw.schemas.ids import stable_hash

POS_TAGS = (
    "VERB", "NOUN", "DET", "ADP", "NUM", "AUX", "PRON", "ADJ", "ADV",
    "Loc_VIP", "Body_VIP", "Obj_VIP", "Act_VIP", "Desc_VIP", "OTHER",
)  # fmt: skip
MAX_WORDS = 40
SEQ_LEN = MAX_WORDS + 2  # sos + words + eos, padded with unk
PROCESSING_VERSION = "text-v1"  # bump when tokenising, categories or padding change

_POS_INDEX = {tag: i for i, tag in enumerate(POS_TAGS)}
_OTHER = _POS_INDEX["OTHER"]
_ONE_HOT = np.eye(len(POS_TAGS), dtype=np.float32)
_SOS, _EOS, _UNK = 0, 1, 2  # rows of IndexedTexts.vectors
_CACHE_SIZE = 100_000

# HumanML3D's utils/word_vectorizer.py (EricGuo5513/HumanML3D, text-to-motion, momask-codes), verbatim.
_VIP: dict[str, tuple[str, ...]] = {
    "Loc_VIP": (
        "left", "right", "clockwise", "counterclockwise", "anticlockwise", "forward", "back", "backward",
        "up", "down", "straight", "curve",
    ),
    "Body_VIP": ("arm", "chin", "foot", "feet", "face", "hand", "mouth", "leg", "waist", "eye", "knee", "shoulder", "thigh"),
    "Obj_VIP": ("stair", "dumbbell", "chair", "window", "floor", "car", "ball", "handrail", "baseball", "basketball"),
    "Act_VIP": (
        "walk", "run", "swing", "pick", "bring", "kick", "put", "squat", "throw", "hop", "dance", "jump", "turn",
        "stumble", "dance", "stop", "sit", "lift", "lower", "raise", "wash", "stand", "kneel", "stroll",
        "rub", "bend", "balance", "flap", "jog", "shuffle", "lean", "rotate", "spin", "spread", "climb",
    ),
    "Desc_VIP": (
        "slowly", "carefully", "fast", "careful", "slow", "quickly", "happy", "angry", "sad", "happily",
        "angrily", "sadly",
    ),
}  # fmt: skip
# Hand captions name these parts of the body more than any other; HumanML3D's list (written for whole-body
# motion) would leave them NOUN, indistinguishable from the objects held. Ambiguous words ("index", "ring",
# "middle") stay out, unlike GigaHands' hand version of the list.
_HAND_BODY = ("finger", "fingertip", "thumb", "pinky", "palm", "knuckle", "wrist", "forearm", "elbow")
_VIP["Body_VIP"] = _VIP["Body_VIP"] + _HAND_BODY
_VIP_OF: dict[str, str] = {}
for _category, _words in _VIP.items():
    for _word in _words:
        _VIP_OF.setdefault(_word, _category)  # the first list wins, as in the authors' loop


class EmptyCaption(ValueError):
    """A caption with no alphabetic word: nothing to encode."""


@dataclass(frozen=True)
class Token:
    """``word``: what is looked up (lemma for NOUN/VERB); ``pos``: one of ``POS_TAGS``; all lower-case."""

    word: str
    pos: str
    lemma: str


@dataclass
class TextBatch:
    """The text encoder's input: ``word_embs (B, 42, dim)``, ``pos_onehot (B, 42, 15)`` float32, ``lengths (B,)`` int64."""

    word_embs: np.ndarray
    pos_onehot: np.ndarray
    lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.lengths)


@dataclass
class IndexedTexts:
    """Captions as row ids into one table of distinct word vectors: small enough to keep a training set in memory.

    ``vectors (V, dim)`` float32 (rows 0, 1, 2 = sos, eos, unk), ``word_ids (N, 42)`` int32, ``pos_ids (N, 42)``
    int8, ``lengths (N,)`` int64.
    """

    vectors: np.ndarray
    word_ids: np.ndarray
    pos_ids: np.ndarray
    lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.lengths)

    def gather(self, rows: np.ndarray | Sequence[int]) -> TextBatch:
        """The encoder input of captions ``rows`` (a batch of a training epoch)."""
        rows = np.asarray(rows, dtype=np.int64)
        return TextBatch(
            word_embs=self.vectors[self.word_ids[rows]],
            pos_onehot=_ONE_HOT[self.pos_ids[rows]],
            lengths=self.lengths[rows].copy(),
        )


def _token(word: str, upos: str, lemma: str) -> Token:
    """A kept word (``hiw.annotators.pos.kept_words``) in one of the 15 categories: a VIP list's, else its POS's."""
    return Token(word, _VIP_OF.get(word) or (upos if upos in _POS_INDEX else "OTHER"), lemma)


class _LRU:
    """A bounded, thread-safe dict: the least recently used entry goes first."""

    def __init__(self, size: int):
        self._size = size
        self._items: OrderedDict[str, tuple[Token, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[Token, ...] | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: str, value: tuple[Token, ...]) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


def _check_captions(captions: Sequence[str]) -> None:
    if isinstance(captions, str):
        raise TypeError("expected a list of captions, got one string")
    for caption in captions:
        if not isinstance(caption, str):
            raise TypeError(f"a caption must be a string, got {type(caption).__name__}")


class TextProcessor:
    """Captions -> tokens, verbs, and the evaluator's padded input, with ``vectors`` and ``tagger``."""

    def __init__(self, vectors: WordVectors, tagger: Tagger, cache_size: int = _CACHE_SIZE):
        self.vectors = vectors
        self.tagger = tagger
        self._cache = _LRU(cache_size)
        # The VIP lists are hashed too, so editing them can never leave an old id on new inputs.
        self.id = "tp_" + stable_hash(
            vectors.id, tagger.name, tagger.version, MAX_WORDS, PROCESSING_VERSION, sorted(_VIP_OF.items())
        )

    def describe(self) -> dict:
        """What made the text input, for a checkpoint's lineage JSON."""
        return {
            "id": self.id,
            "processing_version": PROCESSING_VERSION,
            "max_words": MAX_WORDS,
            "vectors": {"name": self.vectors.name, "id": self.vectors.id, "dim": self.vectors.dim},
            "tagger": {"name": self.tagger.name, "version": self.tagger.version},
        }

    def tokens(self, captions: Sequence[str]) -> list[list[Token]]:
        """Each caption's kept words, in order (an empty list for a caption with none)."""
        _check_captions(captions)
        found = {c: self._cache.get(c) for c in dict.fromkeys(captions)}
        missing = [c for c, toks in found.items() if toks is None]
        if missing:
            for caption, words in zip(missing, kept_words(self.tagger, missing), strict=True):
                toks = tuple(_token(*word) for word in words)
                self._cache.put(caption, toks)
                found[caption] = toks
        return [list(found[c]) for c in captions]

    def is_usable(self, caption: str) -> bool:
        """Whether the caption has a word to encode (``encode`` raises ``EmptyCaption`` otherwise)."""
        return bool(self.tokens([caption])[0])

    def verbs(self, captions: Sequence[str]) -> list[frozenset[str]]:
        """Lemmas tagged VERB or in the action list, per caption: contrastive negatives should differ in them."""
        return [frozenset(t.lemma for t in toks if t.pos in ("VERB", "Act_VIP")) for toks in self.tokens(captions)]

    def index(self, captions: Sequence[str]) -> IndexedTexts:
        """All captions as ids into one table of distinct word vectors; raises ``EmptyCaption`` on a caption with no word."""
        n = len(captions)
        word_ids = np.full((n, SEQ_LEN), _UNK, dtype=np.int32)
        pos_ids = np.full((n, SEQ_LEN), _OTHER, dtype=np.int8)
        lengths = np.zeros(n, dtype=np.int64)
        table = [self.vectors.special(name) for name in ("sos", "eos", "unk")]
        rows: dict[str, int | None] = {}  # word -> row in table, None when out of vocabulary
        for i, (caption, toks) in enumerate(zip(captions, self.tokens(captions))):
            if not toks:
                raise EmptyCaption(f"caption {caption!r} has no word to encode (no alphabetic token)")
            toks = toks[:MAX_WORDS]
            word_ids[i, 0] = _SOS
            for j, tok in enumerate(toks, start=1):
                if tok.word not in rows:
                    vector = self.vectors.vector(tok.word)
                    rows[tok.word] = None if vector is None else len(table)
                    if vector is not None:
                        table.append(vector)
                row = rows[tok.word]
                word_ids[i, j] = _UNK if row is None else row
                pos_ids[i, j] = _OTHER if row is None else _POS_INDEX[tok.pos]
            word_ids[i, len(toks) + 1] = _EOS
            lengths[i] = len(toks) + 2
        vectors = np.stack(table).astype(np.float32, copy=False)
        return IndexedTexts(vectors=vectors, word_ids=word_ids, pos_ids=pos_ids, lengths=lengths)

    def encode(self, captions: Sequence[str]) -> TextBatch:
        """The evaluator's input for ``captions``; raises ``EmptyCaption`` on a caption with no word."""
        indexed = self.index(captions)
        return indexed.gather(np.arange(len(indexed)))


def load_text_processor(word_vectors: str | Path | None = None, tagger: str = "auto") -> TextProcessor:
    """A processor with ``load_word_vectors(word_vectors)`` and ``make_tagger(tagger)``."""
    return TextProcessor(load_word_vectors(word_vectors), make_tagger(tagger))
