"""The build's stages as plain functions of (inputs, config): no Prefect here.

Each raises StageError for bad input; the wiring in ``hiw.flows.build`` turns that into a reject.
"""

from __future__ import annotations

import numpy as np
import roma
import torch

from hiw import __version__
from hiw.annotators import caption_clip
from hiw.annotators.cache import ResponseCache
from hiw.annotators.embed import load_embedder
from hiw.annotators.openai_backend import OpenAIBackend
from hiw.annotators.pcot import ClipInput, PCoTAnnotator
from hiw.annotators.requests import Backend
from hiw.annotators.vllm_backend import VLLMBackend
from hiw.annotators.vocab import Vocabulary, build_vocabulary, load_vocabulary
from hiw.config import BuildConfig
from hiw.errors import ConfigError, StageError
from hiw.flows import settings
from hiw.motion import quality
from hiw.motion.camera import CameraRotations, Intrinsics, estimate_camera_rotations, load_intrinsics
from hiw.motion.facts import HandSequence, hand_facts
from hiw.motion.pipeline import ClipMotion, MotionSettings, process_motion, require_motion
from hiw.schemas import HANDS, Caption, ClipRecord, ClipSpec, MotionRecord, Narration, Reject, VideoSource
from hiw.schemas.ids import stable_hash
from hiw.schemas.stages import versions
from hiw.trackers import ClipTracks, make_tracker
from hiw.video.clips import plan_clips
from hiw.video.decode import decode_clip
from hiw.video.sample import encode_frames, stored_frames, write_frames

# --- stages -------------------------------------------------------------------------------------


def plan(video: VideoSource, narrations: list[Narration], cfg: BuildConfig) -> tuple[list[ClipSpec], list[Reject]]:
    clips, problems = plan_clips(video, narrations, settings.clip_plan(cfg))
    return clips, [Reject.of("plan", p, video.path, video.video_id) for p in problems]


def track_stride(clip: ClipSpec, cfg: BuildConfig) -> int:
    """Every how many source frames one is tracked: ``--track-fps`` as a whole stride (0: every frame), so the
    tracked frames keep exact source timestamps."""
    return max(1, round(clip.source_fps / cfg.track_fps)) if cfg.track_fps else 1


def decode(clip: ClipSpec, cfg: BuildConfig, rotation: int = 0) -> np.ndarray:
    """The frames tracking sees: every ``track_stride``-th source frame of the clip."""
    stride = track_stride(clip, cfg)
    frames = decode_clip(clip, cfg.track_width, cfg.decoder, rotation, stride)
    if len(frames) < max(1, round(cfg.min_clip_s * clip.source_fps / stride)):  # the file ends early
        raise StageError("truncated", f"only {len(frames)} of the clip's {-(-clip.n_frames // stride)} tracked frames decode")
    return frames


def track(frames: np.ndarray, clip: ClipSpec, cfg: BuildConfig) -> ClipTracks:
    tracker = make_tracker(cfg.tracker, settings.tracker_settings(cfg))
    return tracker.track(frames, clip.source_fps / track_stride(clip, cfg), (clip.width, clip.height))


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


def intrinsics(clip: ClipSpec, cfg: BuildConfig) -> Intrinsics:
    """The camera's intrinsics in source pixels (given, from a calibration file beside the video, or assumed)."""
    return load_intrinsics(clip.source_path, clip.width, clip.height, cfg.intrinsics_tuple(), cfg.hfov_deg)


def camera(frames: np.ndarray, tracks: ClipTracks, clip: ClipSpec, cfg: BuildConfig) -> CameraRotations:
    """The camera's rotation over the clip, from the background around the hands."""
    K = intrinsics(clip, cfg)
    scale = frames.shape[2] / clip.width
    hands = [tracks.hands[side].keypoints_2d.reshape(-1, 21, 3) for side in HANDS]
    return estimate_camera_rotations(frames, hands, K.scaled(scale), scale)


