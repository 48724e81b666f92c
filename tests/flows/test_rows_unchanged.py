"""What a build writes does not change when the code is only reorganised: the same rows, ids and shard-group keys on
the fixtures as the code these digests were taken from (commit b886262; re-taken at bf71bf2, see below).

A build of real inputs runs (F-PHAB tracks with the build's default fit, the kitchen video through mediapipe, a VLM
annotation against the loopback server). Per table, lineage columns aside (they name the code, not the data):
- everything but the floats (ids, strings, integers, flags, list lengths, where a value is NaN) is hashed exactly;
- each float column is summarised by the mean magnitude of its finite values, compared with a relative tolerance.
Floats are not hashed: the build's fit is an optimisation whose result moves with the CPU's kernels (on one
machine, torch's AVX2 and AVX-512 paths give hand poses up to 0.003 rad apart and fit errors 0.02 mm apart), and
the digests first taken from floats rounded to 5 decimals failed on the next machine with unchanged code. The
group keys are the rebuild rules: the same keys mean that a dataset built by the old code is reused by the new
one, not rebuilt. A deliberate change to what builds write updates ``EXPECTED``, and says so in its commit. The
group keys changed once since: the stage table (hiw.schemas.stages) gave the quality filters a stage and a version
of their own, so every unit key moved (rows and ids did not).

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


FLOAT_RTOL = 1e-3  # of a column's mean magnitude: kernel noise is ~1e-5 of it; a changed step moves it by far more


def _canonical(value, inputs: str, floats: list[float]):
    """``value`` with each float replaced by a marker (appended to ``floats``) and the inputs folder by a name."""
    if isinstance(value, float):
        if np.isnan(value):
            return None
        floats.append(abs(value))
        return "f"
    if isinstance(value, str):
        return value.replace(inputs, "<inputs>")
    if isinstance(value, list):
        return [_canonical(v, inputs, floats) for v in value]
    if isinstance(value, dict):
        return {k: _canonical(v, inputs, floats) for k, v in value.items()}
    return value


def digests(root, inputs) -> dict[str, list]:
    """Per table: [``rows:hash`` of everything but the floats, {column: mean |float|}]; and the group keys' hash."""
    out: dict[str, list] = {}
    for table in TABLES:
        floats: dict[str, list[float]] = {}
        rows = [
            {k: _canonical(v, str(inputs), floats.setdefault(k, [])) for k, v in r.items() if k not in SKIPPED}
            for r in read_table(root, table).to_pylist()
        ]
        lines = sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)
        exact = f"{len(lines)}:" + hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
        means = {k: float(f"{np.mean(v):.6g}") for k, v in sorted(floats.items()) if v}
        out[table] = [exact, means]
    keys = sorted(g.key for g in load_manifest(root).groups)
    out["group_keys"] = [hashlib.sha256(json.dumps(keys).encode()).hexdigest()[:16], {}]
    return out


def check(name: str, root, inputs) -> None:
    got = digests(root, inputs)
    if os.environ.get("HIW_PRINT_DIGESTS"):
        print(f"\n    {name!r}: {json.dumps(got)},")
    expected = EXPECTED[name]
    assert {t: g[0] for t, g in got.items()} == {t: e[0] for t, e in expected.items()}
    for table, (_, means) in expected.items():
        assert got[table][1].keys() == means.keys(), table
        for column, mean in means.items():
            assert got[table][1][column] == pytest.approx(mean, rel=FLOAT_RTOL, abs=1e-9), f"{table}.{column}"


