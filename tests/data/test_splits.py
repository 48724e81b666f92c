"""Dataset splits by source video: the greedy assignment, activity clusters, and splits of a real built dataset."""

from __future__ import annotations

import csv
import random
import shutil
from collections import Counter, defaultdict

import duckdb
import pytest

from conftest import fixture_file
from hiw.config import load_config
from hiw.data.splits import FRACTIONS, NO_CLUSTER, SPLITS, assign_splits, dataset_splits, video_clusters
from hiw.errors import ConfigError
from hiw.flows.build import build_plain
from hiw.storage import open_catalog


def _videos(n: int, seed: int, clusters: tuple[str, ...] | None = None) -> list[tuple[str, int, str | None]]:
    rng = random.Random(seed)
    return [(f"v_{i:04d}", rng.randint(1, 20), clusters[i % len(clusters)] if clusters else None) for i in range(n)]


def _clip_shares(videos, assignment) -> dict[str, float]:
    clips = Counter()
    for video_id, n, _ in videos:
        clips[assignment[video_id]] += n
    total = sum(clips.values())
    return {s: clips[s] / total for s in SPLITS}


def test_assign_splits_is_deterministic_and_80_10_10_of_clips():
    videos = _videos(200, seed=0)
    assignment = assign_splits(videos)
    assert set(assignment) == {v for v, _, _ in videos}  # every video exactly once: never in two splits
    assert assign_splits(list(reversed(videos))) == assignment  # input order does not matter
    shares = _clip_shares(videos, assignment)
    for split, target in zip(SPLITS, FRACTIONS):
        assert shares[split] == pytest.approx(target, abs=0.01)
    other = assign_splits(videos, seed=1)
    assert other != assignment
    assert all(share == pytest.approx(t, abs=0.01) for share, t in zip(_clip_shares(videos, other).values(), FRACTIONS))


def test_custom_and_zero_fractions():
    videos = _videos(100, seed=1)
    assignment = assign_splits(videos, fractions=(0.5, 0.5, 0.0))
    assert set(assignment.values()) == {"train", "val"}
    assert _clip_shares(videos, assignment)["val"] == pytest.approx(0.5, abs=0.05)


def test_balanced_assignment_splits_every_cluster():
    # a rare activity of 10 videos next to three common ones: each must still be split about 80/10/10
    videos = _videos(190, seed=2, clusters=("cut", "wash", "pour")) + [(f"r_{i}", 3, "knit") for i in range(10)]
    assignment = assign_splits(videos)
    assert set(assignment) == {v for v, _, _ in videos}
    by_cluster = defaultdict(list)
    for video in videos:
        by_cluster[video[2]].append(video)
    for cluster, members in by_cluster.items():
        shares = _clip_shares(members, assignment)
        tolerance = 0.05 if cluster != "knit" else 0.1  # 30 clips in 3-clip videos: a video is 10%
        assert all(shares[s] == pytest.approx(t, abs=tolerance) for s, t in zip(SPLITS, FRACTIONS)), (cluster, shares)
        assert {assignment[v] for v, _, _ in members} == set(SPLITS)


@pytest.mark.parametrize("fractions", [(0.8, 0.2), (0.9, 0.2, -0.1), (0.5, 0.3, 0.3), (0.8, 0.1, float("nan")), ("a", 0.1, 0.1)])
def test_bad_fractions_are_a_config_error(fractions):
    with pytest.raises(ConfigError, match="split fractions must be 3 non-negative numbers"):
        assign_splits(_videos(5, seed=0), fractions=fractions)


def test_a_video_listed_twice_is_an_error():
    with pytest.raises(ConfigError, match="listed twice"):
        assign_splits([("v_a", 2, None), ("v_a", 3, None)])


# ------------------------------------------------------------------ activity clusters


def _catalog(clips: list[tuple], captions: list[tuple], vocabulary: list[tuple]) -> duckdb.DuckDBPyConnection:
    """An in-memory stand-in for a dataset catalog with just the columns clustering reads."""
    con = duckdb.connect()
    con.execute("CREATE TABLE clips (clip_id VARCHAR, video_id VARCHAR, status VARCHAR)")
    con.execute("CREATE TABLE captions (clip_id VARCHAR, kind VARCHAR, text VARCHAR, verbs VARCHAR[], qa_passed BOOLEAN)")
    con.execute("CREATE TABLE vocabulary (kind VARCHAR, word VARCHAR, canonical VARCHAR)")
    con.executemany("INSERT INTO clips VALUES (?, ?, ?)", clips)
    con.executemany("INSERT INTO captions VALUES (?, ?, ?, ?, ?)", captions)
    if vocabulary:
        con.executemany("INSERT INTO vocabulary VALUES (?, ?, ?)", vocabulary)
    return con


