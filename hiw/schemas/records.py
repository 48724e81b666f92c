"""The records hiw produces: one pydantic model per concept; Arrow schemas derive from these.

Tables of a build: ``clips`` (ClipRecord), ``motion`` (MotionRecord), ``captions`` (Caption),
``responses`` (ResponseRecord), ``vocabulary`` (VocabularyEntry), ``rejects`` (Reject). VideoSource,
Narration, ClipSpec and HandTrack are in-flight records.
Tables the motion tokenizer derives from a build: ``tokens`` (TokenRecord), ``reconstructions``
(ReconstructionRecord); and the evaluation suite: ``generations`` (GenerationRecord), ``generated_captions``
(CaptionGenerationRecord), ``evaluations`` (EvaluationRecord).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from hiw.errors import StageError
from hiw.schemas.arrays import FrameArray, FrameMask, FrameValues
from hiw.schemas.ids import reject_id
from hiw.schemas.stages import STEPS, UNIT_LABELS

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
    jitter_translation: float | None = Field(None, description="m/s^2; see MotionRecord")
    jitter_rotation: float | None = Field(None, description="rad/s^2; see MotionRecord")
    motion_s: float | None = Field(None, description="longest span with both hands valid, seconds")
    fit_error_mm: float | None = None
    tracker: str
    tracker_version: str
    config_hash: str
    code_version: str
    created_at: datetime = Field(default_factory=utc_now)


class MotionRecord(Record):
    """Row of the ``motion`` table: both hands' parameters and keypoints at the canonical frame rate.

    Per hand: ``global_orient`` (axis-angle, 3) and ``hand_pose`` (15 joints x axis-angle, MANO joint
    order) relative to the rest pose of ``hand_model``; ``transl`` (metres) in ``coordinate_frame``
    with the MANO convention (wrist = rest wrist + transl); ``keypoints_3d`` the model's 21 keypoints
    for those parameters and ``keypoints_2d`` the tracker's (x, y, confidence in source pixels), both
    in OpenPose/mediapipe order; ``rest_keypoints`` the fitted model's rest pose (mano21 order, 63);
    ``betas`` MANO shape (empty for the open skeleton); ``filled`` frames made by gap filling;
    ``fit_error_mm`` mean keypoint distance of the fit (NaN for filled or precomputed frames).
    Missing frames are NaN and False in ``*_valid``.
    """

    clip_id: str
    video_id: str
    fps: float
    n_frames: int
    hand_model: str = Field(description="'open-skeleton-v1' (no licensed file) or 'mano'")
    coordinate_frame: Literal["hand_centred", "camera", "camera_rotation_compensated", "world"] = Field(
        description="camera: camera of each frame; camera_rotation_compensated: first frame's camera orientation "
        "(head rotation removed, translation still camera-relative); world: the tracker's world frame"
    )
    intrinsics: str | None = Field(None, description="fx,fy,cx,cy (source pixels) and where they came from")
    processing: str
    camera_rotations: Annotated[np.ndarray, FrameArray(9)] = Field(description="row-major camera(t) -> first camera")
    head_rotation_deg: float
    swapped_frames: int = Field(description="source frames whose left/right labels were exchanged")
    dropped_frames: int = Field(description="observations removed as impossible (NaN, bone lengths, PnP failure)")
    jitter_translation: float = Field(description="mean of the top-3 wrist accelerations, m/s^2 (worse hand)")
    jitter_rotation: float = Field(description="mean of the top-3 global-orientation accelerations, rad/s^2")
    motion_s: float = Field(description="longest span with both hands valid, seconds")
    fit_error_mm: float | None = Field(None, description="mean fit error over fitted frames of both hands")
    left_valid: Mask
    left_filled: Mask
    left_global_orient: Annotated[np.ndarray, FrameArray(3)]
    left_hand_pose: Annotated[np.ndarray, FrameArray(45)]
    left_transl: Annotated[np.ndarray, FrameArray(3)]
    left_betas: list[float]
    left_rest_keypoints: list[float]
    left_keypoints_2d: Keypoints
    left_keypoints_3d: Keypoints
    left_fit_error_mm: Annotated[np.ndarray, FrameValues()]
    right_valid: Mask
    right_filled: Mask
    right_global_orient: Annotated[np.ndarray, FrameArray(3)]
    right_hand_pose: Annotated[np.ndarray, FrameArray(45)]
    right_transl: Annotated[np.ndarray, FrameArray(3)]
    right_betas: list[float]
    right_rest_keypoints: list[float]
    right_keypoints_2d: Keypoints
    right_keypoints_3d: Keypoints
    right_fit_error_mm: Annotated[np.ndarray, FrameValues()]
    tracker: str
    tracker_version: str
    config_hash: str
    code_version: str
    created_at: datetime = Field(default_factory=utc_now)


class Caption(Record):
    """Row of the ``captions`` table."""

    caption_id: str
    clip_id: str
    kind: Literal["kinematic", "narration", "pcot_summary", "closed_vocab"]
    text: str
    verbs: list[str]
    objects: list[str]
    model: str
    prompt_version: str | None = None
    response_id: str | None = Field(None, description="the ``responses`` row this caption came from (VLM captions)")
    vocab_id: str | None = Field(None, description="the vocabulary a closed_vocab caption was restricted to")
    qa_passed: bool = True
    qa_notes: list[str] = Field(default_factory=list)
    qa_agreement: float | None = Field(None, description="mean cosine similarity of the caption to the PCoT answers")
    qa_outlier_factor: float | None = Field(None, description="Local Outlier Factor among the build's captions of this kind")
    created_at: datetime = Field(default_factory=utc_now)


class ResponseRecord(Record):
    """Row of the ``responses`` table: one VLM call (or its cached reply), whatever its outcome."""

    response_id: str
    clip_id: str
    prompt: str
    prompt_version: str
    backend: str
    model: str
    request_hash: str = Field(description="response-cache key: model, prompt version, frames, texts, schema, sampling")
    frames_hash: str
    n_frames: int
    status: Literal["ok", "invalid", "refused", "empty", "error", "timeout"]
    error: str | None = None
    attempts: int
    latency_s: float
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached: bool = Field(description="served from the response cache (latency and tokens are the original call's)")
    raw_text: str
    parsed_json: str | None = Field(None, description="the answer as validated JSON; null unless status is ok")
    created_at: datetime = Field(default_factory=utc_now)


class VocabularyEntry(Record):
    """Row of the ``vocabulary`` table: one verb or object lemma from the narrations, and its synonym cluster."""

    vocab_id: str
    kind: Literal["verb", "object"]
    word: str
    canonical: str
    count: int


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

    @classmethod
    def of(cls, stage: str, err: StageError, source_path: str, video_id: str | None = None, clip_id: str | None = None) -> Reject:
        """The reject for ``err`` at ``stage`` (a step of ``hiw.schemas.stages``, or a unit); its id is content-derived,
        so a rebuild gives the same row."""
        if stage not in STEPS and stage not in UNIT_LABELS:
            raise ValueError(f"unknown reject label {stage!r}: name a step of a stage in hiw.schemas.stages")
        return cls(
            reject_id=reject_id(stage, source_path, clip_id, err.reason),
            stage=stage,
            reason=err.reason,
            detail=err.detail,
            source_path=source_path,
            video_id=video_id,
            clip_id=clip_id,
        )


class TokenRecord(Record):
    """Row of the ``tokens`` table: one clip's motion as tokenizer codes, with the lineage to decode them.

    ``tokens`` is step-major: for each token step (``frames_per_step`` frames) one code per ``stream`` entry,
    e.g. SHIFT's [left-traj, left-pose, right-traj, right-pose]; each code indexes its own codebook.
    """

    clip_id: str
    fps: float
    n_frames: int
    n_steps: int
    frames_per_step: int
    stream: list[str]
    tokens: Annotated[list[int], pa.list_(pa.int32())]
    left_step_valid: Mask
    right_step_valid: Mask
    origin: list[float] = Field(description="translation (m) subtracted before tokenizing; reconstruct adds it back")
    text: str
    variant: str
    codebook_size: int
    codebook_id: str = Field(description="hash of the codebooks' values")
    checkpoint_id: str = Field(description="hash of the checkpoint file")
    checkpoint_step: int
    checkpoint_path: str
    dataset: str = Field(description="fingerprint of the data that was tokenized")
    stats_id: str = Field(description="the feature mean/std used for normalisation")
    code_version: str
    created_at: datetime = Field(default_factory=utc_now)


class HandParams(Record):
    """Both hands' per-frame parameters, as in ``motion``: axis-angle in MANO joint order, metres, the clip's
    coordinate frame; frames outside ``*_valid`` are NaN."""

    left_valid: Mask
    left_global_orient: Annotated[np.ndarray, FrameArray(3)]
    left_hand_pose: Annotated[np.ndarray, FrameArray(45)]
    left_transl: Annotated[np.ndarray, FrameArray(3)]
    right_valid: Mask
    right_global_orient: Annotated[np.ndarray, FrameArray(3)]
    right_hand_pose: Annotated[np.ndarray, FrameArray(45)]
    right_transl: Annotated[np.ndarray, FrameArray(3)]


class ReconstructionRecord(HandParams):
    """Row of the ``reconstructions`` table: tokens decoded back to per-hand parameters."""

    clip_id: str
    fps: float
    n_frames: int
    checkpoint_id: str
    codebook_id: str
    code_version: str
    created_at: datetime = Field(default_factory=utc_now)


class GenerationRecord(HandParams):
    """Row of the ``generations`` table: one motion a generator made from a caption (text-to-motion output).

    Anything that writes these columns can be scored (``hiw eval t2m``): CLUTCH, a baseline, an outside model."""

    generation_id: str
    clip_id: str | None = Field(None, description="the clip whose caption prompted it; null for free text")
    text: str | None = Field(None, description="the prompt; null: the clip's captions (one drawn per replication)")
    sample: int = Field(0, description="0, 1, ...: repeated generations of one prompt (MultiModality)")
    generator: str
    generator_lineage: str = Field(description="JSON: checkpoints, data and settings the generator ran with")
    fps: float
    n_frames: int
    code_version: str
    created_at: datetime = Field(default_factory=utc_now)


class CaptionGenerationRecord(Record):
    """Row of the ``generated_captions`` table: a caption a generator wrote for a clip's motion (motion-to-text)."""

    generation_id: str
    clip_id: str
    text: str
    sample: int = 0
    generator: str
    generator_lineage: str = Field(description="JSON: checkpoints, data and settings the generator ran with")
    code_version: str
    created_at: datetime = Field(default_factory=utc_now)


class EvaluationRecord(Record):
    """Row of the ``evaluations`` table: one metric of one scoring run, with what was scored by what."""

    evaluation_id: str = Field(description="hash of the task, generator, evaluator, data, split, seed and settings")
    task: Literal["t2m", "m2t"]
    metric: str
    mean: float | None = Field(description="null where the metric could not be computed (see settings)")
    interval: float | None = Field(description="95% half-width over the replications, 1.96 std / sqrt(n)")
    replications: int
    generator: str
    generator_lineage: str
    evaluator_id: str
    evaluator_lineage: str
    dataset: str = Field(description="fingerprint of the scored data's motion and captions")
    dataset_version: str | None = Field(description="the dataset version scored (e.g. v3); null for procedural clips")
    split: str
    seed: int
    settings: str = Field(description="JSON: pool, subsets, pairs, replications")
    pairs: int = Field(description="(text, motion) pairs scored")
    rejected: str = Field(description="JSON: generation rows set aside, by reason")
    code_version: str
    created_at: datetime = Field(default_factory=utc_now)
