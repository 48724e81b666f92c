"""Any OpenAI-compatible chat server, first of all ``vllm serve``: async, bounded, retried.

- At most ``concurrency`` requests are in flight at once (enough to keep the server's batch full,
  few enough not to pile up its queue); backoff sleeps happen outside that limit. ``slot``, when given, is
  a second, global limit shared with other builds (the build passes Prefect's ``hiw-vlm`` tag limit).
- Retries with exponential backoff and jitter on 408/429/5xx, timeouts and connection errors, honouring
  ``Retry-After``; any other 4xx fails at once (retrying a bad request cannot help).
- The answer schema goes as ``response_format`` ``json_schema``: the OpenAI form, which vLLM turns into
  constrained decoding (``structured_outputs`` is vLLM's own spelling of the same thing).
- The API key comes from the environment (HIW_VLM_API_KEY, else OPENAI_API_KEY) and lives only in the
  client's headers: it is never logged, hashed into a cache key or written to a table. Credentials in the
  URL (``http://user:password@host/v1``) become HTTP basic auth of the client and leave ``url``, so they
  appear in no repr or error message either.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any, Literal

import httpx

from hiw.annotators.requests import BackendError, Reply, VLMRequest

API_KEY_VARS = ("HIW_VLM_API_KEY", "OPENAI_API_KEY")
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
SchemaField = Literal["response_format", "structured_outputs"]


def api_key_from_env() -> str | None:
    return next((os.environ[v] for v in API_KEY_VARS if os.environ.get(v)), None)


class OpenAIBackend:
    name = "openai"

    def __init__(
        self,
        url: str,
        model: str,
        *,
        concurrency: int,
        timeout_s: float,
        retries: int,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        schema_field: SchemaField = "response_format",
        images_first: bool = True,
        api_key: str | None = None,
        slot: Callable[[], AbstractAsyncContextManager] | None = None,
    ):
        parsed = httpx.URL(url)
        self._auth = httpx.BasicAuth(parsed.username, parsed.password) if parsed.userinfo else None
        self.url = str(parsed.copy_with(username=None, password=None)).rstrip("/")
        self.model = model
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.schema_field = schema_field
        self.images_first = images_first
        self.slot = slot
        key = api_key if api_key is not None else api_key_from_env()
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client: httpx.AsyncClient | None = None
        self._limit: asyncio.Semaphore | None = None

    def __repr__(self) -> str:  # never the key
        return f"OpenAIBackend(url={self.url!r}, model={self.model!r}, concurrency={self.concurrency})"

    def _session(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        if self._client is None:  # created on first use, inside the event loop that runs the calls
            limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
            self._client = httpx.AsyncClient(headers=self._headers, auth=self._auth, limits=limits, timeout=self.timeout_s)
            self._limit = asyncio.Semaphore(self.concurrency)
        return self._client, self._limit

    def body(self, request: VLMRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": request.messages(self.images_first),
            "temperature": request.sampling.temperature,
            "max_tokens": request.sampling.max_tokens,
            "seed": request.sampling.seed,
        }
        if self.schema_field == "structured_outputs":
            body["structured_outputs"] = {"json": request.schema}
        else:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": request.prompt, "schema": request.schema, "strict": True},
            }
        return body

    async def complete(self, request: VLMRequest) -> Reply:
        client, limit = self._session()
        body = self.body(request)
        started = time.perf_counter()
        for attempt in range(1, self.retries + 2):
            async with limit, self.slot() if self.slot else nullcontext():
                try:
                    response = await client.post(f"{self.url}/chat/completions", json=body)
                except httpx.TimeoutException:
                    failure, status, wait = f"no answer within {self.timeout_s:g} s", "timeout", None
                except httpx.TransportError as err:
                    failure, status, wait = f"{type(err).__name__}: {err}", "error", None
                else:
                    if response.status_code == 200:
                        return _reply(response, time.perf_counter() - started, attempt)
                    failure, status, wait = _http_failure(response), "error", _retry_after(response)
                    if response.status_code not in RETRY_STATUS:
                        raise BackendError(status, failure, attempt, time.perf_counter() - started)
            if attempt > self.retries:
                raise BackendError(status, f"{failure} (after {attempt} attempts)", attempt, time.perf_counter() - started)
            await asyncio.sleep(min(wait, self.max_backoff_s) if wait is not None else self._backoff(attempt))
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _reply(response: httpx.Response, latency_s: float, attempts: int) -> Reply:
    try:
        data = response.json()
        choice = data["choices"][0]
        text = choice["message"].get("content") or ""
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as err:
        raise BackendError(
            "error", f"malformed response body ({type(err).__name__}): {response.text[:200]!r}", attempts, latency_s
        )
    usage = data.get("usage") or {}
    return Reply(
        text=text,
        latency_s=latency_s,
        attempts=attempts,
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        finish_reason=choice.get("finish_reason"),
    )


def _http_failure(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
        message = error.get("message") if isinstance(error, dict) else error or response.json().get("message")
    except (ValueError, AttributeError):
        message = response.text[:200]
    return f"HTTP {response.status_code}: {message}"


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["retry-after"]))
    except (KeyError, ValueError):
        return None
