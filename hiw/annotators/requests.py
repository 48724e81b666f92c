"""What goes to a VLM backend and what comes back, whichever backend serves it."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from hiw.schemas.ids import stable_hash

Status = Literal["ok", "invalid", "refused", "empty", "error", "timeout"]


@dataclass(frozen=True)
class Sampling:
    temperature: float
    max_tokens: int
    seed: int


@dataclass(frozen=True)
class VLMRequest:
    """One chat request: system text, the clip's frames, the shared clip context, then the question.

    Frames come before any text of the user turn, so every prompt of one clip shares the longest possible
    prefix (system + images + context) and vLLM's prefix cache serves the images once per clip.
    """

    clip_id: str
    prompt: str
    prompt_version: str
    system: str
    context: str
    question: str
    schema: dict[str, Any]
    sampling: Sampling
    images: tuple[str, ...] = ()  # the frames as data URLs, encoded once per clip and shared by its requests
    frames_hash: str = ""

    def messages(self, images_first: bool = True) -> list[dict[str, Any]]:
        images = [{"type": "image_url", "image_url": {"url": url}} for url in self.images]
        texts = [{"type": "text", "text": self.context}, {"type": "text", "text": self.question}]
        user = images + texts if images_first else texts[::-1] + images  # question-first: the benchmark's contrast
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]

    def key(self, model: str) -> str:
        """The response-cache key: model, prompt version, frames, every text, schema and sampling."""
        return "h_" + stable_hash(
            model,
            self.prompt,
            self.prompt_version,
            self.frames_hash,
            self.system,
            self.context,
            self.question,
            self.schema,
            self.sampling.__dict__,
            length=24,
        )


def data_urls(jpegs: list[bytes]) -> tuple[str, ...]:
    return tuple("data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii") for jpeg in jpegs)


@dataclass(frozen=True)
class Reply:
    """A completed call: the model's text and what it cost."""

    text: str
    latency_s: float
    attempts: int = 1
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None


class BackendError(Exception):
    """A call that did not complete: transport failure, HTTP error, or timeout after the retries."""

    def __init__(self, status: Literal["error", "timeout"], detail: str, attempts: int, latency_s: float):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.attempts = attempts
        self.latency_s = latency_s


class Backend(Protocol):
    name: str
    model: str

    async def complete(self, request: VLMRequest) -> Reply: ...
    async def aclose(self) -> None: ...
