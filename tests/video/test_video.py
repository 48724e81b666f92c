from pathlib import Path

import numpy as np
import pytest

from conftest import clip_plan, textured_frames, write_video
from hiw.errors import ConfigError, StageError
from hiw.schemas import Narration
from hiw.video.clips import plan_clips
from hiw.video.decode import decode_clip, working_size
from hiw.video.discover import discover
from hiw.video.probe import probe_video


@pytest.fixture(scope="module")
def small_video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("v") / "scene.mp4", textured_frames(90, 320, 240), fps=30)


def test_discover_folder_glob_and_manifest(tmp_path, small_video):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.mp4").write_bytes(small_video.read_bytes())
    (tmp_path / "two.MOV").write_bytes(small_video.read_bytes())
    (tmp_path / "notes.txt").write_text("not a video")
    (tmp_path / "dangling.mp4").symlink_to(tmp_path / "gone.mp4")
    (tmp_path / "folder.mp4").mkdir()
    found = discover(str(tmp_path), None)
    assert [p.name for p in found.videos] == ["one.mp4", "two.MOV"]
    assert sorted((Path(r.source).name, r.reason, r.detail) for r in found.rejects) == [
        ("dangling.mp4", "unreadable_entry", "broken link or vanished file"),
        ("folder.mp4", "unreadable_entry", "not a regular file"),
    ]
    assert found.unreadable == found.rejects
    assert [p.name for p in discover(str(tmp_path / "**" / "one.mp4"), None).videos] == ["one.mp4"]
    manifest = tmp_path / "m.csv"
    manifest.write_text("video,start_s,end_s,text\na/one.mp4,0.5,1.5,#C C cuts the onion\na/one.mp4,,,\ntwo.MOV,,,\n")
    found = discover(None, manifest)
    assert [p.name for p in found.videos] == ["one.mp4", "two.MOV"]
    (narr,) = found.narrations[(tmp_path / "a" / "one.mp4").absolute()]
    assert narr == Narration(start_s=0.5, end_s=1.5, text="#C C cuts the onion")


@pytest.mark.parametrize(
    "args, message",
    [
        (("/no/such/folder", None), "does not exist"),
        (("/no/such/*.mp4", None), "matched nothing"),
        ((None, None), "no input"),
        ((None, Path("/no/manifest.csv")), "manifest does not exist"),
    ],
)
def test_discover_errors_are_config_errors(args, message):
    with pytest.raises(ConfigError, match=message):
        discover(*args)


def test_manifest_rejects_bad_spans_row_by_row(tmp_path, small_video):
    (tmp_path / "x.mp4").write_bytes(small_video.read_bytes())
    manifest = tmp_path / "m.csv"
    manifest.write_text("video,start_s,end_s,text\nx.mp4,3,1,#C C waves\nx.mp4,0,1,#C C nods\n")
    found = discover(None, manifest)
    (bad,) = found.rejects
    assert (bad.source, bad.reason) == (f"{manifest}:2", "narration_ends_before_start")
    assert bad.detail == f"manifest {manifest} line 2: narration '#C C waves' ends at 1 s, not after its start at 3 s"
    assert found.narrations[tmp_path / "x.mp4"] == [Narration(start_s=0, end_s=1, text="#C C nods")]
    assert found.unreadable == []  # a bad row is not a video found


def test_probe_reads_properties_and_content_id(tmp_path, small_video):
    video = probe_video(small_video)
    assert (video.width, video.height, video.n_frames, video.fps) == (320, 240, 90, 30.0)
    assert video.codec in ("FMP4", "mp4v") and video.rotation == 0  # opencv names MPEG-4 part 2 FMP4
    copy = tmp_path / "renamed.mp4"
    copy.write_bytes(small_video.read_bytes())
    assert probe_video(copy).video_id == video.video_id  # id from content, not name


@pytest.mark.parametrize(
    "content, reason",
    [(b"", "empty_file"), (b"this is a text file, not a video\n" * 20, "unreadable_video")],
)
def test_probe_rejects_non_videos(tmp_path, content, reason):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(StageError) as err:
        probe_video(path)
    assert err.value.reason == reason