def motion(
    tracks: ClipTracks, cam: tuple[Intrinsics, CameraRotations | None] | None, clip: ClipSpec, cfg: BuildConfig, tracker_name: str
) -> MotionRecord:
    """Both hands as fitted parameters at the canonical frame rate, with their quality measured."""
    chosen = settings.motion_settings(cfg)
    K, rotations = cam if cam is not None else (None, None)
    result = process_motion(tracks, chosen, K, rotations, image_width=clip.width or 1920)
    require_motion(result)
    return motion_record(result, clip, cfg, tracker_name, chosen, K)


def motion_record(
    result: ClipMotion, clip: ClipSpec, cfg: BuildConfig, tracker_name: str, chosen: MotionSettings, K: Intrinsics | None
) -> MotionRecord:
    hands = {}
    for side in HANDS:
        h = result.hands[side]
        rotvec = roma.rotmat_to_rotvec(torch.as_tensor(np.nan_to_num(h.params.rotations))).numpy()
        rotvec[~h.params.valid] = np.nan
        hands.update(
            {
                f"{side}_valid": h.params.valid,
                f"{side}_filled": h.params.filled,
                f"{side}_global_orient": rotvec[:, 0],
                f"{side}_hand_pose": rotvec[:, 1:].reshape(len(rotvec), 45),
                f"{side}_transl": h.params.transl,
                f"{side}_betas": h.betas.tolist(),
                f"{side}_rest_keypoints": h.rest.reshape(-1).tolist(),
                f"{side}_keypoints_2d": h.keypoints_2d,
                f"{side}_keypoints_3d": h.keypoints_3d,
                f"{side}_fit_error_mm": h.fit_error_mm,
            }
        )
    metrics = quality.measure(
        {s: result.hands[s].params.rotations[:, 0] for s in HANDS},
        {s: result.hands[s].params.transl for s in HANDS},
        {s: result.hands[s].params.valid for s in HANDS},
        result.fps,
    )
    errors = np.concatenate([result.hands[s].fit_error_mm for s in HANDS])
    fitted = errors[np.isfinite(errors)]
    return MotionRecord(
        clip_id=clip.clip_id,
        video_id=clip.video_id,
        fps=result.fps,
        n_frames=result.n_frames,
        hand_model=result.hand_model,
        coordinate_frame=result.coordinate_frame,
        intrinsics=f"{K.fx:.1f},{K.fy:.1f},{K.cx:.1f},{K.cy:.1f} ({K.source})" if K else None,
        processing=chosen.describe(result.fitted),
        camera_rotations=result.camera_rotations.reshape(-1, 9),
        head_rotation_deg=result.head_rotation_deg,
        swapped_frames=result.swapped_frames,
        dropped_frames=result.dropped_frames,
        jitter_translation=metrics.jitter_translation,
        jitter_rotation=metrics.jitter_rotation,
        motion_s=metrics.motion_s,
        fit_error_mm=float(fitted.mean()) if len(fitted) else None,
        **hands,
        tracker=cfg.tracker,
        tracker_version=tracker_name,
        config_hash=cfg.config_hash(),
        code_version=__version__,
    )


def motion_quality(motion: MotionRecord, cfg: BuildConfig) -> None:
    """The paper's filters on the finished motion (raises StageError): both hands, length, jitter."""
    both = float((motion.left_valid & motion.right_valid).mean()) if motion.n_frames else 0.0
    if both < cfg.min_both_hands_frac:  # frames can be lost after tracking (failed PnP, impossible hands)
        raise StageError(
            "both_hands_rarely_valid",
            f"both hands have motion in {both:.0%} of frames after repair and fitting; "
            f"min_both_hands_frac={cfg.min_both_hands_frac:g}",
        )
    quality.check(
        quality.QualityMetrics(motion.jitter_translation, motion.jitter_rotation, motion.motion_s), settings.quality_settings(cfg)
    )


def vlm_frames(frames: np.ndarray, clip: ClipSpec, cfg: BuildConfig) -> tuple[str, ...]:
    """The clip's frames for the VLM, stored as JPEG under the dataset root."""
    jpegs = encode_frames(frames, cfg.vlm_frames, cfg.vlm_frame_width)
    return tuple(str(p) for p in write_frames(cfg.out, _frames_folder(clip, cfg), jpegs))


