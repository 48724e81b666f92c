"""The loopback OpenAI-compatible server: protocol, validation, scripted failures, concurrency, schemas."""

from __future__ import annotations

import asyncio
import base64
import enum
import json
import time
from typing import Literal

import httpx
import pytest
from pydantic import BaseModel, Field, ValidationError

from hiw.testing.openai_server import (
    IMAGE_PROMPT_TOKENS,
    REFUSAL_TEXT,
    Behaviour,
    OpenAIServer,
    example_from_schema,
)

IMAGE_URL = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n fake image bytes").decode()


class Grip(enum.Enum):
    power = "power"
    precision = "precision"


class Contact(BaseModel):
    finger: Literal["thumb", "index", "middle", "ring", "little"]
    strength: float = Field(ge=0.0, le=1.0)


class Caption(BaseModel):
    kind: Literal["action", "state"]
    version: Literal["v1"]  # a single Literal: pydantic writes `const`
    hand: Literal["left", "right", "both"]
    verb: str = Field(min_length=3, max_length=20)
    text: str = Field(min_length=10, max_length=60)
    objects: list[str] = Field(min_length=1, max_length=3)
    contacts: list[Contact] = Field(max_length=4)
    grip: Grip
    note: str | None = None
    frames: tuple[int, int]
    confidence: int = Field(ge=1, le=5)
    moving: bool
    scores: dict[str, float] = {}


def body(text: str = "Describe what the right hand does with the mug.", schema_form: str | None = None, schema=None, **extra):
    content = [{"type": "image_url", "image_url": {"url": IMAGE_URL}}, {"type": "text", "text": text}]
    out = {
        "model": "loopback-vlm",
        "messages": [{"role": "system", "content": "You caption hands."}, {"role": "user", "content": content}],
    }
    if schema_form == "response_format":
        out["response_format"] = {"type": "json_schema", "json_schema": {"name": "caption", "schema": schema, "strict": True}}
    elif schema_form == "structured_outputs":
        out["structured_outputs"] = {"json": schema}
    elif schema_form == "guided_json":
        out["guided_json"] = schema
    out.update(extra)
    return out


HTTP = httpx.Client(timeout=10)  # one client: building one per request costs ~50 ms (its SSL context)


@pytest.fixture(scope="module", autouse=True)
def _close_http():
    yield
    HTTP.close()


def post(server: OpenAIServer, payload, **kwargs) -> httpx.Response:
    return HTTP.post(f"{server.url}/chat/completions", json=payload, **kwargs)


def content_of(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]


def assert_error(response: httpx.Response, code: int, error_type: str) -> dict:
    assert response.status_code == code, response.text
    error = response.json()["error"]
    assert error["type"] == error_type and error["code"] == code and error["message"]
    return error


@pytest.fixture(scope="module")
def shared():
    """One always-ok server for the tests that only read answers (each starts costs ~0.2 s)."""
    with OpenAIServer() as server:
        yield server


