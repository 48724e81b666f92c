"""Caption annotators: the offline kinematic captioner now; VLM backends slot in beside it."""

from hiw.annotators.kinematic import KINEMATIC_MODEL, caption_clip

ANNOTATORS = ("kinematic",)

__all__ = ["ANNOTATORS", "KINEMATIC_MODEL", "caption_clip"]
