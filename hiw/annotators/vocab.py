"""A closed vocabulary of verbs and objects, parsed from a corpus's narrations and clustered.

The ``closed_vocab`` caption may only use these words. Narrations are Ego4D style
("#C C picks up a knife from the table"); each is parsed without a POS tagger by these rules:

- every ``#tag`` is removed ("#C", "#O", "#unsure"), then the actor at the start: a single-letter
  id ("C", "X") optionally after a person noun ("a man X", "the woman Y", "person");
- only the first clause counts: it ends at punctuation, at "then"/"while"/"as"/"but"/..., and at
  "and"/"or" unless a determiner follows ("opens the fridge and takes..." stops at "and",
  "picks a knife and a fork" goes on). "a knife and fork" therefore loses "fork": a missed object
  is better than a verb taken for one;
- the first word is the verb, lemmatised with simplemma ("cuts" -> "cut"). A particle (up, down,
  out, off, on, in, away, back, over, around) right after it, or ending the clause ("puts the
  knife down", "picks it up"), joins it: "pick up", "put down". So "sits on the chair" gives
  "sit on": without a tagger a particle and a preposition look alike;
- the rest is split into chunks at prepositions and conjunctions; each chunk's head is its last
  word once determiners, pronouns, numbers, single letters and a few adverbs are dropped
  ("the red onion" -> onion, "the cup on the table" -> cup, table). Measure and part words are
  never heads, so the noun after "of" stands ("a piece of cloth" -> cloth, "the top of the pot"
  -> pot, "into small pieces" -> nothing), while other "of" phrases keep both ("the lid of the
  pot" -> lid, pot);
- objects are lemmatised to the singular; everything is lowercase. No verb ("#unsure", an
  empty line) gives verb None and no objects.

Synonyms are merged by embedding each lemma (verbs and objects separately) with MiniLM and cutting
an average-linkage tree on cosine distance at ``1 - similarity``; a cluster's canonical word is
its most frequent member. The default 0.75 was chosen on real word pairs (cosine similarity of the
bare lemmas; templates such as "to cut" or "a person cuts something" separated them no better):
MiniLM puts co-hyponyms and antonyms about as close as synonyms, so only a strict
cut avoids false merges, which would rewrite one action or object as another, while a missed
synonym merely leaves two words in the vocabulary. Merged at 0.75: turn on/switch on 0.81,
fridge/refrigerator 0.96, phone/cellphone 0.85, knife/blade 0.80. Kept apart: turn on/turn off
0.747 (also forced apart: same verb, other particle), cabinet/cupboard 0.735, hand/finger 0.732,
screw/screwdriver 0.732, wash/rinse 0.727, dough/bread 0.726, cut/slice 0.713, cup/mug 0.707,
push/pull 0.67, open/close 0.60, onion/knife 0.45, lift/pick up 0.40, pick up/put down 0.37,
cut/wash 0.28.
"""

from __future__ import annotations

import csv
import json
import os
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import simplemma
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist

from hiw.annotators.embed import Embedder
from hiw.errors import ConfigError
from hiw.schemas.ids import stable_hash

VOCAB_VERSION = "vocab-v1"  # bump when parsing/clustering rules change
DEFAULT_SIMILARITY = 0.75

_TAG = re.compile(r"#\w+")
_TOKEN = re.compile(r"[a-z0-9]+(?:['’-][a-z0-9]+)*|[,;:.!?]")
_PERSON = "man|woman|person|lady|boy|girl|child|kid|guy|someone|somebody"
# "a" and "i" are words, never actor ids.
_ACTOR = re.compile(rf"^\s*(?:(?:(?:a|an|the)\s+)?(?:{_PERSON})\b\s*)?(?:[b-hj-z]\b\s*)?")
_PARTICLES = frozenset("up down out off on in away back over around".split())
_CLAUSE_END = frozenset(", ; : . ! ? then while as but because so before after when until whilst whereas if".split())
_LIST = frozenset({"and", "or"})
NUMBERS = frozenset("one two three four five six seven eight nine ten".split())
DETERMINERS = (
    frozenset("the a an some any his her their its my your our this that these those another other each every both all".split())
    | NUMBERS
)
PREPOSITIONS = frozenset(
    """of on in into onto from to with at by for under over inside near beside besides across through off out up down
    towards toward around behind above below between against along without upon within about using beneath underneath
    via per like""".split()
)
_STOP = DETERMINERS | frozenset(
    """it them him her they he she itself themselves himself herself something anything everything nothing someone
    one ones again slightly properly carefully gently quickly slowly firmly completely thoroughly briefly together
    aside apart here there now forward forwards backward backwards further more very also still just too once twice
    bit little next""".split()
)
# Never heads: "a piece of cloth" is about cloth, "cut into pieces" names no object.
_MEASURE = frozenset(
    """piece bit slice bunch pair handful lot couple set pinch strip chunk part half amount quantity kind type sort
    top side edge corner end middle bottom front rest centre center surface inside outside tip""".split()
)
# simplemma has no POS: plurals that are also verb forms come back as the verb.
_NOUN_FIXES = {"leaves": "leaf", "shelves": "shelf", "loaves": "loaf", "halves": "half"}


