"""Records (pydantic) and the Arrow schemas derived from them."""

from hiw.schemas.arrow import arrow_schema, to_table
from hiw.schemas.records import (
    HANDS,
    KEYPOINT_WIDTH,
    N_KEYPOINTS,
    Caption,
    CaptionGenerationRecord,
    ClipRecord,
    ClipSpec,
    EvaluationRecord,
    GenerationRecord,
    HandTrack,
    MotionRecord,
    Narration,
    ReconstructionRecord,
    Reject,
    ResponseRecord,
    TokenRecord,
    VideoSource,
    VocabularyEntry,
)

# Table name -> record model: the tables every build writes.
TABLES = {
    "clips": ClipRecord,
    "motion": MotionRecord,
    "captions": Caption,
    "responses": ResponseRecord,
    "vocabulary": VocabularyEntry,
    "rejects": Reject,
}
# What identifies a row of each table (`hiw verify` checks that it is unique).
KEYS: dict[str, tuple[str, ...]] = {
    "clips": ("clip_id",),
    "motion": ("clip_id",),
    "captions": ("caption_id",),
    "responses": ("response_id",),
    "vocabulary": ("vocab_id", "kind", "word"),
    "rejects": ("reject_id",),
}
# The tables each kind of shard group holds rows of: a group of videos (what the per-clip stages make), the
# dataset-wide VLM annotation, and the rejects of inputs that never became a video.
GROUP_TABLES: dict[str, tuple[str, ...]] = {
    "videos": ("clips", "motion", "captions", "rejects"),
    "annotation": ("captions", "responses", "vocabulary", "rejects"),
    "sources": ("rejects",),
}
# Tables written later, one file per producer: by the motion tokenizer's flows (``hiw shift tokenize|reconstruct``,
# one per checkpoint), by generators (one per generator) and by the evaluation suite (one per scoring run).
DERIVED_TABLES = {
    "tokens": TokenRecord,
    "reconstructions": ReconstructionRecord,
    "generations": GenerationRecord,
    "generated_captions": CaptionGenerationRecord,
    "evaluations": EvaluationRecord,
}

__all__ = [
    "HANDS",
    "KEYPOINT_WIDTH",
    "N_KEYPOINTS",
    "DERIVED_TABLES",
    "GROUP_TABLES",
    "KEYS",
    "TABLES",
    "Caption",
    "CaptionGenerationRecord",
    "EvaluationRecord",
    "GenerationRecord",
    "ClipRecord",
    "ClipSpec",
    "HandTrack",
    "MotionRecord",
    "Narration",
    "ReconstructionRecord",
    "Reject",
    "ResponseRecord",
    "TokenRecord",
    "VocabularyEntry",
    "VideoSource",
    "arrow_schema",
    "to_table",
]
