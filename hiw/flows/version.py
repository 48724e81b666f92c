"""How one build becomes one dataset version, redoing only what changed.

Every probed video gets a unit key (``stages.unit_key``: its bytes, narrations, per-clip stage settings and
versions). Videos are grouped into shards (``group_videos``); a group's key is the list of its videos' unit
keys. When a build starts:
- a group whose key was written before (by any build, published or killed) is reused as it is;
- a video whose unit key is in some written group is carried: its rows are read back from that group;
- only the other videos' clips are processed, and a group is written as soon as its last clip is done.
The VLM annotation is one dataset-wide group keyed by every unit key and the annotation settings, prompts and
vocabulary; when it must be redone, the VLM response cache keeps unchanged calls free. A build whose groups
are exactly the current version's publishes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from hiw import __version__
from hiw.annotators.pcot import ClipInput
from hiw.config import BuildConfig
from hiw.flows import stages
from hiw.flows.annotate import VLMOutput, failed
from hiw.flows.holds import hold_reason
from hiw.flows.sources import source_for
from hiw.prompts import PROMPTS
from hiw.schemas import GROUP_TABLES, TABLES, ClipSpec, MotionRecord, Reject, ResponseRecord, VideoSource, to_table
from hiw.schemas.ids import file_digest, stable_hash
from hiw.schemas.stages import versions
from hiw.storage.catalog import create_views
from hiw.storage.groups import GroupStore, retry_key
from hiw.storage.shards import FORMAT_VERSION, group_videos, in_shard_order
from hiw.storage.versions import Group, Manifest, current_version, load_manifest, next_version, publish


@dataclass
class PlannedVideo:
    video: VideoSource
    clips: list[ClipSpec]
    rejects: list[Reject]  # from planning
    unit: str


@dataclass
class _Group:
    key: str
    videos: list[PlannedVideo]
    pending: int = 0  # clips still being processed
    written: Group | None = None


@dataclass
class Published:
    manifest: Manifest
    published: bool
    videos_processed: int
    videos_reused: int
    groups_written: int
    groups_reused: int
    new_responses: list[ResponseRecord] = field(default_factory=list)
    held: str | None = None  # why a changed dataset was not published
    damaged: dict[str, str] = field(default_factory=dict)  # groups found damaged and written again: key -> why


class VersionPlan:
    def __init__(self, cfg: BuildConfig, videos: list[PlannedVideo], source_rejects: list[Reject], store: GroupStore):
        self.cfg, self.store, self.source_rejects = cfg, store, source_rejects
        self.source = source_for(cfg)
        by_id = {v.video.video_id: v for v in videos}
        self.groups: list[_Group] = []
        self._group_of: dict[str, _Group] = {}
        self._results: dict[str, list] = {}
        self._to_process: list[PlannedVideo] = []
        self.groups_written = self.groups_reused = 0
        for ids in group_videos([(v.video.video_id, len(v.clips)) for v in videos]):
            members = [by_id[i] for i in ids]
            group = _Group(
                "g_" + stable_hash("videos", FORMAT_VERSION, [(v.video.video_id, v.unit) for v in members], length=24), members
            )
            group.written = store.get(group.key)
            self.groups.append(group)
            if group.written:
                self.groups_reused += 1
                continue
            for video in members:
                self._group_of[video.video.video_id] = group
                if store.holding(video.unit) is None:
                    self._to_process.append(video)
                    self._results[video.video.video_id] = []
                    group.pending += len(video.clips)
        units = sorted((v.video.video_id, v.unit) for v in videos)
        self.annotation_key = "a_" + stable_hash(units, _annotation_settings(cfg), length=24) if cfg.uses_vlm else None
        self.annotation: Group | None = store.get(self.annotation_key) if self.annotation_key else None
        self.new_responses: list[ResponseRecord] = []
        self.failed_videos: set[str] = set()  # with a clip whose task kept failing: retried by the next build

    # --- what to do --------------------------------------------------------------------------------

    def videos_to_process(self) -> list[PlannedVideo]:
        return self._to_process

    def clips_to_process(self) -> int:
        return sum(len(v.clips) for v in self._to_process)

    def annotation_needed(self) -> bool:
        return self.annotation_key is not None and self.annotation is None

    def carried_annotation_inputs(self) -> list[ClipInput]:
        """What the VLM needs of every accepted clip this build does not process (read back from the shards)."""
        processed = {v.video.video_id for v in self._to_process}
        inputs = []
        for group in self.groups:
            for source, videos in self._sources(group, [v for v in group.videos if v.video.video_id not in processed]):
                ids = [v.video.video_id for v in videos]
                clips = self.store.rows(source, "clips", "video_id", ids).filter(pc.field("status") == "accepted")
                motion = {row["clip_id"]: row for row in self.store.rows(source, "motion", "video_id", ids).to_pylist()}
                for row in clips.to_pylist():
                    spec = ClipSpec(**{k: row[k] for k in ClipSpec.model_fields})
                    inputs.append(
                        stages.annotate(MotionRecord(**motion[spec.clip_id]), spec, self.source.frames_of(spec, self.cfg))[1]
                    )
        return inputs

    def _sources(self, group: _Group, videos: list[PlannedVideo]) -> list[tuple[Group, list[PlannedVideo]]]:
        """The written groups that hold ``videos``' rows."""
        by_source: dict[str, tuple[Group, list[PlannedVideo]]] = {}
        for video in videos:
            source = group.written if group.written else self.store.holding(video.unit)
            by_source.setdefault(source.key, (source, []))[1].append(video)
        return list(by_source.values())

    # --- results -----------------------------------------------------------------------------------

    def add(self, result) -> None:
        """One processed clip (``ClipResult``); writes its group when it was the group's last clip."""
        video_id = result.record.video_id
        self._results[video_id].append(result)
        if result.failed:
            self.failed_videos.add(video_id)
        group = self._group_of[video_id]
        group.pending -= 1
        if group.pending == 0:
            self._write(group)

    def add_annotation(self, out: VLMOutput) -> None:
        tables = {name: getattr(out, name) for name in GROUP_TABLES["annotation"]}  # its lists are named as the tables
        # Not reusable while a clip lacks what it should have: the clips whose task failed (the build that retries
        # them annotates them too) and the clips whose VLM calls failed or never came back valid (the next build
        # asks again; the response cache serves every call that succeeded).
        retry = sorted(self.failed_videos | out.retry_videos)
        failures = [(r.response_id, r.status) for r in out.responses if failed(r)]
        key = retry_key(self.annotation_key, [retry, failures]) if retry else self.annotation_key
        arrow = {
            name: to_table(TABLES[name], in_shard_order(name, rows), self.store.created_at(key)) for name, rows in tables.items()
        }
        self.annotation = self.store.write("annotation", key, {}, arrow, retry)
        self.new_responses = out.responses

    def _write(self, group: _Group) -> None:
        parts: dict[str, list[pa.Table]] = {name: [] for name in GROUP_TABLES["videos"]}
        new = [v for v in group.videos if v.video.video_id in self._results]
        carried = [v for v in group.videos if v.video.video_id not in self._results]
        results = [r for v in new for r in self._results.pop(v.video.video_id)]
        rows = {
            "clips": [r.record for r in results],
            "motion": [r.motion for r in results if r.motion is not None],
            "captions": [c for r in results for c in r.captions],
            "rejects": [j for v in new for j in v.rejects] + [j for r in results for j in r.rejects],
        }
        retry = sorted({r.record.video_id for r in results if r.failed})
        key = retry_key(group.key, [retry, sorted(r.record.clip_id for r in results if r.failed)]) if retry else group.key
        for name in GROUP_TABLES["videos"]:  # carried rows keep their own created_at
            parts[name].append(to_table(TABLES[name], in_shard_order(name, rows[name]), self.store.created_at(key)))
        for source, videos in self._sources(group, carried):
            for name, table in self.store.video_rows(source, [v.video.video_id for v in videos]).items():
                parts[name].append(table)
        units = {v.video.video_id: v.unit for v in group.videos}
        tables = {n: pa.concat_tables(t) for n, t in parts.items()}
        group.written = self.store.write("videos", key, units, tables, retry)
        self.groups_written += 1

    def publish(self, unreadable: list[Reject]) -> Published:
        """Write what is left, then publish a new version, unless its groups are exactly the current version's or
        it must be held back (``hiw.flows.holds``: given the sources that could not be read)."""
        for group in self.groups:
            if group.written is None:  # every video carried or without clips: nothing was processed for it
                self._write(group)
        rejects = sorted(self.source_rejects, key=lambda r: r.reject_id)
        sources_key = "s_" + stable_hash([(r.reject_id, r.detail) for r in rejects], length=24)
        sources = self.store.get(sources_key) or self.store.write(
            "sources", sources_key, {}, {"rejects": to_table(Reject, rejects, self.store.created_at(sources_key))}
        )
        groups = [g.written for g in self.groups] + ([self.annotation] if self.annotation else []) + [sources]
        self.store.sync()  # every file this build wrote is durable before a version can list it
        root = self.cfg.out
        current = current_version(root)
        counts = dict(
            videos_processed=len(self._to_process),
            videos_reused=sum(len(g.videos) for g in self.groups) - len(self._to_process),
            groups_written=self.groups_written,
            groups_reused=self.groups_reused,
            new_responses=self.new_responses,
            damaged=dict(self.store.damaged),
        )
        if current:
            previous = load_manifest(root, current)
            # a group of the current version found damaged and written again with other bytes: the rows are
            # the same, the files are not, so a new version lists the sound files
            before = {g.key: g.files for g in previous.groups}
            repaired = [g.key for g in groups if g.key in self.store.damaged and before.get(g.key, g.files) != g.files]
            hold = hold_reason(self.cfg, previous, unreadable, groups)
            if hold or (set(before) == {g.key for g in groups} and not repaired):
                return Published(previous, False, held=hold, **counts)
        manifest = Manifest(
            version=next_version(root),
            parent=current,
            created_at=datetime.now(UTC),
            code_version=__version__,
            config_hash=self.cfg.config_hash(),
            config=self.cfg.model_dump(mode="json"),
            groups=groups,
        )
        publish(root, manifest)
        return Published(manifest, True, **counts)


