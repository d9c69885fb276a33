"""Python's cyclic-GC pauses in the scorer's Processor, in process (no Kafka).

The decoded entity-state cache (``state.entity_cache``) keeps about 57 GC-tracked objects
per entity; Python's full (generation 2) collections walk every one of them. This drives
the Processor over dict tables, as ``bench/scorer_bench.py``'s state step does, times each
generation-2 collection through ``gc.callbacks`` and prints the pauses::

    .venv/bin/python bench/gc_pauses.py --count 300000 --entities 100000
    .venv/bin/python bench/gc_pauses.py --count 300000 --entities 100000 --entity-cache 10000
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import zlib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import scorer_bench  # noqa: E402

from streams.config import load_config  # noqa: E402
from streams.scorer.batch import InRecord  # noqa: E402
from streams.scorer.champion import Champion  # noqa: E402
from streams.scorer.processor import Processor, Tables  # noqa: E402
from streams.scorer.tables import StateTable  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=300_000)
    ap.add_argument("--entities", type=int, default=100_000)
    ap.add_argument("--entity-cache", type=int, help="state.entity_cache (default: config's)")
    a = ap.parse_args()
    config = load_config(REPO / "examples" / "quickstart.yaml")
    if a.entity_cache is not None:
        config = config.model_copy(update={"state": config.state.model_copy(
            update={"entity_cache": a.entity_cache})})
    tables = Tables(*(StateTable(n, {}, f"cl-{n}")
                      for n in ("entities", "pending", "held", "partitions")))
    p = Processor(config, tables, Champion.bootstrap(config.model.spec,
                                                     config.features.identity))
    pauses: list[float] = []
    began = [0.0]

    def timer(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        elif info["generation"] == 2:
            pauses.append(time.perf_counter() - began[0])

    gc.callbacks.append(timer)
    offsets: dict[int, int] = {}
    chunk: list[InRecord] = []
    t0 = time.perf_counter()
    for key, value in scorer_bench.events(config, a.count, a.entities, seed=5):
        part = zlib.crc32(key) % 4
        chunk.append(InRecord(value, key, "events", part, offsets.get(part, 0),
                              json.loads(value)["ts"] + 1))
        offsets[part] = offsets.get(part, 0) + 1
        if len(chunk) == 1000:
            p.process_events(chunk, chunk[-1].timestamp_ms)
            chunk = []
    took = time.perf_counter() - t0
    gc.callbacks.remove(timer)
    print(f"{a.count:,} events over {a.entities:,} entities, entity_cache "
          f"{config.state.entity_cache:,}: {a.count / took:,.0f} events/s; "
          f"{len(gc.get_objects()):,} GC-tracked objects; {len(pauses)} full collections, "
          f"longest {max(pauses, default=0.0):.2f} s, {sum(pauses):.1f} s of {took:.0f} s")


if __name__ == "__main__":
    main()
