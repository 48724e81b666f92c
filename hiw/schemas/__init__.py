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
    Reject,
    VideoSource,
)

# Table name -> record model: the tables every build writes.
TABLES = {"clips": ClipRecord, "motion": MotionRecord, "captions": Caption, "rejects": Reject}

__all__ = [
    "HANDS",
    "KEYPOINT_WIDTH",
    "N_KEYPOINTS",
    "TABLES",
    "Caption",
    "ClipRecord",
    "ClipSpec",
    "HandTrack",
    "MotionRecord",
    "Narration",
    "Reject",
    "VideoSource",
    "arrow_schema",
    "to_table",
]
