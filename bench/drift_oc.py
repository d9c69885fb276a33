"""Operating characteristics of the drift test on the quickstart stream (``make drift-oc``).

The quickstart's simulated stream (streams/devtools/simulate.py, the demo's options) goes
through the FEATURE ENGINE (features/: windowed features of one entity are correlated
from event to event, so the test's i.i.d. assumption is put to the proof), then through the
monitors exactly as a scorer runs them: a :class:`monitors.drift.VariableDrift` per
watched feature, its reference set from a version's stored sketch
(:class:`monitors.sketch.DriftReference` of the last N examples before the windows, as a
learner's cut stores it), counting batches into disjoint windows of
``window_seconds × events_per_second`` events (a scorer's windows are wall-clock).

Printed (and appended to docs/monitoring.md by hand):

- the false-alarm rate per feature-window on stationary data, with its 95% Wilson upper
  bound, at the configured per-feature level, with a reference of N and of 500 examples;
- the family-wise rate (any watched feature flagged in a window, each tested at the
  Šidák level): what pausing promotion would see;
- the detection delay in events (onset → end of the first window flagged, median over
  seeds) for mean shifts of 0.25, 0.5 and 1 standard deviation of ``amount`` and for the
  share of ``channel = web`` moving up by 10 points (``channel_last`` is added to the
  watched features for that: the quickstart watches numeric features only).

Run: ``.venv/bin/python bench/drift_oc.py [--seeds 4 --windows 30 ...]``.

``--score-trend`` prints instead why the score is not stationary on this stream although
every watched feature is: the quickstart's model, learned on the first examples and
frozen, scores its last 500 examples (what a version's score reference holds) and each
following window, beside the mean of ``apps_lifetime`` (a lifetime count the model reads).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from featured_stream import featured_events, learned_model  # noqa: E402

from features.engine import FeatureEngine  # noqa: E402
from features.spec import FeatureSet  # noqa: E402
from monitors.chisquare import family_alpha  # noqa: E402
from monitors.config import DriftConfig  # noqa: E402
from monitors.drift import VariableDrift  # noqa: E402
from monitors.intervals import wilson  # noqa: E402
from monitors.sketch import DriftReference  # noqa: E402
from streams.config import Config, load_config  # noqa: E402
from streams.devtools.simulate import SimulationOptions, Simulator  # noqa: E402

CATEGORY_FEATURE = {"name": "channel_last", "agg": "last", "field": "channel"}
#: The demo's simulator options (streams/devtools/demo.py), labels left out.
DEMO_OPTIONS = {"entities": 300, "mean_gap_ms": 20_000, "label_ratio": 0.0}
#: The demo paces 250 records a second, events and labels: about 125 events a second.
DEMO_EVENTS_PER_SECOND = 125.0


@dataclass(frozen=True)
class Shift:
    """A change injected into the raw events from ``at`` (an event index) on."""

    kind: str  # "mean" | "share"
    size: float  # standard deviations of `amount`, or points of the web share

    @property
    def name(self) -> str:
        if self.kind == "mean":
            return f"amount mean +{self.size:g} sd"
        return f"channel web share +{self.size * 100:g} points"


def feature_rows(config: Config, fs: FeatureSet, seed: int, count: int,
                 shift: Shift | None = None, at: int = 0,
                 amount_sd: float = 1.0) -> Iterator[dict[str, object]]:
    """Features of each valid event, in arrival order, the shift applied from ``at``."""
    engine = FeatureEngine(fs, config.event.allowed_lateness_ms)
    states: dict[str, object] = {}
    options = SimulationOptions(count=count, seed=seed, **DEMO_OPTIONS)
    rng = np.random.default_rng(seed + 10_000)
    s = config.event
    attributes = [n for n in s.attributes if n != s.group_field]
    i = 0
    for record in Simulator(config, options).records():
        if record.kind != "event" or not record.valid:
            continue
        event = json.loads(record.value)
        attrs = {n: event.get(n) for n in attributes}
        if shift is not None and i >= at:
            if shift.kind == "mean":
                attrs["amount"] = float(attrs["amount"]) + shift.size * amount_sd
            elif attrs["channel"] != "web" and rng.random() < shift.size / (2 / 3):
                attrs["channel"] = "web"  # web's share is 1/3: this adds `size` to it
        entity = event[s.entity_field]
        state = states.get(entity)
        if state is None:
            state = states[entity] = engine.new_state()
        yield engine.apply(state, int(event[s.time_field]), attrs)  # type: ignore[arg-type]
        i += 1


def score_trend(config: Config, fs: FeatureSet, seed: int, taught: int, windows: int,
                window_events: int) -> None:
    """Mean score of the model learned on the first ``taught`` examples (then frozen) on
    its last 500 examples and on each following window, and ``apps_lifetime``'s mean."""
    options = SimulationOptions(count=taught + windows * window_events, seed=seed,
                                **{**DEMO_OPTIONS, "label_ratio": 1.0})
    rows, labels = featured_events(config, fs, options)
    model = learned_model(config, rows[:taught], labels)
    parts = [("last 500 examples learned", rows[taught - 500:taught])] + [
        (f"window {w + 1}", rows[taught + w * window_events:taught + (w + 1) * window_events])
        for w in range(windows)]
    print(f"\nquickstart model learned on {taught} examples, then frozen (seed {seed})")
    print("\n| events | mean score | mean apps_lifetime |\n| --- | --- | --- |")
    for name, part in parts:
        scores = model.score_batch([f for _, f in part])
        lifetime = statistics.fmean(float(f["apps_lifetime"]) for _, f in part)  # type: ignore[arg-type]
        print(f"| {name} | {statistics.fmean(scores):.3f} | {lifetime:.1f} |", flush=True)