def _annotation_settings(cfg: BuildConfig) -> list:
    vocab = file_digest(cfg.vocab) if cfg.vocab is not None and cfg.vocab.is_file() else None
    prompts = sorted((name, p.version) for name, p in PROMPTS.items())
    return [cfg.stage_hash("annotate"), cfg.stage_hash("vlm_frames"), prompts, vocab, versions()]


def version_counts(root, manifest: Manifest) -> dict:
    """The summary's dataset counts, from the version's own tables."""
    with duckdb.connect() as con:
        create_views(con, root, manifest)
        clips = con.execute(
            """SELECT count(*), count(*) FILTER (WHERE status = 'accepted'), count(*) FILTER (WHERE status = 'rejected'),
                      coalesce(sum(frames_decoded), 0), coalesce(sum(frames_any_hand), 0), coalesce(sum(frames_both_hands), 0)
               FROM clips"""
        ).fetchall()[0]
        kinds = con.sql("SELECT kind, count(*) n FROM captions GROUP BY kind ORDER BY n DESC, kind").fetchall()
        reasons = con.sql("SELECT stage || '/' || reason r, count(*) n FROM rejects GROUP BY r ORDER BY n DESC, r").fetchall()
    return dict(
        clips_planned=clips[0],
        clips_accepted=clips[1],
        clips_rejected=clips[2],
        frames_tracked=clips[3],
        frames_any_hand=clips[4],
        frames_both_hands=clips[5],
        captions=sum(n for _, n in kinds),
        captions_by_kind=dict(kinds),
        rejects_by_reason=dict(reasons),
    )
