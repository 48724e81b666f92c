"""End-to-end builds through the real Prefect flow, real decoding and real mediapipe tracking."""

import shutil

import duckdb
import numpy as np
import pytest

from conftest import make_clip, textured_frames, write_video
from hiw.config import load_config
from hiw.flows import stages
from hiw.flows.build import build_flow
from hiw.storage import open_catalog, read_table

pytestmark = pytest.mark.slow


def _tables(root):
    return {name: read_table(root, name).to_pylist() for name in ("clips", "motion", "captions", "rejects")}


@pytest.fixture(scope="module")
def kitchen_build(tmp_path_factory, kitchen_video):
    videos = tmp_path_factory.mktemp("kitchen-in")
    shutil.copy(kitchen_video, videos / kitchen_video.name)
    manifest = videos / "narrations.csv"  # Ego4D-style: the narration anchors the clip
    manifest.write_text(f"video,start_s,end_s,text\n{kitchen_video.name},0.0,5.0,#C C picks up the plate with both hands\n")
    root = tmp_path_factory.mktemp("kitchen-out")
    # the fixture shows both hands in ~61% of frames: below the paper's 0.8, so this build relaxes it
    cfg = load_config(manifest=manifest, out=root, min_both_hands_frac=0.5, min_motion_s=1.0)
    return cfg, build_flow(cfg)


def test_fixture_detections_match_what_the_fixture_shows(kitchen_build):
    cfg, summary = kitchen_build
    (clip,) = _tables(cfg.out)["clips"]
    # FIXTURES.md: mediapipe (640 px) finds a hand in 84 of 121 frames and both hands in 74.
    assert clip["frames_decoded"] == 121
    assert 75 <= clip["frames_any_hand"] <= 110
    assert 62 <= clip["frames_both_hands"] <= 85
    assert clip["status"] == "accepted" and clip["tracker"] == "mediapipe"
    assert summary.clips_accepted == 1 and summary.frames_tracked == 121
    assert summary.stage_times["track"].items == 121


def test_tables_and_catalog_are_consistent(kitchen_build):
    cfg, _ = kitchen_build
    t = _tables(cfg.out)
    (clip,), (motion,) = t["clips"], t["motion"]
    assert motion["clip_id"] == clip["clip_id"] and motion["fps"] == 15.0
    assert (
        motion["n_frames"] == 61 == len(motion["left_valid"]) == len(motion["right_keypoints_3d"])
    )  # 121 frames at 30 -> 15 fps
    assert all(len(frame) == 63 for frame in motion["left_keypoints_2d"])
    right = np.array(motion["right_keypoints_3d"], np.float32).reshape(-1, 21, 3)
    valid = np.array(motion["right_valid"])
    assert valid.sum() >= 30 and np.isfinite(right[valid]).all() and np.isnan(right[~valid]).all()
    # metric hand-centred keypoints: a real hand's wrist-to-middle-knuckle length is 7-12 cm
    palm = np.linalg.norm(right[valid, 9] - right[valid, 0], axis=-1)
    assert 0.06 < np.median(palm) < 0.13
    kinematic, narration = sorted(t["captions"], key=lambda c: c["kind"])
    assert kinematic["clip_id"] == narration["clip_id"] == clip["clip_id"]
    assert kinematic["kind"] == "kinematic" and kinematic["model"] == "hiw-kinematic-v1"
    assert kinematic["text"].startswith("Kinematic description from hand tracks: Both hands are visible.")
    assert (narration["kind"], narration["text"]) == ("narration", "C picks up the plate with both hands")
    assert clip["plan"] == "narration" and clip["narration"] == "#C C picks up the plate with both hands"
    # the narration runs to 5 s of a 4 s video: its clip is cut at the end, and a rejects row says so
    assert [(r["stage"], r["reason"], r["clip_id"]) for r in t["rejects"]] == [("plan", "narration_cut_at_end", None)]
    with open_catalog(cfg.out) as con:
        joined = con.execute(
            "SELECT count(*) FROM clips JOIN motion USING (clip_id) JOIN captions USING (clip_id) WHERE status = 'accepted'"
        ).fetchone()[0]
        assert joined == 2  # one clip, two captions
    with duckdb.connect(str(cfg.out / "catalog.duckdb"), read_only=True) as con:  # plain duckdb works too
        assert con.execute("SELECT count(*) FROM motion").fetchone()[0] == 1


