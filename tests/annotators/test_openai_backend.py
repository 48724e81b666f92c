"""The OpenAI-compatible client against a real HTTP server on loopback (hiw.testing.openai_server).

The loopback server stands in for `vllm serve` with a GPU model, which cannot run here; it speaks the same
protocol over real sockets and does what each test scripts (latency, errors, hangs, bad answers).
"""

from __future__ import annotations

import asyncio
import json
import time

import cv2
import numpy as np
import pytest

from conftest import vlm_client
from hiw.annotators.openai_backend import OpenAIBackend
from hiw.annotators.requests import BackendError, Sampling, VLMRequest, data_urls
from hiw.prompts import PCOT
from hiw.prompts.answers import HandRole, answer_schema
from hiw.testing.openai_server import Behaviour, OpenAIServer

MODEL = "loopback-vlm"


def jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return cv2.imencode(".jpg", rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))[1].tobytes()


def request(question: str = "What does each hand do?", frames: int = 2, prompt: str = "hand_role") -> VLMRequest:
    return VLMRequest(
        clip_id="c_1",
        prompt=prompt,
        prompt_version="v1+test",
        system="You annotate egocentric video.",
        context="Clip c_1: 4.0 s.",
        question=question,
        schema=answer_schema(HandRole),
        images=data_urls([jpeg(i) for i in range(frames)]),
        frames_hash="f_test",
        sampling=Sampling(temperature=0.0, max_tokens=64, seed=3),
    )


def complete(backend: OpenAIBackend, *requests: VLMRequest) -> list:
    async def run():
        try:
            return await asyncio.gather(*(backend.complete(r) for r in requests), return_exceptions=True)
        finally:
            await backend.aclose()

    return asyncio.run(run())


