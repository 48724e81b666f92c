"""The mediapipe tracker, built once per process. mediapipe prints native log lines to stderr each time a graph
starts (once per clip): the tracker drops those and nothing else. Real mediapipe on frames, stderr
captured at the file-descriptor level."""

from __future__ import annotations

import os
import threading

from conftest import DEFAULTS, textured_frames
from hiw.flows import settings
from hiw.trackers import make_tracker
from hiw.trackers.mediapipe_hands import native_noise_dropped


def test_tracking_clips_prints_no_native_noise(capfd):
    tracker = make_tracker("mediapipe", settings.tracker_settings(DEFAULTS))
    for seed in (0, 1):  # a graph per clip: the noise came once per clip
        tracker.track(textured_frames(3, 160, 120, seed=seed), 30.0, (160, 120))
    err = capfd.readouterr().err
    assert "Feedback manager" not in err and "XNNPACK" not in err and "absl::InitializeLog" not in err, err


def test_other_output_in_the_window_is_written_back(capfd):
    noise = b"W0000 00:00:1.0   1 inference_feedback_manager.cc:114] Feedback manager requires a model\n"
    with native_noise_dropped():
        os.write(2, noise)
        worker = threading.Thread(target=lambda: os.write(2, b"a real warning from another thread\n"))
        worker.start()
        worker.join()
    os.write(2, b"after\n")
    err = capfd.readouterr().err
    assert err == "a real warning from another thread\nafter\n"


def test_a_tracker_is_built_once_per_process_for_its_settings():
    same = settings.tracker_settings(DEFAULTS)
    assert make_tracker("mediapipe", same) is make_tracker("mediapipe", settings.tracker_settings(DEFAULTS))
    other = settings.tracker_settings(DEFAULTS.model_copy(update={"model_complexity": 0}))
    assert make_tracker("mediapipe", other) is not make_tracker("mediapipe", same)
