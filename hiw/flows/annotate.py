"""The build's VLM phase: vocabulary first, then each accepted clip's PCoT as soon as its motion is done
(overlapping tracking of the others), then the dataset-wide caption QA.

Only used with ``--vlm openai|vllm``; the offline kinematic captions need none of it.
"""

from __future__ import annotations

from concurrent.futures import Future, as_completed
from dataclasses import dataclass, field

from hiw.annotators.embed import load_embedder
from hiw.annotators.pcot import ClipAnnotation, ClipInput
from hiw.annotators.review import ReviewSettings, failure_rejects, review
from hiw.annotators.session import AnnotationSession
from hiw.annotators.vocab import Vocabulary
from hiw.config import BuildConfig
from hiw.errors import StageError
from hiw.flows import settings, stages
from hiw.flows.runners import PlainRunner
from hiw.schemas import Caption, Reject, ResponseRecord, VocabularyEntry


class AnnotationProgress:
    """Receives the VLM phase's progress; this base ignores it."""

    def annotation_submitted(self) -> None: ...
    def annotation_done(self, annotation: ClipAnnotation) -> None: ...


@dataclass
class VLMOutput:
    """The annotation group's rows: one list per table of ``GROUP_TABLES["annotation"]``, named as the table."""

    captions: list[Caption] = field(default_factory=list)
    responses: list[ResponseRecord] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    vocabulary: list[VocabularyEntry] = field(default_factory=list)
    # videos with a call that failed or never came back valid: their annotation is due again next build
    retry_videos: set[str] = field(default_factory=set)


class VLMPhase:
    def __init__(self, cfg: BuildConfig, narrations: list[str], runner: PlainRunner, progress: AnnotationProgress):
        self.cfg, self.runner, self.progress = cfg, runner, progress
        self.vocab: Vocabulary | None = runner.run("vocabulary", stages.vocabulary, cfg, narrations)
        self.session = AnnotationSession(stages.make_annotator(cfg, self.vocab, runner.vlm_slot()))
        self._futures: dict[Future, ClipInput] = {}

    def submit(self, clip: ClipInput) -> None:
        self._futures[self.session.submit(clip)] = clip
        self.progress.annotation_submitted()

    def finish(self) -> VLMOutput:
        annotations, out = [], VLMOutput()
        for future in as_completed(self._futures):
            clip = self._futures[future]
            try:
                annotation = future.result()
            except Exception as err:  # noqa: BLE001 - a bug on one clip costs that clip's VLM captions, not the build
                annotation = ClipAnnotation(clip, failures=[("internal_error", f"{type(err).__name__}: {err}"[:500])])
            annotations.append(annotation)
            self._count(annotation.responses)
            self.progress.annotation_done(annotation)
        self.close()
        out.responses = [r for a in annotations for r in a.responses]
        out.retry_videos = {
            a.clip.video_id
            for a in annotations
            if any(failed(r) for r in a.responses) or any(reason == "internal_error" for reason, _ in a.failures)
        }
        review_settings = settings.review_settings(self.cfg)
        out.rejects = failure_rejects(annotations)
        try:
            out.captions, qa_rejects = self.runner.run("caption_qa", _review, annotations, review_settings)
        except Exception as err:  # noqa: BLE001 - keep the captions (unreviewed) and say why
            out.captions = [c for a in annotations for c in a.captions]
            why = StageError("internal_error", f"dataset-wide caption QA failed: {type(err).__name__}: {err}"[:500])
            qa_rejects = [Reject.of("caption_qa", why, str(self.cfg.out))]
        out.rejects += qa_rejects
        out.vocabulary = vocabulary_rows(self.vocab) if self.vocab else []
        return out

    def _count(self, responses: list[ResponseRecord]) -> None:
        for r in responses:
            if not r.cached:  # time and tokens actually spent by this build
                self.runner.times.add("vlm", r.latency_s, items=r.completion_tokens or 0)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> VLMPhase:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def failed(response: ResponseRecord) -> bool:
    """A call that did not give an answer the model would give again: the transport failed, or the answer was not
    the schema's JSON however often it was asked (a refusal or an empty answer is the model's final word)."""
    return response.status in ("error", "timeout", "invalid")


def _review(annotations: list[ClipAnnotation], settings: ReviewSettings):
    return review(annotations, load_embedder(), settings)


def vocabulary_rows(vocab: Vocabulary) -> list[VocabularyEntry]:
    rows = []
    for kind, words, counts in (("verb", vocab.verbs, vocab.verb_counts), ("object", vocab.objects, vocab.object_counts)):
        rows += [
            VocabularyEntry(vocab_id=vocab.id, kind=kind, word=w, canonical=c, count=counts.get(w, 0))
            for w, c in sorted(words.items())
        ]
    return rows
