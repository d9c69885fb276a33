"""What the scorer keeps in its tables, as plain data: msgpack arrays, versioned, never code.

Every table value starts with a format version. Decoding never executes anything: a value
that is not valid msgpack of the expected shape and version raises
:class:`StateDecodeError`, which the scorer counts (``streambed_state_decode_errors_total``)
and logs with the key, then treats the entry as absent.

- ``entities``: per entity, the feature-engine state (its own versioned encoding, from
  :meth:`features.FeatureEngine.encode_state`) and the offset of the last event applied
  (its partition is the entity's, so a redelivered event is recognised).
- ``pending``: per scored event (key: event_id), what its label will need: the features
  as scored, score, decision, model version, groups, event time and source position, and
  once joined the label. Expired on event time (label TTL).
- ``held``: per label that arrived before its event (key: event_id), the label. Expired
  on event time (label TTL) and capped.
- ``partitions``: per partition number, the watermarks and the next offsets due on the
  events and labels partitions of that number.

>>> raw = encode(Pending(entity_id="u1", ts_ms=5, partition=0, offset=7,
...                      features={"n": 1}, score=0.5, decision=1, model_version="v1",
...                      groups={"group": "A"}, scored_at=9))
>>> decode(raw, Pending).offset
7
>>> decode(b"\\x80", Pending)
Traceback (most recent call last):
...
streams.scorer.state.StateDecodeError: not a Pending record: Expected `array`, got `object`
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

#: The format version written into every value; older or newer versions are refused.
FORMAT_VERSION = 1

FeatureValue = int | float | str | bool | None


class StateDecodeError(ValueError):
    """A table value that is not a valid plain-data record of the expected kind."""


class Versioned(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """Base of every table value: encoded as a msgpack array whose first item is the version."""

    v: int = FORMAT_VERSION


class EntityEntry(Versioned, kw_only=True):
    features: bytes
    last_offset: int = -1
    #: The feature values as of the entity's latest event (what ``/features`` answers).
    latest: dict[str, FeatureValue] | None = None
    latest_ts_ms: int | None = None


class HeldLabel(Versioned, kw_only=True):
    entity_id: str
    label: int
    ts_ms: int
    topic: str
    partition: int
    offset: int


class Pending(Versioned, kw_only=True):
    entity_id: str
    ts_ms: int
    partition: int
    offset: int
    #: The features as scored (None only in entries written before labels were kept).
    features: dict[str, FeatureValue] | None
    score: float
    decision: int
    model_version: str
    groups: dict[str, str]
    scored_at: int
    labelled: bool = False
    #: The label that joined, kept with the features for the label TTL: after a crash
    #: the event or the label may be delivered again while the example was never
    #: acknowledged, and the same example is sent again (the learner drops repeats).
    label: HeldLabel | None = None


class PartitionState(Versioned, kw_only=True):
    #: Highest event time seen on the events partition (None before the first event).
    watermark_ms: int | None = None
    next_offset: int = 0
    #: Highest label time seen on the labels partition of the same number.
    label_watermark_ms: int | None = None
    #: The next offset due on that labels partition (0 when none was processed).
    next_label_offset: int = 0

    def clock_ms(self) -> int | None:
        """The partition's event-time clock: the later of its event and label watermarks."""
        marks = [m for m in (self.watermark_ms, self.label_watermark_ms) if m is not None]
        return max(marks) if marks else None


T = TypeVar("T", bound=Versioned)

_ENCODER = msgspec.msgpack.Encoder()
_DECODERS: dict[type, msgspec.msgpack.Decoder] = {}


def encode(record: Versioned) -> bytes:
    return _ENCODER.encode(record)


def decode(raw: bytes, kind: type[T]) -> T:
    """Decode one table value of ``kind``; anything else raises :class:`StateDecodeError`."""
    decoder = _DECODERS.get(kind)
    if decoder is None:
        decoder = _DECODERS[kind] = msgspec.msgpack.Decoder(kind)
    try:
        record = decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError, TypeError, ValueError) as exc:
        raise StateDecodeError(f"not a {kind.__name__} record: {exc}") from None
    if record.v != FORMAT_VERSION:
        raise StateDecodeError(f"{kind.__name__} format version {record.v} is not "
                               f"{FORMAT_VERSION}")
    return record
