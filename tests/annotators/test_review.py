"""Dataset-wide caption QA (agreement with the PCoT answers, Local Outlier Factor) with the real embedder."""

from __future__ import annotations

import pytest
from test_qa import KITCHEN_CAPTIONS

from conftest import DEFAULTS
from hiw.annotators.embed import load_embedder
from hiw.annotators.pcot import ClipAnnotation, ClipInput
from hiw.annotators.review import failure_rejects, review
from hiw.flows import settings
from hiw.prompts.answers import ActionIntent, ActionObject
from hiw.schemas import Caption

DRIFT = "The stock market closed higher today after the central bank spoke."


@pytest.fixture(scope="module")
def embedder():
    return load_embedder()


def annotation(i: int, caption: str, action: str, objects: list[str], intent: str) -> ClipAnnotation:
    clip = ClipInput(f"c_{i}", "v_1", "kitchen.mp4", 4.0, None, ())
    answers = {
        "action_object": ActionObject(action=action, verbs=[action.split()[0]], objects=objects),
        "action_intent": ActionIntent(intent=intent),
    }
    text = Caption(caption_id=f"t_{i}", clip_id=clip.clip_id, kind="pcot_summary", text=caption, verbs=[], objects=[], model="m")
    return ClipAnnotation(clip, captions=[text], answers=answers)


def test_drifting_caption_fails_agreement_and_stands_out(embedder):
    annotations = [
        annotation(i, text, text.lower().removeprefix("the "), ["object"], text) for i, text in enumerate(KITCHEN_CAPTIONS)
    ]
    # a caption unrelated to what its clip's focused questions found
    annotations.append(annotation(99, DRIFT, "cuts an onion on the board", ["onion", "knife"], "to prepare a salad"))
    captions, rejects = review(annotations, embedder, settings.review_settings(DEFAULTS))
    by_clip = {c.clip_id: c for c in captions}
    drift = by_clip["c_99"]
    assert not drift.qa_passed and drift.qa_agreement < 0.3 and drift.qa_outlier_factor > 1.5
    assert {n.split(":")[0] for n in drift.qa_notes} == {"agreement", "outlier"}
    assert [(r.stage, r.reason, r.clip_id) for r in rejects] == [("caption_qa", "pcot_summary.agreement", "c_99")]
    kept = [c for c in captions if c.clip_id != "c_99"]
    assert sum(c.qa_passed for c in kept) >= len(kept) - 2  # real captions agree with their own answers
    assert all(c.qa_agreement is not None and c.qa_outlier_factor is not None for c in captions)


def test_too_few_captions_for_outliers_and_failures_become_rejects(embedder):
    one = annotation(0, KITCHEN_CAPTIONS[0], "picks up a knife while holding an onion", ["knife", "onion"], "to cut the onion")
    failed = ClipAnnotation(ClipInput("c_9", "v_1", "kitchen.mp4", 4.0, None, ()), failures=[("pcot_failed", "no PCoT answer")])
    captions, rejects = review([one, failed], embedder, settings.review_settings(DEFAULTS))
    [caption] = captions
    assert caption.qa_outlier_factor is None and caption.qa_agreement is not None
    assert rejects == [] and [(r.stage, r.reason, r.clip_id) for r in failure_rejects([one, failed])] == [
        ("annotate", "pcot_failed", "c_9")
    ]
