"""Records (pydantic) and the Arrow schemas derived from them."""

from hiw.schemas.arrow import arrow_schema, to_table
from hiw.schemas.records import (
    HANDS,
    KEYPOINT_WIDTH,
    N_KEYPOINTS,
    Caption,
    ClipRecord,
    ClipSpec,
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
# Tables written later by the motion tokenizer's flows (``hiw shift tokenize|reconstruct``), one file per checkpoint.
DERIVED_TABLES = {"tokens": TokenRecord, "reconstructions": ReconstructionRecord}

__all__ = [
    "HANDS",
    "KEYPOINT_WIDTH",
    "N_KEYPOINTS",
    "DERIVED_TABLES",
    "TABLES",
    "Caption",
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
