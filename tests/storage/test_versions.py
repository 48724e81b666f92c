"""Dataset versions end to end: manifests, no-op rebuilds, the `hiw versions|diff|query|verify` commands, the
build lock, and the error for a root from before versions. Real F-PHAB builds (precomputed tracks, seconds)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conftest import HIW, copy_fphab, copy_fphab_all, fphab_config
from hiw.cli import app
from hiw.errors import ConfigError
from hiw.flows.build import build_plain
from hiw.schemas.ids import file_digest
from hiw.storage import list_versions, load_manifest, read_table
from hiw.storage.versions import BuildLock

FILES = [
    "Subject_2/squeeze_paper/5",
    "Subject_3/read_letter/4",
    "Subject_2/toast_wine/3",
    "Subject_1/open_letter/4",
]
EXTRA = "Subject_1/pour_milk/1"
TABLES = ("clips", "motion", "captions", "rejects")
runner = CliRunner()


def cli(*args: str):
    result = runner.invoke(app, list(args))
    return result


def hiw(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([str(HIW), *args], capture_output=True, text=True, env=env, timeout=timeout)


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_size)
        for p in folder.rglob("*")
        if p.is_file()
    }


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory, fphab_dir):
    """v1 from FILES, v2 after adding EXTRA; returns (cfg, summary v1, summary v2, clips in v1 by video)."""
    inputs = tmp_path_factory.mktemp("versions-in")
    copy_fphab_all(fphab_dir, inputs, FILES)
    cfg = fphab_config(inputs, tmp_path_factory.mktemp("versions-out"))
    first = build_plain(cfg)
    v1_clips = read_table(cfg.out, "clips").num_rows
    copy_fphab(fphab_dir, inputs, EXTRA)
    second = build_plain(cfg)
    return cfg, first, second, v1_clips


# ---------------------------------------------------------------- publish / no-op rebuild


def test_first_build_publishes_v1_and_a_noop_rebuild_nothing(tmp_path, fphab_dir):
    inputs = tmp_path / "in"
    copy_fphab_all(fphab_dir, inputs, FILES[:3])
    cfg = fphab_config(inputs, tmp_path / "out")
    summary = build_plain(cfg)
    assert summary.published and summary.version == "v1" and summary.parent is None
    assert (cfg.out / "versions" / "v1.json").is_file() and list_versions(cfg.out) == ["v1"]
    manifest = load_manifest(cfg.out)
    assert manifest.version == "v1" and manifest.parent is None
    assert summary.clips_planned >= 9 and summary.clips_accepted == summary.clips_planned
    for table in ("clips", "motion", "captions", "rejects", "responses", "vocabulary"):
        assert manifest.rows(table) == read_table(cfg.out, table).num_rows, table
    assert manifest.rows("clips") == summary.clips_planned and manifest.rows("motion") == summary.clips_accepted
    listed = [f for g in manifest.groups for f in g.files.values()]
    assert listed
    for f in listed:
        path = cfg.out / f.path
        assert path.is_file() and path.stat().st_size == f.bytes
        assert file_digest(path) == f.sha256, f.path
        assert pq.read_metadata(path).num_rows == f.rows

    before = snapshot(cfg.out / "shards")
    again = build_plain(cfg)
    assert again.published is False and again.version == "v1"
    assert again.videos_processed == 0 and again.videos_reused == 3 and again.groups_written == 0
    assert list_versions(cfg.out) == ["v1"]
    assert snapshot(cfg.out / "shards") == before  # no shard (or group record) rewritten, none added
    assert load_manifest(cfg.out).created_at == manifest.created_at


# ---------------------------------------------------------------- versions, diff, query


def test_versions_lists_both_with_parents(two_versions):
    cfg, first, second, _ = two_versions
    assert (first.version, second.version, second.parent, second.published) == ("v1", "v2", "v1", True)
    result = cli("versions", "--root", str(cfg.out), "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["version"] for r in rows] == ["v1", "v2"] and [r["parent"] for r in rows] == ["", "v1"]
    assert [r["clips"] for r in rows] == [first.clips_planned, second.clips_planned]
    table = cli("versions", "--root", str(cfg.out))
    assert table.exit_code == 0 and "2 row(s)" in table.stdout


def test_diff_after_adding_one_file(two_versions):
    cfg, first, second, v1_clips = two_versions
    result = cli("diff", "v1", "v2", "--root", str(cfg.out), "--format", "json")
    assert result.exit_code == 0, result.output
    diff = json.loads(result.stdout)
    added = second.clips_planned - first.clips_planned
    assert added >= 1
    assert (diff["a"], diff["b"], diff["clips_added"], diff["clips_removed"], diff["clips_changed"]) == ("v1", "v2", added, 0, 0)
    assert diff["captions_added"] == added and diff["captions_changed"] == 0 and diff["captions_removed"] == 0
    new_ids = set(read_table(cfg.out, "clips").column("clip_id").to_pylist()) - set(
        read_table(cfg.out, "clips", "v1").column("clip_id").to_pylist()
    )
    assert set(diff["examples"]["clips_added"]) <= new_ids and len(new_ids) == added
    same = cli("diff", "v2", "v2", "--root", str(cfg.out))
    assert same.exit_code == 0 and "no differences" in same.stdout
    missing = cli("diff", "v1", "v9", "--root", str(cfg.out))
    assert missing.exit_code == 2 and "no version 'v9'" in missing.stderr


def test_query_old_and_current_versions(two_versions, tmp_path):
    cfg, first, second, v1_clips = two_versions
    root = str(cfg.out)

    def count(*args: str) -> int:
        result = cli("query", "--root", root, "--format", "json", *args)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)[0]["n"]

    assert count("SELECT count(*) AS n FROM clips") == second.clips_planned
    assert count("--version", "v1", "SELECT count(*) AS n FROM clips") == v1_clips == first.clips_planned
    assert count("--version", "1", "SELECT count(*) AS n FROM motion") == first.clips_accepted
    assert count("SELECT count(*) AS n FROM v1.clips") == first.clips_planned
    assert count("SELECT count(*) AS n FROM v2.samples") == second.clips_accepted
    assert count("SELECT count(*) AS n FROM clips WHERE clip_id NOT IN (SELECT clip_id FROM v1.clips)") == (
        second.clips_planned - first.clips_planned
    )
    bad = cli("query", "--root", root, "--version", "v7", "SELECT 1")
    assert bad.exit_code == 2 and "no version 'v7'" in bad.stderr

    sql = "SELECT clip_id, video_id, start_s FROM clips ORDER BY clip_id"
    expected = read_table(cfg.out, "clips").sort_by("clip_id")
    ids = expected.column("clip_id").to_pylist()
    for suffix in ("parquet", "csv", "json"):
        target = tmp_path / f"x.{suffix}"
        result = cli("query", "--root", root, "--out", str(target), sql)
        assert result.exit_code == 0, result.output
        assert target.is_file() and f"wrote {target}" in " ".join(result.stderr.split())
        if suffix == "parquet":
            got = pq.read_table(target)
        elif suffix == "csv":
            got = pacsv.read_csv(target)
        else:
            got = pa.Table.from_pylist(json.loads(target.read_text()))
        assert got.column_names == ["clip_id", "video_id", "start_s"]
        assert got.column("clip_id").to_pylist() == ids
        assert got.column("start_s").to_pylist() == pytest.approx(expected.column("start_s").to_pylist())
    v1_out = tmp_path / "v1.csv"
    assert cli("query", "--root", root, "--version", "v1", "--out", str(v1_out), "SELECT clip_id FROM clips").exit_code == 0
    assert pacsv.read_csv(v1_out).num_rows == first.clips_planned
    for bad in (["--out", str(tmp_path / "y.txt")], ["--format", "table", "--out", str(tmp_path / "y.csv")]):
        result = cli("query", "--root", root, *bad, "SELECT 1")  # no file format: an error, never a silent print
        assert result.exit_code == 2 and "--out needs csv, json or parquet" in result.output
        assert not list(tmp_path.glob("y.*"))


def test_query_syntax_error_is_duckdbs_message_without_traceback(two_versions):
    cfg, *_ = two_versions
    result = hiw("query", "--root", str(cfg.out), "SELEC clip_id FROM clips")  # a real process: the user's view
    assert result.returncode == 1, result.stderr
    assert "syntax error at or near" in result.stderr and "query failed" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    unknown = cli("query", "--root", str(cfg.out), "SELECT nope FROM clips")
    assert unknown.exit_code == 1 and "nope" in unknown.stderr and "Traceback" not in unknown.output


# ---------------------------------------------------------------- verify


def verify(root: Path, *args: str):
    return cli("verify", "--root", str(root), *args)


@pytest.fixture
def copy_of(two_versions, tmp_path):
    """A private copy of the two-version dataset, to damage."""
    cfg, *_ = two_versions
    root = tmp_path / "copy"
    shutil.copytree(cfg.out, root)
    return root


def only_in_current(root: Path, table: str = "motion") -> str:
    v1 = {f.path for f in load_manifest(root, "v1").files(table)}
    return next(f.path for f in load_manifest(root).files(table) if f.path not in v1)


def test_verify_sound_dataset(copy_of):
    result = verify(copy_of)
    assert result.exit_code == 0, result.output
    assert "ok" in result.stdout
    every = verify(copy_of, "--all")
    assert every.exit_code == 0 and "v1, v2 verified" in every.stdout
    assert verify(copy_of, "--version", "v1").exit_code == 0


def test_verify_flipped_bytes(copy_of):
    shard = only_in_current(copy_of)
    path = copy_of / shard
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = bytes(b ^ 0xFF for b in data[middle : middle + 8])
    path.write_bytes(bytes(data))
    result = verify(copy_of)
    assert result.exit_code == 1
    text = " ".join(result.stderr.split())
    assert shard in text and "does not match its checksum" in text
    assert verify(copy_of, "--version", "v1").exit_code == 0  # v1 does not list that shard


def test_verify_deleted_shard(copy_of):
    shard = load_manifest(copy_of, "v1").files("clips")[0].path
    (copy_of / shard).unlink()
    result = verify(copy_of, "--version", "v1")
    assert result.exit_code == 1
    assert f"missing shard {shard}" in " ".join(result.stderr.split())


def test_verify_shard_replaced_by_other_valid_parquet(copy_of):
    shard = only_in_current(copy_of, "clips")
    path = copy_of / shard
    rows = pq.read_table(path)
    assert rows.num_rows >= 2
    pq.write_table(rows.slice(1), path, compression="zstd")  # valid Parquet, right schema, one row fewer
    result = verify(copy_of)
    assert result.exit_code == 1
    text = " ".join(result.stderr.split())
    assert shard in text and "does not match its checksum" in text


def test_verify_all_finds_a_problem_in_an_old_version(copy_of):
    v2 = {f.path for t in load_manifest(copy_of).tables() for f in load_manifest(copy_of).files(t)}
    old = next(f.path for f in load_manifest(copy_of, "v1").files("motion") if f.path not in v2)
    (copy_of / old).write_bytes(b"not parquet at all")
    assert verify(copy_of).exit_code == 0  # the current version is sound
    result = verify(copy_of, "--all")
    assert result.exit_code == 1
    text = " ".join(result.stderr.split())
    assert f"v1: motion: shard {old}" in text and "v2:" not in text


# ---------------------------------------------------------------- the build lock


def test_build_lock_refuses_a_second_build_until_the_holder_dies(tmp_path, fphab_dir):
    inputs = tmp_path / "in"
    copy_fphab(fphab_dir, inputs, FILES[0])
    root = tmp_path / "out"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from hiw.storage.versions import BuildLock\n"
            "with BuildLock(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(600)",
            str(root),
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        args = ["build", "--videos", str(inputs), "--out", str(root), "--tracker", "precomputed"]
        args += ["--min-both-hands-frac", "0", "--fit-iterations", "0"]
        result = cli(*args)
        assert result.exit_code == 2, result.output
        text = " ".join(result.stderr.split())
        assert "another build is publishing" in text and f'"pid": {holder.pid}' in text
        assert "Traceback" not in result.output and not list_versions(root)
        with pytest.raises(Exception, match="another build is publishing"):
            with BuildLock(root):
                pass
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
    assert holder.returncode == -signal.SIGKILL
    summary = build_plain(fphab_config(inputs, root))  # the kernel released the flock with the process
    assert summary.published and list_versions(root) == ["v1"]


# ---------------------------------------------------------------- a root from before versions


def test_root_of_an_older_hiw_is_a_clear_error(tmp_path):
    root = tmp_path / "old"
    (root / "tables").mkdir(parents=True)
    pq.write_table(pa.table({"clip_id": ["c_1"]}), root / "tables" / "clips.parquet")
    for args in (["query", "--root", str(root), "SELECT 1"], ["versions", "--root", str(root)], ["verify", "--root", str(root)]):
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        text = " ".join(result.stderr.split())
        assert "older hiw" in text and "hiw build --out" in text and "Traceback" not in result.output


def test_the_lock_says_who_holds_it(tmp_path):
    root = tmp_path / "out"
    with BuildLock(root, task="hiw gc"):
        with pytest.raises(ConfigError, match=r"`hiw gc` is cleaning .*wait for it to finish or build into another --out"):
            with BuildLock(root):
                pass
    with BuildLock(root):
        with pytest.raises(ConfigError, match=r"cannot run hiw gc: another build is publishing into .*wait for it to finish$"):
            with BuildLock(root, task="hiw gc"):
                pass
