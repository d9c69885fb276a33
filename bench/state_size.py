"""Measure an entity's encoded feature state for a config's features (docs/features.md,
"State size and capacity").

    python bench/state_size.py [examples/quickstart.yaml] [--caps 65536,262144]

One entity, events at a steady rate with the config's allowed lateness; amounts are
random cents, channels random. Prints the fixed part (aggregations, no buffered
events), the bytes each buffered event costs per buffer, the largest state over a day
once every window is full, and the most events per day one entity can have for its
state to stay under each cap.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's features

from features import FeatureEngine, FeatureSet
from features.spec import parse_duration_ms

DAY_MS = 86_400_000
START_MS = 1_700_006_400_000  # a UTC midnight


def _engine(config: Path) -> FeatureEngine:
    raw = yaml.safe_load(config.read_text())
    lateness = raw["event"].get("allowed_lateness")
    lateness = parse_duration_ms(lateness) if lateness else 0
    return FeatureEngine(FeatureSet(features=raw["features"]), lateness)


def _run(engine: FeatureEngine, per_day: int, days: int = 2, seed: int = 7):
    """Apply ``days`` of events; return the state just before the last midnight (the
    daily tumbling window's fullest moment) and the largest size seen on the last day."""
    rnd = random.Random(seed)
    state = engine.new_state()
    step = DAY_MS / per_day
    largest = 0
    for i in range(days * per_day):
        ts = START_MS + int(i * step) + 1
        engine.apply(state, ts, {
            "amount": rnd.randint(100, 5_000_000) / 100, "income": rnd.randint(20, 200) * 1e3,
            "credit_score": rnd.randint(300, 850), "channel": rnd.choice(["web", "branch",
                                                                          "partner"]),
        })
        if i >= (days - 1) * per_day and (i % max(1, per_day // 50) == 0 or
                                          i == days * per_day - 1):
            largest = max(largest, engine.encoded_size(state))
    return state, largest


def _without_buffers(engine: FeatureEngine, state, keep: set[int] = frozenset()):
    copy = engine.decode_state(engine.encode_state(state))
    for g, buf in enumerate(copy.buffers):
        if g not in keep:
            buf.ts, buf.flags, buf.cursor = [], [], 0
            buf.values = None if buf.values is None else []
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="examples/quickstart.yaml", type=Path)
    parser.add_argument("--caps", default="65536,262144")
    args = parser.parse_args()
    engine = _engine(args.config)
    state, largest = _run(engine, per_day=1_440)
    fixed = engine.encoded_size(_without_buffers(engine, state))
    print(f"{args.config}: {len(engine.plans)} features, {len(engine.groups)} buffers, "
          f"allowed lateness {engine.allowed_lateness_ms} ms")
    print(f"fixed part (aggregations, no buffered events): {fixed} bytes")
    print("\nat one event a minute (1,440 a day), just before midnight:")
    print("| buffer (features) | window | entries | bytes | bytes per entry |")
    print("| --- | --- | --- | --- | --- |")
    for g, group in enumerate(engine.groups):
        alone = engine.encoded_size(_without_buffers(engine, state, keep={g})) - fixed
        entries = len(state.buffers[g]) - engine.stale(group, state.buffers[g], state.max_ts)
        names = ", ".join(engine.plans[i].name for _, i in group.members)
        per = f"{alone / entries:.1f}" if entries else "-"
        print(f"| {names} | {group.window} | {entries} | {alone} | {per} |")
    print(f"\nlargest encoded state over the second day: {largest} bytes")
    for cap in (int(c) for c in args.caps.split(",")):
        lo, hi = 1, 200_000  # events per day: lo fits, hi does not
        while hi - lo > max(1, lo // 100):
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if _run(engine, mid)[1] <= cap else (lo, mid)
        print(f"cap {cap} bytes: up to about {lo} events per entity per day "
              f"({lo / 24:.0f} an hour) at a steady rate")


if __name__ == "__main__":
    main()
