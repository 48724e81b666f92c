"""Damaged data on disk: a shard cut short, overwritten or deleted, and cache files that are not what they should
be. Queries on sound tables keep working and the damaged one says what to run; a build checks the shards it
reuses, makes the damaged group again and restores the version (or republishes it); a damaged cache entry is
moved aside and recomputed. Real F-PHAB tracks and real videos, the real CLI, real DuckDB and Parquet."""

from __future__ import annotations

import hashlib

import pytest

from conftest import copy_fphab_all, fphab_config, hiw, textured_frames, write_video
from hiw.config import load_config
from hiw.flows import stages
from hiw.flows.build import build_plain
from hiw.storage import list_versions, load_manifest, read_table
from hiw.storage.groups import GroupStore

FILES = ["Subject_1/pour_milk/1", "Subject_2/squeeze_paper/5", "Subject_3/pour_milk/4"]


@pytest.fixture
def dataset(tmp_path, fphab_dir):
    inputs = copy_fphab_all(fphab_dir, tmp_path / "in", FILES)
    root = tmp_path / "out"
    build_plain(fphab_config(inputs, root))
    return inputs, root


def digests(root) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in (root / "shards").rglob("*.parquet")}


def rows(root, table: str, version: str | None = None) -> list[dict]:
    lineage = {"created_at", "config_hash", "code_version"}
    data = read_table(root, table, version).to_pylist()
    return sorted(({k: v for k, v in r.items() if k not in lineage} for r in data), key=repr)


def test_a_cut_off_shard_leaves_the_rest_queryable_and_the_build_restores_it(dataset):
    inputs, root = dataset
    motion = load_manifest(root).files("motion")[0]
    before = (root / motion.path).read_bytes()
    (root / motion.path).write_bytes(before[: len(before) // 2])

    clips = hiw("query", "--root", str(root), "SELECT count(*) AS n FROM clips", "--format", "csv")
    assert clips.returncode == 0 and clips.stdout.split() == ["n", str(load_manifest(root).rows("clips"))], clips.stderr
    broken = hiw("query", "--root", str(root), "SELECT count(*) FROM samples")
    message = " ".join(broken.stderr.split())
    assert broken.returncode == 1 and motion.path in message and "hiw verify --repair" in message
    assert "Traceback" not in broken.stderr

    rebuilt = build_plain(fphab_config(inputs, root))  # failed with DuckDB's error before
    assert rebuilt.groups_damaged == 1 and not rebuilt.published
    # the same rows with the same created_at give the same bytes: v1 is whole again, and nothing new is published
    assert (root / motion.path).read_bytes() == before and list_versions(root) == ["v1"]
    assert hiw("verify", "--all", "--root", str(root)).returncode == 0


def test_a_deleted_shard_is_rewritten_and_republished_when_its_bytes_differ(dataset, monkeypatch):
    inputs, root = dataset
    clips = load_manifest(root).files("clips")[0]
    reference = rows(root, "clips")
    (root / clips.path).unlink()
    store = GroupStore(root)
    damaged = next(g for g in load_manifest(root).groups if "clips" in g.files and g.files["clips"].path == clips.path)
    assert store.get(damaged.key) is None and "missing" in store.damaged[damaged.key]

    # a newer hiw repairs the dataset: its rows carry another code_version, so the bytes cannot match v1's
    monkeypatch.setattr(stages, "__version__", "0.1.0+newer")
    summary = build_plain(fphab_config(inputs, root))
    assert summary.groups_damaged == 1 and summary.published and summary.version == "v2"
    assert rows(root, "clips") == reference  # the same clips, from the rewritten shard
    assert hiw("verify", "--root", str(root)).returncode == 0
    old = hiw("verify", "--version", "v1", "--root", str(root))
    assert old.returncode == 1 and f"missing shard {clips.path}" in " ".join(old.stderr.split())  # v1 lost that file


def test_verify_repair_rebuilds_a_version_whose_shard_was_overwritten(dataset):
    _, root = dataset
    motion = load_manifest(root).files("motion")[-1]
    path = root / motion.path
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 16] = bytes(16)  # same size, other bytes: only the checksum tells
    path.write_bytes(bytes(data))
    reference = rows(root, "clips")

    plain = hiw("verify", "--root", str(root))
    assert plain.returncode == 1 and motion.path in " ".join(plain.stderr.split())
    repaired = hiw("verify", "--repair", "--root", str(root))
    assert repaired.returncode == 0, repaired.stderr[-2000:]
    assert "ok:" in repaired.stdout and rows(root, "clips") == reference
    assert hiw("verify", "--all", "--root", str(root)).returncode == 0  # the same bytes again: v1 restored


def test_a_response_cache_that_is_not_a_database_is_moved_aside(dataset, caplog):
    from hiw.testing.openai_server import OpenAIServer

    inputs, root = dataset
    cache = root / "cache" / "vlm-responses.sqlite"
    cache.parent.mkdir(exist_ok=True)
    cache.write_bytes(b"this is not an sqlite database\n" * 100)
    with OpenAIServer(model="m") as server, caplog.at_level("WARNING", logger="hiw.cache"):
        summary = build_plain(fphab_config(inputs, root, vlm="openai", vlm_url=server.url, vlm_model="m"))
        assert len(server.requests) > 0
    assert summary.published and summary.vlm_failed_calls == 0
    assert any("vlm-responses.sqlite is unreadable" in r.getMessage() for r in caplog.records)
    aside = [p.name for p in cache.parent.iterdir() if ".corrupt-" in p.name]
    assert len(aside) == 1 and cache.exists()
    assert read_table(root, "captions", columns=["kind"])["kind"].to_pylist().count("pcot_summary") > 0
    assert hiw("gc", "--root", str(root)).returncode == 0
    assert not [p for p in cache.parent.iterdir() if ".corrupt-" in p.name]  # gc removes what was moved aside


def test_a_truncated_tracking_cache_entry_is_observed_again(tmp_path):
    videos = tmp_path / "in"
    videos.mkdir()
    write_video(videos / "table.mp4", textured_frames(45, 320, 240), fps=15)
    root = tmp_path / "out"
    cfg = load_config(videos=str(videos), out=root, window_s=3.0, min_clip_s=1.0, workers=1)
    build_plain(cfg)
    [entry] = (root / "cache" / "observations").glob("*.npz")
    entry.write_bytes(entry.read_bytes()[:100])
    changed = load_config(videos=str(videos), out=root, window_s=3.0, min_clip_s=1.0, workers=1, max_gap_s=0.4)
    summary = build_plain(changed)  # a motion setting changed: the clip is redone from its observation
    [clip] = read_table(root, "clips").to_pylist()
    assert clip["reject_reason"] == "no_hands"  # what the tracker sees in a scene without hands; not a crash
    assert "track" in summary.stage_times and summary.observations_cached == 0
    entries = sorted(p.name for p in (root / "cache" / "observations").iterdir())
    assert len(entries) == 2 and sum(".corrupt-" in n for n in entries) == 1  # moved aside, and made again
