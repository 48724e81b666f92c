"""``hiw browse``: a static site of one dataset version that opens from disk (``file://``), no server needed::

    DIR/index.html            every clip, filtered and sorted in the page (data/clips.js, shown a page at a time)
    DIR/clips/<clip_id>.html  a clip: its frames with the 2D keypoints drawn, an animated 3D view of both hands (and of
                              the SHIFT reconstruction, where one exists), captions with QA, the PCoT answers,
                              narration, rejects, lineage
    DIR/videos.html           the source videos, and inputs rejected before they were clipped
    DIR/videos/<video_id>.html  a source video: its clips on a timeline, its rejects
    DIR/media/<key>-<i>.jpg   the frames, named by the clip page's key
    DIR/static/               the pages' CSS and JavaScript (hiw's own: no library, no network)
    DIR/browse-state.json     each clip's key, so a rerun renders only what changed

A clip page's key hashes everything it shows (its rows in every table, its motion, its stored frames, the site's
own templates and scripts), so rebuilding a dataset and browsing again renders only the clips whose content
changed; pages of clips that are gone are removed. Everything shown that came from a VLM, a narration or a path
is escaped by jinja2's autoescape, or set as text by the scripts, never as HTML.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

import hiw
from hiw.browse.data import ClipPage, clip_pages, index_rows, video_rejects, video_rows
from hiw.browse.media import HAND_COLOURS, overlay_jpegs, stored_frames, tracks_3d
from hiw.motion.hand_model import PARENTS_OPENPOSE
from hiw.schemas.ids import stable_hash
from hiw.storage import open_catalog, resolve_version
from hiw.video.discover import VIDEO_SUFFIXES

STATE_FILE = "browse-state.json"
PACKAGE = resources.files("hiw.browse")
_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("hiw.browse", "templates"),
    autoescape=True,  # every template renders HTML, and every value in it is data
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

Progress = Callable[[int, int], None]


@dataclass
class SiteSummary:
    out: Path
    version: str
    clips: int
    rendered: int  # clip pages written by this run
    reused: int  # clip pages whose key had not changed
    removed: int  # pages of clips no longer in the version
    videos: int
    seconds: float

    def describe(self) -> str:
        return (
            f"browser of {self.version}: {self.clips} clips ({self.rendered} rendered, {self.reused} unchanged, "
            f"{self.removed} removed), {self.videos} videos in {self.seconds:.1f} s -> {self.out / 'index.html'}"
        )


def site_key() -> str:
    """A hash of the site's own templates, scripts and styles: changing them re-renders every page."""
    digest = hashlib.sha256(hiw.__version__.encode())
    for folder in ("templates", "static"):
        for item in sorted(PACKAGE.joinpath(folder).iterdir(), key=lambda p: p.name):
            digest.update(item.name.encode() + item.read_bytes())
    return digest.hexdigest()[:16]


def build_site(root: Path, out: Path, version: str | None = None, progress: Progress | None = None) -> SiteSummary:
    """Write (or bring up to date) the browser of ``root``'s version at ``out``."""
    began = time.perf_counter()
    root, out = Path(root).resolve(), Path(out).resolve()
    name = resolve_version(root, version)
    for folder in ("clips", "videos", "media", "data", "static"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    state = _load_state(out)
    new_state: dict[str, dict[str, Any]] = {}
    rendered = reused = 0
    key_of_site = site_key()
    with open_catalog(root, name) as con:
        rows = index_rows(con)
        videos = video_rows(con)
        whole_rejects = video_rejects(con)
        pixels = {v["video_id"]: Path(v["source_path"]).suffix.lower() in VIDEO_SUFFIXES for v in videos}
        for i, page in enumerate(clip_pages(con, root, name, rows)):
            clip_id = page.clip["clip_id"]
            key = _clip_key(root, page, key_of_site)
            previous = state.get(clip_id)
            if previous and previous["key"] == key and _complete(out, clip_id, previous):
                new_state[clip_id] = previous
                reused += 1
            else:
                new_state[clip_id] = _render_clip(root, out, page, key, pixels.get(page.clip["video_id"], True))
                rendered += 1
            if progress is not None:
                progress(i + 1, len(rows))
    for row in rows:
        row["frames"] = new_state[row["clip_id"]]["media"]
    _write_js(out / "data" / "clips.js", "HIW_CLIPS", [_index_entry(r) for r in rows])
    by_video: dict[str, list[dict]] = {}
    for row in rows:
        by_video.setdefault(row["video_id"], []).append(row)
    for video in videos:
        rejects = [r for r in whole_rejects if r["video_id"] == video["video_id"]]
        html = _ENV.get_template("video.html.j2").render(
            video=video,
            clips=by_video.get(video["video_id"], []),
            rejects=rejects,
            version=name,
            duration=_duration(video, by_video),
            colours=HAND_COLOURS,
        )
        _write_text(out / "videos" / f"{video['video_id']}.html", html)
    orphans = [r for r in whole_rejects if r["video_id"] is None or r["video_id"] not in pixels]
    for page_name in ("index", "videos"):
        html = _ENV.get_template(f"{page_name}.html.j2").render(
            version=name, root=str(root), clips=len(rows), videos=videos, orphans=orphans, colours=HAND_COLOURS
        )
        _write_text(out / f"{page_name}.html", html)
    _copy_static(out)
    removed = _remove_stale(out, state, new_state)
    _write_text(out / STATE_FILE, json.dumps({"site": key_of_site, "clips": new_state}, indent=1))
    return SiteSummary(out, name, len(rows), rendered, reused, removed, len(videos), time.perf_counter() - began)


def _clip_key(root: Path, page: ClipPage, key_of_site: str) -> str:
    """What the clip's page shows, hashed (not the version's name: a rebuild that leaves a clip alone reuses it)."""
    arrays = hashlib.sha256()
    for row in (page.motion, page.reconstruction):
        for column, value in sorted((row or {}).items()):
            if isinstance(value, np.ndarray):
                arrays.update(column.encode() + np.ascontiguousarray(value).tobytes())
    frames = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in stored_frames(root, page.clip["clip_id"])]
    scalars = {k: v for k, v in (page.motion or {}).items() if not isinstance(v, np.ndarray)}
    return "k_" + stable_hash(
        key_of_site, page.clip, page.captions, page.answers, page.rejects, scalars, arrays.hexdigest(), frames
    )


