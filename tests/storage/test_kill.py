"""A build killed (SIGKILL, a real process) at random points, then rebuilt: the final dataset equals an
uninterrupted build, with no duplicate and no missing rows, and a version once published stays intact.

The random kills run in processes forked from one helper that has imported hiw already (a fresh interpreter
would spend most of each run importing torch); one kill hits the real `hiw build` command mid-rebuild."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import FPHAB_SETTINGS, FPHAB_TWO_GROUPS, HIW, copy_fphab, copy_fphab_all
from hiw.config import load_config
from hiw.flows.build import build_plain
from hiw.storage import list_versions, load_manifest, open_catalog, read_table
from hiw.storage.verify import verify_version

# Subject_1/scratch_sponge/3 ends a third shard group after FPHAB_TWO_GROUPS' two
FILES = [
    *FPHAB_TWO_GROUPS,
    "Subject_4/light_candle/1",
    "Subject_4/pour_juice_bottle/3",
    "Subject_1/scratch_sponge/3",
    "Subject_1/charge_cell_phone/1",  # sorts after the last group end: a third group
]
LATE = "Subject_1/pour_milk/1"  # added for the rebuild that is killed
KEYS = {
    "clips": ("clip_id",),
    "motion": ("clip_id",),
    "captions": ("caption_id",),
    "rejects": ("reject_id",),
    "responses": ("response_id",),
    "vocabulary": ("kind", "word"),
}
KILLS = 4
SEED = 20240611

# Reads "<out>" lines; forks a child (its own session) that builds into <out>, prints its pid; "wait <pid>" reaps it.
FORK_HELPER = """
import json, os, sys
from pathlib import Path
from hiw.config import load_config
from hiw.flows.build import build_plain
videos, settings = sys.argv[1], json.loads(sys.argv[2])
print("ready", flush=True)
for line in sys.stdin:
    cmd, arg = line.split()
    if cmd == "wait":
        _, status = os.waitpid(int(arg), 0)
        print(status, flush=True)
        continue
    pid = os.fork()
    if pid == 0:
        os.setsid()
        try:
            build_plain(load_config(videos=videos, out=Path(arg), **settings))
            os._exit(0)
        except BaseException:
            os._exit(3)
    print(pid, flush=True)
"""


def contents(root: Path, version: str | None = None) -> dict[str, list[dict]]:
    """Every table of a version, rows sorted by key, without created_at."""
    out = {}
    for table, key in KEYS.items():
        rows = [{k: v for k, v in r.items() if k != "created_at"} for r in read_table(root, table, version).to_pylist()]
        keys = [tuple(r[k] for k in key) for r in rows]
        assert len(keys) == len(set(keys)), f"duplicate keys in {table}"
        out[table] = sorted(rows, key=lambda r: tuple(r[k] for k in key))
    return out


def same_rows(a: list[dict], b: list[dict]) -> bool:
    """Rows equal, arrays compared as arrays (NaN where a hand is not seen equals NaN)."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x.keys() != y.keys():
            return False
        for k in x:
            if isinstance(x[k], list) and x[k] and isinstance(x[k][0], (list, float)):
                if not np.array_equal(np.array(x[k], np.float64), np.array(y[k], np.float64), equal_nan=True):
                    return False
            elif x[k] != y[k] and not (isinstance(x[k], float) and np.isnan(x[k]) and np.isnan(y[k])):
                return False
    return True


def same_contents(a: dict[str, list[dict]], b: dict[str, list[dict]]) -> bool:
    return a.keys() == b.keys() and all(same_rows(a[t], b[t]) for t in a)


def assert_only_complete_versions(root: Path) -> list[str]:
    versions = list_versions(root)
    for name in versions:
        manifest = load_manifest(root, name)
        assert all((root / f.path).is_file() for t in manifest.tables() for f in manifest.files(t)), name
        assert verify_version(root, name) == [], name
    return versions


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, fphab_dir):
    return copy_fphab_all(fphab_dir, tmp_path_factory.mktemp("kill-in"), FILES)


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory):
    """An uninterrupted build: (root, wall seconds)."""
    cfg = load_config(videos=str(inputs), out=tmp_path_factory.mktemp("kill-ref"), **FPHAB_SETTINGS)
    started = time.perf_counter()
    summary = build_plain(cfg)
    wall = time.perf_counter() - started
    assert summary.version == "v1" and summary.clips_accepted == summary.clips_planned > 40
    assert len([g for g in load_manifest(cfg.out).groups if g.kind == "videos"]) == 3
    return cfg.out, wall