@dataclass(frozen=True)
class ParsedNarration:
    verb: str | None
    objects: tuple[str, ...] = ()


def lemmatise(word: str) -> str:
    return simplemma.lemmatize(word, lang="en").lower()


def noun_lemma(word: str) -> str:
    word = re.sub(r"['’]s$", "", word)
    return _NOUN_FIXES.get(word) or lemmatise(word)


def _first_clause(tokens: list[str]) -> list[str]:
    for i, tok in enumerate(tokens):
        if tok in _CLAUSE_END:
            return tokens[:i]
        if tok in _LIST and (i + 1 == len(tokens) or tokens[i + 1] not in DETERMINERS):
            return tokens[:i]
    return tokens


def _content(words: list[str]) -> list[str]:
    return [w for w in words if w not in _STOP and len(w) > 1 and not any(c.isdigit() for c in w)]


def _objects(tokens: list[str]) -> tuple[str, ...]:
    chunks: list[list[str]] = [[]]
    for tok in tokens:
        if tok in PREPOSITIONS or tok in _LIST:
            chunks.append([])
        else:
            chunks[-1].append(tok)
    heads: list[str] = []
    for chunk in chunks:
        words = _content(chunk)
        head = noun_lemma(words[-1]) if words else None
        if head and head not in _MEASURE and head not in heads:
            heads.append(head)
    return tuple(heads)


def parse_narration(text: str) -> ParsedNarration:
    """Verb (with particle) and object heads of one Ego4D-style narration; see the module docstring."""
    text = _ACTOR.sub("", _TAG.sub(" ", text).strip().lower(), count=1)
    clause = _first_clause(_TOKEN.findall(text))
    if not clause or not clause[0].isalpha() or clause[0] in _STOP:
        return ParsedNarration(None)
    verb, rest = lemmatise(clause[0]), clause[1:]
    if rest and rest[0] in _PARTICLES:
        verb, rest = f"{verb} {rest[0]}", rest[1:]
    else:
        end = len(rest)
        while end and rest[end - 1] in _STOP:  # "picks it up again"
            end -= 1
        if end and rest[end - 1] in _PARTICLES:
            verb, rest = f"{verb} {rest[end - 1]}", rest[: end - 1] + rest[end:]
    return ParsedNarration(verb, _objects(rest))


def _verb_phrase(text: str) -> str | None:
    words = [w for w in _TOKEN.findall(text.lower()) if w.isalpha()]
    if not words:
        return None
    particle = f" {words[1]}" if len(words) > 1 and words[1] in _PARTICLES else ""
    return lemmatise(words[0]) + particle


def _object_head(text: str) -> str | None:
    words = _content(_TOKEN.findall(text.lower()))
    return noun_lemma(words[-1]) if words else None


