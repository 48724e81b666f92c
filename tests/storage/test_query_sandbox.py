"""`hiw query` and `hiw export --where` run user SQL in a sandbox: it reads the dataset's tables, nothing else,
and writes nothing. Through the real CLI (a subprocess) on a real two-version F-PHAB build with a derived table.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from conftest import FPHAB_TWO_GROUPS, HIW, copy_fphab, copy_fphab_all, fphab_config
from hiw.data.splits import dataset_splits
from hiw.flows.build import build_plain
from hiw.schemas import TokenRecord
from hiw.storage import CATALOG_FILE, load_manifest, open_catalog, read_table, write_derived
from hiw.storage.sandbox import query_rows, read_clip_ids

SECRET = "not-for-curators-7f3a"


def hiw(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "1000"}  # wide: a one-line error stays one line
    return subprocess.run([str(HIW), *map(str, args)], check=False, capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def refused(result: subprocess.CompletedProcess, *words: str) -> str:
    """The one-line error of a refused command (exit 2); each of ``words`` must be in it."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def checksums(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _token(clip_id: str) -> TokenRecord:
    return TokenRecord(
        clip_id=clip_id, fps=15.0, n_frames=4, n_steps=1, frames_per_step=4, stream=["right-pose"], tokens=[3],
        left_step_valid=np.array([False]), right_step_valid=np.array([True]), origin=[0.0, 0.0, 0.0], text="a hand",
        variant="shift", codebook_size=64, codebook_id="cb", checkpoint_id="ck", checkpoint_step=1, checkpoint_path="ckpt.pt",
        dataset="ds", stats_id="st", code_version="test",
    )  # fmt: skip


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, fphab_dir) -> Path:
    """v1 from three F-PHAB files, v2 with a fourth, a derived ``tokens`` file, and a file under ``cache/`` (where
    builds keep their caches); the catalog brought up to date, so a query changes nothing in the root."""
    inputs = copy_fphab_all(fphab_dir, tmp_path_factory.mktemp("sandbox-in"), FPHAB_TWO_GROUPS[:3])
    cfg = fphab_config(inputs, tmp_path_factory.mktemp("sandbox") / "root")
    build_plain(cfg)
    copy_fphab(fphab_dir, inputs, FPHAB_TWO_GROUPS[3])
    build_plain(cfg)
    root = cfg.out.resolve()
    write_derived(
        root,
        "tokens",
        "test-checkpoint",
        [_token(c) for c in read_table(root, "motion", columns=["clip_id"])["clip_id"].to_pylist()],
    )
    (root / "cache").mkdir(exist_ok=True)
    (root / "cache" / "secret.txt").write_text(SECRET)
    first = hiw("query", "--root", root, "SELECT count(*) AS n FROM tokens")
    assert first.returncode == 0, first.stderr
    return root


@pytest.fixture(scope="module")
def outside(tmp_path_factory) -> Path:
    """A folder outside the dataset with a text file and a Parquet file the sandbox must not read."""
    folder = tmp_path_factory.mktemp("outside")
    (folder / "secret.txt").write_text(SECRET)
    pq.write_table(pa.table({"clip_id": [SECRET]}), folder / "other.parquet")
    return folder


def _shard(root: Path) -> Path:
    return root / load_manifest(root).files("motion")[0].path


@pytest.mark.parametrize(
    "sql",
    [
        "COPY (SELECT 1 AS x) TO '{shard}'",
        "COPY (SELECT 1 AS x) TO '{shard}' (USE_TMP_FILE false)",  # would write the allowed shard in place
        "COPY (SELECT 1 AS x) TO '{root}/versions/v3.json' (FORMAT json)",
        "EXPLAIN ANALYZE COPY (SELECT 1 AS x) TO '{shard}' (USE_TMP_FILE false)",
        "COPY (PIVOT clips ON status USING count(*)) TO '{shard}' (USE_TMP_FILE false)",  # a PIVOT makes it MULTI
        "SELECT 1; /* then */ copy (SELECT 1 AS x) TO '{shard}' (USE_TMP_FILE false)",
    ],
)
def test_copy_into_the_dataset_is_refused_and_changes_nothing(dataset, sql):
    before = checksums(dataset)
    result = hiw("query", "--root", dataset, sql.format(shard=_shard(dataset), root=dataset))
    refused(result, "refuses COPY", "--out", f"duckdb -readonly {dataset / CATALOG_FILE}")
    assert checksums(dataset) == before
    check = hiw("verify", "--root", dataset)
    assert check.returncode == 0 and "ok: v2 verified" in check.stdout, check.stdout + check.stderr


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT content FROM read_text('{outside}/secret.txt')",
        "SELECT content FROM read_blob('{outside}/secret.txt')",
        "SELECT * FROM read_parquet('{outside}/other.parquet')",
        "SELECT * FROM clips WHERE clip_id IN (SELECT content FROM read_text('{outside}/secret.txt'))",
        "SELECT * FROM glob('/root/*')",
        "SELECT * FROM glob('{root}/*')",
        "SELECT * FROM glob('{root}/shards/*/*')",
        "SELECT content FROM read_text('{root}/versions/v1.json')",
        "SELECT content FROM read_text('{root}/shards/motion/../../versions/v1.json')",
        "SELECT content FROM read_text('{root}/cache/secret.txt')",
        "SELECT * FROM 'https://example.com/data.parquet'",
    ],
)
def test_files_outside_the_views_are_refused(dataset, outside, sql):
    result = hiw("query", "--root", dataset, "--format", "json", sql.format(root=dataset, outside=outside))
    refused(result, "reads only the dataset's tables", "Permission Error", "plain duckdb")
    assert SECRET not in result.stdout + result.stderr and "root:" not in result.stdout