def test_random_kills_then_rebuild_equals_uninterrupted(inputs, reference, tmp_path):
    ref_root, ref_wall = reference
    root = tmp_path / "killed"
    helper = subprocess.Popen(
        [sys.executable, "-c", FORK_HELPER, str(inputs), json.dumps(FPHAB_SETTINGS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    rng = random.Random(SEED)
    seen = []  # (delay, versions after the kill, group records written)
    try:
        assert helper.stdout.readline().strip() == "ready"
        for _ in range(KILLS):
            delay = rng.uniform(0.05, ref_wall)
            helper.stdin.write(f"build {root}\n")
            helper.stdin.flush()
            pid = int(helper.stdout.readline())
            time.sleep(delay)
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # already finished
            helper.stdin.write(f"wait {pid}\n")
            helper.stdin.flush()
            status = int(helper.stdout.readline())
            assert os.WIFSIGNALED(status) or os.WEXITSTATUS(status) == 0, status
            versions = assert_only_complete_versions(root)
            seen.append((round(delay, 2), versions, len(list((root / "shards" / "groups").glob("*.json")))))
    finally:
        helper.stdin.close()
        helper.wait(timeout=60)
    print(f"reference {ref_wall:.1f} s; kills (delay, versions, group records): {seen}")
    assert any(not versions for _, versions, _ in seen), f"no kill landed before the first version: {seen}"

    final = build_plain(load_config(videos=str(inputs), out=root, **FPHAB_SETTINGS))
    assert final.version == "v1" and list_versions(root) == ["v1"]
    assert assert_only_complete_versions(root) == ["v1"]
    assert same_contents(contents(root), contents(ref_root))
    assert load_manifest(root).rows("clips") == load_manifest(ref_root).rows("clips")
    assert build_plain(load_config(videos=str(inputs), out=root, **FPHAB_SETTINGS)).published is False


def test_hiw_build_killed_mid_rebuild_leaves_v1_intact(inputs, reference, tmp_path, fphab_dir):
    ref_root, _ = reference
    root = tmp_path / "out"
    shutil.copytree(ref_root, root)  # v1, as an uninterrupted build left it
    more = tmp_path / "in"
    shutil.copytree(inputs, more)
    late = copy_fphab(fphab_dir, more, LATE)
    args = [str(HIW), "build", "--videos", str(more), "--out", str(root)]
    for key, value in FPHAB_SETTINGS.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    build = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    guard = threading.Timer(300, lambda: os.killpg(build.pid, signal.SIGKILL))
    guard.start()
    try:
        lines = []
        for line in build.stdout:  # per-clip progress lines off a terminal: "[1/5] c_... accepted"
            lines.append(line)
            if line.startswith("[1/"):
                break
        os.killpg(build.pid, signal.SIGKILL)
        build.wait(timeout=60)
    finally:
        guard.cancel()
    assert build.returncode == -signal.SIGKILL, "".join(lines)
    assert any(line.startswith("[1/") for line in lines), "".join(lines)

    versions = assert_only_complete_versions(root)
    assert versions in (["v1"], ["v1", "v2"])
    assert same_contents(contents(root, "v1"), contents(ref_root))
    with open_catalog(root, "v1") as con:
        assert con.execute("SELECT count(*) FROM clips").fetchone()[0] == load_manifest(ref_root).rows("clips")
        assert con.execute("SELECT count(*) FROM v1.motion").fetchone()[0] == load_manifest(ref_root).rows("motion")

    summary = build_plain(load_config(videos=str(more), out=root, **FPHAB_SETTINGS))
    assert list_versions(root) == ["v1", "v2"] and assert_only_complete_versions(root) == ["v1", "v2"]
    assert summary.videos_processed <= 1 and summary.groups_reused >= 2
    after = contents(root)
    before = contents(ref_root)
    new = [r for r in after["clips"] if r["source_path"].endswith("/" + late.name)]
    assert new and len(after["clips"]) == len(before["clips"]) + len(new)
    old_ids = {r["clip_id"] for r in before["clips"]}
    assert {r["clip_id"] for r in after["clips"]} == old_ids | {r["clip_id"] for r in new}
    assert same_rows([r for r in after["motion"] if r["clip_id"] in old_ids], before["motion"])
    assert same_rows([r for r in after["captions"] if r["clip_id"] in old_ids], before["captions"])