def test_request_is_what_vllm_expects():
    with OpenAIServer(model=MODEL) as server:
        [reply] = complete(vlm_client(server.url, MODEL), request(frames=3))
    body = server.requests[0]
    assert body["model"] == MODEL and body["max_tokens"] == 64 and body["temperature"] == 0.0 and body["seed"] == 3
    system, user = body["messages"]
    assert system == {"role": "system", "content": "You annotate egocentric video."}
    kinds = [part["type"] for part in user["content"]]
    assert kinds == ["image_url"] * 3 + ["text", "text"]  # frames first, then the shared context, then the question
    assert user["content"][0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert user["content"][-1]["text"] == "What does each hand do?"
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"] == answer_schema(HandRole)
    HandRole.model_validate_json(reply.text)  # the server answered within the schema
    assert reply.prompt_tokens > 0 and reply.completion_tokens > 0 and reply.attempts == 1


def test_structured_outputs_field_variant():
    with OpenAIServer(model=MODEL) as server:
        complete(vlm_client(server.url, MODEL, schema_field="structured_outputs"), request())
    body = server.requests[0]
    assert "response_format" not in body and body["structured_outputs"] == {"json": answer_schema(HandRole)}


def test_pcot_questions_share_the_prefix_up_to_the_question():
    """The four questions of a clip differ only in their last content part (vLLM prefix caching)."""
    with OpenAIServer(model=MODEL) as server:
        complete(vlm_client(server.url, MODEL), *(request(question=p.render(), prompt=p.name) for p in PCOT))
    messages = [r["messages"] for r in server.requests]
    prefixes = {json.dumps([m[0], m[1]["content"][:-1]]) for m in messages}
    assert len(prefixes) == 1 and len({m[1]["content"][-1]["text"] for m in messages}) == 4


def test_in_flight_limit_is_honoured_and_reached():
    with OpenAIServer(model=MODEL, latency_s=0.15) as server:
        started = time.perf_counter()
        replies = complete(vlm_client(server.url, MODEL, concurrency=4), *(request(f"q{i}") for i in range(16)))
        wall = time.perf_counter() - started
    assert all(not isinstance(r, Exception) for r in replies)
    assert server.max_in_flight == 4  # never more, and the limit was used
    assert wall < 16 * 0.15 / 2  # requests overlapped: 4 waves of 0.15 s, not 16 sequential calls


def test_retries_on_429_and_5xx_then_succeeds():
    script = [Behaviour.status(503), Behaviour.status(429, retry_after=0.05), Behaviour.ok()]
    with OpenAIServer(model=MODEL, script=script) as server:
        [reply] = complete(vlm_client(server.url, MODEL, retries=3, backoff_s=0.01), request())
    assert not isinstance(reply, Exception), reply
    assert reply.attempts == 3 and len(server.requests) == 3


def test_retries_exhausted_raise_with_the_server_message():
    with OpenAIServer(model=MODEL, script=lambda body, n: Behaviour.status(500, message="engine dead")) as server:
        [err] = complete(vlm_client(server.url, MODEL, retries=2, backoff_s=0.01), request())
    assert isinstance(err, BackendError) and err.status == "error" and err.attempts == 3
    assert "HTTP 500" in err.detail and "engine dead" in err.detail and len(server.requests) == 3


@pytest.mark.parametrize("code", [400, 401, 404, 422])
def test_client_errors_are_not_retried(code):
    with OpenAIServer(model=MODEL, script=lambda body, n: Behaviour.status(code, message="bad request")) as server:
        [err] = complete(vlm_client(server.url, MODEL, retries=3, backoff_s=0.01), request())
    assert isinstance(err, BackendError) and err.attempts == 1 and f"HTTP {code}" in err.detail
    assert len(server.requests) == 1


def test_unknown_model_is_reported_as_vllm_says():
    with OpenAIServer(model=MODEL) as server:
        [err] = complete(vlm_client(server.url, "no-such-model", retries=2, backoff_s=0.01), request())
    assert isinstance(err, BackendError) and "HTTP 404" in err.detail and "no-such-model" in err.detail


def test_timeout_is_retried_then_reported():
    with OpenAIServer(model=MODEL, script=lambda body, n: Behaviour.hang(30.0)) as server:
        started = time.perf_counter()
        [err] = complete(vlm_client(server.url, MODEL, timeout_s=0.2, retries=1, backoff_s=0.01), request())
        waited = time.perf_counter() - started
    assert isinstance(err, BackendError) and err.status == "timeout" and err.attempts == 2
    assert waited < 10 and len(server.requests) == 2  # gave up after 2 x 0.2 s, not after the 30 s hang


def test_connection_refused_is_an_error_not_a_crash():
    [err] = complete(vlm_client("http://127.0.0.1:9/v1", MODEL, retries=1, backoff_s=0.01), request())
    assert isinstance(err, BackendError) and err.status == "error" and err.attempts == 2


def test_body_that_is_not_json_is_an_error():
    with OpenAIServer(model=MODEL, script=[Behaviour.broken_body()]) as server:
        [err] = complete(vlm_client(server.url, MODEL, retries=0), request())
    assert isinstance(err, BackendError) and "malformed response body" in err.detail


def test_api_key_from_the_environment_is_sent_and_never_shown(monkeypatch):
    monkeypatch.setenv("HIW_VLM_API_KEY", "sk-secret-123")
    with OpenAIServer(model=MODEL, api_key="sk-secret-123") as server:
        backend = vlm_client(server.url, MODEL)
        [reply] = complete(backend, request())
    assert not isinstance(reply, Exception)
    assert server.headers[0]["authorization"] == "Bearer sk-secret-123"
    assert "sk-secret" not in repr(backend) and "sk-secret" not in request().key(MODEL)


def test_wrong_api_key_is_a_401_not_retried(monkeypatch):
    monkeypatch.setenv("HIW_VLM_API_KEY", "wrong")
    with OpenAIServer(model=MODEL, api_key="right") as server:
        [err] = complete(vlm_client(server.url, MODEL, retries=3), request())
    assert isinstance(err, BackendError) and "HTTP 401" in err.detail and len(server.requests) == 1