EXPECTED: dict[str, dict[str, list]] = {
    "fphab": {
        "clips": [
            "32:b887ad950dbf59f5",
            {
                "any_hand_frac": 1.0,
                "both_hands_frac": 0.0,
                "end_s": 2.51458,
                "fit_error_mm": 0.489286,
                "jitter_rotation": 14.3007,
                "jitter_translation": 1.52237,
                "motion_s": 0.954167,
                "source_fps": 30.0,
                "start_s": 1.5625,
            },
        ],
        "motion": [
            "32:c67d77cd6e065813",
            {
                "camera_rotations": 0.333333,
                "fit_error_mm": 0.489286,
                "fps": 15.0,
                "head_rotation_deg": 0.0,
                "jitter_rotation": 14.3007,
                "jitter_translation": 1.52237,
                "motion_s": 0.954167,
                "right_fit_error_mm": 0.488237,
                "right_global_orient": 0.953766,
                "right_hand_pose": 0.289596,
                "right_keypoints_3d": 0.181399,
                "right_rest_keypoints": 0.0489264,
                "right_transl": 0.165271,
            },
        ],
        "captions": ["32:0a1fe654dca2e5d5", {}],
        "responses": ["0:e3b0c44298fc1c14", {}],
        "vocabulary": ["0:e3b0c44298fc1c14", {}],
        "rejects": ["0:e3b0c44298fc1c14", {}],
        "group_keys": ["bca2810a2718ad99", {}],
    },
    "kitchen": {
        "clips": [
            "1:a143f55c92ab5fd2",
            {
                "any_hand_frac": 0.783333,
                "both_hands_frac": 0.616667,
                "end_s": 4.0,
                "fit_error_mm": 6.77294,
                "jitter_rotation": 315.908,
                "jitter_translation": 25.1088,
                "motion_s": 2.2,
                "source_fps": 30.0,
                "start_s": 0.0,
            },
        ],
        "motion": [
            "1:8d5e84d51127dcb1",
            {
                "camera_rotations": 0.482112,
                "fit_error_mm": 6.77294,
                "fps": 15.0,
                "head_rotation_deg": 144.458,
                "jitter_rotation": 315.908,
                "jitter_translation": 25.1088,
                "left_fit_error_mm": 6.65324,
                "left_global_orient": 1.30107,
                "left_hand_pose": 0.315023,
                "left_keypoints_2d": 612.558,
                "left_keypoints_3d": 0.32317,
                "left_rest_keypoints": 0.0450126,
                "left_transl": 0.332728,
                "motion_s": 2.2,
                "right_fit_error_mm": 6.90762,
                "right_global_orient": 1.13373,
                "right_hand_pose": 0.299422,
                "right_keypoints_2d": 682.767,
                "right_keypoints_3d": 0.260106,
                "right_rest_keypoints": 0.0425996,
                "right_transl": 0.269759,
            },
        ],
        "captions": ["2:f4dddc5808763387", {}],
        "responses": ["0:e3b0c44298fc1c14", {}],
        "vocabulary": ["0:e3b0c44298fc1c14", {}],
        "rejects": ["0:e3b0c44298fc1c14", {}],
        "group_keys": ["8fcf8225432f34a6", {}],
    },
    "vlm": {
        "clips": [
            "7:9cc79ae6a3a1b4af",
            {
                "any_hand_frac": 1.0,
                "both_hands_frac": 0.0,
                "end_s": 2.24286,
                "fit_error_mm": 0.660532,
                "jitter_rotation": 18.9333,
                "jitter_translation": 1.51114,
                "motion_s": 0.961905,
                "source_fps": 30.0,
                "start_s": 1.28571,
            },
        ],
        "motion": [
            "7:343c9176d518e202",
            {
                "camera_rotations": 0.333333,
                "fit_error_mm": 0.660532,
                "fps": 15.0,
                "head_rotation_deg": 0.0,
                "jitter_rotation": 18.9333,
                "jitter_translation": 1.51114,
                "motion_s": 0.961905,
                "right_fit_error_mm": 0.664466,
                "right_global_orient": 1.06193,
                "right_hand_pose": 0.30442,
                "right_keypoints_3d": 0.179539,
                "right_rest_keypoints": 0.0490161,
                "right_transl": 0.159967,
            },
        ],
        "captions": ["14:9b33711f911c9606", {"qa_agreement": 0.429596}],
        "responses": ["35:daf2a26b655146c1", {}],
        "vocabulary": ["0:e3b0c44298fc1c14", {}],
        "rejects": ["7:44590632c6a678d6", {}],
        "group_keys": ["31715c72ce3bd96a", {}],
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
