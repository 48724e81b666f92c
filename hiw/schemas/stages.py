"""The build's stages: one table, one vocabulary.

A stage is what a rebuild can redo on its own. Each has
- its settings: the ``BuildConfig`` fields whose Field says ``stage=<name>`` (``hiw.config``); a rebuild redoes the
  stage when one of them changes;
- its version: bump it when the stage's code changes what it writes; a rebuild then redoes it too;
- its steps: the functions it runs, which are also the ``stage`` labels of the ``rejects`` rows they make.
A stage's outputs feed the stages after it, so redoing one redoes what follows. Someone who edits the camera code
looks up ``camera`` here, finds ``observe``, and bumps that version.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    name: str
    version: int
    steps: tuple[str, ...]
    per_clip: bool  # its outputs are a video's rows (unit keys hash it); else the dataset-wide annotation
    what: str


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage("plan", 1, ("discover", "probe", "plan"), True, "find the inputs, probe them, cut them into clips"),
        Stage("observe", 1, ("load", "decode", "track", "camera"), True, "what the tracker saw: cached per clip"),
        Stage("motion", 1, ("motion",), True, "both hands fitted, gap-filled, smoothed, resampled"),
        Stage("quality", 1, ("filter", "quality"), True, "the paper's filters: both hands, length, jitter"),
        Stage("captions", 1, ("captions",), True, "offline captions: kinematic facts and the narration"),
        Stage("vlm_frames", 1, ("frames",), False, "the frames the VLM sees"),
        Stage("annotate", 1, ("annotate", "caption_qa"), False, "VLM captions and their QA, dataset-wide"),
    )
}
# Reject labels of units, not steps: a video or clip task that kept failing (transient faults, retried next build).
UNIT_LABELS = ("video", "clip")
STEPS: dict[str, str] = {step: s.name for s in STAGES.values() for step in s.steps}


def stage_of(step: str) -> Stage:
    """The stage a step (a reject label) belongs to."""
    return STAGES[STEPS[step]]


def versions(per_clip: bool | None = None) -> dict[str, int]:
    """Stage versions, for the keys of what they wrote: the per-clip ones, the dataset-wide ones, or all (None)."""
    return {s.name: s.version for s in STAGES.values() if per_clip is None or s.per_clip == per_clip}
