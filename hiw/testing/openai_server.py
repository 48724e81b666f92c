"""A real loopback HTTP server that speaks OpenAI chat completions the way ``vllm serve`` does.

hiw's VLM captioner talks to a GPU-served vision-language model (``vllm serve``) over the OpenAI
chat-completions protocol. No such model can run here, so tests and benchmarks point the real client
at this stand-in: a real uvicorn server on 127.0.0.1 (an ephemeral port, its own thread and event
loop) answering over real sockets, with scriptable behaviour per request (answers, HTTP errors with
``Retry-After``, hangs, malformed, refused or empty answers, bodies that are not JSON) and a
simulated model latency (``asyncio.sleep`` in an async handler, so concurrent requests overlap).

It validates requests as vLLM does (the served model name, the message and content-part shapes,
the structured-output schema) and, asked for structured output, answers with a deterministic
instance of the requested JSON schema built from the words of the question
(:func:`example_from_schema`). It runs no model: its answers are well-formed, not meaningful.

Usage::

    with OpenAIServer(latency_s=0.05, script=[Behaviour.status(429, retry_after=1)]) as server:
        client = SomeClient(base_url=server.url)  # "http://127.0.0.1:PORT/v1"
        ...
        assert server.max_in_flight <= 8
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import math
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

__all__ = ["REFUSAL_TEXT", "IMAGE_PROMPT_TOKENS", "Behaviour", "OpenAIServer", "example_from_schema"]

REFUSAL_TEXT = "I'm sorry, but I can't help with that."
# Prompt tokens charged per image part (a real VLM counts its vision tokens; this is a round guess).
IMAGE_PROMPT_TOKENS = 256
_ROLES = {"system", "user", "assistant", "tool", "developer"}
_ERROR_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    408: "RequestTimeoutError",
    429: "RateLimitError",
    500: "InternalServerError",
    502: "BadGatewayError",
    503: "ServiceUnavailableError",
    504: "GatewayTimeoutError",
}
_KINDS = ("ok", "status", "hang", "malformed", "refusal", "empty", "broken_body")
_DATA_URL = re.compile(r"^data:image/[A-Za-z0-9.+-]+;base64,(.*)$", re.DOTALL)
_BROKEN_BODY = "<html><head><title>502 Bad Gateway</title></head><body>upstream connect error</body></html>"


@dataclass(frozen=True)
class Behaviour:
    """What the server does for one chat-completions request; build one with the class methods.

    ``kind`` is one of ``ok``, ``status``, ``hang``, ``malformed``, ``refusal``, ``empty``,
    ``broken_body``; the other fields are the parameters of the kinds that use them.
    """

    kind: str
    content: str | None = None
    code: int = 200
    retry_after: float | None = None
    message: str = ""
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown behaviour kind {self.kind!r}; expected one of {_KINDS}")

    @classmethod
    def ok(cls, content: str | None = None) -> Behaviour:
        """200 with ``content``; None: an answer generated from the request (its JSON schema, if any)."""
        return cls("ok", content=content)

    @classmethod
    def status(
        cls, code: int, retry_after: float | None = None, message: str = "Simulated error from the loopback server."
    ) -> Behaviour:
        """HTTP ``code`` (400..599) with an OpenAI error body; a ``Retry-After`` header when given."""
        if not 400 <= code <= 599:
            raise ValueError(f"status code must be an HTTP error (400..599), got {code}")
        return cls("status", code=code, retry_after=retry_after, message=message)

    @classmethod
    def hang(cls, seconds: float) -> Behaviour:
        """Sleep ``seconds`` (make it longer than the client's timeout), then answer as ``ok()``."""
        return cls("hang", seconds=seconds)

    @classmethod
    def malformed(cls) -> Behaviour:
        """200 whose message content is truncated JSON (not valid JSON)."""
        return cls("malformed")

    @classmethod
    def refusal(cls) -> Behaviour:
        """200 whose message content is :data:`REFUSAL_TEXT`."""
        return cls("refusal")

    @classmethod
    def empty(cls) -> Behaviour:
        """200 whose message content is ``""``."""
        return cls("empty")

    @classmethod
    def broken_body(cls) -> Behaviour:
        """200 (``Content-Type: application/json``) whose HTTP body is not JSON at all."""
        return cls("broken_body")


Script = Callable[[dict, int], Behaviour | None] | list[Behaviour] | None


class _HTTPError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Parsed:
    schema: dict | None  # the structured-output JSON schema, if any
    json_object: bool  # response_format json_object: any JSON object will do
    choice: list | None  # structured_outputs choice
    seed_text: str  # the last text part of the request
    prompt_tokens: int


def _error_body(code: int, message: str) -> dict:
    kind = _ERROR_TYPES.get(code) or HTTPStatus(code).phrase.replace(" ", "") + "Error"
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _error(code: int, message: str, retry_after: float | None = None) -> JSONResponse:
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = str(int(retry_after)) if float(retry_after).is_integer() else f"{retry_after:g}"
    return JSONResponse(_error_body(code, message), status_code=code, headers=headers)


class OpenAIServer:
    """A loopback OpenAI-compatible chat-completions server (see the module docstring).

    ``script`` decides each request's :class:`Behaviour`: a function ``(request_body, request_number)
    -> Behaviour`` (None means ``ok()``), a list whose entries go, in order, to the requests that pass
    authentication and validation (``ok()`` once it runs out), or None (always ``ok()``).
    ``request_number`` counts the chat requests received since start (from 0), and is not rewound by
    :meth:`reset_stats`. ``latency_s`` is slept before every answer except ``status`` errors (which
    are immediate) and ``hang`` (which sleeps its own time). With ``api_key``, ``/v1/*`` requests
    without ``Authorization: Bearer <api_key>`` get 401 (``/health`` and ``/metrics`` stay open, as in
    vLLM). Use it as a context manager: ``with OpenAIServer() as server: ... server.url``.
    """

    def __init__(
        self,
        latency_s: float = 0.0,
        script: Script = None,
        model: str = "loopback-vlm",
        api_key: str | None = None,
    ):
        self.latency_s = float(latency_s)
        self.script = list(script) if isinstance(script, (list, tuple)) else script
        self.model = model
        self.api_key = api_key
        self.host = "127.0.0.1"
        self.port: int | None = None
        self.app = self._build_app()
        self._lock = threading.Lock()
        self._script_position = 0
        self._received = 0
        self._in_flight = 0
        self._zero_stats()
        self._thread: threading.Thread | None = None
        self._uvicorn: uvicorn.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._startup_error: BaseException | None = None

    # ---- statistics (read from any thread) ----
    def _zero_stats(self) -> None:
        self._requests: list[dict] = []
        self._headers: list[dict] = []
        self._max_in_flight = self._in_flight
        self._completed = 0
        self._failed = 0
        self._prompt_tokens = 0
        self._completion_tokens = 0

    def reset_stats(self) -> None:
        """Forget the recorded requests and headers and zero the counters (not the script's position)."""
        with self._lock:
            self._zero_stats()

    @property
    def url(self) -> str:
        """The OpenAI base URL, ``http://127.0.0.1:PORT/v1`` (only while running)."""
        if self.port is None:
            raise RuntimeError("the server is not running; use it as a context manager")
        return f"http://{self.host}:{self.port}/v1"

    @property
    def requests(self) -> list[dict]:
        """Every chat-completions request body received, in arrival order (a copy of the list).

        A body that is not a JSON object is recorded as ``{"_unparsed_body": <its text>}``.
        """
        with self._lock:
            return list(self._requests)

    @property
    def headers(self) -> list[dict]:
        """The headers of those requests (lower-case names), in the same order."""
        with self._lock:
            return list(self._headers)

    @property
    def in_flight(self) -> int:
        """Chat requests being handled now."""
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """The most chat requests handled at once."""
        with self._lock:
            return self._max_in_flight

    @property
    def completed(self) -> int:
        """Chat requests answered with HTTP 200 (whatever the content)."""
        with self._lock:
            return self._completed

    @property
    def failed(self) -> int:
        """Chat requests answered with an HTTP error (scripted, auth or validation)."""
        with self._lock:
            return self._failed

    # ---- lifecycle ----
    def __enter__(self) -> OpenAIServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self, timeout: float = 10.0) -> None:
        """Start uvicorn in a background thread and wait until it accepts connections."""
        if self._thread is not None:
            raise RuntimeError("the server is already running")
        # proto IPPROTO_TCP, not 0: only then does asyncio set TCP_NODELAY on accepted connections (without it,
        # Nagle's algorithm and delayed ACKs add about 40 ms to every answer)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            loop="asyncio",
            limit_concurrency=None,
            backlog=2048,
            timeout_graceful_shutdown=2,
        )
        self._uvicorn = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, args=(sock,), name=f"openai-server-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._uvicorn.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the loopback OpenAI server did not start: {self._startup_error!r}")
            time.sleep(0.005)

    def _run(self, sock: socket.socket) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await self._uvicorn.serve(sockets=[sock])

        try:
            asyncio.run(serve())
        except BaseException as error:  # reported by start()
            self._startup_error = error
        finally:
            sock.close()

    def stop(self) -> None:
        """Stop the server: requests still sleeping (hang, latency) are woken and answered, then it exits."""
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:  # the loop closed meanwhile
                pass
        self._uvicorn.should_exit = True
        self._thread.join(timeout=10)
        self._thread = None
        self.port = None

    # ---- HTTP ----
    def _build_app(self) -> FastAPI:
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

        @app.post("/v1/chat/completions")
        async def chat_completions(request: Request) -> Response:
            return await self._chat(request)

        @app.get("/v1/models")
        async def models(request: Request) -> Response:
            if not self._authorised(request):
                return _error(401, "Unauthorized")
            card = {"id": self.model, "object": "model", "created": 0, "owned_by": "hiw-loopback", "root": self.model}
            return JSONResponse({"object": "list", "data": [card]})

        @app.get("/health")
        async def health() -> Response:
            return Response(status_code=200)

        @app.get("/metrics")
        async def metrics() -> Response:
            return PlainTextResponse(self._metrics(), media_type="text/plain; version=0.0.4")

        return app

    def _authorised(self, request: Request) -> bool:
        return self.api_key is None or request.headers.get("authorization") == f"Bearer {self.api_key}"

    async def _chat(self, request: Request) -> Response:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        status = 500
        try:
            raw = await request.body()
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            with self._lock:
                number = self._received
                self._received += 1
                self._requests.append(body if isinstance(body, dict) else {"_unparsed_body": raw.decode("utf-8", "replace")})
                self._headers.append(dict(request.headers))
            response = await self._answer(request, body, number)
            status = response.status_code
            return response
        finally:
            with self._lock:
                self._in_flight -= 1
                if status == 200:
                    self._completed += 1
                else:
                    self._failed += 1

    async def _answer(self, request: Request, body: Any, number: int) -> Response:
        if not self._authorised(request):
            return _error(401, "Unauthorized")
        try:
            parsed = self._validate(body)
        except _HTTPError as error:
            return _error(error.code, error.message)
        behaviour = self._behaviour(body, number)
        if behaviour.kind == "status":
            return _error(behaviour.code, behaviour.message, behaviour.retry_after)
        await self._sleep(behaviour.seconds if behaviour.kind == "hang" else self.latency_s)
        if behaviour.kind == "broken_body":
            return Response(_BROKEN_BODY, status_code=200, media_type="application/json")
        if behaviour.kind == "refusal":
            content = REFUSAL_TEXT
        elif behaviour.kind == "empty":
            content = ""
        elif behaviour.kind == "malformed":
            content = _truncated_json(self._generate(parsed, force_json=True))
        elif behaviour.content is not None:
            content = behaviour.content
        else:
            content = self._generate(parsed)
        completion_tokens = max(1, math.ceil(len(content) / 4)) if content else 0
        with self._lock:
            self._prompt_tokens += parsed.prompt_tokens
            self._completion_tokens += completion_tokens
        return JSONResponse(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content, "refusal": None, "tool_calls": []},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": parsed.prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": parsed.prompt_tokens + completion_tokens,
                },
            }
        )

    def _behaviour(self, body: dict, number: int) -> Behaviour:
        script = self.script
        if callable(script):
            chosen = script(body, number)
            return Behaviour.ok() if chosen is None else chosen
        if script:
            with self._lock:
                if self._script_position < len(script):
                    self._script_position += 1
                    return script[self._script_position - 1]
        return Behaviour.ok()

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            pass

    def _validate(self, body: Any) -> _Parsed:
        if not isinstance(body, dict):
            raise _HTTPError(400, "The request body must be a JSON object.")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _HTTPError(400, "`messages` must be a non-empty list.")
        texts: list[str] = []
        images = 0
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in _ROLES:
                raise _HTTPError(400, f"messages[{i}] must be an object with a role in {sorted(_ROLES)}.")
            content = message.get("content")
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, list):
                for j, part in enumerate(content):
                    where = f"messages[{i}].content[{j}]"
                    kind = part.get("type") if isinstance(part, dict) else None
                    if kind == "text":
                        if not isinstance(part.get("text"), str):
                            raise _HTTPError(400, f"{where}: a text part needs a string `text`.")
                        texts.append(part["text"])
                    elif kind == "image_url":
                        _check_image_url(part.get("image_url"), where)
                        images += 1
                    else:
                        raise _HTTPError(400, f"{where}: unknown content part type {kind!r} (expected 'text' or 'image_url').")
            elif content is not None or message["role"] != "assistant":
                raise _HTTPError(400, f"messages[{i}].content must be a string or a list of content parts.")
        if body.get("stream"):
            raise _HTTPError(400, "Streaming is not supported by the loopback server.")
        for key in ("max_tokens", "max_completion_tokens"):
            value = body.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise _HTTPError(400, f"`{key}` must be a positive integer.")
        model = body.get("model")
        if model is not None and model != self.model:
            raise _HTTPError(404, f"The model `{model}` does not exist.")
        schema, json_object, choice = _structured_output(body)
        prompt_tokens = math.ceil(sum(len(t) for t in texts) / 4) + IMAGE_PROMPT_TOKENS * images + 4 * len(messages)
        return _Parsed(schema, json_object, choice, texts[-1] if texts else "", prompt_tokens)

    def _generate(self, parsed: _Parsed, force_json: bool = False) -> str:
        if parsed.schema is not None:
            return json.dumps(example_from_schema(parsed.schema, parsed.seed_text))
        if parsed.choice is not None:
            return str(parsed.choice[_stable_index(parsed.seed_text, len(parsed.choice))])
        sentence = _sentence(parsed.seed_text)
        if parsed.json_object or force_json:
            return json.dumps({"answer": sentence})
        return sentence

    def _metrics(self) -> str:
        with self._lock:
            values = [
                ("vllm:num_requests_running", "gauge", "Chat requests being handled now.", self._in_flight),
                ("vllm:request_success_total", "counter", "Chat requests answered with HTTP 200.", self._completed),
                ("vllm:request_failure_total", "counter", "Chat requests answered with an HTTP error.", self._failed),
                ("vllm:prompt_tokens_total", "counter", "Approximate prompt tokens processed.", self._prompt_tokens),
                ("vllm:generation_tokens_total", "counter", "Approximate tokens generated.", self._completion_tokens),
            ]
        label = '{model_name="' + self.model.replace("\\", "\\\\").replace('"', '\\"') + '"}'
        lines = []
        for name, kind, help_text, value in values:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name}{label} {value}"]
        return "\n".join(lines) + "\n"


