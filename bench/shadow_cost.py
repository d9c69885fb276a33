"""A shadow's cost per event: the scorer's Processor alone, in process, with 0, 1 and 2
candidates in shadow beside the champion (no Kafka).

Every shadow is a model of the configured spec trained on the events' own features (all
weights non-zero, as a real cut's are), so scoring it costs what a cut costs. Each count
of shadows runs on a fresh Processor over the same events, in interleaved rounds; the best
round of each is reported (the least disturbed on a shared machine) with the load average.
The difference between those runs is noisy on a busy machine, so the work a shadow adds
(scoring each event's features with one more model; the score's place in the pending
prediction is a few bytes) is also timed alone, best of many short repeats::

    .venv/bin/python bench/shadow_cost.py --count 5000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import scorer_bench  # noqa: E402

from governance import LogisticModel  # noqa: E402
from streams.config import Config, load_config  # noqa: E402
from streams.scorer.batch import InRecord  # noqa: E402
from streams.scorer.champion import Champion  # noqa: E402
from streams.scorer.processor import Processor  # noqa: E402
from streams.scorer.tables import StateTable, Tables  # noqa: E402

PARTITIONS = 4
BATCH = 1000


def batches(config: Config, count: int, entities: int) -> list[list[InRecord]]:
    out: list[list[InRecord]] = [[]]
    offsets: dict[int, int] = {}
    for key, value in scorer_bench.events(config, count, entities, seed=11):
        part = zlib.crc32(key) % PARTITIONS
        out[-1].append(InRecord(value, key, "events", part, offsets.get(part, 0),
                                json.loads(value)["ts"] + 1))
        offsets[part] = offsets.get(part, 0) + 1
        if len(out[-1]) == BATCH:
            out.append([])
    return [b for b in out if b]


def processor(config: Config, shadows: tuple[Champion, ...]) -> Processor:
    tables = Tables(*(StateTable(n, {}, f"cl-{n}")
                      for n in ("entities", "pending", "held", "partitions")))
    p = Processor(config, tables, Champion.bootstrap(config.model.spec,
                                                     config.features.identity))
    p.shadows = shadows
    return p


def feature_rows(config: Config, work: list[list[InRecord]]) -> list[dict]:
    """The features the first batches produce, as the models see them."""
    p = processor(config, ())
    rows = []
    for batch in work[:2]:
        res = p.process_events(batch, batch[-1].timestamp_ms)
        rows += [json.loads(v)["features"] for t, _, v, _ in res.sends
                 if t == config.topics.scored]
    return rows


def trained_shadows(config: Config, rows: list[dict], n: int) -> tuple[Champion, ...]:
    """``n`` models trained on the events' features (random labels)."""
    rng = random.Random(5)
    out = []
    for i in range(n):
        model = LogisticModel(config.model.spec)
        for row in rows:
            model.learn(row, int(rng.random() < 0.3))
        out.append(Champion(model, f"shadow-{i}"))
    return tuple(out)


def run(config: Config, work: list[list[InRecord]], shadows: tuple[Champion, ...]) -> float:
    """Seconds to process every batch with these shadows."""
    p = processor(config, shadows)
    began = time.perf_counter()
    for batch in work:
        res = p.process_events(batch, batch[-1].timestamp_ms)
        assert res.shadow_scores == len(shadows) * res.events["scored"]
    return time.perf_counter() - began


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--entities", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    config = load_config(REPO / "examples" / "quickstart.yaml")
    work = batches(config, a.count, a.entities)
    events = sum(len(b) for b in work)
    rows = feature_rows(config, work)
    shadows = trained_shadows(config, rows, 2)
    best: dict[int, float] = {}
    for _ in range(a.rounds):
        for k in (0, 1, 2):
            took = run(config, work, shadows[:k])
            best[k] = min(best.get(k, took), took)
    load = os.getloadavg()
    print(f"Processor alone, {events:,} events over {a.entities:,} entities, "
          f"{len(config.features.names)} features, best of {a.rounds} rounds "
          f"(load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, shared machine):")
    for k in (0, 1, 2):
        us = best[k] / events * 1e6
        extra = (best[k] - best[0]) / events * 1e6 / k if k else 0.0
        print(f"  {k} shadow{'s' if k != 1 else ''}: {us:7.1f} µs/event "
              f"({events / best[k]:,.0f} events/s)"
              + (f"; {extra:+.1f} µs/event per shadow" if k else ""))
    alone = min(_time(lambda: shadows[0].score_many(rows)) for _ in range(a.rounds * 10))
    print(f"  one shadow's scoring alone: {alone / len(rows) * 1e6:.1f} µs/event "
          f"(best of {a.rounds * 10} passes over {len(rows):,} feature rows)")


def _time(fun: Callable[[], object]) -> float:
    began = time.perf_counter()
    fun()
    return time.perf_counter() - began


if __name__ == "__main__":
    main()
