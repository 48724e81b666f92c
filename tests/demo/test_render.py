"""The procedural demo renderer: real mediapipe must find its hands where the ground truth says."""

from __future__ import annotations

import cv2
import decord
import numpy as np
import pytest

from hiw.demo.render import RenderGroundTruth, render_frames, write_demo_video

SECONDS, FPS, SEED = 1.5, 30.0, 0


@pytest.fixture(scope="module")
def clip() -> tuple[list[np.ndarray], RenderGroundTruth]:
    frames, gt = render_frames(seconds=SECONDS, fps=FPS, seed=SEED)
    return list(frames), gt


def test_ground_truth_is_consistent(clip):
    frames, gt = clip
    n = int(SECONDS * FPS)
    assert len(frames) == n
    assert frames[0].shape == (gt.height, gt.width, 3) and frames[0].dtype == np.uint8
    for side in ("left", "right"):
        kp3, kp2 = gt.keypoints_3d[side], gt.keypoints_2d[side]
        assert kp3.shape == (n, 21, 3) and kp2.shape == (n, 21, 2) and gt.in_view[side].shape == (n,)
        assert (kp3[..., 2] > 0).all()
        projected = kp3 @ gt.intrinsics.T
        np.testing.assert_allclose(projected[..., :2] / projected[..., 2:], kp2, atol=1e-2)
        # an adult hand: wrist to straight-ish middle fingertip 0.15-0.19 m
        assert 0.15 < np.median(np.linalg.norm(kp3[:, 12] - kp3[:, 0], axis=-1)) < 0.19
        assert gt.in_view[side].all()
    # first-person layout: each hand in its own half of the frame
    assert (gt.keypoints_2d["left"][:, 0, 0] < gt.width / 2).all()
    assert (gt.keypoints_2d["right"][:, 0, 0] > gt.width / 2).all()


def test_mediapipe_detects_the_rendered_hands(clip):
    import mediapipe as mp

    frames, gt = clip
    hands = mp.solutions.hands.Hands(
        static_image_mode=False,
        max_num_hands=2,
        model_complexity=1,
        min_detection_confidence=0.5,
        min_tracking_confidence=0.5,
    )
    detected, both, wrist_errors = 0, 0, []
    try:
        for i, frame in enumerate(frames):
            found = hands.process(frame).multi_hand_landmarks or []
            detected += bool(found)
            both += len(found) == 2
            for landmarks in found:
                wrist = np.array([landmarks.landmark[0].x * gt.width, landmarks.landmark[0].y * gt.height])
                # mediapipe's handedness label assumes a mirrored image: match by position instead
                truth = [gt.keypoints_2d[side][i, 0] for side in ("left", "right")]
                wrist_errors.append(min(np.linalg.norm(wrist - t) for t in truth) / gt.width)
    finally:
        hands.close()
    assert detected / len(frames) >= 0.8
    assert both / len(frames) >= 0.6
    assert np.median(wrist_errors) < 0.05


def test_same_seed_same_frames_other_seed_other_frames():
    first = [next(iter(render_frames(seconds=0.1, seed=s)[0])) for s in (3, 3, 4)]
    np.testing.assert_array_equal(first[0], first[1])
    assert not np.array_equal(first[0], first[2])


def test_write_demo_video_is_readable(tmp_path):
    path = tmp_path / "demo.mp4"
    gt = write_demo_video(path, seconds=1.0, fps=FPS, width=320, height=240, seed=SEED)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.mp4"]
    reader = decord.VideoReader(str(path))
    assert abs(len(reader) - int(1.0 * FPS)) <= 1
    assert reader[0].shape == (240, 320, 3)
    capture = cv2.VideoCapture(str(path))
    ok, frame = capture.read()
    capture.release()
    assert ok and frame.shape == (240, 320, 3)
    assert (gt.width, gt.height) == (320, 240) and len(gt.keypoints_2d["left"]) == int(FPS)
