"""An entity's feature state as bytes: versioned msgpack of plain data, never code.

The encoding is one msgpack array (msgspec ``array_like`` structs)::

    [FORMAT_VERSION, feature set identity, allowed_lateness_ms, max_ts,
     buffers: [[cursor, ts deltas, flags, values | nil], ...],
     running: [aggregation data | nil, ...], settled: [aggregation data | nil, ...]]

Buffered times are the first time then differences (small ints), a buffer of one
feature leaves its flags out (all 1), entries no late event can reach are left out, and
each aggregation writes its own ``to_data()`` (ints, floats, strings). :func:`decode`
rebuilds the state only through typed decoding and each aggregation's ``from_data``,
checks that every part fits this engine (version, feature set, lateness, shapes, order
of times, cursors, flags, values its features can read) and raises
:class:`StateDecodeError` for anything else. Nothing is executed.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import accumulate, pairwise
from typing import TYPE_CHECKING, Any

import msgspec

from features.aggregations.base import Scalar
from features.state import Buffer, EntityState

if TYPE_CHECKING:
    from features.engine import FeatureEngine, Group

#: Bump when the layout changes; a state of another version is refused, not guessed at.
FORMAT_VERSION = 1


class StateDecodeError(ValueError):
    """Bytes that are not an entity state written by this engine's feature set."""


class _Header(msgspec.Struct, array_like=True):
    version: int
    feature_set: str
    allowed_lateness_ms: int


class _Buffer(msgspec.Struct, array_like=True):
    cursor: int
    ts: list[int]
    flags: list[int]
    values: list[Scalar] | None


_ENCODER = msgspec.msgpack.Encoder()
_HEADER = msgspec.msgpack.Decoder(_Header)


def encode(engine: FeatureEngine, state: EntityState) -> bytes:
    buffers = []
    for group, buf in zip(engine.groups, state.buffers, strict=True):
        stale = 0 if state.max_ts is None else engine.stale(group, buf, state.max_ts)
        ts = buf.ts[stale:]
        buffers.append(_Buffer(
            cursor=buf.cursor - stale,
            ts=ts[:1] + [b - a for a, b in pairwise(ts)],
            flags=[] if len(group.members) == 1 else buf.flags[stale:],
            values=None if buf.values is None else buf.values[stale:],
        ))
    return _ENCODER.encode((
        FORMAT_VERSION, engine.identity, engine.allowed_lateness_ms, state.max_ts, buffers,
        [None if agg is None else agg.to_data() for agg in state.running],
        [None if agg is None else agg.to_data() for agg in state.settled],
    ))


def decode(engine: FeatureEngine, raw: bytes) -> EntityState:
    try:
        header = _HEADER.decode(raw)
        _check_header(engine, header)
        return _restore(engine, engine.state_layout.decoder.decode(raw))
    except StateDecodeError:
        raise
    # Whatever crafted bytes provoke in msgspec or an aggregation's from_typed (a
    # ValidationError, ValueError, OverflowError, RecursionError, ...) means the same thing.
    except Exception as exc:
        raise StateDecodeError(f"not an entity state of this engine: {exc}") from None


class Layout:
    """How one engine's states decode: a msgspec type made for its feature set, in which
    each aggregation's data has its own ``data_type`` (and is null exactly where the
    engine keeps none), so one typed pass in C checks every type and shape, and what is
    left to Python is what a type cannot say (order of times, cursors, flags)."""

    def __init__(self, engine: FeatureEngine) -> None:
        n = len(engine.plans)
        running = [None if p.running_type.reads_window else p.running_type.data_type
                   for p in engine.plans]
        settled = [p.agg_type.data_type if engine.settles(i) else None
                   for i, p in enumerate(engine.plans)]
        fields = [("version", int), ("feature_set", str), ("allowed_lateness_ms", int),
                  ("max_ts", int | None),
                  ("buffers", tuple[(_Buffer,) * len(engine.groups)] if engine.groups
                   else tuple[()]),
                  ("running", tuple[tuple(running)] if n else tuple[()]),
                  ("settled", tuple[tuple(settled)] if n else tuple[()])]
        self.decoder = msgspec.msgpack.Decoder(
            msgspec.defstruct("_EngineState", fields, array_like=True))
        self.running = [p.running_type for p in engine.plans]
        self.settled = [p.agg_type for p in engine.plans]
        #: Per group: whether a buffered value must be a number to some member (a string
        #: value there is checked by reading it as the member does).
        self.reads_numbers = [
            group.keeps_values and any(engine.plans[i].agg_type.reads == "number"
                                       for _, i in group.members)
            for group in engine.groups]


