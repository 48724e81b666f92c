"""What a build writes does not change when the code is only reorganised: the same rows, ids and shard-group keys on
the fixtures as the code these digests were taken from (commit b886262).

A build of real inputs runs (F-PHAB tracks with the build's default fit, the kitchen video through mediapipe, a VLM
annotation against the loopback server); every table's rows, lineage columns aside (they name the code, not the
data), are hashed with floats rounded to 5 decimals (metres, radians: far below any real change, above the last-bit
noise a different CPU could give). The group keys are the rebuild rules: the same keys mean that a dataset built by
the old code is reused by the new one, not rebuilt. A deliberate change to what builds write updates ``EXPECTED``,
and says so in its commit. The group keys changed once since: the stage table (hiw.schemas.stages) gave the quality
filters a stage and a version of their own, so every unit key moved (rows and ids did not).

Regenerate with: HIW_PRINT_DIGESTS=1 .venv/bin/python -m pytest tests/flows/test_rows_unchanged.py -s
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np
import pytest

from conftest import FPHAB_SETTINGS, FPHAB_TWO_GROUPS, copy_fphab_all, fixture_file
from hiw.config import load_config
from hiw.flows.build import build_plain
from hiw.schemas import TABLES
from hiw.storage import load_manifest, read_table
from hiw.testing.openai_server import OpenAIServer

# What made a row and when (latency is the server's timing), and reject_id: a hash of the input's path, which is
# wherever this checkout's tests put their inputs (source_path is compared with that folder replaced).
SKIPPED = {"created_at", "code_version", "latency_s", "reject_id"}


def _canonical(value, inputs: str):
    if isinstance(value, float):
        return None if np.isnan(value) else round(value, 5)
    if isinstance(value, str):
        return value.replace(inputs, "<inputs>")
    if isinstance(value, list):
        return [_canonical(v, inputs) for v in value]
    if isinstance(value, dict):
        return {k: _canonical(v, inputs) for k, v in value.items()}
    return value


def digests(root, inputs) -> dict[str, str]:
    """Per table, a digest of its rows (``SKIPPED`` aside, sorted), and one of the version's group keys."""
    out = {}
    for table in TABLES:
        rows = [
            {k: _canonical(v, str(inputs)) for k, v in r.items() if k not in SKIPPED} for r in read_table(root, table).to_pylist()
        ]
        lines = sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)
        out[table] = f"{len(lines)}:" + hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
    keys = sorted(g.key for g in load_manifest(root).groups)
    out["group_keys"] = hashlib.sha256(json.dumps(keys).encode()).hexdigest()[:16]
    return out


def check(name: str, root, inputs) -> None:
    got = digests(root, inputs)
    if os.environ.get("HIW_PRINT_DIGESTS"):
        print(f"\n    {name!r}: {json.dumps(got, indent=8)},")
    assert got == EXPECTED[name]


EXPECTED: dict[str, dict[str, str]] = {
    "fphab": {
        "clips": "32:63bcf4e1f1ca9119",
        "motion": "32:30df359748832b3b",
        "captions": "32:0a1fe654dca2e5d5",
        "responses": "0:e3b0c44298fc1c14",
        "vocabulary": "0:e3b0c44298fc1c14",
        "rejects": "0:e3b0c44298fc1c14",
        "group_keys": "bca2810a2718ad99",
    },
    "kitchen": {
        "clips": "1:ee0f6e094806c761",
        "motion": "1:4cb777250efc9cca",
        "captions": "2:f4dddc5808763387",
        "responses": "0:e3b0c44298fc1c14",
        "vocabulary": "0:e3b0c44298fc1c14",
        "rejects": "0:e3b0c44298fc1c14",
        "group_keys": "8fcf8225432f34a6",
    },
    "vlm": {
        "clips": "7:2bd21703da5a69dd",
        "motion": "7:5d63b204b3cffc50",
        "captions": "14:2578981c2ae8cce0",
        "responses": "35:daf2a26b655146c1",
        "vocabulary": "0:e3b0c44298fc1c14",
        "rejects": "7:44590632c6a678d6",
        "group_keys": "31715c72ce3bd96a",
    },
}


def test_fphab_tracks_with_the_build_fit(tmp_path, fphab_dir):
    inputs = copy_fphab_all(fphab_dir, tmp_path / "in", FPHAB_TWO_GROUPS)
    settings = {**FPHAB_SETTINGS}
    settings.pop("fit_iterations")  # the build's own fit
    build_plain(load_config(videos=str(inputs), out=tmp_path / "out", **settings))
    check("fphab", tmp_path / "out", inputs)


@pytest.mark.slow
def test_kitchen_video_through_mediapipe(tmp_path, kitchen_video):
    videos = tmp_path / "in"
    videos.mkdir()
    shutil.copy(kitchen_video, videos / kitchen_video.name)
    manifest = videos / "narrations.csv"
    manifest.write_text(f"video,start_s,end_s,text\n{kitchen_video.name},0.0,4.0,#C C picks up the plate with both hands\n")
    build_plain(load_config(manifest=manifest, out=tmp_path / "out", min_both_hands_frac=0.5, workers=1))
    check("kitchen", tmp_path / "out", videos)


def test_vlm_annotation_of_fphab_tracks(tmp_path, fphab_dir):
    inputs = copy_fphab_all(fphab_dir, tmp_path / "in", FPHAB_TWO_GROUPS[:2])
    fixture_file(fphab_dir)
    with OpenAIServer(model="loopback-vlm") as server:
        cfg = load_config(
            videos=str(inputs), out=tmp_path / "out", vlm="openai", vlm_url=server.url, vlm_model="loopback-vlm", **FPHAB_SETTINGS
        )
        build_plain(cfg)
    check("vlm", tmp_path / "out", inputs)
