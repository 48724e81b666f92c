"""Captions -> tokens and the evaluator's padded input, with the real spaCy model and the rule tagger."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from hiw.annotators.pos import RuleTagger
from hiw.eval import text
from hiw.eval.text import (
    MAX_WORDS,
    POS_TAGS,
    EmptyCaption,
    TextProcessor,
    Token,
    load_text_processor,
)
from hiw.eval.word_vectors import GLOVE_FILES, load_minilm

OTHER = POS_TAGS.index("OTHER")
GLOVE_WORDS = ["unk", "sos", "eos", "the", "right", "hand", "slowly", "open", "forward", "reach", "both"]


@pytest.fixture(scope="module")
def spacy_text() -> TextProcessor:
    return load_text_processor(tagger="spacy")


@pytest.fixture(scope="module")
def rules_text() -> TextProcessor:
    return TextProcessor(load_minilm(), RuleTagger())


@pytest.fixture(scope="module")
def glove_text(tmp_path_factory, spacy_text) -> TextProcessor:
    """HumanML3D's GloVe layout with a tiny vocabulary, so most words are out of it."""
    folder = tmp_path_factory.mktemp("glove")
    words = [w for w in GLOVE_WORDS if w != "forward"]  # a VIP word out of the vocabulary
    np.save(folder / GLOVE_FILES[0], np.random.default_rng(1).normal(size=(len(words), 300)).astype(np.float32))
    (folder / GLOVE_FILES[1]).write_bytes(pickle.dumps(words))
    (folder / GLOVE_FILES[2]).write_bytes(pickle.dumps({w: i for i, w in enumerate(words)}))
    return load_text_processor(folder, tagger="spacy")


def _pairs(tokens: list[Token]) -> list[str]:
    return [f"{t.word}/{t.pos}" for t in tokens]


def test_spacy_tags_hand_captions(spacy_text):
    opens, reach, moves = spacy_text.tokens(
        ["the right hand slowly opens", "Both hands reach forward", "the left hand moves left"]
    )
    assert opens == [
        Token("the", "DET", "the"),
        Token("right", "Loc_VIP", "right"),
        Token("hand", "Body_VIP", "hand"),
        Token("slowly", "Desc_VIP", "slowly"),
        Token("open", "VERB", "open"),
    ]
    assert _pairs(reach) == ["both/DET", "hand/Body_VIP", "reach/VERB", "forward/Loc_VIP"]
    # spaCy reads the second "left" as the verb "leave": the authors keep the word, and so do we.
    assert moves[-1] == Token("left", "Loc_VIP", "left")


def test_vip_lists_override_the_tagger(spacy_text):
    (rotates,) = spacy_text.tokens(["the index finger rotates counter-clockwise"])
    # rotate: VERB -> Act_VIP; finger: NOUN -> Body_VIP (hand words added to HumanML3D's list); hyphen dropped.
    assert _pairs(rotates) == ["the/DET", "index/NOUN", "finger/Body_VIP", "rotate/Act_VIP", "counterclockwise/Loc_VIP"]


def test_words_are_lower_cased(spacy_text, glove_text):
    assert spacy_text.tokens(["The hand opens"]) == spacy_text.tokens(["the hand opens"])
    # In the authors' pipeline "The" missed the case-sensitive GloVe lookup and became unk.
    batch = glove_text.encode(["The hand opens"])
    np.testing.assert_array_equal(batch.word_embs[0, 1], glove_text.vectors.vector("the"))
    assert batch.pos_onehot[0, 1].argmax() == POS_TAGS.index("DET")


def test_padding_layout(spacy_text):
    captions = ["the right hand slowly opens", "both hands reach forward"]
    batch = spacy_text.encode(captions)
    vectors = spacy_text.vectors
    assert batch.word_embs.shape == (2, MAX_WORDS + 2, 384) and batch.word_embs.dtype == np.float32
    assert batch.pos_onehot.shape == (2, MAX_WORDS + 2, 15) and batch.pos_onehot.dtype == np.float32
    assert batch.lengths.tolist() == [7, 6] and batch.lengths.dtype == np.int64
    for row, (caption, length) in enumerate(zip(captions, batch.lengths)):
        words = batch.word_embs[row]
        np.testing.assert_array_equal(words[0], vectors.special("sos"))
        np.testing.assert_array_equal(words[length - 1], vectors.special("eos"))
        np.testing.assert_array_equal(words[length:], np.broadcast_to(vectors.special("unk"), words[length:].shape))
        pos = batch.pos_onehot[row].argmax(axis=1)
        assert (pos[[0, length - 1]] == OTHER).all() and (pos[length:] == OTHER).all()
        assert (batch.pos_onehot[row].sum(axis=1) == 1).all()
    tokens = spacy_text.tokens(captions[:1])[0]
    for i, token in enumerate(tokens, start=1):
        np.testing.assert_array_equal(batch.word_embs[0, i], vectors.vector(token.word))
        assert POS_TAGS[batch.pos_onehot[0, i].argmax()] == token.pos
    assert POS_TAGS[batch.pos_onehot[0, 5].argmax()] == "VERB"  # "opens"


