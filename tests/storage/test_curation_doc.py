"""docs/CURATION.md runs as written: every SQL recipe through `hiw query`, every `hiw ...` command line and every
Python block, against a small real dataset with two versions (F-PHAB tracks, narrations, rejects).

The dataset is built at ``<tmp>/hiw-out`` and the recipes run with ``<tmp>`` as the working folder, so the
doc's placeholders (``hiw-out``, ``subset-out``, ``subset.parquet``, ...) land in the temporary folder
unchanged. Commands go through the real `hiw` typer app in-process (argument parsing, exit codes and output as
on the command line): a `hiw` subprocess spends seconds importing torch and Prefect, which would make the
twenty-odd recipes take minutes.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import shlex
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conftest import PROJECT, fixture_file
from hiw.cli import app
from hiw.config import load_config
from hiw.flows.build import build_plain
from hiw.storage import open_catalog

DOC = PROJECT / "docs" / "CURATION.md"
ROOT = "hiw-out"  # the doc's dataset root, relative to the working folder
BLOCK = re.compile(r"^```(sql|console|python)\n(.*?)^```", re.M | re.S)

# F-PHAB recordings: two narrated activities, and "write" without narrations (two 3 s windows per video)
NARRATED = (("open_juice_bottle", "#C C opens the juice bottle"), ("pour_milk", "#C C pours the milk"))


def _sections(text: str) -> list[tuple[str, str, str]]:
    """(heading, kind, code) of every fenced sql/console/python block, under its nearest ## or ### heading."""
    headings = [(m.start(), m.group(1).strip()) for m in re.finditer(r"^#{2,3} (.+)$", text, re.M)]
    out = []
    for m in BLOCK.finditer(text):
        heading = max(((pos, h) for pos, h in headings if pos < m.start()), default=(0, ""))[1]
        out.append((heading, m.group(1), m.group(2)))
    return out


def _recipes(text: str) -> dict[str, list[tuple[str, str]]]:
    """The ### headings under "## Recipes", each with its blocks."""
    recipes_part = text.split("\n## Recipes\n", 1)[1].split("\n## ", 1)[0]
    out: dict[str, list[tuple[str, str]]] = {}
    for heading, kind, code in _sections("## Recipes\n" + recipes_part):
        if heading != "Recipes":
            out.setdefault(heading, []).append((kind, code))
    return out


DOC_TEXT = DOC.read_text() if DOC.exists() else ""
SECTIONS = _sections(DOC_TEXT)


def _ids(kind: str) -> list[pytest.param]:
    blocks = [(h, c) for h, k, c in SECTIONS if k == kind]
    return [pytest.param(h, c, id=f"{i}-{re.sub(r'[^a-z0-9]+', '-', h.lower()).strip('-')}") for i, (h, c) in enumerate(blocks)]


def _commands(block: str) -> list[list[str]]:
    """The `hiw ...` lines of a console block (backslash continuations joined), as argument lists without `hiw`."""
    lines = block.replace("\\\n", " ").splitlines()
    return [shlex.split(line)[1:] for line in lines if line.startswith("hiw ")]


def hiw(*args: str):
    """Run the `hiw` command in-process; the result must exit 0."""
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == 0, f"hiw {shlex.join(args)} exited {result.exit_code}:\n{result.output}\n{result.exception!r}"
    return result


