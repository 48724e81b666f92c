"""Caption metrics: hand-computed values on toy corpora, and the BERTScore matcher against torchmetrics on single pairs."""

from __future__ import annotations

import math

import pytest

from hiw.eval import nlg


@pytest.fixture(scope="module")
def bert():
    """The bundled MiniLM (tokenizer, model), loaded once for the module (nlg caches it per process)."""
    return nlg._load_bert()


SAME = "A person picks up a red cup with the right hand."


def test_normaliser_strips_punctuation_and_case():
    assert nlg.normalise("  Hello, World!  It's\tthe LEFT-hand_side... (2 cups)") == "hello world it s the left hand side 2 cups"
    assert nlg.normalise("?!") == ""


def test_identical_captions_score_one(bert):
    scores = nlg.nlg_scores([SAME, "both hands fold a towel"], [[SAME], ["Both hands fold a towel!"]])
    assert set(scores) == {"bleu1", "bleu4", "rouge_l", "cider", "bertscore_f1"}
    for key in ("bleu1", "bleu4", "rouge_l"):
        assert scores[key] == pytest.approx(1.0), key
    assert scores["bertscore_f1"] == pytest.approx(1.0, abs=1e-5)
    assert set(nlg.nlg_scores([SAME], [[SAME]], bertscore=False)) == {"bleu1", "bleu4", "rouge_l", "cider"}


def test_bleu1_with_brevity_penalty_by_hand():
    preds = ["A cat, sat.", "the dog barks"]
    refs = [["a cat sat on the mat"], ["the dog ran", "a dog"]]
    # Clipped unigram matches: a, cat, sat (3/3) + the, dog (2/3) = 5/6. Candidate length c = 3 + 3 = 6; closest
    # reference lengths 6 and 3 (exact match in length beats "a dog"), r = 9; brevity penalty exp(1 - 9/6).
    assert nlg.bleu(preds, refs, n=1) == pytest.approx(5 / 6 * math.exp(1 - 9 / 6), rel=1e-6)
    # No 4-gram of the predictions is in a reference, and BLEU is unsmoothed: 0.
    assert nlg.bleu(preds, refs, n=4) == 0.0


def test_rouge_l_takes_the_best_reference_in_any_order():
    # Clip 0: an exact reference in either position (torchmetrics once scored only the first). Clip 1: LCS "the hand
    # the jar" = 4 of 5 words each side, F = 0.8.
    for first in (["c b a", "a b c"], ["a b c", "c b a"]):
        score = nlg.rouge_l(["a b c", "the hand opens the jar"], [first, ["The hand closes the jar."]])
        assert score == pytest.approx((1.0 + 0.8) / 2, rel=1e-6)


CORPUS = [
    ["the right hand picks up a cup", "a cup is lifted by the right hand"],
    ["the left hand opens a jar", "a jar lid is twisted open with the left hand"],
    ["both hands fold a towel", "a towel is folded with two hands"],
    ["the person cuts bread with a knife", "a knife slices the bread"],
]


def test_cider_prefers_the_right_caption_and_gives_unrelated_words_zero():
    right = nlg.cider([refs[0] for refs in CORPUS], CORPUS)
    wrong = nlg.cider([CORPUS[(i + 1) % len(CORPUS)][0] for i in range(len(CORPUS))], CORPUS)
    assert right > wrong >= 0.0
    assert right > 1.0  # the COCO x10 scale: a matching reference scores well above 1
    assert nlg.cider(["zebra quantum violin"] * len(CORPUS), CORPUS) == 0.0


def test_empty_prediction_scores_zero_on_its_clip(bert):
    preds, refs = ["the hand opens the jar", ""], [["The hand opens the jar."], ["both hands fold a towel"]]
    assert nlg.rouge_l(preds, refs) == pytest.approx(0.5)
    assert nlg.bert_score(preds, refs) == pytest.approx(0.5, abs=1e-5)
    assert nlg.cider(preds, refs) >= 0.0


def test_bad_input_is_a_value_error_naming_the_clip():
    with pytest.raises(ValueError, match="2 predictions but 1 reference lists"):
        nlg.bleu(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="clip 1 has no reference"):
        nlg.rouge_l(["a", "b"], [["a"], []])
    with pytest.raises(ValueError, match="clip 0 has a reference that is empty"):
        nlg.cider(["a"], [["..."]])
    with pytest.raises(ValueError, match="references of clip 0 must be a list"):
        nlg.bleu(["a"], ["a"])
    with pytest.raises(ValueError, match="no clips"):
        nlg.nlg_scores([], [])


def test_bert_score_takes_the_best_reference(bert):
    pred = "a person lifts a cup with the right hand"
    unrelated, close = "the dog runs across the park", "someone lifts a mug using the right hand"
    one = nlg.bert_score([pred], [[close]])
    assert nlg.bert_score([pred], [[unrelated, close]]) == pytest.approx(one)
    assert nlg.bert_score([pred], [[unrelated]]) < one


def test_bert_matcher_agrees_with_torchmetrics_on_single_pairs(bert):
    from torchmetrics.text import BERTScore

    tokenizer, model = bert
    reference = BERTScore(model_name_or_path=tokenizer.name_or_path, model=model, num_layers=nlg.BERT_LAYER)
    pairs = [
        ("a person picks up a cup with the right hand", "someone lifts a mug using their right hand"),
        ("the left hand opens a jar", "the towel is folded with two hands"),
        ("a b", "a b c d e f g"),
    ]
    ours = nlg._bert_f1([p for p, _ in pairs], [t for _, t in pairs])
    # One pair per call: torchmetrics' length sorting (which mis-pairs batches in 1.9.0) has nothing to reorder.
    theirs = [float(reference([p], [t])["f1"]) for p, t in pairs]
    assert ours == pytest.approx(theirs, abs=1e-5)