def test_long_caption_is_cropped_to_40_words(spacy_text):
    caption = " ".join(["the right hand slowly opens and the left thumb taps the table"] * 5)  # 60 words
    tokens = spacy_text.tokens([caption])[0]
    assert len(tokens) == 60
    batch = spacy_text.encode([caption])
    assert batch.lengths.tolist() == [MAX_WORDS + 2]
    np.testing.assert_array_equal(batch.word_embs[0, MAX_WORDS], spacy_text.vectors.vector(tokens[MAX_WORDS - 1].word))
    np.testing.assert_array_equal(batch.word_embs[0, MAX_WORDS + 1], spacy_text.vectors.special("eos"))


def test_out_of_vocabulary_is_unk_and_other(glove_text):
    batch = glove_text.encode(["both hands reach forward to the zorblat"])
    tokens = glove_text.tokens(["both hands reach forward to the zorblat"])[0]
    assert [t.word for t in tokens] == ["both", "hand", "reach", "forward", "to", "the", "zorblat"]
    unk = glove_text.vectors.special("unk")
    pos = [POS_TAGS[i] for i in batch.pos_onehot[0].argmax(axis=1)]
    # forward is a Loc_VIP word, but out of this vocabulary: the authors give it unk and OTHER too.
    assert pos[1:9] == ["DET", "Body_VIP", "VERB", "OTHER", "OTHER", "DET", "OTHER", "OTHER"]
    for i in (4, 5, 7):  # forward, to, zorblat
        np.testing.assert_array_equal(batch.word_embs[0, i], unk)
    np.testing.assert_array_equal(batch.word_embs[0, 2], glove_text.vectors.vector("hand"))
    assert batch.word_embs.shape == (1, MAX_WORDS + 2, 300)


@pytest.mark.parametrize("caption", ["", "   ", "...", "3 4 !", "#1"])
def test_caption_without_words_is_refused(spacy_text, caption):
    assert not spacy_text.is_usable(caption)
    with pytest.raises(EmptyCaption, match=f"caption {caption!r} has no word"):
        spacy_text.encode(["the hand opens", caption])
    assert spacy_text.is_usable("the hand opens")


def test_index_gather_equals_encode(spacy_text):
    captions = ["the right hand slowly opens", "C picks up a knife", "the right hand slowly opens", "both hands reach forward"]
    indexed = spacy_text.index(captions)
    distinct = {t.word for toks in spacy_text.tokens(captions) for t in toks}
    assert indexed.vectors.shape == (3 + len(distinct), 384)
    assert (indexed.word_ids.dtype, indexed.pos_ids.dtype, len(indexed)) == (np.int32, np.int8, 4)
    whole = spacy_text.encode(captions)
    for got, want in [
        (indexed.gather(np.arange(4)), whole),
        (indexed.gather([3, 1]), spacy_text.encode([captions[3], captions[1]])),
    ]:
        np.testing.assert_array_equal(got.word_embs, want.word_embs)
        np.testing.assert_array_equal(got.pos_onehot, want.pos_onehot)
        np.testing.assert_array_equal(got.lengths, want.lengths)


def test_verbs(spacy_text, rules_text):
    captions = ["the right hand slowly opens", "The left hand grasps the cup and lifts it up", "a cup on the table"]
    expected = [frozenset({"open"}), frozenset({"grasp", "lift"}), frozenset()]
    assert spacy_text.verbs(captions) == expected
    assert rules_text.verbs(captions) == expected


def test_rule_tagger_lemmas(rules_text):
    tokens = rules_text.tokens(["The fingers don't move", "the hand slowly opens", "C picks up the knives"])
    assert [_pairs(t) for t in tokens] == [
        ["the/DET", "finger/Body_VIP", "do/AUX", "move/VERB"],  # n't is dropped as spaCy drops it
        ["the/DET", "hand/Body_VIP", "slowly/Desc_VIP", "open/VERB"],
        ["c/NOUN", "pick/Act_VIP", "up/Loc_VIP", "the/DET", "knife/NOUN"],
    ]


def test_tokens_are_cached_per_caption():
    calls: list[list[str]] = []

    class Counting(RuleTagger):
        def tag(self, texts):
            calls.append(list(texts))
            return super().tag(texts)

    processor = TextProcessor(load_minilm(), Counting(), cache_size=2)
    processor.tokens(["a hand opens", "a hand opens", "the fist closes"])
    processor.tokens(["the fist closes", "a hand opens"])
    assert calls == [["a hand opens", "the fist closes"]]  # batched, each caption once
    processor.tokens(["the thumb taps"])  # evicts the least recently used ("the fist closes")
    processor.tokens(["a hand opens", "the fist closes"])
    assert calls[1:] == [["the thumb taps"], ["the fist closes"]]


def test_lineage(spacy_text, rules_text, glove_text):
    assert spacy_text.id == load_text_processor(tagger="spacy").id
    assert len({spacy_text.id, rules_text.id, glove_text.id}) == 3
    assert spacy_text.describe() == {
        "id": spacy_text.id,
        "processing_version": text.PROCESSING_VERSION,
        "max_words": MAX_WORDS,
        "vectors": {"name": "minilm", "id": spacy_text.vectors.id, "dim": 384},
        "tagger": {"name": "spacy", "version": "spacy-3.8.0"},
    }
    assert rules_text.describe()["tagger"] == {"name": "rules", "version": "rules-v1"}


def test_captions_must_be_a_list_of_strings(spacy_text):
    with pytest.raises(TypeError, match="one string"):
        spacy_text.tokens("the hand opens")
    with pytest.raises(TypeError, match="NoneType"):
        spacy_text.encode(["the hand opens", None])
