"""``hiw gc`` removes what no version uses (orphaned shard groups, temp files, caches of clips in no version)
and nothing any version needs."""

from __future__ import annotations

from typer.testing import CliRunner

from conftest import copy_fphab_all, fphab_config
from hiw.caches import FRAMES_DIR, OBSERVATIONS_DIR
from hiw.cli import app
from hiw.flows.build import build_plain
from hiw.schemas import Reject, to_table
from hiw.storage import list_versions
from hiw.storage.groups import GroupStore

FILES = ["Subject_2/squeeze_paper/5", "Subject_3/read_letter/4", "Subject_1/open_letter/4"]


def test_gc_removes_orphans_and_keeps_every_version(fphab_dir, tmp_path):
    inputs, root = tmp_path / "in", tmp_path / "out"
    copy_fphab_all(fphab_dir, inputs, FILES)
    build_plain(fphab_config(inputs, root))
    build_plain(fphab_config(inputs, root, savgol_window_s=0.5))  # v2: other groups; v1's stay in use
    kept = sorted(p for p in (root / "shards").rglob("*") if p.is_file())
    # what a killed build leaves: a finished group no manifest lists (2 files), a temp file; caches of a clip in
    # no version (an observation file, a frames folder)
    GroupStore(root).write("sources", "s_orphan", {}, {"rejects": to_table(Reject, [])})
    (root / "shards" / "motion" / ".g_x.parquet.123.tmp").write_bytes(b"partial")
    (root / FRAMES_DIR / "c_gone-8x448").mkdir(parents=True)
    (root / FRAMES_DIR / "c_gone-8x448" / "000.jpg").write_bytes(b"\xff\xd8")
    (root / OBSERVATIONS_DIR).mkdir(parents=True)
    (root / OBSERVATIONS_DIR / "c_gone-o_1.npz").write_bytes(b"x")
    runner = CliRunner()
    dry = runner.invoke(app, ["gc", "--root", str(root), "--dry-run"])
    assert dry.exit_code == 0 and "would remove 4 file(s) and 1 folder(s)" in dry.output, dry.output
    assert (root / "shards" / "groups" / "s_orphan.json").exists()
    done = runner.invoke(app, ["gc", "--root", str(root)])
    assert done.exit_code == 0 and "removed 4 file(s) and 1 folder(s)" in done.output, done.output
    assert sorted(p for p in (root / "shards").rglob("*") if p.is_file()) == kept
    assert not (root / FRAMES_DIR / "c_gone-8x448").exists() and not any((root / OBSERVATIONS_DIR).iterdir())
    verify = runner.invoke(app, ["verify", "--root", str(root), "--all"])
    assert verify.exit_code == 0, verify.output
    assert build_plain(fphab_config(inputs, root, savgol_window_s=0.5)).published is False
    assert list_versions(root) == ["v1", "v2"]
