"""``fetch_motion`` reads only the row groups that can hold the wanted clips, and returns exactly their rows."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from conftest import copy_fphab_all, fphab_config
from hiw.data.sequences import frame_rows
from hiw.flows.build import build_plain
from hiw.storage import fetch_motion, load_manifest, read_table, shards
from hiw.storage.fetch import _row_groups

FILES = ["Subject_2/squeeze_paper/5", "Subject_3/read_letter/4", "Subject_2/toast_wine/3", "Subject_1/open_letter/4"]


def test_fetch_motion_reads_only_the_row_groups_of_the_clips(fphab_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(shards.ROW_GROUP_ROWS, "motion", 2)  # many row groups from a small build
    copy_fphab_all(fphab_dir, tmp_path / "in", FILES)
    root = tmp_path / "out"
    build_plain(fphab_config(tmp_path / "in", root))
    motion = read_table(root, "motion")
    ids = sorted(motion["clip_id"].to_pylist())
    wanted = [ids[1], ids[-2]]
    got = fetch_motion(root, [*wanted, "c_not_a_clip"])
    assert sorted(got["clip_id"].to_pylist()) == wanted
    expected = motion.filter(pc.is_in(motion["clip_id"], got["clip_id"])).sort_by("clip_id")
    got = got.sort_by("clip_id")
    assert got.schema == expected.schema and got.select(["n_frames", "right_valid"]).equals(
        expected.select(["n_frames", "right_valid"])
    )
    for a, b in zip(frame_rows(got["right_hand_pose"], 45), frame_rows(expected["right_hand_pose"], 45)):
        np.testing.assert_array_equal(a, b)  # NaN where the hand is missing, equal everywhere
    clips = read_table(root, "clips", columns=["clip_id", "video_id"]).to_pylist()
    pairs = [(c["clip_id"], c["video_id"]) for c in clips if c["clip_id"] in wanted]
    total = read = 0
    for shard in load_manifest(root).files("motion"):
        meta = pq.ParquetFile(root / shard.path).metadata
        total += meta.num_row_groups
        read += len(_row_groups(meta, pairs))
    assert total >= 8 and read <= 2 * len(wanted)  # statistics leave about one row group per clip
    only = fetch_motion(root, wanted, columns=["fps"])
    assert only.column_names == ["clip_id", "fps"] and only.num_rows == 2
    assert fetch_motion(root, []).num_rows == 0
