"""Train/val/test membership.

Procedural clips use ``split_of``: a hash of the clip id alone, stable across rebuilds, machines and
dataset growth. A built dataset's clips are split by SOURCE VIDEO (``dataset_splits``): clips of one video
share hands, scene and often the same action, so a per-clip split would leak test motion into training.
``assign_splits`` gives whole videos to splits greedily so each split gets its share of CLIPS; with
``balance`` it does so within each activity cluster (``video_clusters``), so every activity is split
80/10/10 too. The video assignment is deterministic for the same videos, clip counts and seed, but unlike
``split_of`` it depends on the whole set: adding videos can move others.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict
from collections.abc import Sequence

import duckdb
import pyarrow as pa

from hiw.errors import ConfigError

SPLITS = ("train", "val", "test")
FRACTIONS = (0.8, 0.1, 0.1)  # the paper's 80/10/10
# Caption kinds whose verbs name a video's activity, best first; a video's cluster comes from the first that has verbs.
CLUSTER_KINDS = ("closed_vocab", "narration", "pcot_summary", "kinematic")
NO_CLUSTER = "none"


def split_of(clip_id: str) -> str:
    """The split a clip belongs to: a hash of its id placed on [0, 1) against the cumulative fractions."""
    u = int.from_bytes(hashlib.sha256(clip_id.encode()).digest()[:8], "big") / 2**64
    edge = 0.0
    for name, fraction in zip(SPLITS, FRACTIONS):
        edge += fraction
        if u < edge:
            return name
    return SPLITS[-1]


def check_split(split: str | None) -> str | None:
    if split is not None and split not in SPLITS:
        raise ConfigError(f"--split must be train, val or test (got {split!r})")
    return split


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """Three non-negative numbers (train, val, test) summing to 1."""
    problem = ConfigError(f"split fractions must be 3 non-negative numbers (train, val, test) summing to 1, got {fractions!r}")
    try:
        values = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        raise problem from None
    if len(values) != len(SPLITS) or not all(math.isfinite(f) and f >= 0 for f in values) or abs(sum(values) - 1.0) > 1e-6:
        raise problem
    return values  # type: ignore[return-value]


def _order_key(seed: int, video_id: str) -> tuple[bytes, str]:
    return hashlib.sha256(f"{seed}:{video_id}".encode()).digest(), video_id


def _greedy(videos: list[tuple[str, int]], fractions: tuple[float, ...], seed: int) -> dict[str, str]:
    """Each video, in seeded hash order, to the split furthest below its share of the clips assigned so far."""
    assigned = [0] * len(SPLITS)
    candidates = [i for i, f in enumerate(fractions) if f > 0]
    out = {}
    for video_id, n_clips in sorted(videos, key=lambda v: _order_key(seed, v[0])):
        total = sum(assigned) + n_clips
        best = max(candidates, key=lambda i: (fractions[i] * total - assigned[i], -i))  # ties: split order
        assigned[best] += n_clips
        out[video_id] = SPLITS[best]
    return out


def assign_splits(
    videos: Sequence[tuple[str, int, str | None]], fractions: Sequence[float] = FRACTIONS, seed: int = 0
) -> dict[str, str]:
    """(video_id, n_clips, cluster) -> {video_id: split}; the greedy runs separately per cluster (None is one group).

    A video is one key of the result, so it can never be in two splits.
    """
    shares = check_fractions(fractions)
    groups: dict[str | None, list[tuple[str, int]]] = defaultdict(list)
    seen = set()
    for video_id, n_clips, cluster in videos:
        if video_id in seen:
            raise ConfigError(f"video {video_id!r} listed twice")
        if n_clips < 0:
            raise ConfigError(f"video {video_id!r} has a negative clip count ({n_clips})")
        seen.add(video_id)
        groups[cluster].append((video_id, int(n_clips)))
    out: dict[str, str] = {}
    for members in groups.values():
        out.update(_greedy(members, shares, seed))
    return out


def video_clusters(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Each video with accepted clips -> its activity: the most frequent canonical verb of its captions.

    Only the first kind of ``CLUSTER_KINDS`` that gives the video any verb counts (VLM captions only when they
    passed QA). Narration captions carry no verb list; their verb is parsed from the text the way the
    vocabulary was built. Verbs map to ``vocabulary.canonical``; ties go to the alphabetically first verb;
    a video without any verb gets ``NO_CLUSTER``.
    """
    from hiw.annotators.vocab import parse_narration  # heavy imports (scipy clustering); only needed here

    canonical = dict(con.sql("SELECT word, canonical FROM vocabulary WHERE kind = 'verb'").fetchall())
    rows = con.sql(
        """SELECT c.video_id, k.kind, k.text, k.verbs FROM captions k JOIN clips c ON c.clip_id = k.clip_id
           WHERE c.status = 'accepted' AND (k.qa_passed OR k.kind IN ('narration', 'kinematic'))"""
    ).fetchall()
    counts: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for video_id, kind, text, verbs in rows:
        words = list(verbs or [])
        if not words and kind == "narration":
            parsed = parse_narration(text or "").verb
            words = [parsed] if parsed else []
        for word in words:
            word = word.strip().lower()
            if word:
                counts[video_id][kind][canonical.get(word, word)] += 1
    videos = [v for (v,) in con.sql("SELECT DISTINCT video_id FROM clips WHERE status = 'accepted'").fetchall()]
    out = {}
    for video_id in sorted(videos):
        by_kind = counts.get(video_id, {})
        kind = next((k for k in CLUSTER_KINDS if by_kind.get(k)), None)
        out[video_id] = min(by_kind[kind].items(), key=lambda kv: (-kv[1], kv[0]))[0] if kind else NO_CLUSTER
    return out


