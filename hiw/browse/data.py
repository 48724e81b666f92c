"""What the browser shows, read from one dataset version: a row per clip for the index, and everything about one clip
(its captions, VLM answers, rejects, motion and any SHIFT reconstruction) for its page.

All of it is data from outside (VLM text, narrations, paths): the pages escape it, never this module."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow.parquet as pq

from hiw.storage.catalog import CAPTION_PRIORITY, derived_glob
from hiw.storage.fetch import fetch_motion

PCOT_PROMPTS = ("action_object", "action_intent", "hand_role", "state_transition")  # hiw/prompts/templates


@dataclass
class ClipPage:
    """One clip, as its page shows it."""

    clip: dict[str, Any]
    captions: list[dict[str, Any]] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)  # the PCoT questions' replies
    rejects: list[dict[str, Any]] = field(default_factory=list)
    motion: dict[str, Any] | None = None  # the motion row (arrays as numpy), None for a rejected clip
    reconstruction: dict[str, Any] | None = None  # a SHIFT reconstruction row, where one exists


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> list[dict[str, Any]]:
    rel = con.sql(sql, params=params)
    names = rel.columns
    return [dict(zip(names, row)) for row in rel.fetchall()]


def index_rows(con: duckdb.DuckDBPyConnection, clip_id: str | None = None) -> list[dict[str, Any]]:
    """Every clip of the version (or the one ``clip_id``) with what the index filters and sorts on."""
    return _rows(
        con,
        f"""
        WITH cap AS (
            SELECT clip_id,
                   first(text ORDER BY qa_passed DESC, {CAPTION_PRIORITY}) AS caption,
                   first(kind ORDER BY qa_passed DESC, {CAPTION_PRIORITY}) AS caption_kind,
                   list_distinct(list(kind)) AS kinds,
                   bool_and(qa_passed) AS qa_all_passed,
                   list_distinct(flatten(list(verbs) FILTER (WHERE qa_passed))) AS verbs,
                   list_distinct(flatten(list(objects) FILTER (WHERE qa_passed))) AS objects
            FROM captions GROUP BY clip_id),
        rej AS (SELECT clip_id, list_distinct(list(stage || '/' || reason)) AS reasons FROM rejects GROUP BY clip_id)
        SELECT c.clip_id, c.video_id, c.source_path, c.status, c.reject_reason, c.start_s, c.end_s, c.narration,
               c.both_hands_frac, c.jitter_translation, cap.caption, cap.caption_kind, coalesce(cap.kinds, []) AS kinds,
               cap.qa_all_passed, coalesce(cap.verbs, []) AS verbs, coalesce(cap.objects, []) AS objects,
               coalesce(rej.reasons, []) AS reasons
        FROM clips c LEFT JOIN cap USING (clip_id) LEFT JOIN rej USING (clip_id)
        WHERE $id IS NULL OR c.clip_id = $id
        ORDER BY c.video_id, c.start_s, c.clip_id""",
        {"id": clip_id},
    )


def clip_pages(
    con: duckdb.DuckDBPyConnection, root: Path, version: str | None, clips: list[dict[str, Any]], batch: int = 256
) -> Iterator[ClipPage]:
    """A ``ClipPage`` per row of ``clips`` (``index_rows``), in order: captions, answers and rejects read once for
    the version, motion fetched a batch of clips at a time (only the row groups that hold them)."""
    ids = [c["clip_id"] for c in clips]
    params = {"ids": ids}
    captions = _grouped(
        con,
        f"""SELECT clip_id, kind, text, qa_passed, qa_notes, qa_agreement, model, prompt_version, vocab_id
            FROM captions WHERE clip_id IN (SELECT unnest($ids)) ORDER BY clip_id, {CAPTION_PRIORITY}, caption_id""",
        params,
    )
    answers = _grouped(
        con,
        """SELECT clip_id, prompt, prompt_version, model, status, error, raw_text, parsed_json FROM responses
           WHERE clip_id IN (SELECT unnest($ids)) AND prompt IN (SELECT unnest($prompts)) ORDER BY clip_id, prompt""",
        params | {"prompts": list(PCOT_PROMPTS)},
    )
    rejects = _grouped(
        con,
        "SELECT clip_id, stage, reason, detail FROM rejects WHERE clip_id IN (SELECT unnest($ids)) ORDER BY clip_id, stage",
        params,
    )
    full = {r["clip_id"]: r for r in _rows(con, "SELECT * FROM clips WHERE clip_id IN (SELECT unnest($ids))", params)}
    recon = reconstructions(root)
    for at in range(0, len(ids), batch):
        chunk = ids[at : at + batch]
        motion = {r["clip_id"]: _arrays(r) for r in fetch_motion(root, chunk, version).to_pylist()}
        for clip_id in chunk:
            yield ClipPage(
                clip=full[clip_id],
                captions=captions.get(clip_id, []),
                answers=[a | {"answer": _answer(a.pop("parsed_json"), a["raw_text"])} for a in answers.get(clip_id, [])],
                rejects=rejects.get(clip_id, []),
                motion=motion.get(clip_id),
                reconstruction=recon.get(clip_id),
            )


def _grouped(con: duckdb.DuckDBPyConnection, sql: str, params: dict) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for row in _rows(con, sql, params):
        out.setdefault(row.pop("clip_id"), []).append(row)
    return out


def _arrays(row: dict[str, Any]) -> dict[str, Any]:
    """A table row with its lists as numpy arrays (float32 per-frame values, NaN where a hand is missing)."""
    return {k: _array(v) if isinstance(v, list) else v for k, v in row.items()}


def _array(values: list) -> np.ndarray:
    a = np.asarray(values)
    return a.astype(np.float32) if a.dtype.kind == "f" else a


def _answer(parsed: str | None, raw: str) -> str:
    """A reply as text: the validated JSON's values, or the raw reply when it did not validate."""
    if parsed:
        try:
            value = json.loads(parsed)
        except ValueError:
            return raw
        if isinstance(value, dict):
            return "; ".join(f"{k}: {v}" for k, v in value.items())
        return str(value)
    return raw


def video_rows(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    return _rows(con, "SELECT * FROM video_stats ORDER BY source_path")


def video_rejects(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Rejects of whole inputs (no clip): a video that could not be probed or decoded."""
    return _rows(
        con, "SELECT video_id, source_path, stage, reason, detail FROM rejects WHERE clip_id IS NULL ORDER BY source_path"
    )


def reconstructions(root: Path) -> dict[str, dict[str, Any]]:
    """The newest SHIFT reconstruction per clip, from ``ROOT/reconstructions/*.parquet`` (written by hiw's own
    flows), or nothing."""
    files = sorted(derived_glob(root, "reconstructions").parent.glob("*.parquet"), key=lambda p: p.stat().st_mtime)
    out: dict[str, dict[str, Any]] = {}
    for path in files:
        for row in pq.read_table(path).to_pylist():
            out[row["clip_id"]] = _arrays(row)
    return out
