"""Clip planning: fixed windows over a video, or spans anchored on its narrations.

A narration that runs past the video's end is cut at the end and kept (``0,30`` is a usual way to say "to the
end" of a shorter video), and says so as a ``narration_cut_at_end`` problem (a reject row beside the kept clip);
one that starts at or after the end cannot become a clip and is a problem. Problems of one
video are merged per reason: a reject row's id derives from (stage, video, reason), so two rows would collide.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hiw.errors import StageError
from hiw.schemas import ClipSpec, Narration, VideoSource
from hiw.schemas.ids import clip_id, stable_hash
from hiw.video.discover import excerpt


@dataclass(frozen=True)
class ClipPlan:
    """How to cut clips; its hash is part of every clip_id."""

    mode: Literal["auto", "window", "narration"]
    window_s: float
    stride_s: float | None  # None: back-to-back windows
    min_clip_s: float

    def config_hash(self) -> str:
        return stable_hash(self.mode, self.window_s, self.stride_s, self.min_clip_s, length=12)


def plan_clips(video: VideoSource, narrations: list[Narration], plan: ClipPlan) -> tuple[list[ClipSpec], list[StageError]]:
    """Clips of one video, plus the narrations that could not become a clip (with why).

    ``auto`` uses the narrations when the video has any, fixed windows otherwise.
    """
    use_narrations = plan.mode == "narration" or (plan.mode == "auto" and narrations)
    if use_narrations:
        spans, problems = _narration_spans(video, narrations, plan)
        problems = _merged(problems)
    else:
        spans, problems = _window_spans(video, plan), []
        if not spans:
            problems.append(StageError("too_short", f"video lasts {video.duration_s:.2f} s < min_clip_s {plan.min_clip_s:g} s"))
    config = plan.config_hash()
    clips = []
    for index, (start, end, text, kind) in enumerate(spans):
        clips.append(
            ClipSpec(
                clip_id=clip_id(video.video_id, start, end, config if text is None else stable_hash(config, text)),
                video_id=video.video_id,
                source_path=video.path,
                clip_index=index,
                plan=kind,
                start_frame=start,
                end_frame=end,
                start_s=start / video.fps,
                end_s=end / video.fps,
                source_fps=video.fps,
                width=video.width,
                height=video.height,
                narration=text,
            )
        )
    return clips, problems


def _window_spans(video: VideoSource, plan: ClipPlan) -> list[tuple[int, int, None, str]]:
    window = round(plan.window_s * video.fps)
    stride = max(1, round((plan.stride_s or plan.window_s) * video.fps))
    min_frames = max(1, round(plan.min_clip_s * video.fps))
    spans = []
    start = 0
    while start < video.n_frames:
        end = min(start + window, video.n_frames)
        if end - start >= min_frames:
            spans.append((start, end, None, "window"))
        if end == video.n_frames:
            break
        start += stride
    return spans


def _narration_spans(video: VideoSource, narrations: list[Narration], plan: ClipPlan):
    spans, problems, seen = [], [], set()
    for n in sorted(narrations, key=lambda n: n.start_s):
        start_s, end_s = n.start_s, min(n.end_s, video.duration_s)
        if start_s >= video.duration_s:
            problems.append(
                StageError(
                    "narration_out_of_range",
                    f"narration at {n.start_s:g}-{n.end_s:g} s starts after the video ends "
                    f"({video.duration_s:.2f} s): {excerpt(n.text)}",
                )
            )
            continue
        short = plan.min_clip_s - (end_s - start_s)
        if short > 0:  # widen short narrations symmetrically, staying inside the video
            start_s = max(0.0, start_s - short / 2)
            end_s = min(video.duration_s, start_s + plan.min_clip_s)
            start_s = max(0.0, end_s - plan.min_clip_s)
        start, end = round(start_s * video.fps), min(round(end_s * video.fps), video.n_frames)
        if end - start < max(1, round(plan.min_clip_s * video.fps)):
            problems.append(
                StageError(
                    "too_short",
                    f"narration span {n.start_s:g}-{n.end_s:g} s is shorter than min_clip_s in a {video.duration_s:.2f} s video: "
                    f"{excerpt(n.text)}",
                )
            )
            continue
        if (start, end, n.text) in seen:  # the same clip_id twice: one row would collide
            problems.append(
                StageError("duplicate_narration", f"narration {excerpt(n.text)} at {n.start_s:g}-{n.end_s:g} s is listed twice")
            )
            continue
        seen.add((start, end, n.text))
        spans.append((start, end, n.text, "narration"))
        if n.end_s > video.duration_s + 1 / video.fps:  # kept, cut short: said in rejects, not silently
            problems.append(
                StageError(
                    "narration_cut_at_end",
                    f"narration at {n.start_s:g}-{n.end_s:g} s runs past the video's end ({video.duration_s:.2f} s); its clip "
                    f"ends there: {excerpt(n.text)}",
                )
            )
    return spans, problems


MAX_LISTED = 5  # narrations named in one merged problem; a long manifest must not make a huge reject row


def _merged(problems: list[StageError]) -> list[StageError]:
    """One problem per reason, listing the first few narrations it concerns."""
    by_reason: dict[str, list[str]] = {}
    for p in problems:
        by_reason.setdefault(p.reason, []).append(p.detail)
    merged = []
    for reason, details in by_reason.items():
        if len(details) == 1:
            merged.append(StageError(reason, details[0]))
            continue
        more = f"; and {len(details) - MAX_LISTED} more" if len(details) > MAX_LISTED else ""
        merged.append(StageError(reason, f"{len(details)} narrations: " + "; ".join(details[:MAX_LISTED]) + more))
    return merged
