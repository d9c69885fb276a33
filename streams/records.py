"""Wire records: the JSON that crosses topics, as pydantic models (JSON Schema comes from here).

``events`` carries objects shaped by the configured :class:`~streams.config.EventSchema`
(validated by :mod:`streams.validation`); the other records are fixed by this module.
Times are integer epoch milliseconds in UTC.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Literal

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

from streams.config import EventSchema

FeatureValue = int | float | None


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Source(_Record):
    """Where a record came from: its topic, partition and offset."""

    topic: str
    partition: int
    offset: int


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
]
#: Every reason a record can be dead-lettered for: the bounded label set of the metric.
DLQ_REASONS: tuple[str, ...] = DlqReason.__args__  # type: ignore[attr-defined]


class DeadLetter(_Record):
    """A rejected input record on ``events.dlq``: the original bytes, why, and from where."""

    reason: DlqReason
    detail: str = Field(description="Human-readable explanation, naming the offending field")
    payload: str | None = Field(description="The original bytes as UTF-8 text, when they are")
    payload_base64: str | None = Field(description="The original bytes, when not UTF-8 text")
    payload_bytes: int = Field(description="Size of the original payload")
    payload_truncated: bool = Field(
        default=False,
        description="Only the first max_payload_bytes are kept (a too_large record would not "
                    "fit on the DLQ); the whole record stays at its source position")
    payload_sha256: str = Field(description="SHA-256 of the whole original payload, hex")
    source: Source
    received_at: int = Field(description="Wall-clock time of rejection, epoch ms UTC")

    @classmethod
    def of(cls, raw: bytes, reason: str, detail: str, source: Source, now_ms: int,
           max_bytes: int | None = None) -> DeadLetter:
        kept = raw if max_bytes is None else raw[:max_bytes]
        try:
            text, b64 = kept.decode("utf-8"), None
        except UnicodeDecodeError:
            text, b64 = None, base64.b64encode(kept).decode("ascii")
        return cls(reason=reason, detail=detail, payload=text, payload_base64=b64,  # type: ignore[arg-type]
                   payload_bytes=len(raw), payload_truncated=len(kept) < len(raw),
                   payload_sha256=hashlib.sha256(raw).hexdigest(), source=source,
                   received_at=now_ms)

    def original_bytes(self) -> bytes:
        if self.payload is not None:
            return self.payload.encode("utf-8")
        return base64.b64decode(self.payload_base64 or "")


class ModelVersion(_Record):
    """A snapshot of the online model on the compacted ``model.versions`` topic."""

    model_version: str
    feature_set: str
    labels_learned: int
    created_at: int = Field(description="Wall-clock time, epoch ms UTC")
    model_pickle_base64: str = Field(description="The River pipeline, pickled")


WIRE_MODELS: dict[str, type[BaseModel]] = {
    "label": Label,
    "scored": ScoredRecord,
    "dead_letter": DeadLetter,
    "model_version": ModelVersion,
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
    if schema is not None:
        out["event"] = event_model(schema).model_json_schema()
    return out


def dumps(record: BaseModel) -> bytes:
    """Compact JSON bytes of a record (nulls kept: null is a value on the wire)."""
    return json.dumps(record.model_dump(mode="json"), separators=(",", ":"),
                      allow_nan=False).encode()