def test_ok_with_schema_is_a_valid_chat_completion(shared):
    response = post(shared, body(schema_form="response_format", schema=Caption.model_json_schema()))
    answer = response.json()
    assert answer["id"].startswith("chatcmpl-") and answer["object"] == "chat.completion"
    assert answer["model"] == "loopback-vlm" and isinstance(answer["created"], int)
    (choice,) = answer["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop" and choice["message"]["role"] == "assistant"
    caption = Caption.model_validate_json(choice["message"]["content"])
    assert caption.note is not None and len(caption.objects) == 2 and len(caption.contacts) == 2
    assert set(caption.verb.split()) <= set("describe what the right hand does with mug".split())
    usage = answer["usage"]
    assert usage["prompt_tokens"] > IMAGE_PROMPT_TOKENS and usage["completion_tokens"] > 10
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.parametrize("form", ["response_format", "structured_outputs", "guided_json", "guided_json_string"])
def test_every_schema_form_gets_the_same_deterministic_answer(shared, form):
    schema = Caption.model_json_schema()
    if form == "guided_json_string":
        form, schema = "guided_json", json.dumps(schema)
    first = content_of(post(shared, body(schema_form=form, schema=schema)))
    Caption.model_validate_json(first)
    reference = content_of(post(shared, body(schema_form="response_format", schema=Caption.model_json_schema())))
    assert first == reference
    other = content_of(post(shared, body("What does the left hand hold near the sink?", schema_form=form, schema=schema)))
    assert Caption.model_validate_json(other) != Caption.model_validate_json(first)


def test_without_schema_the_answer_is_plain_text_from_the_question(shared):
    text = content_of(post(shared, body("Where does the thumb press on the zipper?")))
    assert text and not text.lstrip().startswith(("{", "["))
    assert {"thumb", "zipper"} & set(text.rstrip(".").split())
    as_object = json.loads(content_of(post(shared, body(response_format={"type": "json_object"}))))
    assert isinstance(as_object, dict) and as_object


def test_scripted_429_carries_retry_after_then_the_script_runs_out_to_ok():
    script = [Behaviour.status(429, retry_after=2, message="slow down"), Behaviour.status(429, retry_after=0.5)]
    with OpenAIServer(script=script) as server:
        first, second, third = (post(server, body()) for _ in range(3))
        assert assert_error(first, 429, "RateLimitError")["message"] == "slow down"
        assert first.headers["retry-after"] == "2"
        assert_error(second, 429, "RateLimitError")
        assert second.headers["retry-after"] == "0.5"
        assert content_of(third)
        assert "retry-after" not in third.headers
        assert (server.completed, server.failed, len(server.requests)) == (1, 2, 3)


def test_scripted_500_has_no_retry_after():
    with OpenAIServer(script=[Behaviour.status(500)]) as server:
        response = post(server, body())
        assert_error(response, 500, "InternalServerError")
        assert "retry-after" not in response.headers
        assert server.completed == 0 and server.failed == 1


def test_api_key_is_required_on_v1_only():
    with OpenAIServer(api_key="sekret") as server:
        assert_error(post(server, body()), 401, "AuthenticationError")
        assert_error(post(server, body(), headers={"Authorization": "Bearer wrong"}), 401, "AuthenticationError")
        assert HTTP.get(f"{server.url}/models").status_code == 401
        assert content_of(post(server, body(), headers={"Authorization": "Bearer sekret"}))
        base = server.url.removesuffix("/v1")
        assert HTTP.get(f"{base}/health").status_code == 200
        assert [h.get("authorization") for h in server.headers] == [None, "Bearer wrong", "Bearer sekret"]
        assert (server.completed, server.failed) == (1, 2)


def test_wrong_model_is_404_like_vllm_and_models_lists_the_served_one():
    with OpenAIServer(model="qwen-test") as server:
        error = assert_error(post(server, {**body(), "model": "other"}), 404, "NotFoundError")
        assert error["message"] == "The model `other` does not exist."
        listed = HTTP.get(f"{server.url}/models").json()
        assert [card["id"] for card in listed["data"]] == ["qwen-test"]
        assert post(server, {**body(), "model": "qwen-test"}).status_code == 200


BAD_REQUESTS = {
    "unknown part type": lambda b: b["messages"][1]["content"].append({"type": "audio_url", "audio_url": {"url": "x"}}),
    "text part without text": lambda b: b["messages"][1]["content"].append({"type": "text"}),
    "image url not a url": lambda b: b["messages"][1]["content"].append({"type": "image_url", "image_url": {"url": "a.png"}}),
    "image url as a string": lambda b: b["messages"][1]["content"].append({"type": "image_url", "image_url": IMAGE_URL}),
    "bad base64": lambda b: b["messages"][1]["content"].append(
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@not base64@@"}}
    ),
    "empty messages": lambda b: b.update(messages=[]),
    "messages not a list": lambda b: b.update(messages="hello"),
    "bad role": lambda b: b["messages"][0].update(role="narrator"),
    "content a number": lambda b: b["messages"][1].update(content=7),
    "schema without name": lambda b: b.update(response_format={"type": "json_schema", "json_schema": {"schema": {}}}),
    "streaming": lambda b: b.update(stream=True),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_invalid_requests_get_400(shared, case):
    payload = body()
    assert post(shared, payload).status_code == 200  # the unmodified request is fine
    BAD_REQUESTS[case](payload)
    assert_error(post(shared, payload), 400, "BadRequestError")


def test_body_that_is_not_json_gets_400_and_is_recorded():
    with OpenAIServer() as server:
        response = HTTP.post(f"{server.url}/chat/completions", content=b"not json", headers={"content-type": "application/json"})
        assert_error(response, 400, "BadRequestError")
        assert server.requests == [{"_unparsed_body": "not json"}]


def test_malformed_refusal_empty_and_broken_body():
    script = [Behaviour.malformed(), Behaviour.refusal(), Behaviour.empty(), Behaviour.broken_body(), Behaviour.ok("fixed")]
    with OpenAIServer(script=script) as server:
        schema = Caption.model_json_schema()
        malformed, refusal, empty, broken, fixed = (
            post(server, body(schema_form="response_format", schema=schema)) for _ in script
        )
        text = content_of(malformed)
        assert text.startswith("{")
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)
        assert content_of(refusal) == REFUSAL_TEXT == "I'm sorry, but I can't help with that."
        assert content_of(empty) == ""
        assert broken.status_code == 200 and broken.headers["content-type"].startswith("application/json")
        with pytest.raises(json.JSONDecodeError):
            broken.json()
        assert content_of(fixed) == "fixed"
        assert server.completed == 5


def test_hang_outlasts_a_client_timeout_and_does_not_block_shutdown():
    with OpenAIServer(script=[Behaviour.hang(30)]) as server:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            post(server, body(), timeout=0.3)
        assert time.monotonic() - started < 5
        assert server.in_flight == 1  # still sleeping on the server
        assert content_of(post(server, body()))  # others are answered meanwhile
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 1.5  # the hung request is woken, not waited for


def test_latency_overlaps_across_concurrent_requests():
    n, latency = 32, 0.2

    async def run(server: OpenAIServer) -> tuple[list[httpx.Response], float]:
        async with httpx.AsyncClient(base_url=server.url, timeout=10, limits=httpx.Limits(max_connections=64)) as client:
            started = time.monotonic()
            responses = await asyncio.gather(
                *(client.post("/chat/completions", json=body(f"question {i} about the cup")) for i in range(n))
            )
            return responses, time.monotonic() - started

    with OpenAIServer(latency_s=latency) as server:
        responses, elapsed = asyncio.run(run(server))
        assert all(r.status_code == 200 for r in responses)
        assert latency <= elapsed < n * latency / 4, elapsed
        assert server.max_in_flight == n and server.completed == n and server.in_flight == 0
        texts = sorted(r["messages"][1]["content"][1]["text"] for r in server.requests)
        assert texts == sorted(f"question {i} about the cup" for i in range(n))
        assert len(server.headers) == n and all(h["content-type"] == "application/json" for h in server.headers)
        server.reset_stats()
        assert (server.requests, server.headers, server.max_in_flight, server.completed) == ([], [], 0, 0)


def test_script_function_gets_the_body_and_the_request_number():
    seen = []

    def script(request: dict, number: int) -> Behaviour | None:
        seen.append((request["messages"][1]["content"][1]["text"], number))
        return Behaviour.status(503) if "fail" in request["messages"][1]["content"][1]["text"] else None

    with OpenAIServer(script=script) as server:
        assert content_of(post(server, body("first")))
        assert_error(post(server, body("please fail")), 503, "ServiceUnavailableError")
        server.reset_stats()
        assert content_of(post(server, body("third")))
    assert seen == [("first", 0), ("please fail", 1), ("third", 2)]


def test_health_and_metrics_count_requests():
    with OpenAIServer(model="m", script=[Behaviour.status(429)]) as server:
        base = server.url.removesuffix("/v1")
        assert HTTP.get(f"{base}/health").status_code == 200
        for _ in range(3):
            post(server, {**body(), "model": "m"})
        metrics = HTTP.get(f"{base}/metrics")
        assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
        lines = metrics.text.splitlines()
        assert 'vllm:request_success_total{model_name="m"} 2' in lines
        assert 'vllm:request_failure_total{model_name="m"} 1' in lines
        assert 'vllm:num_requests_running{model_name="m"} 0' in lines
        assert "# TYPE vllm:request_success_total counter" in lines


# ---- example_from_schema ----
class Node(BaseModel):
    name: str = Field(max_length=8)
    children: list[Node] = []


class Tiny(BaseModel):
    letter: str = Field(min_length=1, max_length=1)
    long: str = Field(min_length=40)
    exact: str = Field(min_length=5, max_length=5)
    none: list[int] = Field(max_length=0)
    many: list[int] = Field(min_length=4, max_length=6)
    unique: set[Literal["a", "b", "c"]] = Field(min_length=2)
    count: int = Field(gt=3, lt=5)
    negative: int = Field(le=-10)
    step: int = Field(ge=7, multiple_of=5)
    ratio: float = Field(gt=0.0, lt=0.1)
    big: float = Field(gt=10.0)
    small: float = Field(lt=-3.0)


@pytest.mark.parametrize("model", [Caption, Contact, Node, Tiny])
@pytest.mark.parametrize("seed", ["Describe the right hand.", "", "!!! 123", "a " * 3 + "pneumonoultramicroscopic"])
def test_example_from_schema_validates_against_pydantic(model, seed):
    value = example_from_schema(model.model_json_schema(), seed)
    model.model_validate(value)  # raises if the instance is invalid
    assert example_from_schema(model.model_json_schema(), seed) == value  # deterministic


def test_example_from_schema_strings_come_from_the_question():
    schema = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string", "maxLength": 12}}}
    one = example_from_schema(schema, "Which utensil does the left hand grasp?")
    two = example_from_schema(schema, "How quickly does the right wrist rotate the lid?")
    assert one != two
    assert set(" ".join(one.values()).split()) <= {"which", "utensil", "does", "the", "left", "hand", "grasp"}
    assert len(one["b"]) <= 12 and one["b"] == one["b"].strip()


def test_example_from_schema_handles_anyof_const_enum_and_types():
    schema = {
        "type": "object",
        "properties": {
            "first": {"anyOf": [{"type": "integer", "minimum": 3}, {"type": "string"}]},
            "fixed": {"const": 42},
            "pick": {"enum": ["x", "y", "z"]},
            "either": {"type": ["null", "boolean"]},
            "untyped_list": {"items": {"type": "number", "maximum": -1}},
        },
    }
    value = example_from_schema(schema, "seed")
    assert value["first"] == 3 and value["fixed"] == 42 and value["pick"] in ("x", "y", "z")
    assert value["either"] is True and value["untyped_list"] == [-2.0, -2.0]
    picks = {example_from_schema(schema, f"seed {i}")["pick"] for i in range(30)}
    assert picks == {"x", "y", "z"}  # enum members vary with the question


def test_invalid_structured_output_values_get_400(shared):
    assert_error(post(shared, body(guided_json="{not json")), 400, "BadRequestError")
    assert_error(post(shared, body(structured_outputs={"regex": "[a-z]+"})), 400, "BadRequestError")
    choice = content_of(post(shared, body(structured_outputs={"choice": ["yes", "no"]})))
    assert choice in ("yes", "no")


def test_pydantic_rejects_what_the_generator_must_avoid():
    """Guards the validation tests above: the models really do constrain what they check."""
    good = example_from_schema(Tiny.model_json_schema(), "seed")
    for field, bad in [("letter", "ab"), ("count", 5), ("ratio", 0.1), ("unique", ["a"]), ("none", [1])]:
        with pytest.raises(ValidationError):
            Tiny.model_validate({**good, field: bad})