@pytest.mark.parametrize(
    "sql, name",
    [
        ("ATTACH '{tmp}/other.duckdb' AS other", "ATTACH"),
        ("ATTACH ':memory:' AS scratch", "ATTACH"),
        ("DETACH catalog", "DETACH"),
        ("INSTALL httpfs", "INSTALL"),
        ("FORCE INSTALL httpfs", "FORCE INSTALL"),
        ("LOAD httpfs", "LOAD"),
        ("UPDATE EXTENSIONS", "UPDATE"),
        ("SET enable_external_access = true", "SET"),
        ("RESET enable_external_access", "RESET"),
        ("SET lock_configuration = false; SELECT * FROM read_csv('/etc/passwd')", "SET"),
        ("EXPORT DATABASE '{tmp}/exported'", "EXPORT"),
        ("CREATE TEMP TABLE t AS SELECT * FROM clips", "CREATE"),
        ("INSERT INTO clips SELECT * FROM clips", "INSERT"),
        ("PREPARE p AS COPY (SELECT 1 AS x) TO '{tmp}/x.csv'", "PREPARE"),
    ],
)
def test_statements_that_reach_outside_are_refused_by_name(dataset, tmp_path, sql, name):
    result = hiw("query", "--root", dataset, sql.format(tmp=tmp_path))
    refused(result, f"refuses {name}:", "--out")
    assert not list(tmp_path.iterdir())  # no database attached or created, nothing exported


def test_open_catalog_reads_every_view_and_nothing_else(dataset, outside):
    """Internal readers (exports, sequences, splits) get the sandboxed connection; plain DuckDB on the same
    catalog file, in the same process, stays full DuckDB."""
    views = ["clips", "motion", "captions", "rejects", "responses", "vocabulary", "samples", "video_stats", "tokens"]
    with open_catalog(dataset) as con, duckdb.connect(str(dataset / CATALOG_FILE), read_only=True) as plain:
        for view in [*views, "v1.clips", "v1.samples", "v2.motion"]:
            sql = f"SELECT count(*) FROM {view}"
            assert con.sql(sql).fetchall() == plain.sql(sql).fetchall(), view
        assert con.sql("SELECT count(*) FROM clips").fetchall()[0][0] == read_table(dataset, "clips").num_rows
        assert (
            con.sql("SELECT count(*) FROM tokens JOIN motion USING (clip_id)").fetchall()[0][0]
            == read_table(dataset, "motion").num_rows
        )
        assert dataset_splits(con).num_rows == con.sql("SELECT count(*) FROM samples").fetchall()[0][0]
        with pytest.raises(duckdb.PermissionException):
            con.sql(f"SELECT content FROM read_text('{outside}/secret.txt')").fetchall()
        with pytest.raises(duckdb.InvalidInputException, match="locked"):
            con.execute("SET enable_external_access = true")
        assert plain.sql(f"SELECT content FROM read_text('{outside}/secret.txt')").fetchall() == [(SECRET,)]
    with open_catalog(dataset, "v1") as con:
        v1_clips = load_manifest(dataset, "v1").rows("clips")
        assert con.sql("SELECT count(*) FROM clips").fetchall()[0][0] == v1_clips
        # statements that only read pass hiw query's check, whatever their form
        assert query_rows(con, "SELECT count(*) AS n FROM clips") == (["n"], [(v1_clips,)])
        assert query_rows(con, "USE v2; SELECT count(*) AS n FROM clips")[1] == [(load_manifest(dataset).rows("clips"),)]
        assert len(query_rows(con, "EXPLAIN ANALYZE PIVOT clips ON status USING count(*)")[1]) == 1
        assert query_rows(con, "DESCRIBE samples")[1] and query_rows(con, "PRAGMA table_info('clips')")[1]


