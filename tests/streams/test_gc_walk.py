"""What a full (generation 2) collection walks while the scorer serves stays flat as the
entities grow: the Processor over RocksDB tables, start-up frozen as the worker freezes it,
then 10 times more entities scored than at the first count (no timing: objects and the
references they hold are counted)."""

from __future__ import annotations

import gc
import zlib
from pathlib import Path

import msgspec

from streams.config import load_config
from streams.devtools.simulate import SimulationOptions, Simulator
from streams.scorer.batch import InRecord
from streams.scorer.champion import Champion
from streams.scorer.processor import Processor, Tables
from streams.scorer.tables import DirectoryPartitions, RocksStateTable, rocksdb_options
from tests.support import REPO

PARTITIONS = 4
#: Event-time gap: the label TTL (one day) covers 144 events, so the pending predictions
#: (kept for the TTL, then expired) stay far fewer than the entities.
GAP_MS = 600_000


def events(count: int, seed: int, start_ms: int, offsets: list[int]) -> list[InRecord]:
    """Quickstart events over ``count`` entities of their own (ids made unique by ``seed``),
    as the consumer delivers them (``offsets``: the next of each partition)."""
    config = load_config(REPO / "examples" / "quickstart.yaml")
    sim = Simulator(config, SimulationOptions(count=count, entities=count, seed=seed,
                                              label_ratio=0.0, mean_gap_ms=GAP_MS,
                                              start_ms=start_ms))
    out = []
    for r in sim.records():
        value = msgspec.json.decode(r.value)
        value["entity_id"] = key = f"s{seed}-{value['entity_id']}"
        part = zlib.crc32(key.encode()) % PARTITIONS
        out.append(InRecord(msgspec.json.encode(value), key.encode(), "events", part,
                            offsets[part], value["ts"] + 1))
        offsets[part] += 1
    return out


def walked() -> tuple[int, int]:
    """Tracked objects outside the permanent generation after a full collection (what the
    next one walks), and the references they hold (what it follows)."""
    gc.collect()
    objects = gc.get_objects()
    try:
        return len(objects), sum(len(gc.get_referents(o)) for o in objects)
    finally:
        del objects


def test_a_full_collection_walks_as_much_after_ten_times_the_entities(tmp_path: Path) -> None:
    config = load_config(REPO / "examples" / "quickstart.yaml")
    parts = list(range(PARTITIONS))
    options = rocksdb_options(config.state.rocksdb_memory_bytes, PARTITIONS)
    dbs = {n: DirectoryPartitions(tmp_path, n, parts, options)
           for n in ("entities", "pending", "held", "partitions")}
    tables = Tables(*(RocksStateTable(n, d, f"cl-{n}") for n, d in dbs.items()))
    p = Processor(config, tables, Champion.bootstrap(config.model.spec,
                                                     config.features.identity))
    offsets = [0] * PARTITIONS
    acked = 0

    def score(count: int, seed: int, start_ms: int) -> None:
        nonlocal acked
        records = events(count, seed, start_ms, offsets)
        for batch in (records[i:i + 1000] for i in range(0, len(records), 1000)):
            res = p.process_events(batch, batch[-1].timestamp_ms)
            assert res.events["scored"] == len(batch), res.events
            # what the publisher does once the broker acknowledged the changelog
            tables.commit({(w[0], w[3]): acked for ws in res.writes.values() for w in ws})
            acked += 1
            p.expire(parts)  # the expiry timer

    n = 1_000
    start_ms = 1_700_000_000_000
    score(100, seed=1, start_ms=start_ms)  # warm: what the first batches make lazily
    gc.collect()
    gc.freeze()  # as the worker does once its tables are recovered
    try:
        # each run of events begins well after the last ended (twice its mean span)
        score(n, seed=2, start_ms=start_ms + 200 * GAP_MS)
        objects, references = walked()
        score(9 * n, seed=3, start_ms=start_ms + (200 + 2 * n) * GAP_MS)
        objects_10n, references_10n = walked()
    finally:
        gc.unfreeze()
        for d in dbs.values():
            d.close()
    # One tracked object or one reference kept per entity would add 9,000.
    assert objects_10n - objects < n // 10, (objects, objects_10n)
    assert references_10n - references < n // 2, (references, references_10n)
