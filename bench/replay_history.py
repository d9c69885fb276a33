"""The benchmark history of ``bench/replay_bench.py``: quickstart-shaped events in Parquet.

Seeded: ``N`` events over ``K`` entities across 30 days, sorted by event time (as a topic
replay delivers them), with the quickstart config's attributes; and the ten features both
streambed and Kaskada compute (:data:`FEATURES`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SPAN_MS = 30 * 86_400_000

#: The ten features both engines have (names shared with bench/kaskada_replay.py).
FEATURES = [
    {"name": "n_lifetime", "agg": "count"},
    {"name": "amount_sum_day", "agg": "sum", "field": "amount",
     "window": {"kind": "tumbling", "size": "1d"}},
    {"name": "amount_mean_day", "agg": "mean", "field": "amount",
     "window": {"kind": "tumbling", "size": "1d"}},
    {"name": "amount_max_day", "agg": "max", "field": "amount",
     "window": {"kind": "tumbling", "size": "1d"}},
    {"name": "amount_last", "agg": "last", "field": "amount"},
    {"name": "income_last", "agg": "last", "field": "income"},
    {"name": "credit_score_last", "agg": "last", "field": "credit_score"},
    {"name": "credit_score_mean", "agg": "mean", "field": "credit_score"},
    {"name": "web_count", "agg": "count", "where": {"field": "channel", "op": "eq",
                                                    "value": "web"}},
    {"name": "secs_since_prev", "agg": "seconds_since_previous"},
]


def write_history(path: Path, events: int, entities: int, seed: int = 7,
                  chunk: int = 1_000_000, hot: float = 0.0) -> Path:
    """Write the history to ``path`` (row groups of ``chunk`` events, so making 10M events
    needs little memory) and return it. ``hot``: the share of events that go to one
    entity, ``u0`` (a hot entity)."""
    rng = np.random.default_rng(seed)
    # Sorted times without sorting everything: cumulative gaps, scaled to the span.
    gaps = rng.exponential(1.0, events)
    ts = START_MS + (np.cumsum(gaps) / gaps.sum() * (SPAN_MS - 1)).astype(np.int64)
    del gaps
    schema = pa.schema([("event_id", pa.string()), ("entity_id", pa.string()),
                        ("ts", pa.int64()), ("amount", pa.float64()),
                        ("income", pa.float64()), ("credit_score", pa.int64()),
                        ("channel", pa.string()), ("age_band", pa.string()),
                        ("group", pa.string())])
    channels = np.array(["web", "branch", "partner"], dtype=object)
    bands = np.array(["18-25", "26-40", "41-65", "65+"], dtype=object)
    groups = np.array(["A", "B", "C"], dtype=object)
    with pq.ParquetWriter(path, schema) as writer:
        for lo in range(0, events, chunk):
            n = min(chunk, events - lo)
            ids = np.arange(lo, lo + n)
            entity = rng.integers(0, entities, n)
            if hot:
                entity[rng.random(n) < hot] = 0
            table = pa.table({
                "event_id": pa.array([f"e{i}" for i in ids]),
                "entity_id": pa.array([f"u{k}" for k in entity]),
                "ts": ts[lo:lo + n],
                "amount": np.round(rng.lognormal(5.0, 1.0, n), 2),
                "income": np.round(rng.lognormal(10.5, 0.5, n), 2),
                "credit_score": rng.integers(300, 851, n),
                "channel": pa.array(channels[rng.integers(0, 3, n)].tolist()),
                "age_band": pa.array(bands[rng.integers(0, 4, n)].tolist()),
                "group": pa.array(groups[entity % 3].tolist()),
            }, schema=schema)
            writer.write_table(table)
    return path
