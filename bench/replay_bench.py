"""Replay benchmark: vectorised ``compute_features`` against the online engine per event.

Generates a seeded history (default 1,000,000 events over 10,000 entities across 30
days, times sorted as a topic replay delivers them, 2% of amounts null), computes six
windowed features offline, and runs the online :class:`~features.FeatureEngine` over
the first 50,000 events of the same history as the baseline, scaled to events/s.

    .venv/bin/python bench/replay_bench.py [--events N] [--entities K] [--sample M]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from features import FeatureEngine, FeatureSet, compute_features

FEATURES = FeatureSet(features=[
    {"name": "n_1h", "agg": "count", "window": {"kind": "sliding", "size": "1h"}},
    {"name": "amount_sum_1h", "agg": "sum", "field": "amount",
     "window": {"kind": "sliding", "size": "1h"}},
    {"name": "amount_mean_1d", "agg": "mean", "field": "amount",
     "window": {"kind": "tumbling", "size": "1d"}},
    {"name": "amount_max_6h", "agg": "max", "field": "amount",
     "window": {"kind": "hopping", "size": "6h", "hop": "1h"}},
    {"name": "amount_std_1h", "agg": "stddev", "field": "amount",
     "window": {"kind": "sliding", "size": "1h"}},
    {"name": "n_lifetime", "agg": "count"},
])


def make_events(n_events: int, n_entities: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start_ms = 1_735_689_600_000  # 2025-01-01T00:00:00Z
    span_ms = 30 * 86_400_000
    ts = np.sort(rng.integers(start_ms, start_ms + span_ms, n_events))
    entity = rng.integers(0, n_entities, n_events)
    amount = np.round(rng.lognormal(3.0, 1.2, n_events), 2)
    amount[rng.random(n_events) < 0.02] = np.nan
    return pd.DataFrame({
        "event_id": np.arange(n_events),
        "entity_id": entity.astype(np.int64),
        "ts": ts,
        "amount": amount,
    })


def online_rate(events: pd.DataFrame) -> float:
    engine = FeatureEngine(FEATURES, allowed_lateness_ms=0)
    states: dict[int, object] = {}
    records = events[["entity_id", "ts", "amount"]].to_dict("records")
    began = time.perf_counter()
    for row in records:
        state = states.get(row["entity_id"])
        if state is None:
            state = states[row["entity_id"]] = engine.new_state()
        engine.apply(state, row["ts"], row)
    return len(records) / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    events = make_events(args.events, args.entities)
    best = float("inf")
    for _ in range(args.repeat):
        began = time.perf_counter()
        out = compute_features(events, FEATURES)
        best = min(best, time.perf_counter() - began)
    assert len(out) == len(events)
    offline = len(events) / best
    online = online_rate(events.iloc[: args.sample])
    print(f"events={len(events):,} entities={events.entity_id.nunique():,} "
          f"features={len(FEATURES.features)}")
    print(f"offline compute_features: {best:.3f} s best of {args.repeat}, {offline:,.0f} events/s")
    print(f"online FeatureEngine ({args.sample:,}-event sample): {online:,.0f} events/s")
    print(f"ratio offline/online: {offline / online:.1f}x")


if __name__ == "__main__":
    main()
