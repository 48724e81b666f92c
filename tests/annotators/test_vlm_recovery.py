"""Captions lost to a VLM outage come back: a build whose calls failed, timed out or never answered valid JSON
leaves those clips' annotation due, and the next build against a healthy server asks again (only what failed:
the response cache serves the rest). Real F-PHAB tracks, the real HTTP client, a loopback OpenAI-compatible
server (standing in for `vllm serve`), builds without Prefect (the logic under test is the build's own)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from conftest import copy_fphab_all, fphab_config
from hiw.flows.build import build_plain
from hiw.storage import read_table
from hiw.testing.openai_server import Behaviour, OpenAIServer

FILES = ["Subject_1/pour_milk/1", "Subject_2/squeeze_paper/5"]
MODEL = "loopback-vlm"
PCOT = {"action_object", "hand_role", "state_transition", "action_intent"}


def prompt_of(body: dict) -> str:
    return body["response_format"]["json_schema"]["name"]


@pytest.fixture
def inputs(tmp_path, fphab_dir):
    return copy_fphab_all(fphab_dir, tmp_path / "in", FILES)


def build(inputs, out, server: OpenAIServer, **settings):
    cfg = fphab_config(inputs, out, vlm="openai", vlm_url=server.url, vlm_model=MODEL, vlm_retries=0, **settings)
    return build_plain(cfg)


def kinds(root) -> Counter:
    return Counter(read_table(root, "captions", columns=["kind"])["kind"].to_pylist())


def accepted(root) -> int:
    return read_table(root, "clips", columns=["status"])["status"].to_pylist().count("accepted")


@pytest.mark.parametrize("outage", [Behaviour.status(503), Behaviour.hang(5.0)], ids=["down", "timing-out"])
def test_captions_lost_to_an_outage_come_back_with_the_server(inputs, tmp_path, outage):
    out = tmp_path / "out"
    with OpenAIServer(model=MODEL, script=lambda body, n: outage) as down:
        first = build(inputs, out, down, vlm_timeout_s=0.5)
    clips = accepted(out)
    assert clips >= 3 and first.published and first.version == "v1"
    assert first.vlm_failed_calls == first.vlm_calls == 4 * clips  # four PCoT questions each, all failed
    assert "pcot_summary" not in kinds(out) and first.rejects_by_reason["annotate/pcot_failed"] == clips
    with OpenAIServer(model=MODEL) as healthy:
        second = build(inputs, out, healthy)
        asked = len(healthy.requests)
    assert asked == 5 * clips and second.vlm_calls == 5 * clips and second.vlm_failed_calls == 0
    assert second.published and second.version == "v2" and second.videos_processed == 0  # no tracking again
    assert kinds(out)["pcot_summary"] == clips and "annotate/pcot_failed" not in second.rejects_by_reason
    with OpenAIServer(model=MODEL) as healthy:
        third = build(inputs, out, healthy)
        assert len(healthy.requests) == 0
    assert not third.published and third.version == "v2"  # nothing failed: nothing is due


def test_an_invalid_answer_is_asked_again_in_the_build_then_in_the_next_one(inputs, tmp_path):
    out = tmp_path / "out"
    answers: Counter = Counter()
    lock = threading.Lock()

    def script(body, n):
        prompt = prompt_of(body)
        question = body["messages"][1]["content"][-1]["text"] + body["messages"][1]["content"][0]["text"]
        with lock:
            answers[prompt, question] += 1
            nth = answers[prompt, question]
        if prompt == "hand_role":
            return Behaviour.malformed()  # never valid JSON
        if prompt == "state_transition" and nth == 1:
            return Behaviour.malformed()  # valid on the second answer
        return Behaviour.ok()

    with OpenAIServer(model=MODEL, script=script) as flaky:
        first = build(inputs, out, flaky)
        asked = Counter(prompt_of(b) for b in flaky.requests)
    clips = accepted(out)
    assert asked["hand_role"] == 3 * clips and asked["state_transition"] == 2 * clips  # 1 + 2 re-asks, 1 + 1
    responses = {(r["clip_id"], r["prompt"]): r for r in read_table(out, "responses").to_pylist()}
    hand_role = [r for (_, p), r in responses.items() if p == "hand_role"]
    assert {(r["status"], r["attempts"]) for r in hand_role} == {("invalid", 3)}
    assert all("asked 3 time(s)" in r["error"] for r in hand_role)
    transition = [r for (_, p), r in responses.items() if p == "state_transition"]
    assert {(r["status"], r["attempts"]) for r in transition} == {("ok", 2)}
    assert first.vlm_failed_calls == clips  # an answer that never came back valid is a failed call
    assert kinds(out)["pcot_summary"] == clips  # three of four answers still make a caption
    with OpenAIServer(model=MODEL) as healthy:
        second = build(inputs, out, healthy)
        again = Counter(prompt_of(b) for b in healthy.requests)
    # only the invalid question is asked again, and the summary that depends on its answer; the rest is cached
    assert again == {"hand_role": clips, "summarise": clips}
    assert second.published and second.vlm_failed_calls == 0 and second.vlm_cache_hits == 3 * clips
    statuses = Counter(read_table(out, "responses", columns=["status"])["status"].to_pylist())
    assert statuses == {"ok": 5 * clips}
