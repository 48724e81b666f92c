"""PCoT annotation of one clip through the real HTTP client and a loopback OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import json
import threading

import cv2
import numpy as np
import pytest

from conftest import pcot_annotator, vlm_client
from hiw.annotators.cache import ResponseCache
from hiw.annotators.pcot import ClipInput
from hiw.annotators.session import AnnotationSession
from hiw.annotators.vocab import build_vocabulary
from hiw.motion.facts import HandFacts
from hiw.prompts import PCOT
from hiw.testing.openai_server import Behaviour, OpenAIServer

MODEL = "loopback-vlm"
NARRATIONS = [
    "#C C picks up the bowl",
    "#C C stirs the soup with a spoon",
    "#C C puts the bowl on the table",
    "#C C opens the lid",
]
PCOT_NAMES = [p.name for p in PCOT]


@pytest.fixture
def clip(tmp_path) -> ClipInput:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        path = tmp_path / f"{i:03d}.jpg"
        cv2.imwrite(str(path), rng.integers(0, 255, (60, 80, 3), dtype=np.uint8))
        paths.append(str(path))
    facts = (
        HandFacts("left", visible_frac=0.0),  # the left hand never appears in this clip
        HandFacts("right", visible_frac=1.0, moving=True, speed_m_s=0.2, directions=("up",), grip="grasp"),
    )
    return ClipInput("c_1", "v_1", "kitchen.mp4", 4.0, "#C C picks up the bowl", facts, tuple(paths))


def prompt_of(body: dict) -> str:
    return body["response_format"]["json_schema"]["name"]


def annotate(server: OpenAIServer, clip: ClipInput, cache: ResponseCache | None = None, vocab=None, **backend_args):
    annotator = pcot_annotator(vlm_client(server.url, MODEL, **backend_args), cache, vocab, max_tokens=128)

    async def run():
        try:
            return await annotator.annotate(clip)
        finally:
            await annotator.aclose()

    return asyncio.run(run())


def test_four_questions_then_summary_then_closed_vocabulary(clip, tmp_path):
    vocab = build_vocabulary(NARRATIONS, None, source="test")
    with OpenAIServer(model=MODEL) as server:
        out = annotate(server, clip, ResponseCache(tmp_path / "cache.sqlite"), vocab)
    prompts = [prompt_of(b) for b in server.requests]
    assert sorted(prompts[:4]) == sorted(PCOT_NAMES) and prompts[4:] == ["summarise", "closed_vocab"]
    assert [r.prompt for r in out.responses] == [*PCOT_NAMES, "summarise", "closed_vocab"]
    assert all(r.status == "ok" and not r.cached and r.n_frames == 3 and r.parsed_json for r in out.responses)
    assert [c.kind for c in out.captions] == ["pcot_summary", "closed_vocab"]
    summary, closed = out.captions
    assert summary.response_id == out.responses[4].response_id and summary.model == MODEL
    assert closed.vocab_id == vocab.id
    # the closed-vocabulary schema restricts verbs and objects to the vocabulary's words
    schema = server.requests[5]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["verbs"]["items"]["enum"] == vocab.canonical_verbs()
    assert set(closed.verbs) <= set(vocab.canonical_verbs()) and set(closed.objects) <= set(vocab.canonical_objects())
    # the summariser saw the four answers; the closed step saw the summary
    summarise_text = server.requests[4]["messages"][1]["content"][-1]["text"]
    assert all(json.loads(out.responses[i].parsed_json) for i in range(4)) and "hand roles:" in summarise_text
    assert summary.text in server.requests[5]["messages"][1]["content"][-1]["text"]


def test_unchanged_rebuild_makes_no_call_and_a_changed_request_does(clip, tmp_path):
    cache = ResponseCache(tmp_path / "cache.sqlite")
    with OpenAIServer(model=MODEL) as server:
        first = annotate(server, clip, cache)
        calls = len(server.requests)
        again = annotate(server, clip, cache)
        assert len(server.requests) == calls == 5  # no vocabulary: no closed-vocabulary call
        assert all(r.cached for r in again.responses)
        assert [r.response_id for r in again.responses] == [r.response_id for r in first.responses]
        assert [c.caption_id for c in again.captions] == [c.caption_id for c in first.captions]
        changed = ClipInput(**{**clip.__dict__, "frame_paths": clip.frame_paths[:2]})  # other frames: new requests
        annotate(server, changed, cache)
        assert len(server.requests) == calls + 5


def test_bad_answers_are_recorded_and_the_summary_says_what_was_missing(clip):
    bad = {"hand_role": Behaviour.malformed(), "state_transition": Behaviour.refusal(), "action_intent": Behaviour.empty()}
    with OpenAIServer(model=MODEL, script=lambda body, n: bad.get(prompt_of(body), Behaviour.ok())) as server:
        out = annotate(server, clip)
    status = {r.prompt: r.status for r in out.responses}
    assert status == {
        "action_object": "ok",
        "hand_role": "invalid",
        "state_transition": "refused",
        "action_intent": "empty",
        "summarise": "ok",
    }
    invalid = next(r for r in out.responses if r.prompt == "hand_role")
    assert invalid.raw_text and invalid.parsed_json is None and "HandRole" in invalid.error
    [summary] = out.captions
    assert any(n.startswith("pcot: no answer to hand_role: invalid") for n in summary.qa_notes)
    assert summary.qa_passed  # missing answers inform; they do not fail the caption


def test_server_failures_leave_no_caption_but_every_call_recorded(clip):
    with OpenAIServer(model=MODEL, script=lambda body, n: Behaviour.status(503)) as server:
        out = annotate(server, clip, retries=1, backoff_s=0.01)
    assert [r.status for r in out.responses] == ["error"] * 4 and all(r.attempts == 2 for r in out.responses)
    assert out.captions == [] and out.failures[0][0] == "pcot_failed" and "HTTP 503" in out.responses[0].error
    assert len(server.requests) == 8


def test_caption_that_gives_the_absent_hand_an_action_is_flagged(clip):
    answers = {
        "hand_role": json.dumps(
            {"left_role": "active", "left_action": "holds the bowl", "right_role": "active", "right_action": "lifts the bowl"}
        ),
        "summarise": json.dumps(
            {
                "caption": "The left hand holds the bowl while the right hand lifts it.",
                "verbs": ["hold", "lift"],
                "objects": ["bowl"],
            }
        ),
    }
    with OpenAIServer(model=MODEL, script=lambda body, n: Behaviour.ok(answers.get(prompt_of(body)))) as server:
        out = annotate(server, clip)
    [summary] = out.captions
    assert not summary.qa_passed
    assert any(n.startswith("grounding:") and "left" in n for n in summary.qa_notes)


def test_session_overlaps_clips_from_other_threads(clip, tmp_path):
    """The build submits from its own threads; the session's loop runs every clip's calls concurrently."""
    clips = [ClipInput(**{**clip.__dict__, "clip_id": f"c_{i}"}) for i in range(6)]
    with OpenAIServer(model=MODEL, latency_s=0.1) as server:
        annotator = pcot_annotator(vlm_client(server.url, MODEL, concurrency=8), ResponseCache(tmp_path / "c.sqlite"))
        with AnnotationSession(annotator) as session:
            futures = []
            threads = [threading.Thread(target=lambda c=c: futures.append(session.submit(c))) for c in clips]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            results = [f.result(timeout=30) for f in futures]
    assert sorted(r.clip.clip_id for r in results) == sorted(c.clip_id for c in clips)
    assert all(len(r.captions) == 1 for r in results)
    assert server.max_in_flight == 8  # clips overlapped up to the in-flight limit
