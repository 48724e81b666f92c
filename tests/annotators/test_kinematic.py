import numpy as np

from conftest import make_clip
from hiw.annotators.kinematic import caption_clip, describe, narration_text
from hiw.motion.facts import HandSequence, hand_facts
from hiw.motion.temporal import resample_array, resample_positions

# A flat right hand, metres, hand-centred (wrist at origin, middle MCP 9 cm "up" the image).
REST = np.zeros((21, 3), np.float32)
REST[1:5, 0] = np.linspace(-0.03, -0.08, 4)  # thumb
for finger, x in zip(range(5, 21, 4), (-0.02, 0.0, 0.02, 0.04)):
    REST[finger : finger + 4, 0] = x
    REST[finger : finger + 4, 1] = -np.linspace(0.09, 0.17, 4)
PX_PER_M = 1000.0  # the synthetic hand is drawn at 1 px per mm


def _hand(n: int, fps: float, velocity_px_s=(0.0, 0.0), curl: float = 0.0, valid=None) -> HandSequence:
    t = np.arange(n) / fps
    kp3d = np.repeat(REST[None], n, axis=0).copy()
    # curl: fingertips move toward the wrist over the clip (0 -> curl fraction)
    tips = [4, 8, 12, 16, 20]
    kp3d[:, tips] *= (1 - curl * t / t[-1])[:, None, None]
    kp2d = np.zeros((n, 21, 3), np.float32)
    kp2d[..., :2] = kp3d[..., :2] * PX_PER_M + np.array([300, 300]) + t[:, None, None] * np.array(velocity_px_s)
    kp2d[..., 2] = 0.9
    valid = np.ones(n, bool) if valid is None else valid
    kp2d[~valid], kp3d[~valid] = np.nan, np.nan
    return HandSequence(valid=valid, keypoints_2d=kp2d, keypoints_3d=kp3d)


def test_resample_30_to_15_fps_takes_every_other_frame_and_respects_gaps():
    values = np.arange(10, dtype=np.float32)[:, None]
    valid = np.ones(10, bool)
    valid[4] = False
    positions = resample_positions(10, 30.0, 15.0)
    out = resample_array(values, valid, positions)
    np.testing.assert_array_equal(positions, [0, 2, 4, 6, 8])
    np.testing.assert_array_equal(np.isfinite(out[:, 0]), [True, True, False, True, True])
    np.testing.assert_array_equal(out[[0, 1, 3, 4], 0], [0, 2, 6, 8])


def test_resample_interpolates_between_frames():
    values = np.arange(5, dtype=np.float32)[:, None] * 10
    out = resample_array(values, np.ones(5, bool), resample_positions(5, 25.0, 10.0))  # every 2.5 frames
    np.testing.assert_allclose(out[:, 0], [0, 25])


def test_facts_measure_direction_speed_and_grip():
    fps = 15.0
    moving = hand_facts("right", _hand(30, fps, velocity_px_s=(200.0, 0.0), curl=0.5), fps)
    assert moving.moving and moving.directions == ("right",)
    assert abs(moving.speed_m_s - 0.2) < 0.02  # 200 px/s at 1000 px/m
    assert moving.grip == "grasp"
    still = hand_facts("left", _hand(30, fps), fps)
    assert not still.moving and still.directions == () and still.grip is None
    up = hand_facts("left", _hand(30, fps, velocity_px_s=(0.0, -100.0)), fps)
    assert up.directions == ("up",)
    assert hand_facts("left", _hand(30, fps, valid=np.zeros(30, bool)), fps).visible_frac == 0


def test_facts_from_metric_3d_when_there_is_no_image_track():
    fps = 15.0
    seq = _hand(30, fps, curl=0.5)
    seq.keypoints_3d = seq.keypoints_3d + (np.arange(30) / fps * 0.1)[:, None, None] * np.array([0.0, 0.0, 1.0])  # 10 cm/s
    seq.keypoints_2d[:] = np.nan  # precomputed tracks: 3D only
    facts = hand_facts("right", seq, fps)
    assert facts.moving and abs(facts.speed_m_s - 0.1) < 0.005
    assert facts.directions == () and facts.grip == "grasp"  # no direction words in an unknown world frame
    text, _ = describe([facts, hand_facts("left", _hand(30, fps, valid=np.zeros(30, bool)), fps)])
    assert "The right hand moves slowly (about 10 cm/s)" in text and "displacement" not in text, text


def test_caption_states_what_the_tracks_show():
    fps = 15.0
    facts = [
        hand_facts("left", _hand(30, fps), fps),
        hand_facts("right", _hand(30, fps, velocity_px_s=(-400.0, 0.0), curl=0.5), fps),
    ]
    text, verbs = describe(facts)
    assert text.startswith("Kinematic description from hand tracks: Both hands are visible.")
    assert "The left hand stays mostly still." in text
    assert "The right hand moves left quickly (about 40 cm/s) and closes as if grasping." in text
    assert text.endswith("One-handed activity (right hand).")
    assert verbs == ["move", "grasp"]


def test_narration_becomes_its_own_caption():
    clip = make_clip(plan="narration", narration="#C C cuts the onion")
    facts = [hand_facts(s, _hand(30, 15.0), 15.0) for s in ("left", "right")]
    captions = caption_clip(clip, facts)
    assert [(c.kind, c.model) for c in captions] == [("kinematic", "hiw-kinematic-v1"), ("narration", "source")]
    assert captions[1].text == "C cuts the onion" == narration_text("#C C cuts the onion")
    assert len({c.caption_id for c in captions}) == 2
