"""Python's cyclic-GC pauses in the scorer's Processor, in process (no Kafka).

The Processor keeps nothing decoded between batches (entity states are kept encoded, as
bytes, which the collector does not track); what a full (generation 2) collection walks
is the current batch's work: the decoded states of the entities it touches (about 57
tracked objects each) and its records. This drives the Processor over in-memory tables
(``--store memory``, dicts) or over RocksDB databases in a temporary directory
(``--store rocksdb``, sized as a worker sizes them, each batch committed as after its
acknowledgement), events made as they are needed, times each generation-2 collection
through ``gc.callbacks`` (by the wall clock and by the thread's CPU time: on a shared
machine the first includes other processes' turns) and prints the pauses, the tracked
objects left and the process's VmRSS::

    .venv/bin/python bench/gc_pauses.py --store rocksdb --count 1000000 --entities 1000000
    .venv/bin/python bench/gc_pauses.py --store memory --count 300000 --entities 100000
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import scorer_bench  # noqa: E402

from streams.config import load_config  # noqa: E402
from streams.scorer.champion import Champion  # noqa: E402
from streams.scorer.processor import Processor  # noqa: E402
from streams.scorer.tables import (  # noqa: E402
    DirectoryPartitions,
    RocksStateTable,
    StateTable,
    Tables,
    rocksdb_options,
)

NAMES = ("entities", "pending", "held", "partitions")


def vm_mib(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def made_batches(config: Any, count: int, entities: int) -> Iterator[list[Any]]:
    """Quickstart events as the Processor receives them (4 partitions, contiguous offsets),
    1,000 a batch, made as they are needed: a million made beforehand would be most of the
    process's memory (and of what the collector walks)."""
    from streams.scorer.batch import InRecord

    offsets = [0] * scorer_bench.PARTITIONS
    batch: list[Any] = []
    for key, value in scorer_bench.events(config, count, entities, seed=5):
        part = zlib.crc32(key) % scorer_bench.PARTITIONS
        batch.append(InRecord(value, key, "events", part, offsets[part],
                              msgspec.json.decode(value)["ts"] + 1))
        offsets[part] += 1
        if len(batch) == 1000:
            yield batch
            batch = []
    if batch:
        yield batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=300_000)
    ap.add_argument("--entities", type=int, default=100_000)
    ap.add_argument("--entity-cache", type=int, help="state.entity_cache (default: config's)")
    ap.add_argument("--store", choices=("memory", "rocksdb"), default="memory")
    a = ap.parse_args()
    config = load_config(REPO / "examples" / "quickstart.yaml")
    if a.entity_cache is not None:
        config = config.model_copy(update={"state": config.state.model_copy(
            update={"entity_cache": a.entity_cache})})
    root = Path(tempfile.mkdtemp(prefix="gc-pauses-"))
    parts = list(range(scorer_bench.PARTITIONS))
    if a.store == "rocksdb":
        # Sized as a worker sizes them (state.rocksdb_memory_bytes over every database).
        options = rocksdb_options(config.state.rocksdb_memory_bytes, len(parts))
        tables = Tables(*(RocksStateTable(n, DirectoryPartitions(root, n, parts, options),
                                          f"cl-{n}") for n in NAMES))
    else:
        tables = Tables(*(StateTable(n, {}, f"cl-{n}") for n in NAMES))
    p = Processor(config, tables, Champion.bootstrap(config.model.spec,
                                                     config.features.identity))
    pauses: list[float] = []
    cpu: list[float] = []
    collected: list[int] = []
    began = [0.0, 0.0]

    def timer(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            began[:] = time.perf_counter(), time.thread_time()
        elif info["generation"] == 2:
            pauses.append(time.perf_counter() - began[0])
            # On a shared machine a pause by the wall clock includes turns other processes
            # took on the core; the thread's CPU time during the collection does not.
            cpu.append(time.thread_time() - began[1])
            collected.append(info["collected"])

    batches = made_batches(config, a.count, a.entities)
    gc.collect()
    gc.freeze()  # what start-up made (as the worker does once its tables are recovered)
    gc.callbacks.append(timer)
    t0 = time.perf_counter()
    for offset, batch in enumerate(batches):
        res = p.process_events(batch, batch[-1].timestamp_ms)
        # What the publisher does once the broker acknowledged the batch's changelog.
        tables.commit({(w[0], w[3]): offset for ws in res.writes.values() for w in ws})
    took = time.perf_counter() - t0
    gc.callbacks.remove(timer)
    print(f"{a.count:,} events over {a.entities:,} entities, store {a.store}, entity_cache "
          f"{config.state.entity_cache:,}: {a.count / took:,.0f} events/s; "
          f"{len(gc.get_objects()):,} GC-tracked objects; {len(pauses)} full collections, "
          f"longest {max(pauses, default=0.0) * 1000:,.0f} ms by the wall clock "
          f"({max(cpu, default=0.0) * 1000:,.0f} ms of CPU), {sum(pauses):.1f} s of "
          f"{took:.0f} s; VmRSS {vm_mib():,.0f} MiB (peak {vm_mib('VmHWM'):,.0f} MiB)")
    if pauses:
        ranked = sorted(range(len(pauses)), key=pauses.__getitem__)
        print(f"  median pause {pauses[ranked[len(ranked) // 2]] * 1000:,.1f} ms wall; "
              "longest five (wall ms / CPU ms / objects collected): " + ", ".join(
                  f"{pauses[i] * 1000:,.0f} / {cpu[i] * 1000:,.0f} / {collected[i]:,}"
                  for i in reversed(ranked[-5:])))


if __name__ == "__main__":
    main()
