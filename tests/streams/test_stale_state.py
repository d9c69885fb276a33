"""Partition databases older than their changelogs are discarded before Faust opens them
(:mod:`streams.scorer.stale_state`), on real RocksDB databases."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from rocksdict import Options, Rdict

from streams.scorer.stale_state import discard_stale_databases

OFFSET_KEY = b"__faust\0offset__"


def _table(root: Path, name: str, persisted: dict[int, int | None]) -> SimpleNamespace:
    """A Faust table on the RocksDB store as the check sees it, its databases on disk."""
    for p, offset in persisted.items():
        db = Rdict(str(root / f"{name}-{p}.db"), options=Options(raw_mode=True))
        db[b"key"] = b"value"
        if offset is not None:
            db[OFFSET_KEY] = str(offset).encode()
        db.close()
    store = SimpleNamespace(offset_key=OFFSET_KEY,
                            partition_path=lambda p: root / f"{name}-{p}.db")
    changelog = SimpleNamespace(get_topic_name=lambda: f"{name}-changelog")
    return SimpleNamespace(name=name, data=store, changelog_topic=changelog, partitions=4)


def test_only_databases_past_their_changelog_end_are_discarded(tmp_path: Path) -> None:
    # partition 0: offset 49, changelog empty; 1: offset 10, changelog ends at 11 (fine);
    # 2: offset 5, changelog ends at 5 (never had offset 5); 3: no database.
    table = _table(tmp_path, "entities", {0: 49, 1: 10, 2: 5})
    asked: list[tuple[str, list[int]]] = []

    def ends(topic: str, partitions: list[int]) -> dict[int, int]:
        asked.append((topic, partitions))
        return {0: 0, 1: 11, 2: 5}

    gone = discard_stale_databases([table], ends)
    assert gone == [tmp_path / "entities-0.db", tmp_path / "entities-2.db"]
    assert asked == [("entities-changelog", [0, 1, 2])]
    assert not (tmp_path / "entities-0.db").exists()
    assert (tmp_path / "entities-1.db").exists()


def test_a_database_without_an_offset_and_a_table_in_memory_are_left_alone(
    tmp_path: Path,
) -> None:
    on_disk = _table(tmp_path, "pending", {0: None})
    in_memory = SimpleNamespace(name="held", data={}, partitions=4)
    assert discard_stale_databases([on_disk, in_memory], lambda t, ps: {}) == []
    assert (tmp_path / "pending-0.db").exists()