def test_rebuild_gives_same_ids_and_no_duplicates(kitchen_build):
    cfg, _ = kitchen_build
    before = _tables(cfg.out)
    build_flow(cfg)
    after = _tables(cfg.out)
    for name in ("clips", "motion", "captions", "rejects"):
        assert len(after[name]) == len(before[name]), name
    assert [c["clip_id"] for c in after["clips"]] == [c["clip_id"] for c in before["clips"]]
    assert [c["caption_id"] for c in after["captions"]] == [c["caption_id"] for c in before["captions"]]
    assert not list(cfg.out.glob(".staging-*")) and not list(cfg.out.glob(".old-*"))


def test_bad_inputs_are_rejected_and_the_good_video_survives(tmp_path, kitchen_video, palm_video):
    videos = tmp_path / "in"
    videos.mkdir()
    shutil.copy(kitchen_video, videos / "good.mp4")
    shutil.copy(kitchen_video, videos / "good_copy.mp4")
    shutil.copy(palm_video, videos / "one_hand.mp4")
    (videos / "empty.mp4").write_bytes(b"")
    (videos / "truncated.mp4").write_bytes(kitchen_video.read_bytes()[:1_000_000])
    (videos / "text.mp4").write_text("definitely not a video\n" * 50)
    write_video(videos / "no_hands.mp4", textured_frames(75, 320, 240))
    (videos / "dangling.mp4").symlink_to(tmp_path / "missing.mp4")
    (videos / "folder.mp4").mkdir()
    cfg = load_config(videos=str(videos), out=tmp_path / "out", window_s=10.0, min_both_hands_frac=0.5, min_motion_s=1.0)
    summary = build_flow(cfg)

    t = _tables(cfg.out)
    reasons = sorted((r["stage"], r["reason"], r["source_path"].rsplit("/", 1)[-1]) for r in t["rejects"])
    assert reasons == [
        ("discover", "unreadable_entry", "dangling.mp4"),
        ("discover", "unreadable_entry", "folder.mp4"),
        ("filter", "both_hands_rarely_visible", "one_hand.mp4"),
        ("filter", "no_hands", "no_hands.mp4"),
        ("probe", "duplicate_video", "good_copy.mp4"),
        ("probe", "empty_file", "empty.mp4"),
        ("probe", "unreadable_video", "text.mp4"),
        ("probe", "unreadable_video", "truncated.mp4"),
    ]
    assert all(r["detail"] for r in t["rejects"])
    assert summary.videos_found == 9 and summary.videos_probed == 4
    assert summary.clips_accepted == 1 and summary.clips_rejected == 2
    assert summary.rejects_by_reason["probe/unreadable_video"] == 2
    accepted = [c for c in t["clips"] if c["status"] == "accepted"]
    assert [c["source_path"].rsplit("/", 1)[-1] for c in accepted] == ["good.mp4"]
    assert [m["clip_id"] for m in t["motion"]] == [accepted[0]["clip_id"]]
    one_hand = next(c for c in t["clips"] if c["source_path"].endswith("one_hand.mp4"))
    assert one_hand["frames_any_hand"] >= 0.9 * one_hand["frames_decoded"] and one_hand["frames_both_hands"] == 0


def test_decode_rejects_clips_cut_short_by_the_file(tmp_path):
    video = write_video(tmp_path / "short.mp4", textured_frames(30, 160, 120))  # 1 s
    clip = make_clip(str(video), n_frames=240, size=(160, 120))
    with pytest.raises(stages.StageError, match="only 30 of the clip's 240 tracked frames"):
        stages.decode(clip, load_config(videos=".", min_clip_s=2.0))