def query_rows(sql: str) -> list[dict]:
    return json.loads(hiw("query", "--root", ROOT, "--format", "json", sql).stdout)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, fphab_dir) -> Path:
    """``<tmp>/hiw-out`` with two versions: v1 the narrated clips and an empty track file; v2 adds two un-narrated
    videos and tightens --max-jitter-translation, so a v1 clip turns rejected (rejects at probe and quality)."""
    inputs = tmp_path_factory.mktemp("curation-in")
    v1 = []
    for action, text in NARRATED:
        for n in (1, 2, 3, 4):
            name = f"{action}_{n}.txt"
            shutil.copy(fixture_file(fphab_dir / "Subject_1" / action / str(n) / "skeleton.txt"), inputs / name)
            v1.append({"video": name, "start_s": 0.0, "end_s": 2.0, "text": text})
    (inputs / "empty.txt").write_text("")
    v1.append({"video": "empty.txt", "start_s": "", "end_s": "", "text": ""})
    v2 = list(v1)
    for n in (1, 2):
        shutil.copy(fixture_file(fphab_dir / "Subject_2" / "write" / str(n) / "skeleton.txt"), inputs / f"write_{n}.txt")
        v2.append({"video": f"write_{n}.txt", "start_s": "", "end_s": "", "text": ""})
    for name, rows in (("v1.csv", v1), ("v2.csv", v2)):
        with open(inputs / name, "w", newline="") as f:
            writer = csv.DictWriter(f, ["video", "start_s", "end_s", "text"])
            writer.writeheader()
            writer.writerows(rows)
    work = tmp_path_factory.mktemp("curation-work")
    common = dict(out=work / ROOT, tracker="precomputed", min_both_hands_frac=0, window_s=3.0)
    build_plain(load_config(manifest=inputs / "v1.csv", **common))
    build_plain(load_config(manifest=inputs / "v2.csv", max_jitter_translation=1.5, **common))
    with open_catalog(work / ROOT) as con:
        assert con.sql("SELECT count(*) FROM clips WHERE status = 'rejected'").fetchall()[0][0] == 2  # what the checks expect
        assert con.sql("SELECT count(*) FROM v1.clips WHERE status = 'rejected'").fetchall()[0][0] == 0
    return work


@pytest.fixture
def in_workspace(workspace, monkeypatch) -> Path:
    monkeypatch.chdir(workspace)
    return workspace


def test_the_doc_has_at_least_ten_recipes_each_with_a_runnable_block():
    assert DOC_TEXT, f"{DOC} is missing"
    recipes = _recipes(DOC_TEXT)
    assert len(recipes) >= 10, sorted(recipes)
    for heading, blocks in recipes.items():
        assert blocks, f"recipe {heading!r} has no sql/console/python block"
    for heading, kind, code in SECTIONS:
        if kind == "sql":  # one statement per block: hiw query and `COPY (...)` take exactly one
            assert ";" not in code.strip().rstrip(";"), f"{heading!r}: one statement per sql block"
    required = ["verb and object", "both-hand", "duration", "caption length", "per verb", "rejects by reason", "subset"]
    for word in required:
        assert any(word in h.lower() for h in recipes), f"no recipe about {word!r}"


# What the key recipes must return on the workspace dataset (rows as `hiw query --format json` prints them).
def _by_verb_and_object(rows, con):
    assert sorted(r["clip_id"] for r in rows) == sorted(
        c for (c,) in con.sql("SELECT clip_id FROM samples WHERE narration LIKE '%juice bottle%'").fetchall()
    )
    assert len(rows) == 3 and all("move" in r["verbs"] for r in rows)


def _narration_verbs(rows, con):
    assert {r["narrated_verb"]: r["clips"] for r in rows} == {"pours": 4, "opens": 3}  # one "opens" clip was rejected


def _rejects_by_reason(rows, con):
    assert {(r["stage"], r["reason"], r["n"]) for r in rows} == {
        ("quality", "jitter_translation", 2),
        ("probe", "empty_tracks", 1),
    }
    assert sum(r["n"] for r in rows) == con.sql("SELECT count(*) FROM rejects").fetchall()[0][0]


def _rejected_clips(rows, con):
    assert len(rows) == 2 and all(r["reject_reason"] == "jitter_translation" and r["detail"] for r in rows)


def _per_verb(rows, con):
    accepted = con.sql("SELECT count(*) FROM samples").fetchall()[0][0]
    assert {r["verb"]: r["clips"] for r in rows} == {"move": accepted, "release": 1}


def _capped(rows, con):
    per_verb = {}
    for r in rows:
        per_verb[r["verb"]] = per_verb.get(r["verb"], 0) + 1
    assert per_verb == {"move": 3, "release": 1}


def _histogram(rows, con):
    assert {r["seconds_from"]: r["clips"] for r in rows} == {2.0: 7, 3.0: 3}


def _both_hands(rows, con):
    assert sum(r["clips"] for r in rows) == con.sql("SELECT count(*) FROM clips").fetchall()[0][0] == 12


def _well_visible(rows, con):
    assert len(rows) == 10 and all(r["any_hand_frac"] >= 0.9 for r in rows)


