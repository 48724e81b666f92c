"""The build's stages as plain functions of (inputs, config): no Prefect here.

Each raises StageError for bad input; the wiring in ``hiw.flows.build`` turns that into a reject.
"""

from __future__ import annotations

import numpy as np

from hiw import __version__
from hiw.annotators import caption_clip
from hiw.config import BuildConfig
from hiw.errors import StageError
from hiw.motion.facts import hand_facts
from hiw.motion.keypoints import HandSequence, MotionSettings, canonical_sequences
from hiw.schemas import HANDS, Caption, ClipRecord, ClipSpec, MotionRecord, Narration, Reject, VideoSource
from hiw.schemas.ids import reject_id
from hiw.trackers import ClipTracks, TrackerSettings, make_tracker
from hiw.video.clips import ClipPlan, plan_clips
from hiw.video.decode import decode_clip


def clip_plan(cfg: BuildConfig) -> ClipPlan:
    return ClipPlan(mode=cfg.clip_mode, window_s=cfg.window_s, stride_s=cfg.stride_s, min_clip_s=cfg.min_clip_s)


def tracker_settings(cfg: BuildConfig) -> TrackerSettings:
    return TrackerSettings(
        model_complexity=cfg.model_complexity,
        min_detection_confidence=cfg.min_detection_confidence,
        min_tracking_confidence=cfg.min_tracking_confidence,
        mirrored_input=cfg.mirrored_input,
    )


def motion_settings(cfg: BuildConfig) -> MotionSettings:
    return MotionSettings(fps=cfg.fps, smooth_sigma=cfg.smooth_sigma)


def make_reject(stage: str, err: StageError, source_path: str, video_id: str | None = None, clip_id: str | None = None) -> Reject:
    return Reject(
        reject_id=reject_id(stage, source_path, clip_id, err.reason),
        stage=stage,
        reason=err.reason,
        detail=err.detail,
        source_path=source_path,
        video_id=video_id,
        clip_id=clip_id,
    )


# --- stages -------------------------------------------------------------------------------------


def plan(video: VideoSource, narrations: list[Narration], cfg: BuildConfig) -> tuple[list[ClipSpec], list[Reject]]:
    clips, problems = plan_clips(video, narrations, clip_plan(cfg))
    return clips, [make_reject("plan", p, video.path, video.video_id) for p in problems]


def decode(clip: ClipSpec, cfg: BuildConfig, rotation: int = 0) -> np.ndarray:
    frames = decode_clip(clip, cfg.track_width, cfg.decoder, rotation)
    if len(frames) < max(1, round(cfg.min_clip_s * clip.source_fps)):  # the file ends early
        raise StageError("truncated", f"only {len(frames)} of the clip's {clip.n_frames} frames decode")
    return frames


def track(frames: np.ndarray, clip: ClipSpec, cfg: BuildConfig) -> ClipTracks:
    tracker = make_tracker(cfg.tracker, tracker_settings(cfg))
    return tracker.track(frames, clip.source_fps, (clip.width, clip.height))


def tracker_version(cfg: BuildConfig) -> str:
    return make_tracker(cfg.tracker, tracker_settings(cfg)).version


def quality_check(tracks: ClipTracks, cfg: BuildConfig) -> None:
    """Raise StageError when the clip cannot be a two-hand motion sample."""
    seen = tracks.visibility()
    n = tracks.n_frames
    if seen["frames_any_hand"] == 0:
        raise StageError("no_hands", f"no hand detected in any of {n} frames")
    both = seen["frames_both_hands"] / n
    if both < cfg.min_both_hands_frac:
        raise StageError(
            "both_hands_rarely_visible",
            f"both hands visible in {both:.0%} of frames (left {seen['frames_left']}, right {seen['frames_right']} "
            f"of {n}); min_both_hands_frac={cfg.min_both_hands_frac:g}",
        )


def motion(tracks: ClipTracks, clip: ClipSpec, cfg: BuildConfig, tracker_name: str) -> MotionRecord:
    """Both hands as keypoint sequences at the canonical frame rate."""
    settings = motion_settings(cfg)
    seqs = canonical_sequences(tracks, settings)
    return MotionRecord(
        clip_id=clip.clip_id,
        video_id=clip.video_id,
        fps=settings.fps,
        n_frames=len(seqs["left"].valid),
        coordinate_frame="hand_centred_camera_axes",
        smoothing=settings.describe(),
        **{f"{side}_{name}": getattr(seqs[side], name) for side in HANDS for name in ("valid", "keypoints_2d", "keypoints_3d")},
        tracker=cfg.tracker,
        tracker_version=tracker_name,
        config_hash=cfg.config_hash(),
        code_version=__version__,
    )


def annotate(motion: MotionRecord, clip: ClipSpec) -> list[Caption]:
    """Offline captions from the stored motion (so they can be redone from the tables alone)."""
    facts = [hand_facts(side, HandSequence.from_motion(motion, side), motion.fps) for side in HANDS]
    return caption_clip(clip, facts)


def clip_record(
    clip: ClipSpec, cfg: BuildConfig, tracker_name: str, tracks: ClipTracks | None, reject: Reject | None
) -> ClipRecord:
    stats = {}
    if tracks is not None:
        seen, n = tracks.visibility(), tracks.n_frames
        stats = dict(
            seen, frames_decoded=n, any_hand_frac=seen["frames_any_hand"] / n, both_hands_frac=seen["frames_both_hands"] / n
        )
    return ClipRecord(
        **clip.model_dump(),
        **stats,
        status="rejected" if reject else "accepted",
        reject_reason=reject.reason if reject else None,
        tracker=cfg.tracker,
        tracker_version=tracker_name,
        config_hash=cfg.config_hash(),
        code_version=__version__,
    )
