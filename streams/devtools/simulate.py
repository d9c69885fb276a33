"""Synthetic events and delayed labels for any config: deterministic for a given seed.

Entities belong to one demographic group each; attributes are drawn per the event schema;
the true outcome follows a fixed logistic rule over the numeric attributes, so a model has
something real to learn. From chosen points of the stream on, the simulator can inject
feature drift (numeric attributes shifted for everyone) and a group disparity (numeric
attributes inflated for one group while its true outcomes stay as they were, so the
model's decisions for that group get worse — the harm the monitors must catch).
A fraction of records can be replaced by malformed ones of every kind the worker rejects.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from streams.config import Attribute, Config

#: The true outcome is logistic in the standardised numeric attributes, with weights of
#: alternating sign; the intercept puts the positive rate near 40%.
TRUE_WEIGHT = 1.2
TRUE_INTERCEPT = 0.5
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: fixed, so a seed gives the same stream


class SimulationOptions(BaseModel):
    """How much, how fast, and what to inject."""

    count: int = Field(default=1000, ge=0)
    seed: int = 7
    entities: int = Field(default=200, ge=1)
    groups: list[str] = Field(default_factory=lambda: ["A", "B", "C"])
    mean_gap_ms: int = Field(default=30_000, gt=0, description="mean event-time gap")
    disorder_ms: int = Field(default=0, ge=0, description="max backwards jitter of event time")
    label_ratio: float = Field(default=1.0, ge=0, le=1)
    label_delay_ms: int = Field(default=3_600_000, ge=0, description="mean label delay")
    malformed_ratio: float = Field(default=0.0, ge=0, le=1)
    drift_at: float | None = Field(default=None, ge=0, le=1, description="fraction of count")
    disparity_at: float | None = Field(default=None, ge=0, le=1)
    disparity_group: str = "B"
    start_ms: int = START_MS


@dataclass(frozen=True)
class SimRecord:
    kind: Literal["event", "label"]
    key: str
    value: bytes
    valid: bool
    ts_ms: int


_BAD_KINDS = ("malformed_json", "not_an_object", "missing_field", "wrong_type",
              "unknown_field", "bad_timestamp", "out_of_range", "too_large")
#: Bytes of padding that make a "too_large" record exceed any sane max_payload_bytes.
_HUGE_PAYLOAD_BYTES = 1_048_576 - 4096


class Simulator:
    """Yields events and labels in the order a real source would emit them."""

    def __init__(self, config: Config, opts: SimulationOptions) -> None:
        self.config = config
        self.opts = opts
        self.rng = np.random.default_rng(opts.seed)
        s = config.event
        group_attr = s.attributes.get(s.group_field)
        groups = group_attr.values if group_attr and group_attr.values else opts.groups
        self.groups = list(groups)
        self.entity_group = [self.groups[i % len(self.groups)] for i in range(opts.entities)]
        # Sorted, so the stream depends on the schema, not on the order the file lists it in.
        self.attributes = sorted((n, a) for n, a in s.attributes.items() if n != s.group_field)
        self.numeric = [n for n, a in self.attributes if a.type in ("float", "int")]
        # A fixed "true" weight per numeric attribute: the ground truth the model learns.
        self.true_weights = {n: TRUE_WEIGHT * (1 if i % 2 == 0 else -1)
                             for i, n in enumerate(self.numeric)}

    def _draw(self, attr: Attribute) -> tuple[object, float]:
        """A value for one attribute, and where it stands in its distribution (z-score)."""
        rng = self.rng
        if attr.type == "str":
            values = attr.values or ["x", "y", "z"]
            return values[int(rng.integers(len(values)))], 0.0
        if attr.type == "bool":
            return bool(rng.random() < 0.5), 0.0
        lo = attr.minimum if attr.minimum is not None else 0.0
        hi = attr.maximum if attr.maximum is not None else lo + 1000.0
        if attr.type == "int":
            u = float(rng.beta(5, 3))  # mean 5/8, standard deviation about 0.161
            return round(lo + u * (hi - lo)), (u - 0.625) / 0.161
        mu = math.log(hi - lo + 1) - 1.5
        raw = float(rng.normal(mu, 0.6))
        return round(lo + math.exp(raw), 2), (raw - mu) / 0.6

    def records(self) -> Iterator[SimRecord]:
        """Events and labels interleaved by emission time (a label after its event)."""
        o, s = self.opts, self.config.event
        labels: list[tuple[int, int, SimRecord]] = []  # (emit at, seq, record), kept sorted
        clock = o.start_ms
        for i in range(o.count):
            clock += max(1, int(self.rng.exponential(o.mean_gap_ms)))
            while labels and labels[0][0] <= clock:
                yield labels.pop(0)[2]
            ts = clock - (int(self.rng.integers(0, o.disorder_ms + 1)) if o.disorder_ms else 0)
            entity = int(self.rng.integers(o.entities))
            group = self.entity_group[entity]
            drift = o.drift_at is not None and i >= o.drift_at * o.count
            disparity = (o.disparity_at is not None and i >= o.disparity_at * o.count
                         and group == o.disparity_group)
            drawn = {n: self._draw(a) for n, a in self.attributes}
            attrs = {n: value for n, (value, _) in drawn.items()}
            z = sum(self.true_weights[n] * drawn[n][1] for n in self.numeric)
            truth = 1 / (1 + math.exp(-(z - TRUE_INTERCEPT)))
            for name in self.numeric:
                if disparity:  # look riskier than they are: the truth was drawn above
                    factor = 2.5 if self.true_weights[name] > 0 else 0.4
                    attrs[name] = _inflate(attrs[name], s.attributes[name], factor)
                if drift:
                    attrs[name] = _inflate(attrs[name], s.attributes[name], 1.6)
            event = {s.id_field: f"e{o.seed}-{i}", s.entity_field: f"u{entity}",
                     s.time_field: _format_time(ts, s.time_format), s.group_field: group, **attrs}
            if self.rng.random() < o.malformed_ratio:
                kind = _BAD_KINDS[int(self.rng.integers(len(_BAD_KINDS)))]
                yield SimRecord("event", f"u{entity}", _spoil(event, kind, s.time_field),
                                False, ts)
                continue
            yield SimRecord("event", f"u{entity}", json.dumps(event).encode(), True, ts)
            if self.rng.random() < o.label_ratio:
                delay = int(self.rng.exponential(o.label_delay_ms)) + 1
                label = {"event_id": event[s.id_field], "entity_id": f"u{entity}",
                         "label": int(self.rng.random() < truth), "ts": ts + delay}
                rec = SimRecord("label", f"u{entity}", json.dumps(label).encode(), True,
                                ts + delay)
                labels.append((ts + delay, i, rec))
                labels.sort(key=lambda x: (x[0], x[1]))
        for _, _, rec in labels:
            yield rec


def _inflate(value: object, attr: Attribute, factor: float) -> object:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return value
    if attr.type == "int":
        hi = attr.maximum if attr.maximum is not None else value * factor
        lo = attr.minimum if attr.minimum is not None else 0
        return int(min(hi, lo + (value - lo) * factor))
    return round(value * factor, 2)


def _format_time(ts_ms: int, time_format: str) -> object:
    if time_format == "epoch_seconds":
        return ts_ms / 1000
    if time_format == "iso8601":
        from datetime import UTC, datetime

        return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
    return ts_ms


def _spoil(event: dict[str, object], kind: str, time_field: str) -> bytes:
    """A record the worker must reject, with the given reason."""
    bad = dict(event)
    if kind == "malformed_json":
        return json.dumps(bad).encode()[:-7]
    if kind == "not_an_object":
        return json.dumps([bad]).encode()
    if kind == "missing_field":
        bad.pop("entity_id", None) if "entity_id" in bad else bad.popitem()
    elif kind == "wrong_type":
        bad[time_field] = "yesterday"
    elif kind == "unknown_field":
        bad["unexpected_field"] = 1
    elif kind == "too_large":
        bad["padding"] = "x" * _HUGE_PAYLOAD_BYTES
    elif kind == "bad_timestamp":
        bad[time_field] = 4_102_444_800_000_0  # year 3270: absurd
    elif kind == "out_of_range":
        numeric = [k for k, v in bad.items() if isinstance(v, int | float) and k != time_field]
        if numeric:
            bad[numeric[0]] = -1e9
        else:
            bad["unexpected_field"] = 1
    return json.dumps(bad).encode()
