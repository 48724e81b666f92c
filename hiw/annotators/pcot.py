"""Parallel chain-of-thought for one clip: four narrow questions at once, then the summary, then the
closed-vocabulary caption (PAPER.md, section 1).

Every call becomes a ``responses`` row, whatever happened to it; every caption carries the per-clip QA
verdicts (refusal, empty, schema, grounding against the tracks, vocabulary). The dataset-wide checks
(agreement, outliers) run once all clips are in (``hiw.annotators.review``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from hiw.annotators import qa
from hiw.annotators.cache import ResponseCache
from hiw.annotators.kinematic import hand_sentence
from hiw.annotators.requests import Backend, BackendError, Reply, Sampling, VLMRequest, data_urls
from hiw.motion.facts import HandFacts
from hiw.prompts import CLOSED_VOCAB, PCOT, SUMMARISE, Prompt, render_shared
from hiw.prompts.answers import Answer, CaptionAnswer, HandRole, answer_schema, closed_schema
from hiw.schemas import Caption, ResponseRecord
from hiw.schemas.ids import caption_id, stable_hash
from hiw.video.sample import frames_hash

if TYPE_CHECKING:
    from hiw.annotators.vocab import Vocabulary


@dataclass(frozen=True)
class ClipInput:
    """What the annotator needs of an accepted clip: no video, no arrays."""

    clip_id: str
    video_id: str
    source_path: str
    duration_s: float
    narration: str | None
    facts: tuple[HandFacts, ...]
    frame_paths: tuple[str, ...] = ()


@dataclass
class Call:
    response: ResponseRecord
    answer: Answer | None


@dataclass
class ClipAnnotation:
    clip: ClipInput
    responses: list[ResponseRecord] = field(default_factory=list)
    captions: list[Caption] = field(default_factory=list)
    answers: dict[str, Answer] = field(default_factory=dict)  # the PCoT answers that came back valid
    failures: list[tuple[str, str]] = field(default_factory=list)  # (reason, detail): no caption of that kind


@dataclass(frozen=True)
class ClipRequests:
    """A clip's requests: the shared prefix (system text, frames, context) built once, then one question each."""

    shared: dict

    @classmethod
    def of(cls, clip: ClipInput, jpegs: list[bytes], sampling: Sampling) -> ClipRequests:
        facts = [hand_sentence(f)[0] for f in clip.facts]
        system, context = render_shared(
            n_frames=len(jpegs), duration_s=f"{clip.duration_s:.1f}", clip_id=clip.clip_id, narration=clip.narration, facts=facts
        )
        images, digest = data_urls(jpegs), frames_hash(jpegs)
        return cls(
            dict(clip_id=clip.clip_id, system=system, context=context, images=images, frames_hash=digest, sampling=sampling)
        )

    def request(self, prompt: Prompt, schema: dict | None = None, **values) -> VLMRequest:
        """``prompt`` rendered with ``values``; the answer schema is the prompt's unless given (closed vocabulary)."""
        schema = schema if schema is not None else answer_schema(prompt.answer)
        return VLMRequest(
            prompt=prompt.name, prompt_version=prompt.version, question=prompt.render(**values), schema=schema, **self.shared
        )