def stored_vlm_frames(clip: ClipSpec, cfg: BuildConfig) -> tuple[str, ...] | None:
    """The clip's VLM frames from an earlier build with the same frame settings (a folder is written whole or
    not at all), or None."""
    paths = tuple(str(p) for p in stored_frames(cfg.out, _frames_folder(clip, cfg)))
    return paths or None


def _frames_folder(clip: ClipSpec, cfg: BuildConfig) -> str:
    return f"{clip.clip_id}-{cfg.vlm_frames}x{cfg.vlm_frame_width}"


def unit_key(video: VideoSource, narrations: list[Narration], cfg: BuildConfig, tracker_name: str) -> str:
    """What a video's rows in clips, motion, captions (kinematic, narration) and rejects derive from: its bytes,
    its narrations, the settings of every per-clip stage, the tracker and the stage versions."""
    per_clip = versions(per_clip=True)
    hashes = [cfg.stage_hash(stage) for stage in per_clip]
    spans = [(n.start_s, n.end_s, n.text) for n in narrations]
    return "u_" + stable_hash(video.video_id, spans, hashes, tracker_name, per_clip, length=24)


def annotate(motion: MotionRecord, clip: ClipSpec, frame_paths: tuple[str, ...] = ()) -> tuple[list[Caption], ClipInput]:
    """Offline captions from the stored motion (so they can be redone from the tables alone), and what the
    VLM annotator needs of the clip."""
    facts = tuple(hand_facts(side, HandSequence.from_motion(motion, side), motion.fps) for side in HANDS)
    vlm_input = ClipInput(
        clip.clip_id, clip.video_id, clip.source_path, clip.end_s - clip.start_s, clip.narration, facts, frame_paths
    )
    return caption_clip(clip, list(facts)), vlm_input


def vocabulary(cfg: BuildConfig, narrations: list[str]) -> Vocabulary | None:
    """The closed vocabulary: --vocab, else the build's own narrations; None when there is neither."""
    if cfg.vocab is not None:
        return load_vocabulary(cfg.vocab, load_embedder)
    texts = [n for n in narrations if n.strip()]
    if not texts:
        return None
    return build_vocabulary(texts, load_embedder(), source=f"{len(texts)} narration(s) of the build")


def make_backend(cfg: BuildConfig, slot=None) -> Backend:
    """The VLM backend; ``slot`` is a global limit on requests in flight (see ``OpenAIBackend``).

    The backend gets the URL with any credentials it was given with (``cfg.vlm_url`` has them removed)."""
    if cfg.vlm == "openai":
        url = cfg.vlm_endpoint()
        return OpenAIBackend(
            url, cfg.vlm_model, concurrency=cfg.vlm_concurrency, timeout_s=cfg.vlm_timeout_s, retries=cfg.vlm_retries, slot=slot
        )
    if cfg.vlm == "vllm":
        return VLLMBackend(cfg.vlm_model)
    raise ConfigError(f"--vlm {cfg.vlm} has no VLM backend")


def make_annotator(cfg: BuildConfig, vocab: Vocabulary | None, slot=None) -> PCoTAnnotator:
    cache = ResponseCache.in_root(cfg.out)
    return PCoTAnnotator(
        make_backend(cfg, slot),
        cache,
        vocab,
        settings.sampling(cfg),
        max_active_clips=cfg.vlm_concurrency,
        invalid_retries=cfg.vlm_invalid_retries,
    )


def clip_record(
    clip: ClipSpec,
    cfg: BuildConfig,
    tracker_name: str,
    tracks: ClipTracks | None,
    reject: Reject | None,
    motion: MotionRecord | None = None,
) -> ClipRecord:
    stats = {}
    if motion is not None:
        stats = {k: getattr(motion, k) for k in ("jitter_translation", "jitter_rotation", "motion_s", "fit_error_mm")}
    if tracks is not None:
        seen, n = tracks.visibility(), tracks.n_frames
        stats |= dict(
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
