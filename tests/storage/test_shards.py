"""The shard writer: the sha256 it records is the file's, taken as the bytes are written; rows a build hands over in
shard order are written as they are; ``GroupStore.sync`` makes a build's files durable in one pass."""

from __future__ import annotations

import random

import pyarrow.compute as pc

from hiw.schemas import Reject, to_table
from hiw.schemas.ids import file_digest
from hiw.storage.groups import GroupStore
from hiw.storage.shards import SORT_KEYS, in_shard_order, write_shard


def _rejects(n: int) -> list[Reject]:
    rng = random.Random(0)
    return [
        Reject(
            reject_id=f"r_{rng.getrandbits(48):012x}",
            stage=rng.choice(["probe", "filter", "quality"]),
            reason="why",
            detail="détail ünïcode " * rng.randint(0, 3),
            source_path=f"/v/{i}.mp4",
            video_id=rng.choice([None, f"v_{rng.getrandbits(20):05x}"]),
            clip_id=rng.choice([None, f"c_{rng.getrandbits(20):05x}", "c_é"]),
        )
        for i in range(n)
    ]


def test_records_in_shard_order_are_what_arrow_sorts_them_to():
    table = to_table(Reject, in_shard_order("rejects", _rejects(300)))
    order = pc.sort_indices(table, [(k, "ascending", "at_start") for k in SORT_KEYS["rejects"]])
    assert order.to_pylist() == list(range(300))  # so write_shard makes no reordering copy


def test_the_recorded_sha256_and_size_are_the_written_files(tmp_path):
    for records in (_rejects(5000), in_shard_order("rejects", _rejects(5000)), []):  # out of order, in order, empty
        shard = write_shard(tmp_path, "rejects", "g_test", to_table(Reject, records))
        path = tmp_path / shard.path
        assert shard.sha256 == file_digest(path) and shard.bytes == path.stat().st_size
        assert path.name == f"g_test-{shard.sha256[:16]}.parquet"


def test_sync_covers_every_file_written_and_skips_removed_ones(tmp_path):
    store = GroupStore(tmp_path)
    kept = store.write("sources", "s_a", {}, {"rejects": to_table(Reject, _rejects(10))})
    gone = store.write("sources", "s_b", {}, {"rejects": to_table(Reject, _rejects(20))})
    (tmp_path / gone.files["rejects"].path).unlink()  # removed before the sync: nothing to make durable
    store.sync()
    store.sync()  # nothing left: a second pass has nothing to do
    assert GroupStore(tmp_path).get("s_a") == kept
