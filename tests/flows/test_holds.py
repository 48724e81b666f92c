"""A rebuild never silently drops rows the current version has: a source video that became unreadable, or inputs
that went missing altogether (an unmounted share), hold the new version back and the build exits 1 saying why.
Real videos and F-PHAB tracks, the real CLI (exit codes) and plain builds."""

from __future__ import annotations

from conftest import FPHAB_SETTINGS, copy_fphab_all, fphab_config, hiw, textured_frames, write_video
from hiw.config import load_config
from hiw.flows.build import build_plain
from hiw.storage import list_versions, read_table

FLAGS = [f for k, v in FPHAB_SETTINGS.items() for f in (f"--{k.replace('_', '-')}", str(v))]
VIDEO_SETTINGS = dict(window_s=2.0, min_clip_s=1.0, workers=2)


def clip_sources(root, version=None) -> list[str]:
    return sorted(p.rsplit("/", 1)[-1] for p in read_table(root, "clips", version, ["source_path"])["source_path"].to_pylist())


def test_a_source_video_that_became_unreadable_holds_the_version_back(tmp_path):
    videos = tmp_path / "in"
    videos.mkdir()
    write_video(videos / "a.mp4", textured_frames(60, 320, 240, seed=1), fps=15)  # two clips of 2 s
    write_video(videos / "b.mp4", textured_frames(30, 320, 240, seed=2), fps=15)  # one clip
    root = tmp_path / "out"
    build_plain(load_config(videos=str(videos), out=root, **VIDEO_SETTINGS))
    assert clip_sources(root) == ["a.mp4", "a.mp4", "b.mp4"]

    (videos / "a.mp4").write_bytes((videos / "a.mp4").read_bytes()[:2000])  # cut short: no longer a video
    held = build_plain(load_config(videos=str(videos), out=root, **VIDEO_SETTINGS))  # the CLI exits 1 (test below)
    assert not held.published and "1 source video(s) of v1 cannot be read now (a.mp4" in held.held
    assert list_versions(root) == ["v1"] and clip_sources(root) == ["a.mp4", "a.mp4", "b.mp4"]  # nothing lost

    (videos / "a.mp4").unlink()  # taken out of the inputs on purpose: its clips go
    summary = build_plain(load_config(videos=str(videos), out=root, **VIDEO_SETTINGS))
    assert summary.published and summary.version == "v2" and clip_sources(root) == ["b.mp4"]


def test_empty_inputs_on_an_existing_dataset_hold_the_version_back_unless_allowed(tmp_path, fphab_dir):
    inputs = copy_fphab_all(fphab_dir, tmp_path / "in", ["Subject_1/pour_milk/1"])
    root = tmp_path / "out"
    first = build_plain(fphab_config(inputs, root))
    assert first.clips_planned > 0
    empty = tmp_path / "unmounted"
    empty.mkdir()

    result = hiw("build", "--videos", str(empty), "--out", str(root), *FLAGS)
    message = " ".join(result.stderr.split())
    assert result.returncode == 1 and "new version would have no clips, v1 has" in message and "--allow-empty" in message
    assert list_versions(root) == ["v1"]

    header_only = tmp_path / "manifest.csv"
    header_only.write_text("video,start_s,end_s,text\n")
    held = build_plain(load_config(manifest=header_only, out=root, **FPHAB_SETTINGS))
    assert not held.published and "no clips" in held.held and list_versions(root) == ["v1"]

    allowed = build_plain(fphab_config(empty, root, allow_empty=True))
    assert allowed.published and allowed.version == "v2" and allowed.clips_planned == 0


def test_a_first_build_of_nothing_still_publishes_an_empty_dataset(tmp_path):
    empty = tmp_path / "in"
    empty.mkdir()
    summary = build_plain(load_config(videos=str(empty), out=tmp_path / "out"))
    assert summary.published and summary.version == "v1" and summary.clips_planned == 0
