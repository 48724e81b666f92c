"""Caption QA: refusals, empty answers, grounding against real hand facts, agreement and LOF outliers."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from hiw.annotators.embed import EMBEDDER_NAME, load_embedder
from hiw.annotators.qa import empty_answer, grounding_notes, lof_outliers, mean_similarity, refusal
from hiw.motion.facts import HandFacts

KITCHEN_CAPTIONS = [
    "The right hand picks up a knife from the cutting board while the left hand holds an onion.",
    "The left hand steadies the onion as the right hand slices it into thin rings.",
    "The right hand cuts a tomato in half on the wooden board.",
    "Both hands wash a plate under the running tap in the sink.",
    "The right hand rinses a cup under the tap while the left hand holds the sponge.",
    "The left hand opens the fridge door and the right hand takes out a bottle of milk.",
    "The right hand closes the fridge door.",
    "The right hand stirs the soup in the pot with a wooden spoon.",
    "The left hand holds the handle of the pan while the right hand flips the egg with a spatula.",
    "The right hand pours water from the kettle into a mug.",
    "The right hand turns on the tap and the left hand holds a bowl under the water.",
    "The left hand wipes the countertop with a cloth.",
    "The right hand places the lid on the pot.",
    "The right hand puts the knife down on the cutting board.",
    "Both hands peel a potato over the sink.",
    "The right hand opens a drawer and takes out a spoon.",
    "The left hand holds a bowl while the right hand whisks eggs in it.",
    "The right hand sprinkles salt over the pan.",
    "The right hand grates cheese while the left hand holds the grater steady.",
    "The left hand opens a cupboard and the right hand takes out a plate.",
    "The right hand scoops rice from the pot into a bowl.",
    "Both hands knead dough on the floured counter.",
    "The right hand chops a carrot into small pieces with a knife.",
    "The left hand holds a jar while the right hand twists the lid off.",
    "The right hand squeezes a lemon over the salad bowl.",
    "The right hand dries a plate with a towel.",
    "The left hand moves the chopping board closer to the stove.",
    "The right hand adjusts the knob on the stove to lower the heat.",
    "The right hand picks up a piece of garlic and crushes it with the flat of the knife.",
    "The right hand tosses chopped vegetables into the hot pan.",
]
UNRELATED = ["The stock market closed higher today.", "asdf qwer zxcv"]

# Real facts as hand_facts makes them: a right hand cutting, a left hand holding still, one off-screen.
RIGHT_CUTTING = HandFacts(side="right", visible_frac=0.97, moving=True, speed_m_s=0.21, directions=("down",), grip="grasp")
LEFT_HOLDING = HandFacts(side="left", visible_frac=0.93, moving=False, speed_m_s=0.01)
LEFT_GRIPPING = HandFacts(side="left", visible_frac=0.9, moving=False, speed_m_s=0.01, grip="grasp_release")
LEFT_ABSENT = HandFacts(side="left", visible_frac=0.0)
LEFT_GLIMPSED = HandFacts(side="left", visible_frac=0.05, moving=True, speed_m_s=0.3)


@pytest.fixture(scope="module")
def embedder():
    return load_embedder()


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry, but I can't help with that.",
        "I’m sorry, I can’t see any video here.",
        "Sorry, I cannot see the video.",
        "As an AI language model, I cannot view images.",
        "I cannot determine what the hands are doing.",
        "I am unable to view the frames you sent.",
        "Unfortunately, I can't access the clip.",
        "No image was provided.",
        "The left hand holds the bowl. I cannot determine what the right hand holds.",
        "The frames are dark; the model is unable to see the video content.",
        "  apologies, the images did not load.",
    ],
)
def test_refusals_are_flagged(text):
    note = refusal(text)
    assert note is not None and note.startswith("refusal: ")
    assert len(note) <= len("refusal: ") + 80


@pytest.mark.parametrize(
    "text",
    [
        "The right hand cannot reach the cup on the top shelf.",
        "The right hand picks up a knife while the left hand holds the onion.",
        "Unfortunately, the left hand drops the cup into the sink.",
        "The person is unable to see the lid under the towel and lifts the cloth.",
        "No hands are visible at the start; then the right hand enters and grabs the mug.",
        "The left hand is not visible.",
        "",
    ],
)
def test_captions_are_not_refusals(text):
    assert refusal(text) is None


@pytest.mark.parametrize(
    "answer, empty",
    [
        ({}, True),
        ({"left": "", "right": "  "}, True),
        ({"objects": [], "action": "\n", "detail": {"why": "", "steps": [[], " "]}}, True),
        ({"left": None}, True),
        ({"left": "idle", "right": ""}, False),
        ({"objects": ["knife"], "action": ""}, False),
        ({"detail": {"steps": [[], ["cut"]]}}, False),
        ({"count": 0}, False),
    ],
)
def test_empty_answer(answer, empty):
    assert empty_answer(answer) is empty


def test_grounded_answer_has_no_notes():
    roles = {"left": "supporting", "right": "active"}
    caption = "The right hand cuts the onion while the left hand rests on the board."
    assert grounding_notes(roles, caption, [LEFT_HOLDING, RIGHT_CUTTING]) == []


def test_acting_role_for_an_absent_hand():
    notes = grounding_notes({"left": "active", "right": "active"}, "", [LEFT_ABSENT, RIGHT_CUTTING])
    assert notes == ["grounding: hand_role says the left hand is active but it is not visible in the tracks"]
    notes = grounding_notes({"left": "supporting", "right": "active"}, "", [LEFT_GLIMPSED, RIGHT_CUTTING])
    assert notes == ["grounding: hand_role says the left hand is supporting but it is not visible in the tracks"]
    assert grounding_notes({"left": "supporting"}, "", [LEFT_GLIMPSED], min_visible=0.01) == []


def test_active_role_for_a_still_hand():
    notes = grounding_notes({"left": "active", "right": "active"}, "", [LEFT_HOLDING, RIGHT_CUTTING])
    assert notes == ["grounding: hand_role says the left hand is active but it is still in the tracks"]
    # a grip change is activity even without travel; "supporting" may be still
    assert grounding_notes({"left": "active"}, "", [LEFT_GRIPPING]) == []
    assert grounding_notes({"left": "supporting"}, "", [LEFT_HOLDING]) == []


def test_idle_and_not_visible_roles_are_not_flagged():
    roles = {"left": "not_visible", "right": "idle"}
    still_right = HandFacts(side="right", visible_frac=0.8)
    assert grounding_notes(roles, "", [LEFT_ABSENT, still_right]) == []
    assert grounding_notes({"left": "idle"}, "", [LEFT_ABSENT]) == []
    assert grounding_notes(None, "", [LEFT_ABSENT, RIGHT_CUTTING]) == []


def test_caption_acting_with_an_absent_hand():
    caption = "The right hand slices the onion. The left hand pushes the slices aside."
    assert grounding_notes(None, caption, [LEFT_ABSENT, RIGHT_CUTTING]) == [
        "grounding: the caption has the left hand act but it is not visible in the tracks"
    ]
    caption = "The right hand slices the onion while the left hand steadies it."
    assert len(grounding_notes(None, caption, [LEFT_ABSENT, RIGHT_CUTTING])) == 1
    assert grounding_notes(None, caption, [LEFT_HOLDING, RIGHT_CUTTING]) == []


@pytest.mark.parametrize(
    "caption",
    [
        "The right hand slices the onion; the left hand is not visible.",
        "The right hand slices the onion while the left hand rests out of view.",
        "The left hand stays idle as the right hand cuts.",
        "The right hand cuts the onion, and the left hand remains still.",
        "The right hand cuts the onion.",
    ],
)
def test_caption_saying_a_hand_is_still_or_missing_is_not_flagged(caption):
    assert grounding_notes(None, caption, [LEFT_ABSENT, RIGHT_CUTTING]) == []


def test_both_hands_with_one_absent():
    caption = "Both hands lift the pot onto the stove."
    assert grounding_notes(None, caption, [LEFT_ABSENT, RIGHT_CUTTING]) == [
        "grounding: the caption says both hands but the left hand is not visible in the tracks"
    ]
    assert grounding_notes(None, "The left and right hands lift the pot.", [LEFT_ABSENT, RIGHT_CUTTING]) == [
        "grounding: the caption says both hands but the left hand is not visible in the tracks"
    ]
    assert grounding_notes(None, caption, [LEFT_HOLDING, RIGHT_CUTTING]) == []
    assert grounding_notes(None, "Both hands are not visible.", [LEFT_ABSENT, RIGHT_CUTTING]) == []


def test_embedder_is_shared_and_safe_across_threads(embedder):
    with ThreadPoolExecutor(4) as pool:
        assert all(e is embedder for e in pool.map(lambda _: load_embedder(), range(4)))
        rows = list(pool.map(lambda i: embedder.encode(KITCHEN_CAPTIONS[i : i + 8]), range(0, 24, 2)))
    for i, got in zip(range(0, 24, 2), rows):
        assert np.allclose(got, embedder.encode(KITCHEN_CAPTIONS[i : i + 8]), atol=1e-5)


def test_agreement(embedder):
    assert embedder.name == EMBEDDER_NAME
    answers = [
        "The right hand slices an onion with a knife on the cutting board.",
        "The right hand is active; the left hand supports by holding the onion.",
        "The onion goes from whole to sliced.",
    ]
    vectors = list(embedder.encode(answers))

    def agreement(caption: str) -> float:
        return mean_similarity(embedder.encode([caption])[0], vectors)

    consistent = agreement("The right hand slices an onion while the left hand holds it steady.")
    off = agreement("The person types an email on a laptop keyboard.")
    assert 0.3 < consistent <= 1.0 and consistent > off + 0.2
    assert mean_similarity(vectors[0], vectors[:1]) == pytest.approx(1.0, abs=1e-5)
    assert math.isnan(mean_similarity(vectors[0], []))


def test_lof_flags_unrelated_captions(embedder):
    rows = embedder.encode(KITCHEN_CAPTIONS + UNRELATED)
    assert rows.shape == (32, 384) and rows.dtype == np.float32
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    factor, outlier = lof_outliers(rows)
    assert factor.shape == outlier.shape == (32,) and np.isfinite(factor).all()
    assert outlier[-2:].all()
    assert not outlier[:-2].any()
    assert factor[-2:].min() > np.median(factor[:-2]) + 0.3


def test_lof_repeated_captions_are_not_outliers(embedder):
    captions = KITCHEN_CAPTIONS[:20] + [KITCHEN_CAPTIONS[0]] * 8 + UNRELATED[:1]
    factor, outlier = lof_outliers(embedder.encode(captions))
    assert np.isfinite(factor).all()
    assert not outlier[:28].any() and outlier[28]
    assert np.allclose(factor[20:28], factor[0])


def test_lof_small_inputs(embedder):
    empty = embedder.encode([])
    assert empty.shape == (0, 384)
    factor, outlier = lof_outliers(empty)
    assert factor.shape == (0,) and outlier.shape == (0,)
    factor, outlier = lof_outliers(embedder.encode(KITCHEN_CAPTIONS[:2]))
    assert np.isnan(factor).all() and not outlier.any()
    # far fewer rows than n_neighbors: neighbours capped at half the rows, so the odd one out still stands out
    factor, outlier = lof_outliers(embedder.encode(KITCHEN_CAPTIONS[:6] + UNRELATED[:1]), n_neighbors=20)
    assert np.isfinite(factor).all() and outlier.tolist() == [False] * 6 + [True]
    factor, outlier = lof_outliers(embedder.encode(KITCHEN_CAPTIONS[:3]))
    assert np.isfinite(factor).all() and not outlier.any()
