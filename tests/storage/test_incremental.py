"""Incremental rebuilds: an unchanged input is reused, one new video processes only that video, a motion setting
reruns motion but not tracking, a tracker setting reruns tracking; unchanged shards are reused, not rewritten.
(A new prompt version rerunning annotation only is tested in tests/annotators/test_vlm_build.py.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import FPHAB_TWO_GROUPS, copy_fphab, copy_fphab_all, fphab_config
from hiw.caches import OBSERVATIONS_DIR
from hiw.cli import app
from hiw.config import load_config
from hiw.flows.build import build_plain
from hiw.storage import list_versions, load_manifest, read_table
from hiw.storage.diff import diff_versions

BASE = FPHAB_TWO_GROUPS
ADDED = "Subject_1/pour_milk/1"  # its video_id sorts into the second group
REMOVED = "Subject_2/toast_wine/3"


def input_name(name: str) -> str:
    return name.replace("/", "_") + ".txt"


def shard_files(root: Path, version: str | None = None) -> dict[str, str]:
    manifest = load_manifest(root, version)
    return {f.path: f.sha256 for t in manifest.tables() for f in manifest.files(t)}


def stats(root: Path, paths) -> dict[str, tuple[int, int]]:
    return {p: ((root / p).stat().st_ino, (root / p).stat().st_mtime_ns) for p in paths}


def clip_ids(root: Path, version: str | None = None, video_file: str | None = None) -> set[str]:
    rows = read_table(root, "clips", version).to_pylist()
    return {r["clip_id"] for r in rows if video_file is None or r["source_path"].endswith("/" + video_file)}


def test_new_video_processes_only_that_video_and_a_removed_one_nothing(tmp_path, fphab_dir):
    inputs = tmp_path / "in"
    copy_fphab_all(fphab_dir, inputs, BASE)
    cfg = fphab_config(inputs, tmp_path / "out")
    root = cfg.out
    first = build_plain(cfg)
    v1 = load_manifest(root)
    video_groups = [g for g in v1.groups if g.kind == "videos"]
    assert first.version == "v1" and first.videos_processed == len(BASE) and len(video_groups) == 2
    v1_files = shard_files(root)
    v1_stats = stats(root, v1_files)

    added = copy_fphab(fphab_dir, inputs, ADDED)
    second = build_plain(cfg)
    assert second.published and second.version == "v2" and second.parent == "v1"
    assert second.videos_processed == 1 and second.videos_reused == len(BASE)
    assert second.groups_reused == 1 and second.groups_written == 1  # the group without the new video is reused
    v2 = load_manifest(root)
    assert v2.parent == "v1"
    kept = {g.key for g in v1.groups} & {g.key for g in v2.groups if g.kind == "videos"}
    assert len(kept) == 1
    shared = set(v1_files) & set(shard_files(root))
    assert shared and stats(root, shared) == {p: v1_stats[p] for p in shared}  # reused as they are, not rewritten
    new_clips = clip_ids(root, video_file=added.name)
    assert new_clips and clip_ids(root) == clip_ids(root, "v1") | new_clips
    assert second.clips_planned == first.clips_planned + len(new_clips)
    diff = diff_versions(root, "v1", "v2")
    assert (diff.clips_added, diff.clips_removed, diff.clips_changed) == (len(new_clips), 0, 0)

    removed_clips = clip_ids(root, video_file=input_name(REMOVED))
    assert removed_clips
    (inputs / input_name(REMOVED)).unlink()
    third = build_plain(cfg)
    assert third.published and third.version == "v3" and third.parent == "v2"
    assert third.videos_processed == 0 and third.videos_reused == len(BASE)  # the rest of its group is carried
    assert clip_ids(root) == clip_ids(root, "v2") - removed_clips
    result = CliRunner().invoke(app, ["diff", "v2", "v3", "--root", str(root), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert '"clips_removed": %d' % len(removed_clips) in result.stdout
    assert '"clips_added": 0' in result.stdout and '"clips_changed": 0' in result.stdout
    assert list_versions(root) == ["v1", "v2", "v3"]
    assert build_plain(cfg).published is False  # and nothing changed since


def test_motion_setting_reruns_and_changing_it_back_finds_v1_again(tmp_path, fphab_dir):
    inputs = tmp_path / "in"
    copy_fphab_all(fphab_dir, inputs, BASE[:4])
    out = tmp_path / "out"
    first = build_plain(fphab_config(inputs, out))
    v1_files = shard_files(out)
    v1_stats = stats(out, v1_files)

    changed = build_plain(fphab_config(inputs, out, savgol_window_s=0.5))
    assert changed.published and changed.version == "v2" and changed.videos_processed == 4 and changed.groups_reused == 0
    assert set(shard_files(out)).isdisjoint(set(v1_files) - {p for p in v1_files if "/rejects/" in p})
    diff = diff_versions(out, "v1", "v2")
    assert diff.clips_changed == first.clips_accepted and diff.clips_added == diff.clips_removed == 0

    back = build_plain(fphab_config(inputs, out))
    assert back.videos_processed == 0 and back.groups_written == 0 and back.groups_reused == 1
    assert back.published and back.version == "v3" and back.parent == "v2"
    assert shard_files(out) == v1_files and stats(out, v1_files) == v1_stats
    assert diff_versions(out, "v1", "v3").unchanged()


@pytest.fixture(scope="module")
def kitchen_inputs(tmp_path_factory, kitchen_video):
    videos = tmp_path_factory.mktemp("kitchen-in")
    shutil.copy(kitchen_video, videos / kitchen_video.name)
    manifest = videos / "narrations.csv"
    manifest.write_text(f"video,start_s,end_s,text\n{kitchen_video.name},0.0,5.0,#C C picks up the plate with both hands\n")
    return manifest


def test_video_motion_setting_reuses_tracking_and_tracker_setting_redoes_it(kitchen_inputs, tmp_path):
    root = tmp_path / "out"

    def build(**overrides):
        return build_plain(load_config(manifest=kitchen_inputs, out=root, min_both_hands_frac=0.5, **overrides))

    first = build()
    assert first.version == "v1" and first.clips_accepted == 1
    assert first.stage_times["track"].items == 121 and "observe_cached" not in first.stage_times
    cached = sorted((root / OBSERVATIONS_DIR).glob("*.npz"))
    assert len(cached) == 1

    motion_changed = build(savgol_window_s=0.5, max_jitter_translation=60.0)
    assert motion_changed.published and motion_changed.version == "v2" and motion_changed.videos_processed == 1
    assert "track" not in motion_changed.stage_times and "decode" not in motion_changed.stage_times
    assert motion_changed.stage_times["observe_cached"].items == 121 and motion_changed.stage_times["motion"].calls == 1
    assert sorted((root / OBSERVATIONS_DIR).glob("*.npz")) == cached
    diff = diff_versions(root, "v1", "v2")
    assert diff.clips_changed == 1 and diff.clips_added == diff.clips_removed == 0

    tracker_changed = build(savgol_window_s=0.5, max_jitter_translation=60.0, min_detection_confidence=0.6)
    assert tracker_changed.published and tracker_changed.version == "v3" and tracker_changed.videos_processed == 1
    assert tracker_changed.stage_times["track"].items == 121 and "observe_cached" not in tracker_changed.stage_times
    assert len(list((root / OBSERVATIONS_DIR).glob("*.npz"))) == 2


def test_track_fps_keeps_clips_and_redoes_tracking(kitchen_inputs, tmp_path):
    """A stride tracks fewer frames of the same clips: ids and spans stay; a change redoes tracking and after."""
    root = tmp_path / "out"

    def build(**overrides):
        return build_plain(load_config(manifest=kitchen_inputs, out=root, min_both_hands_frac=0.5, **overrides))

    def spans() -> set[tuple]:
        keys = ("clip_id", "start_frame", "end_frame", "start_s", "end_s")
        return {tuple(r[k] for k in keys) for r in read_table(root, "clips").to_pylist()}

    every = build()  # the default: every frame
    before = spans()
    assert every.stage_times["track"].items == 121
    strided = build(track_fps=15)  # every second frame of this 30 fps video
    assert strided.published and strided.videos_processed == 1 and "observe_cached" not in strided.stage_times
    assert strided.stage_times["track"].items == 61 and strided.stage_times["decode"].items == 61
    assert spans() == before
    assert [r["frames_decoded"] for r in read_table(root, "clips").to_pylist()] == [61]
    (motion,) = read_table(root, "motion").to_pylist()
    assert motion["n_frames"] == 61  # the motion is 15 fps either way