class PCoTAnnotator:
    def __init__(
        self,
        backend: Backend,
        cache: ResponseCache | None,
        vocab: Vocabulary | None,
        sampling: Sampling,
        *,
        max_active_clips: int,
        invalid_retries: int,
    ):
        self.backend = backend
        self.cache = cache
        self.vocab = vocab if vocab else None
        self.sampling = sampling
        self.max_active_clips = max_active_clips
        self.invalid_retries = invalid_retries  # answers that are not the schema's JSON, asked again in the same build
        self._active: asyncio.Semaphore | None = None

    async def annotate(self, clip: ClipInput) -> ClipAnnotation:
        if self._active is None:  # bound clips in progress: frames in memory stay small
            self._active = asyncio.Semaphore(self.max_active_clips)
        async with self._active:
            return await self._annotate(clip)

    async def _annotate(self, clip: ClipInput) -> ClipAnnotation:
        out = ClipAnnotation(clip)
        request = ClipRequests.of(clip, [Path(p).read_bytes() for p in clip.frame_paths], self.sampling).request
        calls = await asyncio.gather(*(self._call(p, request(p)) for p in PCOT))
        out.responses += [c.response for c in calls]
        out.answers = {p.name: c.answer for p, c in zip(PCOT, calls) if c.answer is not None}
        missing = [f"{c.response.prompt}: {c.response.status}" for c in calls if c.answer is None]
        if len(missing) == len(PCOT):
            out.failures.append(("pcot_failed", "no PCoT answer: " + "; ".join(missing)))
            return out
        texts = {p.name: out.answers[p.name].text() if p.name in out.answers else "(no answer)" for p in PCOT}
        notes = [f"pcot: no answer to {', '.join(missing)}"] if missing else []

        summary = await self._call(SUMMARISE, request(SUMMARISE, answers=texts))
        out.responses.append(summary.response)
        if summary.answer is None:
            out.failures.append(
                (f"summarise_{summary.response.status}", summary.response.error or summary.response.raw_text[:200])
            )
            return out
        out.captions.append(self._caption(clip, "pcot_summary", SUMMARISE, summary, out.answers, notes))

        if self.vocab is None:
            return out
        verbs, objects = self.vocab.canonical_verbs(), self.vocab.canonical_objects()
        closed = await self._call(
            CLOSED_VOCAB,
            request(
                CLOSED_VOCAB,
                closed_schema(verbs, objects),
                summary=summary.answer.text(),
                answers=texts,
                verbs=verbs,
                objects=objects,
            ),
        )
        out.responses.append(closed.response)
        if closed.answer is None:
            out.failures.append(
                (f"closed_vocab_{closed.response.status}", closed.response.error or closed.response.raw_text[:200])
            )
            return out
        out.captions.append(
            self._caption(clip, "closed_vocab", CLOSED_VOCAB, closed, out.answers, notes + self._vocab_notes(closed.answer))
        )
        return out

    def _vocab_notes(self, answer: CaptionAnswer) -> list[str]:
        unknown = [v for v in answer.verbs if self.vocab.normalise_verb(v) is None]
        unknown += [o for o in answer.objects if self.vocab.normalise_object(o) is None]
        return [f"vocabulary: not in the closed vocabulary: {', '.join(unknown)}"] if unknown else []

    def _caption(
        self, clip: ClipInput, kind: str, prompt: Prompt, call: Call, answers: dict[str, Answer], notes: list[str]
    ) -> Caption:
        answer: CaptionAnswer = call.answer
        roles = answers["hand_role"].roles() if isinstance(answers.get("hand_role"), HandRole) else None
        notes = notes + qa.grounding_notes(roles, answer.caption, list(clip.facts))
        return Caption(
            caption_id=caption_id(clip.clip_id, kind, self.backend.model, prompt.version),
            clip_id=clip.clip_id,
            kind=kind,
            text=answer.caption,
            verbs=list(answer.verbs),
            objects=list(answer.objects),
            model=self.backend.model,
            prompt_version=prompt.version,
            response_id=call.response.response_id,
            vocab_id=self.vocab.id if kind == "closed_vocab" else None,
            qa_passed=not any(failing(n) for n in notes),
            qa_notes=notes,
        )

    async def _call(self, prompt: Prompt, request: VLMRequest) -> Call:
        """One request: from the response cache, else from the backend, asking again (at most ``invalid_retries``
        times) while the answer is not the schema's JSON. Only answers that are not ``invalid`` are cached, so
        a later build asks again for the ones that never came back valid."""
        key = request.key(self.backend.model)
        reply = self.cache.get(key) if self.cache is not None else None
        if reply is not None and interpret(reply.text, prompt.answer)[0] != "invalid":
            return self._interpreted(prompt, request, key, reply, cached=True)
        attempts = 0
        for answers in range(1, self.invalid_retries + 2):
            try:
                reply = await self.backend.complete(request)
            except BackendError as err:
                failed = Reply("", err.latency_s, attempts + err.attempts)
                return Call(self._record(request, key, err.status, err.detail, failed, False), None)
            attempts += reply.attempts
            reply = dataclasses.replace(reply, attempts=attempts)
            if interpret(reply.text, prompt.answer)[0] != "invalid":
                if self.cache is not None:
                    self.cache.put(key, self.backend.model, prompt.name, reply)
                break
        return self._interpreted(prompt, request, key, reply, cached=False, answers=answers)

    def _interpreted(self, prompt: Prompt, request: VLMRequest, key: str, reply: Reply, cached: bool, answers: int = 1) -> Call:
        status, answer, error = interpret(reply.text, prompt.answer)
        if status == "invalid":
            error = f"{error} (asked {answers} time(s))"
            if reply.finish_reason == "length":
                error = f"cut off at max_tokens ({request.sampling.max_tokens}); {error}"
        parsed = answer.model_dump_json() if answer is not None else None
        return Call(self._record(request, key, status, error, reply, cached, parsed), answer)

    def _record(
        self, request: VLMRequest, key: str, status: str, error: str | None, reply: Reply, cached: bool, parsed: str | None = None
    ) -> ResponseRecord:
        return ResponseRecord(
            response_id="q_" + stable_hash(request.clip_id, request.prompt, key),
            clip_id=request.clip_id,
            prompt=request.prompt,
            prompt_version=request.prompt_version,
            backend=self.backend.name,
            model=self.backend.model,
            request_hash=key,
            frames_hash=request.frames_hash,
            n_frames=len(request.images),
            status=status,
            error=error,
            attempts=reply.attempts,
            latency_s=reply.latency_s,
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens,
            cached=cached,
            raw_text=reply.text,
            parsed_json=parsed,
        )

    async def aclose(self) -> None:
        await self.backend.aclose()


# QA notes start with the check's name; these checks fail a caption, the rest (e.g. "pcot:") inform.
FAILING_CHECKS = ("grounding", "vocabulary", "agreement", "outlier")


def failing(note: str) -> bool:
    return note.split(":", 1)[0] in FAILING_CHECKS


def interpret(text: str, model: type[Answer]) -> tuple[str, Answer | None, str | None]:
    """(status, answer, error) of a reply: refused, empty, invalid (not the schema's JSON) or ok."""
    refused = qa.refusal(text)
    if refused:
        return "refused", None, refused
    if not text.strip():
        return "empty", None, "the reply has no text"
    try:
        answer = model.model_validate_json(text)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(map(str, first["loc"])) or "reply"
        return "invalid", None, f"not a valid {model.__name__} ({err.error_count()} error(s)); {where}: {first['msg']}"
    if qa.empty_answer(answer.model_dump()):
        return "empty", None, "every field of the answer is empty"
    refused = qa.refusal(answer.text())  # a refusal dressed up as the schema's JSON
    if refused:
        return "refused", None, refused
    return "ok", answer, None