@dataclass(frozen=True)
class Vocabulary:
    verbs: dict[str, str]  # every seen verb lemma -> its cluster's canonical verb
    objects: dict[str, str]  # every seen object lemma -> its cluster's canonical object
    verb_counts: dict[str, int]
    object_counts: dict[str, int]
    source: str = ""
    version: str = VOCAB_VERSION

    @cached_property
    def id(self) -> str:
        """Content hash: the same words and counts give the same id wherever they came from."""
        return stable_hash(self.version, self.verbs, self.objects, self.verb_counts, self.object_counts)

    def canonical_verbs(self) -> list[str]:
        return sorted(set(self.verbs.values()))

    def canonical_objects(self) -> list[str]:
        return sorted(set(self.objects.values()))

    def normalise_verb(self, word: str) -> str | None:
        """ "Picks up" -> the canonical of "pick up"; None when out of vocabulary."""
        phrase = _verb_phrase(word)
        return self.verbs.get(phrase) if phrase else None

    def normalise_object(self, word: str) -> str | None:
        """ "the red Onions" -> the canonical of "onion"; None when out of vocabulary."""
        head = _object_head(word)
        return self.objects.get(head) if head else None

    def __len__(self) -> int:
        return len(self.verbs)

    def to_dict(self) -> dict:
        return {
            "version": self.version,
            "source": self.source,
            "verbs": self.verbs,
            "objects": self.objects,
            "verb_counts": self.verb_counts,
            "object_counts": self.object_counts,
        }

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        try:
            data = json.loads(Path(path).read_text())
            return cls(**{k: data[k] for k in ("verbs", "objects", "verb_counts", "object_counts", "source", "version")})
        except FileNotFoundError:
            raise ConfigError(f"vocabulary file not found: {path}") from None
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ConfigError(f"not a vocabulary file: {path} ({err!r})") from None


def _particle_pairs(words: list[str]) -> list[int]:
    """Condensed-matrix indices of pairs like "turn on"/"turn off" or "put"/"put down": never synonyms."""
    n, groups = len(words), {}
    for i, w in enumerate(words):
        groups.setdefault(w.split()[0], []).append(i)
    pairs = []
    for members in groups.values():
        for a, i in enumerate(members):
            for j in members[a + 1 :]:
                if " " in words[i] + words[j]:
                    pairs.append(n * i - i * (i + 1) // 2 + (j - i - 1))  # i < j: words are sorted
    return pairs


def _canonical(counts: Counter, embedder: Embedder | None, similarity: float) -> dict[str, str]:
    """Each lemma -> the most frequent member of its synonym cluster (ties: alphabetical)."""
    words = sorted(counts)
    if embedder is None or len(words) < 2:
        return {w: w for w in words}
    distance = np.clip(pdist(embedder.encode(words).astype(np.float64), "cosine"), 0.0, 2.0)  # condensed: n^2/2
    distance[_particle_pairs(words)] = 2.0
    labels = fcluster(linkage(distance, "average"), 1.0 - similarity, "distance")
    canonical = {}
    for label in set(labels):
        members = [w for w, lab in zip(words, labels) if lab == label]
        best = min(members, key=lambda w: (-counts[w], w))
        canonical.update({w: best for w in members})
    return dict(sorted(canonical.items()))


def build_vocabulary(
    narrations: Iterable[str], embedder: Embedder | None, similarity: float = DEFAULT_SIMILARITY, source: str = ""
) -> Vocabulary:
    """Parse every narration, count lemmas, merge synonyms (no merging without an embedder)."""
    if not 0.0 < similarity <= 1.0:
        raise ConfigError(f"vocabulary similarity must be in (0, 1], got {similarity}")
    verbs: Counter[str] = Counter()
    objects: Counter[str] = Counter()
    for text in narrations:
        parsed = parse_narration(text)
        if parsed.verb:
            verbs[parsed.verb] += 1
            objects.update(parsed.objects)
    return Vocabulary(
        verbs=_canonical(verbs, embedder, similarity),
        objects=_canonical(objects, embedder, similarity),
        verb_counts=dict(sorted(verbs.items())),
        object_counts=dict(sorted(objects.items())),
        source=source,
    )


def read_narrations(path: Path) -> list[str]:
    """Narrations from a .txt (one a line) or a .csv with a ``text`` column (the build manifest)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"narrations file not found: {path}")
    if path.suffix.lower() == ".txt":
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    elif path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if "text" not in (reader.fieldnames or []):
                raise ConfigError(f"{path} has no 'text' column (columns: {', '.join(reader.fieldnames or [])})")
            lines = [row["text"] or "" for row in reader]
    else:
        raise ConfigError(f"narrations must be a .txt or .csv file, got {path}")
    return [line.strip() for line in lines if line.strip()]


def load_vocabulary(path: Path, embedder_factory: Callable[[], Embedder]) -> Vocabulary:
    """A saved vocabulary (.json) as is, else one built from the narrations in a .txt/.csv."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        return Vocabulary.load(path)
    narrations = read_narrations(path)
    return build_vocabulary(narrations, embedder_factory(), source=f"{len(narrations)} narrations from {path.name}")
