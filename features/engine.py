"""The online incremental engine: one event at a time, per entity, in arrival order.

``FeatureEngine.apply(state, ts, attrs)`` returns every feature "as of ts, inclusive":
the entity's events already applied (this one included) with time in the feature's
window and ``<= ts``. Callers guarantee ``ts >= max_ts - allowed_lateness_ms`` (``max_ts``
the highest time applied to the entity); otherwise :class:`LateEventError`.

What an entity's state keeps (all picklable, all bounded):

- ``running[i]``, per feature: the aggregation over the current window and, for
  sliding/tumbling/hopping windows, a FIFO ``held`` of the ``(ts, input)`` pairs inside
  it. An in-order event (``ts >= max_ts``) first evicts from the front of the FIFO
  everything at or before the window start (``revert``), then updates: O(1) amortised
  per feature. The FIFO holds only events still in the window; when it empties the
  aggregation restarts from scratch. Per aggregation: count/last/seconds_since_previous
  a few numbers; sum/mean/variance/stddev double-double sums of values added and
  reverted; min/max a monotonic deque; first the values held; count_distinct a multiset.
  Lifetime windows keep no FIFO and their aggregations keep only the extreme/first
  value, a count or the sums (count_distinct: the distinct values ever seen).
- ``buffer`` (only when ``allowed_lateness_ms > 0``): the events of the last
  ``allowed_lateness_ms + longest window`` ms, sorted by ``(ts, arrival)``, with their
  per-feature inputs. A late event can only reach back that far. Old entries are cut
  in batches, so the buffer holds at most about 9/8 of that.
- ``settled``, per lifetime feature: the aggregation of the buffered events older than
  ``max_ts - allowed_lateness_ms`` (the first ``settled_upto`` entries of the buffer and
  all events cut from it). Every event still to come is later than those, so they are
  in every future lifetime value.

An out-of-order event (``max_ts - lateness <= ts < max_ts``) is inserted into the
buffer and its values are folded from the buffer slice its windows cover (lifetime:
``settled`` plus the unsettled entries up to ``ts``). Then the running states catch up:
an aggregation whose update and revert ignore order (count, sum, mean, variance,
stddev, count_distinct; and min/max over a lifetime) just adds the event, inserted
into the FIFO at its time; first, last, seconds_since_previous and windowed min/max are
rebuilt from the buffer slice of the current window. Cost: O(events in the event's
windows, or within the lateness), and exact.

>>> from features.spec import FeatureSet
>>> fs = FeatureSet(features=[
...     {"name": "n_10s", "agg": "count", "window": {"kind": "sliding", "size": "10s"}},
...     {"name": "gap", "agg": "seconds_since_previous"},
... ])
>>> engine = FeatureEngine(fs, allowed_lateness_ms=5_000)
>>> state = engine.new_state()
>>> engine.apply(state, 10_000, {})
{'n_10s': 1, 'gap': None}
>>> engine.apply(state, 20_000, {})      # 10 s is exactly on the window start: out
{'n_10s': 1, 'gap': 10.0}
>>> engine.apply(state, 16_000, {})      # late but within 5 s: exact, as of 16 s
{'n_10s': 2, 'gap': 6.0}
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Mapping
from typing import Any

from features.aggregations import Aggregation
from features.plan import SKIP, FeaturePlan, plans_of
from features.spec import FeatureSet

Buffered = tuple[int, int, tuple[Any, ...]]  # (ts, arrival sequence number, inputs)

#: Aggregations whose update and revert do not depend on order: a late event is simply
#: added (and, in a FIFO, inserted where its time puts it, for the revert later).
ORDER_FREE = frozenset({"count", "sum", "mean", "variance", "stddev", "count_distinct"})
#: Lifetime aggregations never revert, so min and max are order-free there too.
LIFETIME_ORDER_FREE = ORDER_FREE | {"min", "max"}
_MIN_CUT = 64  # cut at least this many stale buffer entries at once


def _ts(entry: Buffered) -> int:
    return entry[0]


class LateEventError(ValueError):
    """An event older than the entity's highest time minus the allowed lateness."""


class _Running:
    __slots__ = ("agg", "held")

    def __init__(self, agg: Aggregation, held: deque[tuple[int, Any]] | None) -> None:
        self.agg = agg
        self.held = held


class EntityState:
    """Everything the engine remembers about one entity (see the module docstring)."""

    __slots__ = ("buffer", "max_ts", "running", "seq", "settled", "settled_upto")

    def __init__(self, running: list[_Running], settled: list[Aggregation | None]) -> None:
        self.max_ts: int | None = None
        self.seq = 0
        self.buffer: list[Buffered] = []
        self.settled_upto = 0
        self.running = running
        self.settled = settled


