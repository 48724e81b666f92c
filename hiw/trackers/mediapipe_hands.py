"""mediapipe Hands (legacy solution API, models bundled in the 0.10.x wheel), in video mode.

Per frame and hand: 21 image keypoints with the detection's handedness score as their confidence
(mediapipe gives no per-keypoint confidence for hands), 21 metric "world" keypoints (metres,
origin near the hand's centre, camera-aligned axes), and a valid mask.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import numpy as np

from hiw.schemas import HANDS, N_KEYPOINTS, HandTrack
from hiw.trackers.base import ClipTracks, TrackerSettings

# What mediapipe's C++ side prints to stderr each time a graph starts (once per clip), before absl logging is set
# up, so no log level silences it: TFLite's delegate note, absl's preamble, and a feedback-tensor warning per model.
_NOISE = re.compile(
    rb"^(INFO: Created TensorFlow Lite|WARNING: All log messages before absl::InitializeLog|[IW]\d{4} .*\] Feedback)"
)
_STDERR_LOCK = threading.Lock()


@contextmanager
def native_noise_dropped() -> Iterator[None]:
    """Run the block with the process's stderr (fd 2) caught in a file, then write back every line but ``_NOISE``.

    Whatever another thread prints meanwhile is written back too, only later; two blocks never overlap (a lock)."""
    with _STDERR_LOCK, tempfile.TemporaryFile() as caught:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [line for line in caught.read().splitlines(keepends=True) if not _NOISE.match(line)]
            if kept:
                os.write(2, b"".join(kept))


class MediapipeHands:
    name = "mediapipe"

    def __init__(self, settings: TrackerSettings):
        try:
            import mediapipe as mp
        except ImportError as err:
            raise ImportError(
                "the mediapipe tracker needs mediapipe==0.10.14 (`make` installs it; or pip install 'hiw[mediapipe]')"
            ) from err
        self._solution = mp.solutions.hands
        self.settings = settings
        self.version = f"mediapipe-{mp.__version__}-hands-c{settings.model_complexity}"

    def _session(self):
        s = self.settings
        return self._solution.Hands(
            static_image_mode=False,
            max_num_hands=2,
            model_complexity=s.model_complexity,
            min_detection_confidence=s.min_detection_confidence,
            min_tracking_confidence=s.min_tracking_confidence,
        )

    def track(self, frames: np.ndarray, fps: float, source_size: tuple[int, int]) -> ClipTracks:
        n = len(frames)
        kp2d = {side: np.full((n, N_KEYPOINTS, 3), np.nan, np.float32) for side in HANDS}
        kp3d = {side: np.full((n, N_KEYPOINTS, 3), np.nan, np.float32) for side in HANDS}
        valid = {side: np.zeros(n, bool) for side in HANDS}
        scale = np.array(source_size, np.float32)
        with self._session() as session:  # a new session per clip: video-mode tracking state is per clip
            for t, frame in enumerate(frames):
                with native_noise_dropped() if t == 0 else nullcontext():  # the graph starts on the first frame
                    result = session.process(frame)
                for side, score, image_lm, world_lm in self._hands_of(result):
                    valid[side][t] = True
                    kp2d[side][t, :, :2] = np.array([(p.x, p.y) for p in image_lm.landmark], np.float32) * scale
                    kp2d[side][t, :, 2] = score
                    kp3d[side][t] = [(p.x, p.y, p.z) for p in world_lm.landmark]
        hands = {
            side: HandTrack(side=side, valid=valid[side], keypoints_2d=kp2d[side], keypoints_3d=kp3d[side]) for side in HANDS
        }
        return ClipTracks(fps=fps, hands=hands)

    def _hands_of(self, result):
        """(side, score, image landmarks, world landmarks) per detected hand, at most one per side."""
        if not result.multi_hand_landmarks:
            return []
        found = []
        for image_lm, world_lm, handedness in zip(
            result.multi_hand_landmarks, result.multi_hand_world_landmarks, result.multi_handedness
        ):
            label = handedness.classification[0]
            side = label.label.lower()
            if not self.settings.mirrored_input:
                side = "right" if side == "left" else "left"
            found.append([side, float(label.score), image_lm, world_lm])
        if len(found) == 2 and found[0][0] == found[1][0]:
            # Both labelled the same side: the less confident detection is the other hand.
            weaker = min(found, key=lambda h: h[1])
            weaker[0] = "left" if weaker[0] == "right" else "right"
        return found
