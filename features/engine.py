"""The online incremental engine: one event at a time, per entity, in arrival order.

``FeatureEngine.apply(state, ts, attrs)`` returns every feature "as of ts, inclusive":
the entity's events already applied (this one included) with time in the feature's
window and ``<= ts``. Callers guarantee ``ts >= max_ts - allowed_lateness_ms`` (``max_ts``
the highest time applied to the entity); otherwise :class:`LateEventError`. A value that
is not finite (a sum beyond ±1.8e308, an infinite input) is reported as null.

The state (:mod:`features.state`) is plain data, encoded with :meth:`encode_state` and
:meth:`decode_state` (:mod:`features.codec`). Per feature it keeps the aggregation over
the current window, O(1) for most aggregations; per (field, window) ONE shared buffer of
the ``(time, value, flags)`` entries its features need. A sliding or hopping window
sheds events one by one: its buffer holds the events still inside it (a revert needs
the value leaving) and, with ``allowed_lateness_ms > 0``, those a late event's window
can still reach. An in-order event (``ts >= max_ts``) moves the buffer's cursor past the
entries at or before its window start, reverting them from the features that hold
them (an aggregation restarts from scratch when it holds nothing), appends itself, and
updates: O(1) amortised per feature. Lifetime and tumbling windows never revert (a
tumbling window restarts when the next begins); with lateness their buffer holds the
events within it, and ``settled`` the window's older events.

An out-of-order event (``max_ts - lateness <= ts < max_ts``) is inserted into the buffers
and its values are folded from the buffer slice its windows cover (from ``settled``
when it holds the window's older events). Then the running states catch up: an
aggregation that declares itself ``order_free`` just adds the event (if it is in the
current window); the others are rebuilt from the current window's slice. Cost: O(events
in the event's windows, or within the lateness), and exact.

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
>>> state = engine.decode_state(engine.encode_state(state))
>>> engine.apply(state, 16_000, {})      # late but within 5 s: exact, as of 16 s
{'n_10s': 2, 'gap': 6.0}
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import chain
from typing import Any

from features import codec
from features.aggregations import Aggregation
from features.plan import SKIP, FeaturePlan, plans_of
from features.spec import FeatureSet
from features.state import Buffer, EntityState
from features.windows import TimeWindow

_MIN_CUT = 64  # cut at least this many stale buffer entries at once (or an eighth)
_GROUP_SIZE = 62  # features per buffer: flags stay one msgpack int


class LateEventError(ValueError):
    """An event older than the entity's highest time minus the allowed lateness."""


@dataclass(frozen=True)
class Group:
    """Features sharing one buffer: the same field (or none) and the same window."""

    window: TimeWindow
    #: Events leave the window one by one (sliding, hopping): the buffer holds the events
    #: inside it. Otherwise (lifetime, tumbling) it holds the lateness and ``settled``
    #: the older events of the window.
    sheds: bool
    keeps_values: bool
    #: (flag bit, feature index) of each member, in feature order.
    members: tuple[tuple[int, int], ...]


