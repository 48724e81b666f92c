"""``hiw gc``: remove what no version uses.

Shards and group records that no manifest lists (left by killed builds, or by builds whose groups were
superseded before publishing), temp files of interrupted writes, cache entries (VLM frames, tracking
observations) of clips that are in no version, and damaged cache entries that builds moved aside. Every version
stays complete; a killed build can no longer resume from the groups removed. Runs under the build lock, so it never races a build.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from hiw.caches import CACHE_DIR, FRAMES_DIR, OBSERVATIONS_DIR, is_quarantined
from hiw.storage.catalog import read_table
from hiw.storage.groups import GROUPS_DIR
from hiw.storage.shards import SHARDS_DIR
from hiw.storage.versions import BuildLock, list_versions, load_manifest


@dataclass
class Garbage:
    files: list[Path] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)
    bytes_total: int = 0  # measured before removal


def find_garbage(root: Path, clip_ids: set[str]) -> Garbage:
    manifests = [load_manifest(root, name) for name in list_versions(root)]
    used = {f.path for m in manifests for g in m.groups for f in g.files.values()}
    used |= {str(GROUPS_DIR / f"{g.key}.json") for m in manifests for g in m.groups}
    garbage = Garbage()
    for path in sorted((root / SHARDS_DIR).rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_file() and rel not in used and not path.name.startswith("empty-"):
            garbage.files.append(path)
    for folder, entries in ((FRAMES_DIR, garbage.folders), (OBSERVATIONS_DIR, garbage.files)):
        if (root / folder).is_dir():  # entries are <clip_id>-..., or .<name>.tmp of interrupted writes
            entries += [p for p in sorted((root / folder).iterdir()) if p.name.split("-")[0] not in clip_ids or is_quarantined(p)]
    if (root / CACHE_DIR).is_dir():  # damaged cache files moved aside (the response cache's database)
        garbage.files += [p for p in sorted((root / CACHE_DIR).iterdir()) if p.is_file() and is_quarantined(p)]
    return garbage


def collect(root: Path, dry_run: bool = False) -> Garbage:
    """Find (and unless ``dry_run``, remove) what no version uses."""
    with BuildLock(root, task="hiw gc"):
        clip_ids = {
            c for name in list_versions(root) for c in read_table(root, "clips", name, ["clip_id"])["clip_id"].to_pylist()
        }
        garbage = find_garbage(root, clip_ids)
        sizes = [p.stat().st_size for p in garbage.files] + [
            f.stat().st_size for d in garbage.folders for f in d.rglob("*") if f.is_file()
        ]
        garbage.bytes_total = sum(sizes)
        if not dry_run:
            for path in garbage.files:
                path.unlink(missing_ok=True)
            for folder in garbage.folders:
                shutil.rmtree(folder, ignore_errors=True)
    return garbage
