"""The one YAML config file: event schema, features, model, monitors, topics, broker.

Loaded and validated by pydantic at start-up. A bad file fails with the dotted path of
each bad field and what was expected, before any connection is made::

    streambed: invalid config examples/bad.yaml
      features.1.window.size: not a duration: 'soon' (use seconds or e.g. '90s', '15m', ...)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from features.spec import DurationMs, FeatureSet
from governance.config import ModelSpec, PromotionConfig
from monitors.config import MonitorsConfig

AttributeType = Literal["float", "int", "str", "bool"]
TimeFormat = Literal["epoch_ms", "epoch_seconds", "iso8601"]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Attribute(_Section):
    """One typed attribute of an event."""

    type: AttributeType
    required: bool = False
    #: For ``str`` attributes: the allowed values, if the set is closed.
    values: list[str] | None = None
    minimum: float | None = None
    maximum: float | None = None


class EventSchema(_Section):
    """What a valid event looks like, and how far its time may stray."""

    id_field: Identifier = "event_id"
    entity_field: Identifier = "entity_id"
    time_field: Identifier = "ts"
    time_format: TimeFormat = "epoch_ms"
    group_field: Identifier = "group"
    attributes: dict[Identifier, Attribute] = Field(default_factory=dict)
    #: Reject fields the schema does not declare (a typo upstream should be seen, not ignored).
    allow_unknown_fields: bool = False
    max_payload_bytes: int = Field(default=65_536, gt=0)
    #: Events older than the partition watermark minus this are routed to the DLQ as late.
    allowed_lateness_ms: DurationMs = Field(default=300_000, alias="allowed_lateness")
    #: Event times further than this ahead of the wall clock are absurd and rejected.
    max_future_ms: DurationMs = Field(default=86_400_000, alias="max_future")
    #: Event times before this (epoch ms) are absurd and rejected. Default 2000-01-01.
    min_time_ms: int = 946_684_800_000

    @model_validator(mode="after")
    def _distinct_fields(self) -> EventSchema:
        core = [self.id_field, self.entity_field, self.time_field, self.group_field]
        if len(set(core)) != len(core):
            raise ValueError("id_field, entity_field, time_field and group_field must differ")
        clash = set(core) & set(self.attributes)
        if clash:
            raise ValueError(f"attributes repeat the core fields: {sorted(clash)}")
        return self


class Topics(_Section):
    events: str = "events"
    labels: str = "labels"
    scored: str = "scored"
    dlq: str = "events.dlq"
    #: One partition: every example the model learns from, in one order (the lineage).
    training: str = "training"
    model_versions: str = "model.versions"
    model_audit: str = "model.audit"
    #: People's requests to the learner (promote, rollback), answered on ``model.audit``.
    model_commands: str = "model.commands"
    #: The learner's snapshot (compacted): its state and the training offset it covers.
    learner_state: str = "model.learner"
    #: Partitions for events and labels (co-partitioned by entity).
    partitions: int = Field(default=4, ge=1, le=1024)
    #: The broker's ``message.max.bytes`` (Kafka's default): no record may be larger.
    max_message_bytes: int = Field(default=1_048_588, ge=65_536)


class StateLimits(_Section):
    """Caps on what the scorer holds, each with a defined behaviour when it is reached."""

    #: An entity whose encoded state would exceed this sends the event that would make it
    #: so to the DLQ as ``entity_state_limit`` (its state stays as it was before).
    max_entity_bytes: int = Field(default=262_144, ge=1_024)
    #: Labels held for events not yet seen; beyond it a label goes to the DLQ as
    #: ``held_labels_full`` (counted unmatched; replay it from the DLQ).
    max_held_labels: int = Field(default=100_000, ge=1)
    #: Scored events waiting for their label; beyond it the oldest is forgotten
    #: (``streambed_predictions_evicted_total``), before its label TTL.
    max_pending: int = Field(default=2_000_000, ge=1)
    #: Decoded entity states kept live between batches (least recently used beyond it are
    #: decoded again from the table when next needed).
    entity_cache: int = Field(default=100_000, ge=1)


class ModelConfig(_Section):
    """The model: standard scaling then logistic regression, learned with River by the
    learner; scorers serve the champion. ``promotion`` governs which version serves."""

    kind: Literal["logistic_regression"] = "logistic_regression"
    learning_rate: float = Field(default=0.05, gt=0, le=10)
    l2: float = Field(default=0.0, ge=0)
    #: Step size for the intercept (River's default).
    intercept_learning_rate: float = Field(default=0.01, ge=0, le=10)
    #: Score at or above which the decision is positive (1).
    threshold: float = Field(default=0.5, ge=0, le=1)
    #: How long a scored event waits for its label before it expires.
    label_ttl_ms: DurationMs = Field(default=86_400_000, alias="label_ttl")
    #: Feature values that are null are fed to the model as this value.
    fill_null: float = 0.0
    #: When versions are cut and what a candidate must show before it serves.
    promotion: PromotionConfig = PromotionConfig()

    @property
    def spec(self) -> ModelSpec:
        """What is learned and how it scores (its hash is part of every version id)."""
        return ModelSpec.model_validate(self, from_attributes=True)


class Config(_Section):
    """A whole streambed config file."""

    name: Identifier = "streambed"
    broker: str = "kafka://127.0.0.1:9092"
    event: EventSchema = EventSchema()
    features: FeatureSet
    model: ModelConfig = ModelConfig()
    monitors: MonitorsConfig = MonitorsConfig()
    topics: Topics = Topics()
    state: StateLimits = StateLimits()

    @field_validator("features", mode="before")
    @classmethod
    def _features_as_list(cls, value: object) -> object:
        return {"features": value} if isinstance(value, list) else value

    @field_validator("broker")
    @classmethod
    def _loopback_url(cls, value: str) -> str:
        if not value.startswith("kafka://"):
            raise ValueError("broker must look like kafka://HOST:PORT")
        return value

    @model_validator(mode="after")
    def _features_read_known_fields(self) -> Config:
        known = set(self.event.attributes) | {self.event.group_field}
        for i, feature in enumerate(self.features.features):
            for name in [feature.field, *(w.field for w in feature.filters)]:
                if name is not None and name not in known:
                    raise ValueError(
                        f"@features.{i}: {feature.name} reads unknown field {name!r}; "
                        f"declare it under event.attributes"
                    )
            if feature.agg in ("sum", "mean", "min", "max", "variance", "stddev"):
                attr = self.event.attributes.get(feature.field or "")
                if attr is None or attr.type not in ("float", "int", "bool"):
                    raise ValueError(
                        f"@features.{i}.field: '{feature.agg}' needs a numeric field"
                    )
        return self

    @model_validator(mode="after")
    def _records_fit_the_broker(self) -> Config:
        from streams.records import dead_letter_overhead_bytes

        limit = self.topics.max_message_bytes
        if dead_letter_overhead_bytes(self.event.max_payload_bytes) > limit:
            raise ValueError(
                f"@event.max_payload_bytes: {self.event.max_payload_bytes} leaves no room for "
                f"its dead letter (base64, 4/3 of it, plus fields) under "
                f"topics.max_message_bytes={limit}")
        if self.state.max_entity_bytes > limit - 4096:
            raise ValueError(
                f"@state.max_entity_bytes: {self.state.max_entity_bytes} must stay under "
                f"topics.max_message_bytes={limit} (an entity's state is one changelog record)")
        return self

    @model_validator(mode="after")
    def _monitors_name_known_features(self) -> Config:
        names = set(self.features.names)
        for i, name in enumerate(self.monitors.drift.features or ()):
            if name not in names:
                raise ValueError(f"@monitors.drift.features.{i}: {name!r} is not a feature")
        attributes = set(self.event.attributes) | {self.event.group_field}
        for name in self.monitors.sensitive_attributes:
            if name not in attributes:
                raise ValueError(f"@monitors.sensitive_attributes.{name}: not an event field")
        return self

    @property
    def bootstrap_servers(self) -> str:
        return self.broker.removeprefix("kafka://")


class ConfigError(Exception):
    """A config file that cannot be used; the message names each bad field's path."""


def _format_errors(path: Path, err: ValidationError) -> str:
    lines = [f"invalid config {path}"]
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        if loc[:2] == ["features", "features"]:  # the file writes features as a plain list
            loc = loc[1:]
        msg = e["msg"].removeprefix("Value error, ")
        if msg.startswith("@"):  # a cross-field check that knows the path it is about
            path, _, msg = msg[1:].partition(": ")
            loc = [path]
        lines.append(f"  {'.'.join(loc) or '(top level)'}: {msg}")
    return "\n".join(lines)


def load_config(path: str | Path, **overrides: object) -> Config:
    """Read and validate a config file; raise :class:`ConfigError` naming bad fields."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path} must be a mapping at the top level")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(path, exc)) from None