class FeatureEngine:
    """Computes a :class:`FeatureSet` incrementally; state lives outside, per entity.

    :meth:`apply` raises ``LateEventError`` (a ``ValueError``) for an event older than
    the lateness allows and ``ValueError`` naming the feature when a numeric feature's
    field holds a non-number; in both cases the state is left exactly as it was.
    :meth:`decode_state` raises :class:`~features.codec.StateDecodeError` (a
    ``ValueError``) for anything but a state this engine's feature set wrote.
    """

    def __init__(self, feature_set: FeatureSet, allowed_lateness_ms: int) -> None:
        if allowed_lateness_ms < 0:
            raise ValueError("allowed_lateness_ms must be >= 0")
        self.feature_set = feature_set
        self.identity = feature_set.identity
        self.allowed_lateness_ms = int(allowed_lateness_ms)
        self.plans = plans_of(feature_set)
        self.groups, self.group_of = self._group(self.plans, self.allowed_lateness_ms > 0)

    @staticmethod
    def _group(
        plans: Sequence[FeaturePlan], buffered: bool
    ) -> tuple[list[Group], list[tuple[int, int] | None]]:
        """One buffer per (field, window) with at most ``_GROUP_SIZE`` features; lifetime
        and tumbling features need one only when lateness is allowed."""
        members: dict[tuple[Any, ...], list[int]] = {}
        for i, plan in enumerate(plans):
            if not plan.window.sheds_events and not buffered:
                continue
            key = (plan.field, plan.window)
            chunk = 0
            while len(members.setdefault((*key, chunk), [])) >= _GROUP_SIZE:
                chunk += 1
            members[(*key, chunk)].append(i)
        groups: list[Group] = []
        group_of: list[tuple[int, int] | None] = [None] * len(plans)
        for g, indices in enumerate(members.values()):
            first = plans[indices[0]]
            groups.append(Group(
                window=first.window,
                sheds=first.window.sheds_events,
                keeps_values=any(plans[i].agg_type.reads_field() for i in indices),
                members=tuple((1 << j, i) for j, i in enumerate(indices)),
            ))
            for j, i in enumerate(indices):
                group_of[i] = (g, 1 << j)
        return groups, group_of

    def new_state(self) -> EntityState:
        buffers = [Buffer(g.keeps_values) for g in self.groups]
        running = [
            None if p.running_type.reads_window else p.new_aggregation() for p in self.plans
        ]
        settled: list[Aggregation | None] = [
            p.agg_type() if self.settles(i) else None for i, p in enumerate(self.plans)
        ]
        return EntityState(buffers, running, settled)

    # -- the state as bytes ---------------------------------------------------------------

    def settles(self, i: int) -> bool:
        """Whether feature ``i`` folds events older than the lateness into ``settled``."""
        return not self.plans[i].window.sheds_events and self.group_of[i] is not None

    def encode_state(self, state: EntityState) -> bytes:
        """The state as versioned msgpack plain data (see :mod:`features.codec`)."""
        return codec.encode(self, state)

    @cached_property
    def state_layout(self) -> codec.Layout:
        """How this engine's states decode (built once, on first use)."""
        return codec.Layout(self)

    def decode_state(self, raw: bytes) -> EntityState:
        """The state :meth:`encode_state` wrote, or :class:`~features.codec.StateDecodeError`."""
        return codec.decode(self, raw)

    def encoded_size(self, state: EntityState) -> int:
        return len(self.encode_state(state))

    # -- applying events ------------------------------------------------------------------

    def apply(self, state: EntityState, ts_ms: int, attrs: Mapping[str, Any]) -> dict[str, Any]:
        """Apply one event to ``state`` and return the features as of ``ts_ms``, inclusive."""
        ts = int(ts_ms)
        max_ts = state.max_ts
        if max_ts is not None and ts < max_ts - self.allowed_lateness_ms:
            raise LateEventError(
                f"event at {ts} ms is older than the entity's latest {max_ts} ms minus the "
                f"allowed lateness of {self.allowed_lateness_ms} ms"
            )
        values = [p.value_of(attrs) for p in self.plans]  # raises before anything changes
        if max_ts is not None and ts < max_ts:
            out = self._apply_out_of_order(state, ts, values)
        else:
            out = self._apply_in_order(state, ts, values)
        return {name: _finite_or_none(v) for name, v in out.items()}

    def _apply_in_order(self, state: EntityState, ts: int, values: list[Any]) -> dict[str, Any]:
        before, state.max_ts = state.max_ts, ts
        if before is not None:
            for i, plan in enumerate(self.plans):
                window = plan.window
                if not window.sheds_events and window.start_excl(ts) != window.start_excl(before):
                    state.running[i] = plan.new_aggregation()  # a new tumbling window
        for group, buf in zip(self.groups, state.buffers, strict=True):
            if group.sheds:
                self._evict(state, group, buf, group.window.start_excl(ts))
            else:
                lateness = self.allowed_lateness_ms
                previous = None if before is None else before - lateness
                self._settle(state, group, buf, ts - lateness, previous)
            flags, value = _entry(group, values)
            if flags:
                buf.ts.append(ts)
                buf.flags.append(flags)
                if buf.values is not None:
                    buf.values.append(value)
            self._cut(group, buf, ts)
        out: dict[str, Any] = {}
        for i, plan in enumerate(self.plans):
            x = SKIP if values[i] is SKIP else plan.input_of(ts, values[i])
            agg = state.running[i]
            if agg is None:
                out[plan.name] = self._read_window(state, i, ts, ())
                continue
            out[plan.name] = _value_with(agg, ts, x)
            if x is not SKIP and plan.window.sheds_events:
                state.held[i] += 1
        return out

    def _evict(self, state: EntityState, group: Group, buf: Buffer, start: int | None) -> None:
        """Move the cursor past entries at or before ``start``, reverting them."""
        assert start is not None
        k, times = buf.cursor, buf.ts
        while k < len(times) and times[k] <= start:
            flags = buf.flags[k]
            for bit, i in group.members:
                if flags & bit and state.running[i] is not None:
                    state.held[i] -= 1
                    if state.held[i] <= 0:  # held nothing more: restart from scratch
                        state.held[i] = 0
                        state.running[i] = self.plans[i].new_aggregation()
                    else:
                        state.running[i].revert(self.plans[i].input_of(times[k], buf.value(k)))
            k += 1
        buf.cursor = k

    def _settle(
        self, state: EntityState, group: Group, buf: Buffer, limit: int, before: int | None
    ) -> None:
        """Fold entries older than ``limit`` (the lateness) into ``settled``: the
        aggregation of the settled events of the window ``limit`` is in (``before``: the
        previous limit). Settled events of older windows no late event can reach."""
        start = group.window.start_excl(limit)
        if before is not None and start != group.window.start_excl(before):
            for _, i in group.members:
                state.settled[i] = self.plans[i].agg_type()
        k, times = buf.cursor, buf.ts
        while k < len(times) and times[k] < limit:
            flags = buf.flags[k]
            if start is None or times[k] > start:
                for bit, i in group.members:
                    settled = state.settled[i]
                    if flags & bit and settled is not None:
                        settled.update(self.plans[i].input_of(times[k], buf.value(k)))
            k += 1
        buf.cursor = k

    def stale(self, group: Group, buf: Buffer, max_ts: int) -> int:
        """How many entries at the front no late event can need any more."""
        if not group.sheds:
            return buf.cursor
        cut = group.window.start_excl(max_ts - self.allowed_lateness_ms)
        assert cut is not None
        return bisect_right(buf.ts, cut, 0, buf.cursor)

    def _cut(self, group: Group, buf: Buffer, max_ts: int) -> None:
        stale = self.stale(group, buf, max_ts)
        if stale and (stale >= _MIN_CUT or stale * 8 >= len(buf)):
            del buf.ts[:stale], buf.flags[:stale]
            if buf.values is not None:
                del buf.values[:stale]
            buf.cursor -= stale

    def _apply_out_of_order(
        self, state: EntityState, ts: int, values: list[Any]
    ) -> dict[str, Any]:
        max_ts = state.max_ts
        assert max_ts is not None
        out: dict[str, Any] = {}
        inputs = [
            SKIP if v is SKIP else p.input_of(ts, v)
            for p, v in zip(self.plans, values, strict=True)
        ]
        for i, plan in enumerate(self.plans):
            start = plan.window.start_excl(ts)
            if state.running[i] is None:
                out[plan.name] = self._read_window(state, i, ts, (inputs[i],))
            else:
                out[plan.name] = _value_with(self._fold(state, i, start, ts)[0], ts, inputs[i])
        for group, buf in zip(self.groups, state.buffers, strict=True):
            flags, value = _entry(group, values)
            if flags:
                at = bisect_right(buf.ts, ts)
                buf.ts.insert(at, ts)
                buf.flags.insert(at, flags)
                if buf.values is not None:
                    buf.values.insert(at, value)
                if group.sheds and ts <= group.window.start_excl(max_ts):
                    buf.cursor += 1  # before the current window: only for later late events
        for i, plan in enumerate(self.plans):
            agg = state.running[i]
            if agg is None:
                continue
            start = plan.window.start_excl(max_ts)
            if agg.order_free:
                if inputs[i] is not SKIP and (start is None or ts > start):
                    agg.update(inputs[i])
                    if plan.window.sheds_events:
                        state.held[i] += 1
            else:
                state.running[i], held = self._fold(state, i, start, max_ts)
                state.held[i] = held if plan.window.sheds_events else 0
        return out

    def _entries(
        self, state: EntityState, i: int, lo: int | None, start: int | None, end: int
    ) -> Iterator[Any]:
        """Feature ``i``'s inputs buffered in ``(start, end]`` in (time, arrival) order;
        from entry ``lo`` if given (a lifetime's ``start`` is None: the unsettled ones)."""
        at = self.group_of[i]
        assert at is not None, "only buffered features are read from a buffer"
        g, bit = at
        buf = state.buffers[g]
        if lo is None:
            lo = buf.cursor if start is None else bisect_right(buf.ts, start)
        input_of = self.plans[i].input_of
        for k in range(lo, bisect_right(buf.ts, end)):
            if buf.flags[k] & bit:
                yield input_of(buf.ts[k], buf.value(k))

    def _fold(
        self, state: EntityState, i: int, start: int | None, end: int
    ) -> tuple[Aggregation, int]:
        """Aggregate feature ``i`` over its buffered inputs in ``(start, end]``, with how
        many; when ``settled`` holds the window's older events, from it and the unsettled
        entries."""
        settled, plan, at = state.settled[i], self.plans[i], self.group_of[i]
        assert state.max_ts is not None and at is not None
        lo = None
        if settled is not None and start == plan.window.start_excl(
            state.max_ts - self.allowed_lateness_ms
        ):
            agg, lo = settled.clone(), state.buffers[at[0]].cursor
        else:
            agg = plan.new_aggregation()
        n = 0
        for x in self._entries(state, i, lo, start, end):
            agg.update(x)
            n += 1
        return agg, n

    def _read_window(self, state: EntityState, i: int, ts: int, extra: tuple[Any, ...]) -> Any:
        """The value of a feature read from its window's buffer (``first``), as of ``ts``;
        ``extra``: the event itself when it is not buffered yet."""
        plan = self.plans[i]
        held = self._entries(state, i, None, plan.window.start_excl(ts), ts)
        return plan.running_type.read(chain(held, (x for x in extra if x is not SKIP)))


def _entry(group: Group, values: Sequence[Any]) -> tuple[int, Any]:
    """The flags of an event in a group's buffer, and the value to keep."""
    flags, value = 0, None
    for bit, i in group.members:
        if values[i] is not SKIP:
            flags |= bit
            value = values[i]
    return flags, value


def _value_with(agg: Aggregation, ts: int, x: Any) -> Any:
    """Add input ``x`` (unless SKIP) and return the feature value as of ``ts``."""
    if agg.excludes_self:
        value = agg.value_as_of(ts)
        if x is not SKIP:
            agg.update(x)
        return value
    if x is not SKIP:
        agg.update(x)
    return agg.get()


def _finite_or_none(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


__all__ = ["EntityState", "FeatureEngine", "Group", "LateEventError"]
