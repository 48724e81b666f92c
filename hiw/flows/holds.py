"""When a finished build must not publish: the new version would silently lose rows the current one has.

- A video task kept failing (a transient fault): its rows are missing this time; the next build tries again.
- A source video of the current version cannot be read now (truncated, emptied, unreadable): publishing would
  drop its clips although nobody took it out. Fixing it, or taking it out of the inputs, lets the next build
  publish.
- The new version has no clips at all while the current one has some: an empty folder or a header-only
  manifest is far more often an unmounted share than a wish; ``--allow-empty`` says it is a wish.
The shards of a held build are written all the same, so the next build reuses them.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from hiw.config import BuildConfig
from hiw.schemas import Reject
from hiw.storage.versions import Group, Manifest

TASK_FAILED = "task_failed"


def unreadable_source(reject: Reject) -> bool:
    """A reject that means a source file could not be read at all (not a bad clip, not a duplicate)."""
    return reject.reason in (TASK_FAILED, "unreadable_entry") or (reject.stage == "probe" and reject.reason != "duplicate_video")


def hold_reason(cfg: BuildConfig, previous: Manifest, unreadable: list[Reject], groups: list[Group]) -> str | None:
    failed = [r for r in unreadable if r.reason == TASK_FAILED]
    if failed:
        return f"{len(failed)} video(s) could not be read (their tasks kept failing); the next build tries again"
    lost = sorted({r.source_path for r in unreadable} & sources_of(cfg.out, previous))
    if lost:
        names = ", ".join(Path(p).name for p in lost[:3]) + (", ..." if len(lost) > 3 else "")
        return (
            f"{len(lost)} source video(s) of {previous.version} cannot be read now ({names}; see the rejects): fix them, "
            "or take them out of the inputs to drop their clips, then build again"
        )
    clips = sum(g.files["clips"].rows for g in groups if "clips" in g.files)
    if clips == 0 and previous.rows("clips") and not cfg.allow_empty:
        return (
            f"the new version would have no clips, {previous.version} has {previous.rows('clips')} (are the inputs "
            "there, or is their share unmounted?); pass --allow-empty to publish it"
        )
    return None


def sources_of(root: Path, manifest: Manifest) -> set[str]:
    """The source paths of a version's clips (a shard that cannot be read is skipped: the build rewrites it)."""
    paths: set[str] = set()
    for shard in manifest.files("clips"):
        try:
            paths.update(pq.read_table(root / shard.path, columns=["source_path"])["source_path"].to_pylist())
        except (OSError, ValueError):
            continue
    return paths