def columns_of(rows: list[dict[str, object]], names: list[str]) -> dict[str, list[object]]:
    return {n: [r.get(n) for r in rows] for n in names}


@dataclass
class Run:
    """Per-feature verdicts of each window after the reference."""

    #: None: no verdict (too few events, or the dispersion not known yet).
    verdicts: dict[str, list[bool | None]]
    window_events: int


def judge(config: DriftConfig, names: list[str], reference: dict[str, list[object]],
          windows: list[dict[str, list[object]]], window_events: int,
          events_per_second: float, alpha: float) -> Run:
    """Feed the windows through one VariableDrift per feature (batches of 250 events at
    the wall-clock time they would arrive) and read each complete window's verdict."""
    sketch = DriftReference.from_columns(reference, ks_bins=config.ks_bins,
                                         max_categories=config.max_categories)
    verdicts: dict[str, list[bool | None]] = {n: [] for n in names}
    for name in names:
        drift = VariableDrift(config, alpha=alpha)
        drift.set_sketch(sketch.features[name])
        seconds = window_events / events_per_second
        for w, window in enumerate(windows):
            values = window[name]
            for start in range(0, len(values), 250):
                now = (w * window_events + start) / events_per_second
                drift.observe_many(values[start:start + 250], now)
            verdict = drift.verdict((w + 1) * seconds)
            judged = not math.isnan(verdict.statistic)
            verdicts[name].append(verdict.detected if judged else None)
    return Run(verdicts, window_events)


def split(rows: list[dict[str, object]], names: list[str], warmup: int, reference: int,
          window_events: int) -> tuple[dict[str, list[object]], list[dict[str, list[object]]]]:
    ref = columns_of(rows[warmup:warmup + reference], names)
    after = rows[warmup + reference:]
    windows = [columns_of(after[i:i + window_events], names)
               for i in range(0, len(after) - window_events + 1, window_events)]
    return ref, windows


