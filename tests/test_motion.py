import numpy as np

from conftest import make_clip
from hiw.annotators.kinematic import caption_clip, describe, narration_text
from hiw.motion.facts import hand_facts
from hiw.motion.keypoints import HandSequence, MotionSettings, canonical_sequences, resample, resample_times, smooth
from hiw.schemas import HandTrack
from hiw.trackers import ClipTracks

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
    positions = resample_times(10, 30.0, 15.0)
    out, ok = resample(values, valid, positions)
    np.testing.assert_array_equal(positions, [0, 2, 4, 6, 8])
    np.testing.assert_array_equal(ok, [True, True, False, True, True])
    np.testing.assert_array_equal(out[ok, 0], [0, 2, 6, 8])


def test_resample_interpolates_between_frames():
    values = np.arange(5, dtype=np.float32)[:, None] * 10
    out, ok = resample(values, np.ones(5, bool), resample_times(5, 25.0, 10.0))  # every 2.5 frames
    np.testing.assert_allclose(out[:, 0], [0, 25])
    assert ok.all()


def test_smoothing_reduces_noise_but_never_crosses_gaps():
    rng = np.random.default_rng(0)
    clean = np.linspace(0, 1, 40)[:, None]
    noisy = (clean + rng.normal(0, 0.1, clean.shape)).astype(np.float32)
    valid = np.ones(40, bool)
    valid[20] = False
    noisy[20] = 1e6  # a garbage value in a gap must not leak into its neighbours
    out = smooth(noisy, valid, sigma=1.5)
    assert np.abs(out[valid] - clean[valid]).mean() < 0.7 * np.abs(noisy[valid] - clean[valid]).mean()
    assert np.abs(out[[19, 21]]).max() < 2


def test_canonical_sequences_from_tracks():
    n = 60
    hands = {}
    for side in ("left", "right"):
        seq = _hand(n, 30.0, valid=np.arange(n) < (50 if side == "left" else 60))
        hands[side] = HandTrack(side=side, valid=seq.valid, keypoints_2d=seq.keypoints_2d, keypoints_3d=seq.keypoints_3d)
    seqs = canonical_sequences(ClipTracks(fps=30.0, hands=hands), MotionSettings(fps=15.0, smooth_sigma=1.0))
    assert len(seqs["left"].valid) == len(seqs["right"].valid) == 30
    assert seqs["left"].valid.sum() == 25 and seqs["right"].valid.all()
    assert np.isnan(seqs["left"].keypoints_3d[~seqs["left"].valid]).all()


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
