"""A built dataset's captions of given clips, as the models read them: QA-passed only, with their kind."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

# How a model draws a clip's caption (PAPER.md section 4): closed_vocab or pcot_summary, 50/50 where a clip has both,
# else narration, else kinematic, else any other kind.
PREFERRED = ("closed_vocab", "pcot_summary")
FALLBACK = ("narration", "kinematic")


def captions_by_kind(root: Path, clip_ids: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    """Each clip's QA-passed (kind, text) pairs in a stable order (kind, then caption id)."""
    from hiw.storage import open_catalog

    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    with open_catalog(root) as con:
        rows = con.sql(
            "SELECT clip_id, kind, text FROM captions WHERE qa_passed AND clip_id IN (SELECT unnest($ids)) "
            "ORDER BY clip_id, kind, caption_id",
            params={"ids": list(clip_ids)},
        ).fetchall()
    for clip_id, kind, text in rows:
        out[clip_id].append((kind, text))
    return out
