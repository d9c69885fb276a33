"""Wire records: the JSON that crosses topics, as pydantic models (JSON Schema comes from here).

The learner's records (``training``, ``model.versions``, ``model.audit``) are defined in
:mod:`governance.records`; :func:`json_schemas` ships all of them.

``events`` carries objects shaped by the configured :class:`~streams.config.EventSchema`
(validated by :mod:`streams.validation`); the other records are fixed by this module.
Times are integer epoch milliseconds in UTC.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Literal

import msgspec
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    create_model,
)

from governance.records import Source
from governance.records import json_schemas as governance_schemas
from streams.config import EventSchema
from streams.config import (  # defined beside the config rule that uses it
    dead_letter_overhead_bytes as dead_letter_overhead_bytes,
)

#: A feature value: a number, a text (first/last of a string field), or null.
FeatureValue = int | float | str | None
_JSON = msgspec.json.Encoder()


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Label(_Record):
    """The observed outcome for a scored event, on the ``labels`` topic."""

    event_id: str = Field(min_length=1)
    entity_id: str = Field(min_length=1)
    label: Literal[0, 1] | StrictBool
    ts: StrictInt = Field(description="When the outcome became known, epoch ms UTC")

    @property
    def value(self) -> int:
        return int(self.label)


class ScoredRecord(_Record):
    """One per accepted event, on the ``scored`` topic, for real-time applications."""

    event_id: str
    entity_id: str
    ts: int = Field(description="Event time, epoch ms UTC")
    group: str | None
    features: dict[str, FeatureValue] = Field(
        description="Feature values as of the event's time (inclusive); null when undefined"
    )
    score: float = Field(ge=0, le=1, description="Model probability of the positive class")
    decision: Literal[0, 1]
    model_version: str
    feature_set: str = Field(description="Identity (hash) of the feature definitions")
    source: Source
    scored_at: int = Field(description="Wall-clock time the record was produced, epoch ms UTC")


class _SourceWire(msgspec.Struct):
    topic: str
    partition: int
    offset: int


class ScoredWire(msgspec.Struct):
    """A :class:`ScoredRecord` as the hot path encodes it: a msgspec struct with the same
    fields in the same order (a test holds them equal), encoded without a dict per record
    or a pydantic validation per record; :func:`scored_record_bytes` makes its JSON."""

    event_id: str
    entity_id: str
    ts: int
    group: str | None
    features: dict[str, FeatureValue]
    score: float
    decision: int
    model_version: str
    feature_set: str
    source: _SourceWire
    scored_at: int


def scored_record_bytes(event_id: str, entity_id: str, ts_ms: int, group: str | None,
                        features: dict[str, FeatureValue], score: float, decision: int,
                        model_version: str, feature_set: str, source: tuple[str, int, int],
                        scored_at: int) -> bytes:
    """The JSON bytes of one record on ``scored``.

    >>> raw = scored_record_bytes("e1", "u1", 5, None, {"n": 1}, 0.5, 1, "v1", "fs",
    ...                           ("events", 0, 7), 9)
    >>> ScoredRecord.model_validate_json(raw).source.offset
    7
    """
    return _JSON.encode(ScoredWire(event_id, entity_id, ts_ms, group, features, score,
                                   decision, model_version, feature_set,
                                   _SourceWire(*source), scored_at))


DlqReason = Literal[
    "too_large",
    "malformed_json",
    "not_an_object",
    "missing_field",
    "unknown_field",
    "wrong_type",
    "out_of_range",
    "bad_timestamp",
    "late",
    "duplicate_event_id",
    "entity_state_limit",
    "held_labels_full",
    "processing_error",
]
#: Every reason a record can be dead-lettered for: the bounded label set of the metric.
DLQ_REASONS: tuple[str, ...] = DlqReason.__args__  # type: ignore[attr-defined]


class DeadLetter(_Record):
    """A rejected input record on ``events.dlq``: the original bytes, why, and from where.

    The original bytes are always base64 (4/3 of their size, whatever they hold: a JSON
    string escape could make a payload of control characters six times larger).
    """

    reason: DlqReason
    detail: str = Field(description="Human-readable explanation, naming the offending field")
    input: Literal["event", "label"] = Field(description="Which input the record came from")
    payload_base64: str = Field(description="The original bytes (the first max_payload_bytes "
                                            "of them when payload_truncated), base64")
    payload_bytes: int = Field(description="Size of the original payload")
    payload_truncated: bool = Field(
        default=False,
        description="Only the first max_payload_bytes are kept (a too_large record would not "
                    "fit on the DLQ); the whole record stays at its source position")
    payload_sha256: str = Field(description="SHA-256 of the whole original payload, hex")
    source: Source
    received_at: int = Field(description="Wall-clock time of rejection, epoch ms UTC")

    def original_bytes(self) -> bytes:
        return base64.b64decode(self.payload_base64)


def dead_letter_bytes(raw: bytes, reason: str, detail: str, source: tuple[str, int, int],
                      now_ms: int, max_bytes: int, input_kind: str = "event") -> bytes:
    """A :class:`DeadLetter` as JSON bytes, built without pydantic (it is on the hot path).

    >>> import json
    >>> letter = json.loads(dead_letter_bytes(b"\\x00\\x01", "malformed_json", "not JSON",
    ...                                       ("events", 0, 7), 1, max_bytes=1))
    >>> letter["payload_base64"], letter["payload_bytes"], letter["payload_truncated"]
    ('AA==', 2, True)
    >>> DeadLetter.model_validate(letter).source.offset
    7
    """
    kept = raw[:max_bytes]
    topic, partition, offset = source
    return _JSON.encode({
        "reason": reason,
        "detail": detail,
        "input": input_kind,
        "payload_base64": base64.b64encode(kept).decode("ascii"),
        "payload_bytes": len(raw),
        "payload_truncated": len(kept) < len(raw),
        "payload_sha256": hashlib.sha256(raw).hexdigest(),
        "source": {"topic": topic, "partition": partition, "offset": offset},
        "received_at": now_ms,
    })


WIRE_MODELS: dict[str, type[BaseModel]] = {
    "label": Label,
    "scored": ScoredRecord,
    "dead_letter": DeadLetter,
}


def event_model(schema: EventSchema) -> type[BaseModel]:
    """A pydantic model of the events a config accepts: its JSON Schema documents them.

    The worker validates with :class:`streams.validation.EventValidator` (faster, and it
    maps each failure to a DLQ reason); tests hold the two to the same verdicts.
    """
    number = StrictInt | StrictFloat
    time_type: Any = {"epoch_ms": StrictInt, "epoch_seconds": number, "iso8601": str}[
        schema.time_format]
    fields: dict[str, Any] = {
        schema.id_field: (StrictStr | StrictInt, ...),
        schema.entity_field: (StrictStr | StrictInt, ...),
        schema.time_field: (time_type, Field(description=f"event time, {schema.time_format}")),
        schema.group_field: (StrictStr | None, None),
    }
    base: dict[str, Any] = {"float": number, "int": StrictInt, "str": StrictStr,
                            "bool": StrictBool}
    for name, attr in schema.attributes.items():
        typ = Literal[tuple(attr.values)] if attr.values else base[attr.type]  # type: ignore[misc]
        constraints = {k: v for k, v in (("ge", attr.minimum), ("le", attr.maximum))
                       if v is not None}
        default = ... if attr.required else None
        fields[name] = (typ if attr.required else typ | None,
                        Field(default, **constraints))  # type: ignore[arg-type]
    extra = "allow" if schema.allow_unknown_fields else "forbid"
    return create_model("Event", __config__=ConfigDict(extra=extra), **fields)


def json_schemas(schema: EventSchema | None = None) -> dict[str, dict[str, Any]]:
    """JSON Schema of every wire record, generated from the models above (and, given an
    event schema from a config, of its events too)."""
    out = {name: model.model_json_schema() for name, model in WIRE_MODELS.items()}
    out.update(governance_schemas())
    if schema is not None:
        out["event"] = event_model(schema).model_json_schema()
    return out


def dumps(record: BaseModel) -> bytes:
    """Compact JSON bytes of a record (nulls kept: null is a value on the wire)."""
    return json.dumps(record.model_dump(mode="json"), separators=(",", ":"),
                      allow_nan=False).encode()