def test_out_is_written_by_python_with_the_rows_copy_wrote(dataset, tmp_path):
    sql = "SELECT * FROM samples ORDER BY clip_id"
    options = {"csv": "FORMAT csv, HEADER", "json": "FORMAT json, ARRAY true", "parquet": "FORMAT parquet"}
    with duckdb.connect(str(dataset / CATALOG_FILE), read_only=True) as plain:  # how --out wrote before: COPY
        for fmt, option in options.items():
            plain.execute(f"COPY ({sql}) TO '{tmp_path}/copy.{fmt}' ({option})")
    for fmt in options:
        target = tmp_path / f"out.{fmt}"
        result = hiw("query", "--root", dataset, "--out", target, sql + "  -- a trailing comment ended COPY's ( )")
        assert result.returncode == 0 and f"wrote {target}" in result.stderr, result.stderr
    assert (tmp_path / "out.csv").read_text() == (tmp_path / "copy.csv").read_text()
    assert (tmp_path / "out.json").read_text() == (tmp_path / "copy.json").read_text()
    assert len(json.loads((tmp_path / "out.json").read_text())) == read_table(dataset, "motion").num_rows
    new, old = pq.read_table(tmp_path / "out.parquet"), pq.read_table(tmp_path / "copy.parquet")
    assert new.column_names == old.column_names and new.to_pylist() == old.to_pylist()

    several = hiw("query", "--root", dataset, "--out", tmp_path / "v1.csv", "USE v1; SELECT clip_id FROM clips ORDER BY 1")
    assert several.returncode == 0, several.stderr
    v1_ids = sorted(read_table(dataset, "clips", "v1").column("clip_id").to_pylist())
    assert pacsv.read_csv(tmp_path / "v1.csv").column("clip_id").to_pylist() == v1_ids

    before = checksums(dataset)
    for target in (_shard(dataset), dataset / "shards" / "motion" / "new.parquet", dataset / "versions" / "v3.json"):
        refused(hiw("query", "--root", dataset, "--out", target, "SELECT 1 AS x"), "inside the dataset root")
    assert checksums(dataset) == before


@pytest.mark.parametrize(
    "where",
    [
        "length((SELECT content FROM read_text('{outside}/secret.txt'))) > 0",
        "1=1) UNION ALL SELECT column0, column0 FROM read_csv('/etc/passwd', header = false, sep = ':') WHERE (1=1",
        "1=1); COPY (SELECT 1 AS x) TO '{shard}' (USE_TMP_FILE false); SELECT 1 AS clip_id, 1 AS video_id WHERE (1=1",
    ],
)
def test_export_where_cannot_read_files_or_write(dataset, outside, tmp_path, where):
    before = checksums(dataset)
    condition = where.format(outside=outside, shard=_shard(dataset))
    result = hiw("export", "--root", dataset, "--format", "humanml3d", "--out", tmp_path / "subset", "--where", condition)
    refused(result, "bad clip filter")
    assert not (tmp_path / "subset").exists() and checksums(dataset) == before


def test_export_clips_from_a_saved_query(dataset, tmp_path):
    """What --where can no longer do (read a saved clip list): ``--clips FILE``, from ``hiw query --out``."""
    sql = "SELECT clip_id FROM samples ORDER BY hash(clip_id) LIMIT 5"
    with open_catalog(dataset) as con:
        expected = sorted(r[0] for r in con.sql(sql).fetchall())
    for fmt in ("parquet", "csv", "json"):
        saved = hiw("query", "--root", dataset, "--out", tmp_path / f"subset.{fmt}", sql)
        assert saved.returncode == 0, saved.stderr
        assert read_clip_ids(tmp_path / f"subset.{fmt}") == expected
    result = hiw(
        "export", "--root", dataset, "--format", "humanml3d", "--out", tmp_path / "subset", "--clips", tmp_path / "subset.csv"
    )
    assert result.returncode == 0, result.stderr
    assert sorted((tmp_path / "subset" / "all.txt").read_text().split()) == expected
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("video_id\nv_1\n")
    refused(hiw("export", "--root", dataset, "--out", tmp_path / "other", "--clips", wrong), "clip_id")
    assert not (tmp_path / "other").exists()
