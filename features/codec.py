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


class _State(msgspec.Struct, array_like=True):
    version: int
    feature_set: str
    allowed_lateness_ms: int
    max_ts: int | None
    buffers: list[_Buffer]
    running: list[list[Any] | None]
    settled: list[list[Any] | None]


_ENCODER = msgspec.msgpack.Encoder()
_HEADER = msgspec.msgpack.Decoder(_Header)
_STATE = msgspec.msgpack.Decoder(_State)


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
    return _ENCODER.encode(_State(
        version=FORMAT_VERSION,
        feature_set=engine.identity,
        allowed_lateness_ms=engine.allowed_lateness_ms,
        max_ts=state.max_ts,
        buffers=buffers,
        running=[None if agg is None else agg.to_data() for agg in state.running],
        settled=[None if agg is None else agg.to_data() for agg in state.settled],
    ))


def decode(engine: FeatureEngine, raw: bytes) -> EntityState:
    try:
        header = _HEADER.decode(raw)
        _check_header(engine, header)
        return _restore(engine, _STATE.decode(raw))
    except StateDecodeError:
        raise
    # Whatever crafted bytes provoke in msgspec or an aggregation's from_data (a
    # ValidationError, ValueError, OverflowError, RecursionError, ...) means the same thing.
    except Exception as exc:
        raise StateDecodeError(f"not an entity state of this engine: {exc}") from None


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


def _restore(engine: FeatureEngine, data: _State) -> EntityState:
    n = len(engine.plans)
    if len(data.buffers) != len(engine.groups) or len(data.running) != n or len(
        data.settled
    ) != n:
        raise StateDecodeError("the state's shape does not match the feature set")
    running = []
    for plan, item in zip(engine.plans, data.running, strict=True):
        kind = plan.running_type
        if (item is None) != kind.reads_window:
            raise StateDecodeError(f"feature {plan.name!r}: running state missing or extra")
        running.append(None if item is None else kind.from_data(item))
    settled = []
    for i, (plan, item) in enumerate(zip(engine.plans, data.settled, strict=True)):
        if (item is None) == engine.settles(i):
            raise StateDecodeError(f"feature {plan.name!r}: settled state missing or extra")
        settled.append(None if item is None else plan.agg_type.from_data(item))
    state = EntityState([], running, settled)
    state.max_ts = data.max_ts
    for group, item in zip(engine.groups, data.buffers, strict=True):
        state.buffers.append(_buffer(engine, group, item, data.max_ts, state.held))
    return state


def _buffer(
    engine: FeatureEngine, group: Group, item: _Buffer, max_ts: int | None, held: list[int]
) -> Buffer:
    size = len(item.ts)
    if len(group.members) == 1 and not item.flags:
        item.flags = [1] * size  # a buffer of one feature leaves its flags out
    if len(item.flags) != size or (item.values is None) == group.keeps_values or (
        item.values is not None and len(item.values) != size
    ):
        raise StateDecodeError("a buffer's columns differ in length or kind")
    if size and (max_ts is None or min(item.ts[1:], default=0) < 0):
        raise StateDecodeError("buffered times must be in order and need a latest time")
    buf = Buffer(group.keeps_values)
    buf.ts = list(accumulate(item.ts))
    buf.flags = item.flags
    buf.values = item.values
    if size and buf.ts[-1] > max_ts:  # type: ignore[operator]
        raise StateDecodeError("a buffered time is later than the entity's latest")
    if max_ts is None:
        cursor = 0
    elif not group.sheds:
        cursor = bisect_left(buf.ts, max_ts - engine.allowed_lateness_ms)
    else:
        cursor = bisect_right(buf.ts, group.window.start_excl(max_ts))
    if item.cursor != cursor:
        raise StateDecodeError(f"a buffer's cursor is {item.cursor}, its times say {cursor}")
    buf.cursor = cursor
    every = (1 << len(group.members)) - 1
    for k, flags in enumerate(buf.flags):
        if not 0 < flags <= every:
            raise StateDecodeError(f"buffer flags {flags} name no feature of the buffer")
        for bit, i in group.members:
            if flags & bit:
                engine.plans[i].input_of(buf.ts[k], buf.value(k))  # a value it can read
                if k >= cursor and group.sheds:
                    held[i] += 1
    return buf