def _complete(out: Path, clip_id: str, entry: dict[str, Any]) -> bool:
    return (out / "clips" / f"{clip_id}.html").is_file() and all((out / m).is_file() for m in entry["media"])


def _render_clip(root: Path, out: Path, page: ClipPage, key: str, has_pixels: bool) -> dict[str, Any]:
    jpegs, frames_origin = overlay_jpegs(root, page.clip, page.motion, has_pixels)
    media = []
    for i, jpeg in enumerate(jpegs):
        path = f"media/{key}-{i}.jpg"
        _write_bytes(out / path, jpeg)
        media.append(path)
    motion = {
        "original": tracks_3d(page.motion),
        "reconstruction": tracks_3d(page.reconstruction, page.motion) if page.motion is not None else None,
        "parents": list(PARENTS_OPENPOSE),
        "colours": {side: "rgb({},{},{})".format(*rgb) for side, rgb in HAND_COLOURS.items()},
    }
    lineage = {k: page.clip.get(k) for k in ("tracker", "tracker_version", "config_hash", "code_version", "plan", "clip_index")}
    if page.motion is not None:
        lineage |= {k: page.motion.get(k) for k in ("hand_model", "coordinate_frame", "processing", "intrinsics")}
    html = _ENV.get_template("clip.html.j2").render(
        clip=page.clip,
        captions=page.captions,
        answers=page.answers,
        rejects=page.rejects,
        frames=[f"../{m}" for m in media],
        frames_origin=frames_origin,
        motion=motion,
        has_motion=page.motion is not None,
        has_reconstruction=page.reconstruction is not None,
        lineage=lineage,
        colours=HAND_COLOURS,
    )
    _write_text(out / "clips" / f"{page.clip['clip_id']}.html", html)
    return {"key": key, "media": media}


def _index_entry(row: dict[str, Any]) -> dict[str, Any]:
    """What the index page filters, sorts and shows of a clip (short keys: 32K of them are read at once)."""
    qa = "none" if row["qa_all_passed"] is None else "passed" if row["qa_all_passed"] else "failed"
    return {
        "id": row["clip_id"],
        "video": row["video_id"],
        "source": Path(row["source_path"]).name,
        "status": row["status"],
        "start": round(row["start_s"], 2),
        "end": round(row["end_s"], 2),
        "both": None if row["both_hands_frac"] is None else round(row["both_hands_frac"], 3),
        "jitter": None if row["jitter_translation"] is None else round(row["jitter_translation"], 2),
        "caption": row["caption"] or "",
        "narration": row["narration"] or "",
        "kind": row["caption_kind"],
        "kinds": list(row["kinds"]),
        "qa": qa,
        "verbs": list(row["verbs"]),
        "objects": list(row["objects"]),
        "reasons": list(row["reasons"]) or ([row["reject_reason"]] if row["reject_reason"] else []),
        "thumb": row["frames"][0] if row["frames"] else None,
    }


def _duration(video: dict[str, Any], by_video: dict[str, list[dict]]) -> float:
    ends = [c["end_s"] for c in by_video.get(video["video_id"], [])]
    return max(ends, default=0.0) or 1.0


def _write_js(path: Path, name: str, value: Any) -> None:
    """A script that sets ``window.<name>``: a page opened from file:// may load scripts but not fetch JSON. The
    JSON is plain data; ``</`` is escaped so no text in it can close a script element."""
    payload = json.dumps(value, separators=(",", ":"), ensure_ascii=False).replace("</", "<\\/")
    _write_text(path, f"window.{name} = {payload};\n")


def _copy_static(out: Path) -> None:
    for item in PACKAGE.joinpath("static").iterdir():
        _write_bytes(out / "static" / item.name, item.read_bytes())


def _remove_stale(out: Path, before: dict[str, dict], after: dict[str, dict]) -> int:
    """Delete the pages of clips that are gone and media no clip uses any more; how many clip pages went."""
    gone = [c for c in before if c not in after]
    for clip_id in gone:
        (out / "clips" / f"{clip_id}.html").unlink(missing_ok=True)
    used = {m for entry in after.values() for m in entry["media"]}
    for path in (out / "media").glob("*.jpg"):
        if f"media/{path.name}" not in used:
            path.unlink()
    return len(gone)


def _load_state(out: Path) -> dict[str, dict[str, Any]]:
    try:
        state = json.loads((out / STATE_FILE).read_text())
        return state["clips"] if isinstance(state.get("clips"), dict) else {}
    except (OSError, ValueError, AttributeError):
        return {}  # no state (a first run) or an unreadable one: render everything


def _write_text(path: Path, text: str) -> None:
    _write_bytes(path, text.encode("utf-8"))


def _write_bytes(path: Path, data: bytes) -> None:
    """Atomically: a reader (or a browser) never sees half a page."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