def _caption_length(rows, con):
    by_kind = {r["kind"]: r for r in rows}
    assert set(by_kind) == {"kinematic", "narration"} and by_kind["narration"]["max_words"] == 5


def _quality(rows, con):
    assert {r["status"]: r["clips"] for r in rows} == {"accepted": 10, "rejected": 2}


def _video_stats(rows, con):
    assert len(rows) == 10 and sum(r["accepted"] for r in rows) == 10 and rows[0]["accepted_s"] == 6.0


def _verdict_changed(rows, con):
    changes = {(r["v1_status"], r["current_status"]) for r in rows}
    assert len(rows) == 5 and changes == {(None, "accepted"), (None, "rejected"), ("accepted", "rejected")}


def _empty_for_kinematic_builds(rows, con):
    assert rows == []


SQL_CHECKS = {
    "Clips by verb and object": _by_verb_and_object,
    "Verbs and objects of narrations": _narration_verbs,
    "Rejects by reason": _rejects_by_reason,
    "Rejected clips and their measurements": _rejected_clips,
    "Clips per verb": _per_verb,
    "At most N clips per verb": _capped,
    "Duration histogram": _histogram,
    "Both-hand visibility": _both_hands,
    "Clips where the hands are well visible": _well_visible,
    "Caption length": _caption_length,
    "Motion quality near the thresholds": _quality,
    "Per-video stats": _video_stats,
    "Clips whose verdict changed between versions": _verdict_changed,
    "VLM captions that failed QA": _empty_for_kinematic_builds,
    "VLM calls that did not answer": _empty_for_kinematic_builds,
}


@pytest.mark.parametrize("heading, sql", _ids("sql"))
def test_sql_recipe_runs_through_hiw_query(in_workspace, heading, sql):
    table = hiw("query", "--root", ROOT, sql)  # as the doc says to run it
    assert "row(s)" in table.stdout
    rows = query_rows(sql)
    if heading in SQL_CHECKS:
        with open_catalog(in_workspace / ROOT) as con:
            SQL_CHECKS[heading](rows, con)


def _sequences(folder: Path) -> int:
    return json.loads((folder / "meta.json").read_text())["sequences"]


@pytest.mark.parametrize("heading, block", _ids("console"))
def test_console_commands_run(in_workspace, heading, block):
    commands = _commands(block)
    if not commands:
        assert "duckdb" in block, f"{heading!r}: a console block without a hiw command"
        return
    outputs = [hiw(*args).stdout for args in commands]
    accepted = len(query_rows("SELECT clip_id FROM samples"))
    if any(args[0] == "export" for args in commands):
        hiw("export", "--root", ROOT, "--format", "npy", "--out", "full-out")
        full = _sequences(in_workspace / "full-out")
        assert full == accepted
        for args in commands:
            if args[0] == "export":
                out = in_workspace / args[args.index("--out") + 1]
                assert 0 < _sequences(out) < full, f"{shlex.join(args)} exported {_sequences(out)} of {full}"
    if heading == "Export a filtered subset as a new split":
        assert _sequences(in_workspace / "subset-out") == 4  # the pour_milk clips
    if heading == "Export a hand-made clip list":
        listed = pq.read_table(in_workspace / "subset.parquet").column("clip_id").to_pylist()
        assert 0 < len(listed) < accepted and len(set(listed)) == len(listed)
        assert _sequences(in_workspace / "subset-list-out") == len(listed)
    if heading == "Compare two versions":
        assert "clips added" in outputs[0]
        diff = json.loads(outputs[1])
        assert (diff["a"], diff["b"], diff["clips_added"], diff["clips_removed"]) == ("v1", "v2", 4, 0)
    if heading == "Verify a dataset":
        assert "ok: v1, v2 verified" in outputs[0]
    if heading == "Opening the catalog":
        assert "v2" in outputs[-1] and len(json.loads((in_workspace / "captions.json").read_text())) > 0


@pytest.mark.parametrize("heading, code", _ids("python"))
def test_python_blocks_run(in_workspace, heading, code):
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, f"{DOC.name}: {heading}", "exec"), {"__name__": "__curation__"})
    if heading == "Motion arrays into numpy":
        lines = printed.getvalue().splitlines()
        assert len(lines) == 3 and all("(30, 21, 3)" in line or "(45, 21, 3)" in line for line in lines), lines