def dataset_splits(
    con: duckdb.DuckDBPyConnection,
    fractions: Sequence[float] = FRACTIONS,
    seed: int = 0,
    balance: bool = False,
    where: str | None = None,
    clip_ids: Sequence[str] | None = None,
) -> pa.Table:
    """Accepted clips (those matching ``where``, SQL over ``clips`` aliased ``c``, and listed in ``clip_ids`` when
    given) with their video's split.

    Columns clip_id, video_id, split, cluster (null unless ``balance``), sorted by clip_id. With ``where`` or
    ``clip_ids`` the subset is split on its own, so it too is 80/10/10 of its clips. ``where`` must keep the
    query one reading statement (DuckDB's parser decides); on an ``open_catalog`` connection it can read only
    the dataset's tables.
    """
    from hiw.storage.sandbox import RefusedStatement, check_sql

    shares = check_fractions(fractions)
    predicate = f"AND ({where})" if where and where.strip() else ""
    listed = "AND c.clip_id IN (SELECT unnest($ids))" if clip_ids is not None else ""
    sql = f"SELECT c.clip_id, c.video_id FROM clips c WHERE c.status = 'accepted' {listed} {predicate} ORDER BY c.clip_id"
    try:
        if len(con.extract_statements(sql)) != 1:  # e.g. "1=1); COPY ...": a second statement
            raise ConfigError(f"bad clip filter {where!r}: it must be one SQL condition on clips (alias c)")
        check_sql(con, sql)
        clips = con.sql(sql, params={"ids": list(clip_ids)} if clip_ids is not None else None).fetchall()
    except RefusedStatement as err:
        raise ConfigError(f"bad clip filter {where!r}: {err}") from None
    except (duckdb.Error, ValueError) as err:  # ValueError: a statement type the Python API cannot name
        raise ConfigError(f"bad clip filter {where!r}: {err}") from None
    per_video = Counter(video_id for _, video_id in clips)
    clusters = video_clusters(con) if balance else {}
    cluster_of = {v: clusters.get(v, NO_CLUSTER) if balance else None for v in per_video}
    assignment = assign_splits([(v, n, cluster_of[v]) for v, n in per_video.items()], shares, seed)
    return pa.table(
        {
            "clip_id": pa.array([c for c, _ in clips], pa.string()),
            "video_id": pa.array([v for _, v in clips], pa.string()),
            "split": pa.array([assignment[v] for _, v in clips], pa.string()),
            "cluster": pa.array([cluster_of[v] for _, v in clips], pa.string()),
        }
    )


def check_splits_table(splits: pa.Table) -> dict[str, str]:
    """A splits table (clip_id, split columns) -> {clip_id: split}; a clip in two splits or an unknown split is an error."""
    missing = {"clip_id", "split"} - set(splits.column_names)
    if missing:
        raise ConfigError(f"splits table lacks column(s) {sorted(missing)} (has {splits.column_names})")
    out: dict[str, str] = {}
    for clip_id, split in zip(splits["clip_id"].to_pylist(), splits["split"].to_pylist()):
        if split not in SPLITS:
            raise ConfigError(f"clip {clip_id!r} has split {split!r}; splits are {', '.join(SPLITS)}")
        if out.setdefault(clip_id, split) != split:
            raise ConfigError(f"clip {clip_id!r} is in two splits ({out[clip_id]} and {split})")
    return out