class FeatureEngine:
    """Computes a :class:`FeatureSet` incrementally; state lives outside, per entity."""

    def __init__(self, feature_set: FeatureSet, allowed_lateness_ms: int) -> None:
        if allowed_lateness_ms < 0:
            raise ValueError("allowed_lateness_ms must be >= 0")
        self.feature_set = feature_set
        self.allowed_lateness_ms = int(allowed_lateness_ms)
        self.plans = plans_of(feature_set)
        reach = max((p.window.reach_ms for p in self.plans), default=0)
        self._horizon_ms = self.allowed_lateness_ms + reach
        self._buffered = self.allowed_lateness_ms > 0

    def new_state(self) -> EntityState:
        running = [self._fresh_running(p) for p in self.plans]
        settled = [
            p.new_aggregation() if p.is_lifetime and self._buffered else None for p in self.plans
        ]
        return EntityState(running, settled)

    @staticmethod
    def _fresh_running(plan: FeaturePlan) -> _Running:
        return _Running(plan.new_aggregation(), None if plan.is_lifetime else deque())

    def apply(self, state: EntityState, ts_ms: int, attrs: Mapping[str, Any]) -> dict[str, Any]:
        """Apply one event to ``state`` and return the features as of ``ts_ms``, inclusive."""
        ts = int(ts_ms)
        max_ts = state.max_ts
        if max_ts is not None and ts < max_ts - self.allowed_lateness_ms:
            raise LateEventError(
                f"event at {ts} ms is older than the entity's latest {max_ts} ms minus the "
                f"allowed lateness of {self.allowed_lateness_ms} ms"
            )
        inputs = tuple(p.input_of(ts, attrs) for p in self.plans)
        seq = state.seq
        state.seq += 1
        if max_ts is not None and ts < max_ts:
            return self._apply_out_of_order(state, (ts, seq, inputs))
        state.max_ts = ts
        if self._buffered:
            state.buffer.append((ts, seq, inputs))
            self._settle(state, ts)
        out: dict[str, Any] = {}
        for plan, run, x in zip(self.plans, state.running, inputs, strict=True):
            held = run.held
            if held:
                start = plan.window.start_excl(ts)
                if held[0][0] <= start:
                    while held and held[0][0] <= start:
                        run.agg.revert(held.popleft()[1])
                    if not held:
                        run.agg = plan.new_aggregation()
            agg = run.agg
            if agg.excludes_self:
                out[plan.name] = agg.value_as_of(ts)
            if x is not SKIP:
                agg.update(x)
                if held is not None:
                    held.append((ts, x))
            if not agg.excludes_self:
                out[plan.name] = agg.get()
        return out

    def _settle(self, state: EntityState, max_ts: int) -> None:
        """Fold entries older than the lateness into ``settled``; cut stale ones in batches."""
        buffer = state.buffer
        limit = max_ts - self.allowed_lateness_ms
        while state.settled_upto < len(buffer) and buffer[state.settled_upto][0] < limit:
            inputs = buffer[state.settled_upto][2]
            for agg, x in zip(state.settled, inputs, strict=True):
                if agg is not None and x is not SKIP:
                    agg.update(x)
            state.settled_upto += 1
        stale = bisect_right(buffer, max_ts - self._horizon_ms - 1, key=_ts)
        if stale >= _MIN_CUT and stale * 8 >= len(buffer):
            del buffer[:stale]
            state.settled_upto -= stale

    def _apply_out_of_order(self, state: EntityState, event: Buffered) -> dict[str, Any]:
        ts, seq, inputs = event
        assert state.max_ts is not None
        state.buffer.insert(bisect_right(state.buffer, ts, key=_ts), event)
        out = {}
        for i, plan in enumerate(self.plans):
            skip = seq if plan.agg_type.excludes_self else None
            agg = self._fold(state, i, plan.window.start_excl(ts), ts, None, skip)
            out[plan.name] = agg.value_as_of(ts)
        for i, plan in enumerate(self.plans):
            run, x = state.running[i], inputs[i]
            start = plan.window.start_excl(state.max_ts)
            if plan.agg in (LIFETIME_ORDER_FREE if plan.is_lifetime else ORDER_FREE):
                if x is not SKIP and (start is None or ts > start):
                    run.agg.update(x)
                    if run.held is not None:
                        _insert_in_time_order(run.held, (ts, x))
                continue
            held = None if plan.is_lifetime else deque[tuple[int, Any]]()
            state.running[i] = _Running(self._fold(state, i, start, state.max_ts, held), held)
        return out

    def _fold(
        self,
        state: EntityState,
        i: int,
        start: int | None,
        end: int,
        held: deque[tuple[int, Any]] | None,
        skip_seq: int | None = None,
    ) -> Aggregation:
        """Aggregate feature ``i`` over the buffered events in ``(start, end]``; for a
        lifetime feature, ``settled`` plus the unsettled entries up to ``end``."""
        buffer = state.buffer
        settled = state.settled[i]
        if start is None:
            assert settled is not None
            agg, first = settled.clone(), state.settled_upto
        else:
            agg, first = self.plans[i].new_aggregation(), bisect_right(buffer, start, key=_ts)
        for k in range(first, bisect_right(buffer, end, key=_ts)):
            ts, seq, inputs = buffer[k]
            x = inputs[i]
            if x is not SKIP and seq != skip_seq:
                agg.update(x)
                if held is not None:
                    held.append((ts, x))
        return agg


def _insert_in_time_order(held: deque[tuple[int, Any]], item: tuple[int, Any]) -> None:
    at = len(held)
    while at and held[at - 1][0] > item[0]:
        at -= 1
    held.insert(at, item)