def _check_header(engine: FeatureEngine, header: _Header) -> None:
    if header.version != FORMAT_VERSION:
        raise StateDecodeError(
            f"state format version {header.version}; this engine reads {FORMAT_VERSION}"
        )
    if header.feature_set != engine.identity:
        raise StateDecodeError(
            f"state of feature set {header.feature_set!r}, not {engine.identity!r}"
        )
    if header.allowed_lateness_ms != engine.allowed_lateness_ms:
        raise StateDecodeError(
            f"state kept for an allowed lateness of {header.allowed_lateness_ms} ms, "
            f"not {engine.allowed_lateness_ms} ms"
        )


def _restore(engine: FeatureEngine, data: Any) -> EntityState:
    layout = engine.state_layout
    running = [None if item is None else kind.from_typed(item)
               for kind, item in zip(layout.running, data.running, strict=True)]
    settled = [None if item is None else kind.from_typed(item)
               for kind, item in zip(layout.settled, data.settled, strict=True)]
    state = EntityState([], running, settled)
    max_ts = state.max_ts = data.max_ts
    for g, (group, item) in enumerate(zip(engine.groups, data.buffers, strict=True)):
        state.buffers.append(_buffer(engine, group, item, max_ts, state.held,
                                     layout.reads_numbers[g]))
    return state


def _buffer(
    engine: FeatureEngine, group: Group, item: _Buffer, max_ts: int | None, held: list[int],
    reads_numbers: bool,
) -> Buffer:
    size = len(item.ts)
    members = group.members
    flags = item.flags
    if len(members) == 1 and not flags:
        flags = [1] * size  # a buffer of one feature leaves its flags out
    values = item.values
    if len(flags) != size or (values is None) == group.keeps_values or (
        values is not None and len(values) != size
    ):
        raise StateDecodeError("a buffer's columns differ in length or kind")
    buf = Buffer.__new__(Buffer)
    buf.flags, buf.values = flags, values
    if not size:
        if item.cursor:
            raise StateDecodeError(f"a buffer's cursor is {item.cursor}, it holds nothing")
        buf.ts, buf.cursor = [], 0
        return buf
    if max_ts is None or min(item.ts[1:], default=0) < 0:
        raise StateDecodeError("buffered times must be in order and need a latest time")
    ts = buf.ts = list(accumulate(item.ts))
    if ts[-1] > max_ts:
        raise StateDecodeError("a buffered time is later than the entity's latest")
    if not group.sheds:
        cursor = bisect_left(ts, max_ts - engine.allowed_lateness_ms)
    else:
        cursor = bisect_right(ts, group.window.start_excl(max_ts))
    if item.cursor != cursor:
        raise StateDecodeError(f"a buffer's cursor is {item.cursor}, its times say {cursor}")
    buf.cursor = cursor
    every = (1 << len(members)) - 1
    if min(flags) <= 0 or max(flags) > every:
        bad = next(f for f in flags if not 0 < f <= every)
        raise StateDecodeError(f"buffer flags {bad} name no feature of the buffer")
    if reads_numbers and any(type(v) is str for v in values):  # type: ignore[union-attr]
        # Only a string can fail to be read as a number (a typed int, float or bool
        # cannot): read each as the features that take it do.
        for k, f in enumerate(flags):
            for bit, i in members:
                if f & bit:
                    engine.plans[i].input_of(ts[k], buf.value(k))
    if group.sheds:
        if len(members) == 1:
            held[members[0][1]] += size - cursor
        else:
            inside = flags[cursor:]
            for bit, i in members:
                held[i] += sum(1 for f in inside if f & bit)
    return buf