def rate_line(label: str, flagged: int, total: int) -> str:
    _low, high = wilson(flagged, total)
    rate = flagged / total if total else math.nan
    return f"| {label} | {total} | {flagged} | {rate:.4f} | {high:.4f} |"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "examples" / "quickstart.yaml"))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--windows", type=int, default=12, help="stationary windows per seed")
    p.add_argument("--events-per-second", type=float, default=DEMO_EVENTS_PER_SECOND)
    p.add_argument("--window-events", type=int, default=0,
                   help="events per window (default: window_seconds x events per second)")
    p.add_argument("--reference", type=int, default=0,
                   help="reference examples (default: drift.reference.examples)")
    p.add_argument("--warmup", type=int, default=3000, help="events before the reference")
    p.add_argument("--shift-windows", type=int, default=2, help="windows after a shift")
    p.add_argument("--no-shifts", action="store_true", help="stationary rates only")
    p.add_argument("--score-trend", action="store_true",
                   help="only the score's trend on this stream (see the module docstring)")
    args = p.parse_args(argv)

    started = time.monotonic()
    config = load_config(args.config)
    drift = config.monitors.drift
    names = [*(drift.features or config.features.names), CATEGORY_FEATURE["name"]]
    # From the file's own text: FeatureSet.model_dump() does not validate back to the same
    # windows (size_ms is dumped, `size` expected: the windows come back lifetime).
    raw = yaml.safe_load(Path(args.config).read_text())["features"]
    fs = FeatureSet.model_validate({"features": [*raw, CATEGORY_FEATURE]})
    window_events = args.window_events or round(drift.window_seconds * args.events_per_second)
    if args.score_trend:
        score_trend(config, fs, 42, 700, 3, args.window_events or 1000)
        return
    # The monitors' windows are window_seconds of wall clock: that many events at this rate.
    drift = drift.model_copy(update={"window_seconds": window_events / args.events_per_second})
    reference_sizes = [args.reference or drift.reference.examples, 500]
    alpha = drift.false_alarm_rate
    per_test = family_alpha(drift.family_false_alarm_rate, len(names))
    print(f"drift-oc: {args.config}, features {names}, window {window_events} events "
          f"({drift.window_seconds:g} s x {args.events_per_second:g}/s), level {alpha} per "
          f"feature-window, family {drift.family_false_alarm_rate} (each {per_test:.5f}), "
          f"min effect PSI {drift.min_effect_psi}, min window {drift.min_window_events}",
          flush=True)

    print("\n| stationary, reference | feature-windows | flagged | rate | 95% upper |")
    print("| --- | --- | --- | --- | --- |")
    largest = max(reference_sizes)
    streams = [list(feature_rows(config, fs, seed,
                                 args.warmup + largest + args.windows * window_events))
               for seed in range(args.seeds)]
    for size in reference_sizes:
        flagged = total = family_flagged = family_total = 0
        worst: dict[str, int] = dict.fromkeys(names, 0)
        for rows in streams:
            # The reference is the last `size` examples before the windows.
            ref, windows = split(rows, names, args.warmup + largest - size, size,
                                 window_events)
            run = judge(drift, names, ref, windows, window_events, args.events_per_second,
                        alpha)
            family = judge(drift, names, ref, windows, window_events,
                           args.events_per_second, per_test)
            for name, v in run.verdicts.items():
                judged = [x for x in v if x is not None]
                flagged += sum(judged)
                total += len(judged)
                worst[name] += sum(judged)
            any_flag = [any(f) for f in zip(*family.verdicts.values(), strict=True)
                        if None not in f]
            family_flagged += sum(any_flag)
            family_total += len(any_flag)
        print(rate_line(f"{size} examples, per feature", flagged, total), flush=True)
        print(rate_line(f"{size} examples, family (any feature)", family_flagged,
                        family_total), flush=True)
        print(f"|   flagged by feature: {worst} | | | | |", flush=True)

    if args.no_shifts:
        print(f"\n{time.monotonic() - started:.0f} s", flush=True)
        return
    size = reference_sizes[0]
    pilot = list(feature_rows(config, fs, 99, args.warmup + size))
    amount_sd = float(np.std([r["amount_last"] for r in pilot if r["amount_last"] is not None]))
    shifts = [Shift("mean", 0.25), Shift("mean", 0.5), Shift("mean", 1.0), Shift("share", 0.10)]
    watched = {"mean": "amount_last", "share": "channel_last"}
    lead = drift.min_dispersion_pairs + 1  # complete windows before the onset's window
    print(f"\namount sd {amount_sd:.1f}; onset a third into window {lead} (the dispersion is "
          f"known by then); delay = onset to the end of the first flagged window (events), "
          f"median over {args.seeds} seeds")
    print("\n| shift | feature | detected (seeds) | median delay (events) | windows |")
    print("| --- | --- | --- | --- | --- |")
    for shift in shifts:
        delays: list[int] = []
        for seed in range(args.seeds):
            onset = args.warmup + size + lead * window_events + window_events // 3
            count = args.warmup + size + (lead + args.shift_windows) * window_events
            rows = list(feature_rows(config, fs, 1000 + seed, count, shift, onset, amount_sd))
            ref, windows = split(rows, names, args.warmup, size, window_events)
            run = judge(drift, [watched[shift.kind]], ref, windows, window_events,
                        args.events_per_second, alpha)
            hits = [w for w, d in enumerate(run.verdicts[watched[shift.kind]]) if d and w >= lead]
            if hits:
                delays.append((hits[0] - lead + 1) * window_events - window_events // 3)
        median = statistics.median(delays) if delays else math.nan
        print(f"| {shift.name} | {watched[shift.kind]} | {len(delays)}/{args.seeds} | "
              f"{median:g} | {median / window_events:.2f} |", flush=True)
    print(f"\n{time.monotonic() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