def _check_image_url(image_url: Any, where: str) -> None:
    url = image_url.get("url") if isinstance(image_url, dict) else None
    if not isinstance(url, str):
        raise _HTTPError(400, f"{where}: an image_url part needs `image_url.url`.")
    if url.startswith(("http://", "https://")):
        return
    match = _DATA_URL.match(url)
    if match is None:
        raise _HTTPError(400, f"{where}: the image URL must be a data:image/...;base64, URL or an http(s) URL.")
    try:
        base64.b64decode(match.group(1), validate=True)
    except (binascii.Error, ValueError) as error:
        raise _HTTPError(400, f"{where}: the image data is not valid base64 ({error}).") from None


def _structured_output(body: dict) -> tuple[dict | None, bool, list | None]:
    """(schema, json_object, choice) from response_format, structured_outputs or guided_json."""
    response_format = body.get("response_format")
    if response_format is not None:
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind == "json_schema":
            spec = response_format.get("json_schema")
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not isinstance(spec.get("schema"), dict):
                raise _HTTPError(400, "response_format.json_schema needs a string `name` and an object `schema`.")
            return spec["schema"], False, None
        if kind == "json_object":
            return None, True, None
        if kind != "text":
            raise _HTTPError(400, "response_format.type must be one of 'text', 'json_object', 'json_schema'.")
    structured = body.get("structured_outputs")
    if structured is not None:
        if not isinstance(structured, dict):
            raise _HTTPError(400, "`structured_outputs` must be an object.")
        if structured.get("json") is not None:
            return _schema_value(structured["json"], "structured_outputs.json"), False, None
        if structured.get("choice") is not None:
            choice = structured["choice"]
            if not isinstance(choice, list) or not choice:
                raise _HTTPError(400, "structured_outputs.choice must be a non-empty list.")
            return None, False, choice
        unsupported = sorted(k for k, v in structured.items() if v is not None)
        if unsupported:
            raise _HTTPError(400, f"structured_outputs {unsupported} are not supported by the loopback server.")
    if body.get("guided_json") is not None:
        return _schema_value(body["guided_json"], "guided_json"), False, None
    return None, False, None