def test_probe_rejects_truncated_mp4(tmp_path, small_video):
    data = small_video.read_bytes()
    path = tmp_path / "truncated.mp4"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StageError) as err:
        probe_video(path)
    assert err.value.reason == "unreadable_video"


def test_plan_fixed_windows(small_video):
    video = probe_video(small_video)  # 3.0 s
    clips, problems = plan_clips(video, [], clip_plan(window_s=1.0, stride_s=0.5, min_clip_s=0.8))
    assert [(c.start_frame, c.end_frame) for c in clips] == [(0, 30), (15, 45), (30, 60), (45, 75), (60, 90)]
    assert not problems and len({c.clip_id for c in clips}) == 5
    again, _ = plan_clips(video, [], clip_plan(window_s=1.0, stride_s=0.5, min_clip_s=0.8))
    assert [c.clip_id for c in again] == [c.clip_id for c in clips]
    other, _ = plan_clips(video, [], clip_plan(window_s=1.0, stride_s=1.0, min_clip_s=0.8))
    assert other[0].clip_id != clips[0].clip_id  # the clip config is part of the id
    clips, problems = plan_clips(video, [], clip_plan(window_s=8.0, min_clip_s=4.0))
    assert clips == [] and problems[0].reason == "too_short"


def test_plan_narration_spans(small_video):
    video = probe_video(small_video)
    narrations = [
        Narration(start_s=1.0, end_s=1.2, text="#C C taps the table"),  # widened to min_clip_s
        Narration(start_s=0.0, end_s=2.5, text="#C C wipes the table"),
        Narration(start_s=5.0, end_s=6.0, text="#C C leaves"),  # after the end
    ]
    clips, problems = plan_clips(video, narrations, clip_plan(min_clip_s=1.0))
    assert [(c.plan, c.start_frame, c.end_frame, c.narration) for c in clips] == [
        ("narration", 0, 75, "#C C wipes the table"),
        ("narration", 18, 48, "#C C taps the table"),
    ]
    assert [p.reason for p in problems] == ["narration_out_of_range"]


def test_decode_clip_decord_and_cv2_agree(small_video):
    video = probe_video(small_video)
    clips, _ = plan_clips(video, [], clip_plan(window_s=1.0, min_clip_s=1.0))
    clip = clips[1]
    a = decode_clip(clip, target_width=160, decoder="decord")
    b = decode_clip(clip, target_width=160, decoder="cv2")
    assert a.shape == b.shape == (30, 120, 160, 3) and a.dtype == np.uint8
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 12  # same frames, different scalers


@pytest.mark.parametrize("decoder", ["decord", "cv2"])
def test_a_stride_decodes_every_nth_frame(small_video, decoder):
    video = probe_video(small_video)
    clips, _ = plan_clips(video, [], clip_plan(window_s=1.0, min_clip_s=1.0))
    every = decode_clip(clips[1], target_width=160, decoder=decoder)
    strided = decode_clip(clips[1], target_width=160, decoder=decoder, stride=3)
    assert len(strided) == 10 and np.array_equal(strided, every[::3])


def test_working_size_never_upscales():
    assert working_size(1920, 1080, 640) == (640, 360)
    assert working_size(320, 240, 640) == (320, 240)


def test_a_cut_off_stored_frame_is_moved_aside_and_the_frames_made_again(tmp_path):
    from hiw.video.sample import encode_frames, stored_frames, write_frames

    jpegs = encode_frames(textured_frames(6, 64, 48), 3, 64)
    written = write_frames(tmp_path, "c_1-3x64", jpegs)
    assert stored_frames(tmp_path, "c_1-3x64") == written
    written[1].write_bytes(written[1].read_bytes()[:40])  # a copy cut short: not a whole JPEG any more
    assert stored_frames(tmp_path, "c_1-3x64") == []  # so the build decodes the clip's frames again
    [aside] = (tmp_path / "cache" / "frames").iterdir()
    assert aside.name.startswith("c_1-3x64.corrupt-")
    assert [p.read_bytes() for p in write_frames(tmp_path, "c_1-3x64", jpegs)] == jpegs
