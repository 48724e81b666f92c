"""What every hand tracker takes and returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from hiw.motion.temporal import ParamSequence
from hiw.schemas import HANDS, HandTrack


@dataclass(frozen=True)
class TrackerSettings:
    model_complexity: int
    min_detection_confidence: float
    min_tracking_confidence: float
    # mediapipe labels handedness as if the image were a mirrored selfie; egocentric video is not.
    mirrored_input: bool


@dataclass
class ClipTracks:
    """Both hands of one clip at the source frame rate.

    ``coordinate_frame`` says what the 3D keypoints are relative to: "hand_centred" (mediapipe's
    metric world landmarks), "camera" or "world" (precomputed tracks). ``params`` carries per-hand
    MANO parameters when the source provides them (then no fitting is needed), ``betas`` their shape.
    """

    fps: float
    hands: dict[str, HandTrack]
    coordinate_frame: str = "hand_centred"
    params: dict[str, ParamSequence] | None = None
    betas: dict[str, np.ndarray] | None = None
    hand_model: str | None = None  # the model the precomputed parameters belong to

    @property
    def n_frames(self) -> int:
        return len(self.hands[HANDS[0]].valid)

    def visibility(self) -> dict[str, int]:
        left, right = self.hands["left"].valid, self.hands["right"].valid
        return {
            "frames_left": int(left.sum()),
            "frames_right": int(right.sum()),
            "frames_any_hand": int((left | right).sum()),
            "frames_both_hands": int((left & right).sum()),
        }


class HandTracker(Protocol):
    name: str
    version: str

    def track(self, frames: np.ndarray, fps: float, source_size: tuple[int, int]) -> ClipTracks:
        """Track both hands over (T, H, W, 3) RGB frames of one clip.

        ``source_size`` (width, height) of the original video: 2D keypoints come back in its pixels
        whatever size the frames were decoded at.
        """
        ...