def _schema_value(value: Any, where: str) -> dict:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise _HTTPError(400, f"`{where}` is not valid JSON.") from None
    if not isinstance(value, dict):
        raise _HTTPError(400, f"`{where}` must be a JSON schema object.")
    return value


def _truncated_json(text: str) -> str:
    cut = text[: max(1, len(text) // 2)]
    try:
        json.loads(cut)
    except ValueError:
        return cut
    return '{"answer": "' + cut  # the half happened to parse (a scalar schema): make sure it does not


# ---- answers generated from the question ----
_FALLBACK_WORDS = ["hand", "reaches", "toward", "object", "then", "holds", "still"]
_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00Z",
    "email": "hand@example.com",
    "uri": "https://example.com/hand",
    "url": "https://example.com/hand",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "127.0.0.1",
}
_MAX_DEPTH = 6  # below this, recursive schemas get only what they require


def _words(text: str) -> list[str]:
    words = [w for w in re.findall(r"[a-z]+", text.lower()) if 2 <= len(w) <= 14]
    return words or list(_FALLBACK_WORDS)


def _stable_index(text: str, n: int) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16) % n


def _sentence(seed_text: str) -> str:
    words = _words(seed_text)
    start = _stable_index(seed_text, len(words))
    picked = [words[(start + i) % len(words)] for i in range(min(8, max(4, len(words))))]
    return "Loopback answer: " + " ".join(picked) + "."


