"""The records hiw produces: one pydantic model per concept; Arrow schemas derive from these.

Tables of a build: ``clips`` (ClipRecord), ``motion`` (MotionRecord), ``captions`` (Caption),
``rejects`` (Reject). VideoSource, Narration, ClipSpec and HandTrack are in-flight records.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from hiw.schemas.arrays import FrameArray, FrameMask

N_KEYPOINTS = 21
KEYPOINT_WIDTH = N_KEYPOINTS * 3
HANDS = ("left", "right")

Keypoints = Annotated[np.ndarray, FrameArray(KEYPOINT_WIDTH)]
Mask = Annotated[np.ndarray, FrameMask()]
Side = Literal["left", "right"]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Record(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True, extra="forbid")


class Narration(Record):
    """A timestamped narration in the Ego4D style ("#C C cuts the onion")."""

    start_s: float
    end_s: float
    text: str


class VideoSource(Record):
    """A probed input video; ``video_id`` derives from the file's bytes."""

    video_id: str
    path: str
    size_bytes: int
    fps: float
    n_frames: int
    width: int
    height: int
    duration_s: float
    codec: str
    rotation: int = Field(description="degrees clockwise the frames must be rotated for display")


class ClipSpec(Record):
    """A planned span of a video; ``clip_id`` derives from (video_id, span, clip config)."""

    clip_id: str
    video_id: str
    source_path: str
    clip_index: int
    plan: Literal["window", "narration"]
    start_frame: int
    end_frame: int = Field(description="exclusive")
    start_s: float
    end_s: float
    source_fps: float
    width: int
    height: int
    narration: str | None = None

    @property
    def n_frames(self) -> int:
        return self.end_frame - self.start_frame


class HandTrack(Record):
    """One hand over a clip, at the source frame rate, as the tracker saw it.

    ``keypoints_2d``: per keypoint (x, y, confidence), x/y in source-video pixels.
    ``keypoints_3d``: metric (metres), centred on the hand; axes follow the camera.
    """

    side: Side
    valid: Mask
    keypoints_2d: Keypoints
    keypoints_3d: Keypoints


class ClipRecord(ClipSpec):
    """Row of the ``clips`` table: the planned clip, what tracking saw, and its verdict."""

    status: Literal["accepted", "rejected"]
    reject_reason: str | None = None
    frames_decoded: int = 0
    frames_any_hand: int = 0
    frames_both_hands: int = 0
    frames_left: int = 0
    frames_right: int = 0
    any_hand_frac: float = 0.0
    both_hands_frac: float = 0.0
    tracker: str
    tracker_version: str
    config_hash: str
    code_version: str
    created_at: datetime = Field(default_factory=utc_now)


class MotionRecord(Record):
    """Row of the ``motion`` table: both hands' keypoint sequences at the canonical frame rate.

    Missing frames are NaN in the arrays and False in the ``*_valid`` masks.
    """

    clip_id: str
    video_id: str
    fps: float
    n_frames: int
    representation: Literal["keypoints21"] = "keypoints21"
    coordinate_frame: str = Field(
        description="frame of the 3D keypoints; 'hand_centred_camera_axes' for mediapipe world landmarks"
    )
    smoothing: str
    left_valid: Mask
    left_keypoints_2d: Keypoints
    left_keypoints_3d: Keypoints
    right_valid: Mask
    right_keypoints_2d: Keypoints
    right_keypoints_3d: Keypoints
    tracker: str
    tracker_version: str
    config_hash: str
    code_version: str
    created_at: datetime = Field(default_factory=utc_now)


class Caption(Record):
    """Row of the ``captions`` table."""

    caption_id: str
    clip_id: str
    kind: Literal["kinematic", "narration"]
    text: str
    verbs: list[str]
    objects: list[str]
    model: str
    prompt_version: str | None = None
    qa_passed: bool = True
    qa_notes: list[str] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utc_now)


class Reject(Record):
    """Row of the ``rejects`` table: something dropped, where, and why."""

    reject_id: str
    stage: str
    reason: str
    detail: str
    source_path: str
    video_id: str | None = None
    clip_id: str | None = None
    created_at: datetime = Field(default_factory=utc_now)