def test_video_clusters_prefer_the_best_caption_kind_and_canonical_verbs():
    clips = [("a1", "va", "accepted"), ("a2", "va", "accepted"), ("b1", "vb", "accepted"), ("c1", "vc", "accepted")]
    clips += [("d1", "vd", "accepted"), ("e1", "ve", "accepted"), ("x1", "vx", "rejected"), ("a3", "va", "accepted")]
    kin = "Kinematic description from hand tracks."
    captions = [
        # va: closed_vocab beats narration and kinematic; "slice" is a synonym of "cut"; the failed caption is ignored
        ("a1", "closed_vocab", "The hands slice bread.", ["slice"], True),
        ("a2", "closed_vocab", "The hands cut bread.", ["cut"], True),
        ("a3", "closed_vocab", "The hands wash a cup.", ["wash"], True),
        ("a3", "closed_vocab", "The hands wash a cup again.", ["wash", "wash"], False),
        ("a1", "narration", "#C C pours water", [], True),
        ("a1", "kinematic", kin, ["move"], True),
        # vb: narrations carry no verb list, so their verb is parsed from the text (tie 1:1 -> alphabetical)
        ("b1", "narration", "#C C stirs the soup", [], True),
        ("b1", "narration", "#C C picks up a spoon", [], True),
        ("b1", "kinematic", kin, ["move", "move"], True),
        # vc: only kinematic captions
        ("c1", "kinematic", kin, ["move", "grasp"], True),
        # vd: a narration without a verb falls through to the next kind
        ("d1", "narration", "#unsure", [], True),
        ("d1", "kinematic", kin, ["release"], True),
        # ve: nothing with a verb
        ("e1", "kinematic", kin, [], True),
        ("x1", "closed_vocab", "rejected clip", ["jump"], True),
    ]
    vocabulary = [("verb", "slice", "cut"), ("verb", "cut", "cut"), ("object", "wash", "soap")]
    with _catalog(clips, captions, vocabulary) as con:
        clusters = video_clusters(con)
    assert clusters == {"va": "cut", "vb": "pick up", "vc": "grasp", "vd": "release", "ve": NO_CLUSTER}


# ------------------------------------------------------------------ a real built dataset

# F-PHAB recordings: two activities with narrations, one without (kinematic captions only)
ACTIONS = (("Subject_1", "open_juice_bottle", "#C C opens the juice bottle"), ("Subject_1", "pour_milk", "#C C pours the milk"))


@pytest.fixture(scope="module")
def narrated_dataset(tmp_path_factory, fphab_dir):
    inputs = tmp_path_factory.mktemp("fphab-split-in")
    rows = []
    for subject, action, text in ACTIONS:
        for n in (1, 2, 3, 4):
            name = f"{action}_{n}.txt"
            shutil.copy(fixture_file(fphab_dir / subject / action / str(n) / "skeleton.txt"), inputs / name)
            rows.append({"video": name, "start_s": 0.0, "end_s": 2.0, "text": text})
    for n in (1, 2):
        shutil.copy(fixture_file(fphab_dir / "Subject_2" / "write" / str(n) / "skeleton.txt"), inputs / f"write_{n}.txt")
        rows.append({"video": f"write_{n}.txt", "start_s": "", "end_s": "", "text": ""})
    with open(inputs / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["video", "start_s", "end_s", "text"])
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path_factory.mktemp("fphab-split-out")
    cfg = load_config(manifest=inputs / "manifest.csv", out=out, tracker="precomputed", min_both_hands_frac=0, window_s=3.0)
    build_plain(cfg)
    return out


def test_dataset_splits_keep_each_video_in_one_split(narrated_dataset):
    with open_catalog(narrated_dataset) as con:
        splits = dataset_splits(con)
        accepted = {c for (c,) in con.sql("SELECT clip_id FROM clips WHERE status = 'accepted'").fetchall()}
        assert dataset_splits(con).equals(splits)
        reseeded = dataset_splits(con, seed=7)
    rows = splits.to_pylist()
    assert splits.column_names == ["clip_id", "video_id", "split", "cluster"]
    assert [r["clip_id"] for r in rows] == sorted(accepted) and len(rows) > 10
    video_split = defaultdict(set)
    for r in rows:
        video_split[r["video_id"]].add(r["split"])
    assert all(len(s) == 1 for s in video_split.values())
    assert max(Counter(r["video_id"] for r in rows).values()) > 1  # the F-PHAB "write" videos make two clips each
    assert {r["split"] for r in rows} >= {"train", "val"} and all(r["cluster"] is None for r in rows)
    assert reseeded["split"].to_pylist() != splits["split"].to_pylist()


def test_balanced_dataset_splits_use_activity_clusters(narrated_dataset):
    with open_catalog(narrated_dataset) as con:
        rows = dataset_splits(con, balance=True).to_pylist()
        paths = dict(con.sql("SELECT clip_id, source_path FROM clips").fetchall())
    for r in rows:
        action = paths[r["clip_id"]].rsplit("/", 1)[-1].rsplit("_", 1)[0]
        assert r["cluster"] == {"open_juice_bottle": "open", "pour_milk": "pour", "write": "move"}[action]
    for cluster in ("open", "pour"):  # four one-clip videos each: three train, one val
        assert Counter(r["split"] for r in rows if r["cluster"] == cluster) == {"train": 3, "val": 1}


def test_dataset_splits_of_a_filtered_subset(narrated_dataset):
    with open_catalog(narrated_dataset) as con:
        rows = dataset_splits(con, where="c.source_path LIKE '%pour_milk%'").to_pylist()
        assert len(rows) == 4 and {r["split"] for r in rows} <= set(SPLITS)
        with pytest.raises(ConfigError, match='bad clip filter .*Binder Error: .*"no_such_column"'):
            dataset_splits(con, where="c.no_such_column > 0.9")
        with pytest.raises(ConfigError, match="bad clip filter .*Parser Error"):
            dataset_splits(con, where="c.both_hands_frac >")