def example_from_schema(schema: dict, seed_text: str) -> Any:
    """A deterministic instance of JSON schema ``schema``, its strings made of words of ``seed_text``.

    Objects get all their ``properties`` (only the required ones deep in a recursive schema);
    ``$ref`` (into ``$defs``/``definitions``), ``allOf`` (merged), ``const``, ``enum`` (a member
    chosen by a stable hash of the seed), ``anyOf``/``oneOf`` (the first branch), type lists (the
    first non-null type), string ``minLength``/``maxLength``/common ``format`` values, array
    ``minItems``/``maxItems`` (1..min(2, maxItems) items, at least ``minItems``), ``prefixItems``,
    ``uniqueItems`` and numeric bounds (``minimum``, ``maximum``, the exclusive ones, integer
    ``multipleOf``) are respected. ``pattern`` is not: strings are lowercase words.
    """
    return _Example(schema, seed_text).build(schema, 0)


class _Example:
    def __init__(self, root: dict, seed_text: str):
        self.root = root
        self.seed = seed_text
        self.words = _words(seed_text)
        self.counter = 0

    def pick(self, n: int) -> int:
        self.counter += 1
        return _stable_index(f"{self.seed}\x00{self.counter}", n)

    def resolve(self, schema: Any) -> dict:
        if schema is True or schema is None:
            return {}
        if not isinstance(schema, dict):
            raise ValueError(f"not a JSON schema: {schema!r}")
        seen = 0
        while "$ref" in schema:
            ref = schema["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#"):
                raise ValueError(f"only local $ref are supported, got {ref!r}")
            target: Any = self.root
            for token in filter(None, ref[1:].split("/")):
                target = target[token.replace("~1", "/").replace("~0", "~")]
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **siblings}
            seen += 1
            if seen > 64:
                raise ValueError(f"$ref cycle at {ref!r}")
        if "allOf" in schema:
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for sub in schema["allOf"]:
                sub = self.resolve(sub)
                for key, value in sub.items():
                    if key == "properties":
                        merged["properties"] = {**merged.get("properties", {}), **value}
                    elif key == "required":
                        merged["required"] = sorted(set(merged.get("required", [])) | set(value))
                    else:
                        merged.setdefault(key, value)
            schema = merged
        return schema

    def build(self, schema: Any, depth: int) -> Any:
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return schema["enum"][self.pick(len(schema["enum"]))]
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                options = schema[key]
                if depth > _MAX_DEPTH:  # stop recursion where the schema allows null
                    nulls = [o for o in options if self.resolve(o).get("type") == "null"]
                    options = nulls or options
                return self.build(options[0], depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = _infer_type(schema)
        if kind == "object":
            return self.object(schema, depth)
        if kind == "array":
            return self.array(schema, depth)
        if kind == "string":
            return self.string(schema)
        if kind in ("integer", "number"):
            return _number(schema, integer=kind == "integer")
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        raise ValueError(f"unsupported schema type {kind!r}")

    def object(self, schema: dict, depth: int) -> dict:
        properties = schema.get("properties") or {}
        required = set(schema.get("required", properties))
        out = {name: self.build(sub, depth + 1) for name, sub in properties.items() if depth <= _MAX_DEPTH or name in required}
        extra = schema.get("additionalProperties")
        if not properties and isinstance(extra, dict) and depth <= _MAX_DEPTH:
            out[self.words[self.pick(len(self.words))]] = self.build(extra, depth + 1)
        return out

    def array(self, schema: dict, depth: int) -> list:
        low = schema.get("minItems", 0)
        high = schema.get("maxItems")
        count = min(2, high) if high is not None else 2
        count = max(count, low)
        if depth > _MAX_DEPTH:
            count = low
        items = [self.build(sub, depth + 1) for sub in (schema.get("prefixItems") or [])[:count]]
        item_schema = schema.get("items", {})  # absent: anything goes (a string)
        unique = schema.get("uniqueItems", False)
        attempts = 0
        while len(items) < count and item_schema is not False:
            value = self.build(item_schema, depth + 1)
            attempts += 1
            if unique and any(value == existing for existing in items):
                if attempts > 8 * count:
                    break
                continue
            items.append(value)
        return items

    def string(self, schema: dict) -> str:
        low = schema.get("minLength", 0)
        high = schema.get("maxLength")
        value = _FORMATS.get(schema.get("format", ""))
        if value is not None and low <= len(value) and (high is None or len(value) <= high):
            return value
        words = self.words
        start = self.pick(len(words))
        count = min(6, max(3, len(words)))
        taken = [words[(start + i) % len(words)] for i in range(count)]
        text = " ".join(taken)
        i = count
        while len(text) < low:
            text += " " + words[(start + i) % len(words)]
            i += 1
        if high is not None and len(text) > high:
            cut = text[:high]
            space = cut.rfind(" ")
            text = cut[:space] if space >= max(low, 1) else cut
            if len(text) < low:
                text = cut
        return text


def _infer_type(schema: dict) -> str:
    if "properties" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")):
        return "number"
    return "string"


def _number(schema: dict, integer: bool) -> int | float:
    low, high = schema.get("minimum"), schema.get("maximum")
    xlow, xhigh = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if isinstance(xlow, bool):  # draft 4: a flag on minimum
        xlow, low = (low, None) if xlow else (None, low)
    if isinstance(xhigh, bool):
        xhigh, high = (high, None) if xhigh else (None, high)
    if integer:
        lo, hi = -math.inf, math.inf
        if low is not None:
            lo = max(lo, math.ceil(low))
        if xlow is not None:
            lo = max(lo, math.floor(xlow) + 1)
        if high is not None:
            hi = min(hi, math.floor(high))
        if xhigh is not None:
            hi = min(hi, math.ceil(xhigh) - 1)
        value = min(max(1, lo), hi)
        step = schema.get("multipleOf")
        if step and isinstance(step, int):
            up = math.ceil(value / step) * step
            value = up if up <= hi else math.floor(value / step) * step
        return int(value)
    lo = max((v for v in (low, xlow) if v is not None), default=-math.inf)
    hi = min((v for v in (high, xhigh) if v is not None), default=math.inf)
    lo_open = xlow is not None and (low is None or xlow >= low)
    hi_open = xhigh is not None and (high is None or xhigh <= high)
    if math.isfinite(lo) and math.isfinite(hi):
        return float(lo + hi) / 2
    value = 0.5
    if math.isfinite(lo) and (value < lo or (lo_open and value <= lo)):
        return float(lo) + 1.0
    if math.isfinite(hi) and (value > hi or (hi_open and value >= hi)):
        return float(hi) - 1.0
    return value
