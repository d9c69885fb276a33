"""State on disk: each key in its partition's RocksDB database, written only once its
changelog record is acknowledged, with the acknowledged changelog offset beside it."""

from __future__ import annotations

from pathlib import Path

from streams.scorer.tables import DirectoryPartitions, RocksStateTable

OFFSET_KEY = b"__faust\0offset__"


class Partitions(DirectoryPartitions):
    def __init__(self, root: Path, partitions: list[int]) -> None:
        super().__init__(root, "entities", partitions)


def test_each_key_lands_in_the_database_of_its_partition(tmp_path: Path) -> None:
    dbs = Partitions(tmp_path, [0, 1, 2])
    t = RocksStateTable("entities", dbs, "cl")
    t.put(b"a", b"1", partition=0)
    t.put(b"b", b"2", partition=2)
    records = t.flush()
    assert sorted(records) == [("cl", b"a", b"1", 0), ("cl", b"b", b"2", 2)]
    t.commit({0: 10, 2: 11})
    assert dbs.dbs[0].get(b"a") == b"1" and dbs.dbs[0].get(b"b") is None
    assert dbs.dbs[2].get(b"b") == b"2" and dbs.dbs[1].get(b"b") is None
    assert dbs.dbs[0].get(OFFSET_KEY) == b"10" and dbs.dbs[2].get(OFFSET_KEY) == b"11"
    assert dbs.dbs[1].get(OFFSET_KEY) is None  # nothing acknowledged for it
    assert t.get(b"b") == b"2" and len(t) == 2 and sorted(t.items()) == [(b"a", b"1"),
                                                                          (b"b", b"2")]


def test_a_crash_before_the_acknowledgement_leaves_the_database_as_it_was(
    tmp_path: Path
) -> None:
    dbs = Partitions(tmp_path, [0])
    t = RocksStateTable("entities", dbs, "cl")
    t.put(b"a", b"old", partition=0)
    t.flush()
    t.commit({0: 5})
    t.put(b"a", b"new", partition=0)
    t.delete(b"gone", partition=0)
    t.flush()
    assert t.get(b"a") == b"new"  # the batch reads its own writes
    dbs.close()  # the process dies before the broker acknowledged the batch's changelog
    again = Partitions(tmp_path, [0])
    assert again.dbs[0].get(b"a") == b"old" and again.dbs[0].get(OFFSET_KEY) == b"5"
    again.close()


def test_deletes_and_counts_follow_the_committed_and_the_pending_writes(
    tmp_path: Path
) -> None:
    dbs = Partitions(tmp_path, [0, 1])
    t = RocksStateTable("pending", dbs, "cl")
    for i in range(5):
        t.put(b"k%d" % i, b"v", partition=i % 2)
    t.flush()
    t.commit({0: 1, 1: 1})
    assert len(t) == 5
    t.delete(b"k0", partition=0)
    t.put(b"k9", b"v", partition=1)
    t.put(b"k1", b"w", partition=1)  # an existing key changed: no new key
    assert len(t) == 5 and b"k0" not in t and t.get(b"k1") == b"w"
    t.flush()
    t.commit({0: 2, 1: 2})
    assert len(t) == 5 and dbs.dbs[0].get(b"k0") is None and dbs.dbs[1].get(b"k1") == b"w"
    t.forget()
    assert len(t) == 5  # counted again from the databases


def test_a_partition_lost_before_the_commit_is_left_to_its_new_owner(tmp_path: Path) -> None:
    dbs = Partitions(tmp_path, [0, 1])
    t = RocksStateTable("entities", dbs, "cl")
    t.put(b"a", b"1", partition=0)
    t.put(b"b", b"2", partition=1)
    t.flush()
    lost = dbs.dbs.pop(1)
    t.commit({0: 3, 1: 4})
    assert lost.get(b"b") is None and lost.get(OFFSET_KEY) is None
    assert dbs.dbs[0].get(b"a") == b"1"


def test_writes_after_the_flush_wait_for_their_own_commit(tmp_path: Path) -> None:
    dbs = Partitions(tmp_path, [0])
    t = RocksStateTable("entities", dbs, "cl")
    t.put(b"a", b"1", partition=0)
    t.flush()
    t.put(b"b", b"2", partition=0)  # the next batch began before the commit
    t.commit({0: 7})
    assert dbs.dbs[0].get(b"a") == b"1" and dbs.dbs[0].get(b"b") is None
    assert t.get(b"b") == b"2"
