"""Dataset-wide caption QA, once every clip is annotated: agreement with the PCoT answers and outliers.

- agreement: mean cosine similarity between a caption and each of its clip's PCoT answers (sentence
  embeddings); a caption that drifts from what the focused questions found is likely hallucinated.
- outliers: Local Outlier Factor over the embeddings of all captions of one kind, as in the paper.
Every verdict is stored on the caption (``qa_*`` columns); a caption that fails any check also becomes a
``rejects`` row (stage ``caption_qa``, reason ``<kind>.<check>``). Failed calls that left a clip without a
caption become ``annotate`` rejects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hiw.annotators import qa
from hiw.annotators.embed import Embedder
from hiw.annotators.pcot import ClipAnnotation, ClipInput, failing
from hiw.errors import StageError
from hiw.schemas import Caption, Reject


@dataclass(frozen=True)
class ReviewSettings:
    min_agreement: float
    lof_neighbors: int
    max_outlier_factor: float


def review(annotations: list[ClipAnnotation], embedder: Embedder, settings: ReviewSettings) -> tuple[list[Caption], list[Reject]]:
    captions = [c for a in annotations for c in a.captions]
    answers = [[ans.text() for ans in a.answers.values()] for a in annotations for _ in a.captions]
    if not captions:
        return [], []
    # one batch for every text: the embedder is much faster on batches than on single sentences
    answer_texts = sorted({t for group in answers for t in group})
    vectors = embedder.encode([c.text for c in captions] + answer_texts)
    caption_vecs, answer_vecs = vectors[: len(captions)], dict(zip(answer_texts, vectors[len(captions) :]))
    agreement = [qa.mean_similarity(v, [answer_vecs[t] for t in group]) for v, group in zip(caption_vecs, answers)]
    factors = np.full(len(captions), np.nan)
    for kind in sorted({c.kind for c in captions}):
        rows = np.flatnonzero([c.kind == kind for c in captions])
        factors[rows], _ = qa.lof_outliers(caption_vecs[rows], settings.lof_neighbors, settings.max_outlier_factor)
    reviewed, rejects = [], []
    clips = {a.clip.clip_id: a.clip for a in annotations}
    for caption, agree, factor in zip(captions, agreement, factors):
        notes = list(caption.qa_notes)
        if np.isfinite(agree) and agree < settings.min_agreement:
            notes.append(f"agreement: {agree:.2f} below {settings.min_agreement:g} with the PCoT answers")
        if np.isfinite(factor) and factor > settings.max_outlier_factor:
            notes.append(f"outlier: local outlier factor {factor:.2f} above {settings.max_outlier_factor:g}")
        failed = [n for n in notes if failing(n)]
        caption = caption.model_copy(
            update=dict(
                qa_notes=notes,
                qa_passed=not failed,
                qa_agreement=float(agree) if np.isfinite(agree) else None,
                qa_outlier_factor=float(factor) if np.isfinite(factor) else None,
            )
        )
        reviewed.append(caption)
        if failed:
            reason = f"{caption.kind}.{failed[0].split(':', 1)[0]}"
            rejects.append(_reject("caption_qa", StageError(reason, "; ".join(failed)), clips[caption.clip_id]))
    return reviewed, rejects


def failure_rejects(annotations: list[ClipAnnotation]) -> list[Reject]:
    """Calls that left a clip without a caption of some kind (``annotate`` stage)."""
    return [_reject("annotate", StageError(reason, detail), a.clip) for a in annotations for reason, detail in a.failures]


def _reject(stage: str, err: StageError, clip: ClipInput) -> Reject:
    return Reject.of(stage, err, clip.source_path, clip.video_id, clip.clip_id)
