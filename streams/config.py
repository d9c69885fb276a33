"""The one YAML config file: event schema, features, model, monitors, topics, broker.

Loaded and validated by pydantic at start-up. A bad file fails with the dotted path of
each bad field and what was expected, before any connection is made::

    streambed: invalid config examples/bad.yaml
      features[1] (apps_1h).window.size: not a duration: 'soon' (use seconds or e.g. '90s', ...)
      features[2] (amount_sum_1h).field: amount_sum_1h reads unknown field 'amout' (did you
        mean 'amount'?); declare it under event.attributes
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
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
    #: Encoded entity states (bytes, which the GC does not walk) kept in memory between
    #: batches for the entities seen last, so a hot entity skips the table lookup (one
    #: read per partition database); each batch decodes the states it touches again.
    entity_cache: int = Field(default=10_000, ge=1)
    #: Where the scorer keeps its tables. ``rocksdb``: one RocksDB database per table and
    #: partition under the worker's data directory (faust-streaming's ``rocksdb://``), so
    #: memory does not grow with entities and a restart replays only the changelog past
    #: what each database persisted. ``memory``: on the Python heap, restored from the
    #: changelogs from their beginning at every start.
    store: Literal["memory", "rocksdb"] = "rocksdb"
    #: RocksDB's memory, every table and partition database together: each of the
    #: ``4 tables x topics.partitions`` databases a worker may open (actives and
    #: standbys) gets an equal share, half for its block cache and half for its two
    #: write buffers (memtables). 256 MiB: 16 MiB per database at 4 partitions.
    rocksdb_memory_bytes: int = Field(default=256 * 2**20, ge=16 * 2**20)


class ModelConfig(ModelSpec):
    """The model: standard scaling then logistic regression, learned with River by the
    learner; scorers serve the champion. ``promotion`` governs which version serves.

    Every field of :class:`governance.config.ModelSpec` (one definition, inherited: what is
    learned and how a version scores), plus what only the deployment decides: how long a
    label may take, and the promotion policy.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              from_attributes=True)

    #: How long a scored event waits for its label before it expires.
    label_ttl_ms: DurationMs = Field(default=86_400_000, alias="label_ttl")
    #: When versions are cut and what a candidate must show before it serves.
    promotion: PromotionConfig = PromotionConfig()

    @property
    def spec(self) -> ModelSpec:
        """What is learned and how it scores (its hash is part of every version id)."""
        return ModelSpec.model_validate(self.model_dump(include=set(ModelSpec.model_fields)))

    @property
    def config_hash(self) -> str:
        """The spec's hash: label_ttl and the promotion policy are not part of a lineage."""
        return self.spec.config_hash


class Security(_Section):
    """How every client streambed constructs authenticates to the broker.

    ``PLAINTEXT`` (the default) sends nothing; ``SASL_PLAINTEXT`` and ``SASL_SSL`` log in
    as ``username`` with SASL/PLAIN or SCRAM; ``SSL`` and ``SASL_SSL`` verify the broker's
    certificate against ``ssl_cafile`` (or the system's CAs). The password comes from the
    file (``password``) or, better, from an environment variable (``password_env``),
    read once at start-up; it is held as a secret and never printed.
    """

    protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    username: str | None = Field(default=None, min_length=1)
    password: SecretStr | None = None
    #: The name of an environment variable holding the password (instead of ``password``).
    password_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    #: PEM file of the CA(s) that signed the broker's certificate (SSL, SASL_SSL).
    ssl_cafile: Path | None = None

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @model_validator(mode="after")
    def _credentials_fit_the_protocol(self) -> Security:
        if not self.sasl:
            for name in ("username", "password", "password_env"):
                if getattr(self, name) is not None:
                    raise ValueError(f"@security.{name}: only for the SASL_PLAINTEXT and "
                                     f"SASL_SSL protocols, not {self.protocol}")
        else:
            if self.username is None:
                raise ValueError(f"@security.username: required with {self.protocol}")
            if (self.password is None) == (self.password_env is None):
                raise ValueError(f"@security.password: give exactly one of password and "
                                 f"password_env with {self.protocol}")
        if self.ssl_cafile is not None:
            if not self.tls:
                raise ValueError(f"@security.ssl_cafile: only for SSL and SASL_SSL, not "
                                 f"{self.protocol}")
            if not self.ssl_cafile.is_file():
                raise ValueError(f"@security.ssl_cafile: no such file: {self.ssl_cafile}")
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if not value:
                raise ValueError(f"@security.password_env: the environment variable "
                                 f"{self.password_env} is not set (it holds the password of "
                                 f"{self.username})")
            # Resolved here, once: a missing variable fails at start-up, not at first use.
            object.__setattr__(self, "password", SecretStr(value))
        return self


def dead_letter_overhead_bytes(max_payload_bytes: int) -> int:
    """The largest dead letter a payload of ``max_payload_bytes`` can make: base64 of the
    payload plus a generous allowance for the detail, the topic name and the other fields.
    (Here, not in :mod:`streams.records`, so that loading a config does not import the
    wire records and, through them, River and SciPy: seconds of every command's start.)"""
    return 4 * ((max_payload_bytes + 2) // 3) + 4096


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
    #: Broker authentication and encryption (default: PLAINTEXT, no credentials).
    security: Security = Security()

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
        """Every field a feature reads is declared, with a type that fits how it is read.

        All problems at once, one ``@path: message`` line each (see :func:`_format_errors`).
        """
        attributes = self.event.attributes
        known = [*attributes, self.event.group_field]
        problems = []
        for i, feature in enumerate(self.features.features):
            reads = [("field", feature.field)]
            reads += [("where", w.field) for w in feature.filters]
            for where, name in reads:
                if name is not None and name not in known:
                    problems.append(
                        f"@features.{i}.{where}: {feature.name} reads unknown field {name!r}"
                        f"{_did_you_mean(name, known)}; declare it under event.attributes")
            if feature.agg in ("sum", "mean", "min", "max", "variance", "stddev"):
                attr = attributes.get(feature.field or "")
                if feature.field in attributes and (attr is None or attr.type not in (
                        "float", "int", "bool")):
                    problems.append(f"@features.{i}.field: '{feature.agg}' needs a numeric "
                                    f"field; {feature.field!r} is {attr.type if attr else 'str'}")
            for w in feature.filters:
                problem = _filter_value_problem(w, attributes.get(w.field))
                if problem:
                    problems.append(f"@features.{i}.where: {problem}")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @model_validator(mode="after")
    def _records_fit_the_broker(self) -> Config:
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


def _did_you_mean(word: object, choices: Iterable[str]) -> str:
    """``" (did you mean 'amount'?)"`` for a near miss among ``choices``, else ``""``."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _filter_value_problem(where: object, attr: Attribute | None) -> str | None:
    """A ``where`` value that can never equal the field's declared type: a number for a
    text field (a merchant code ``7995`` unquoted in YAML) or text for a number."""
    if attr is None or getattr(where, "op", None) in ("is_null", "not_null"):
        return None
    value = where.value  # type: ignore[attr-defined]
    values = value if isinstance(value, list) else [value]
    if attr.type == "str":
        bad = [v for v in values if not isinstance(v, str)]
        if bad:
            return (f"{where.field} is declared str: write the value as text, "  # type: ignore[attr-defined]
                    f"e.g. \"{bad[0]}\" (a number never equals a text field)")
    elif attr.type in ("float", "int"):
        bad = [v for v in values if isinstance(v, str)]
        if bad:
            return (f"{where.field} is declared {attr.type}: write the value as a number, "  # type: ignore[attr-defined]
                    f"not text {bad[0]!r}")
    return None


def _annotation_candidates(annotation: Any) -> list[Any]:
    """The types an annotation may hold: through Annotated, Optional and unions."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _annotation_candidates(get_args(annotation)[0])
    if origin in (Union, UnionType):
        return [c for arg in get_args(annotation) for c in _annotation_candidates(arg)]
    return [annotation]


def _keys_at(loc: list[str | int]) -> list[str]:
    """The keys allowed in the mapping at ``loc`` of a config (for "did you mean")."""
    nodes: list[Any] = [Config]
    for part in loc:
        following = []
        for node in (c for n in nodes for c in _annotation_candidates(n)):
            origin, args = get_origin(node), get_args(node)
            if isinstance(node, type) and issubclass(node, BaseModel) and isinstance(part, str):
                for name, info in node.model_fields.items():
                    if part in (name, info.alias):
                        following.append(info.annotation)
            elif origin is list and isinstance(part, int) and args:
                following.append(args[0])
            elif origin is dict and isinstance(part, str) and len(args) == 2:
                following.append(args[1])
        nodes = following
    keys: list[str] = []
    for node in (c for n in nodes for c in _annotation_candidates(n)):
        if isinstance(node, type) and issubclass(node, BaseModel):
            keys += [info.alias or name for name, info in node.model_fields.items()]
    return list(dict.fromkeys(keys))


def _loc_of(path: str) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in path.split(".") if p]


def _feature_name(raw: Any, index: int) -> str | None:
    features = raw.get("features") if isinstance(raw, dict) else None
    if isinstance(features, dict):
        features = features.get("features")
    if isinstance(features, list) and 0 <= index < len(features):
        item = features[index]
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            return item["name"]
    return None


def _where(loc: list[str | int], raw: Any) -> str:
    """``features[3] (amount_sum_1h).window.size``: list items by index, a feature by name."""
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
            if i == 1 and loc[0] == "features":
                name = _feature_name(raw, part)
                out += f" ({name})" if name else ""
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


#: pydantic's error for "this alternative of a union was not the right container": noise
#: when another alternative of the same union explains the problem.
_UNION_NOISE = {"list_type", "dict_type", "model_type", "model_attributes_type"}


def _format_errors(path: Path, err: ValidationError, raw: Any = None) -> str:
    """One line per problem: where in the file (``features[3] (amount_sum_1h).window``),
    what is wrong, and for a typo the closest valid name."""
    found: list[tuple[list[str | int], str, str]] = []
    for e in err.errors():
        # Union members appear in the path as tags like 'function-after[...]': not keys.
        loc: list[str | int] = [p for p in e["loc"]
                                if isinstance(p, int) or not any(c in p for c in "[(")]
        if loc[:2] == ["features", "features"]:  # the file writes features as a plain list
            loc = loc[1:]
        msg = e["msg"].removeprefix("Value error, ")
        if msg.startswith("@"):  # cross-field checks that know the paths they are about
            for line in msg.splitlines():
                where, _, text = line[1:].partition(": ")
                found.append((_loc_of(where), text, "cross_field"))
            continue
        if e["type"] == "extra_forbidden":
            keys = _keys_at(loc[:-1] if loc[:1] != ["features"] else ["features", *loc[:-1]])
            msg = f"unknown key{_did_you_mean(loc[-1], keys)}"
            if keys:
                msg += f"; known keys: {', '.join(keys)}"
        elif e["type"] == "literal_error":
            expected = re.findall(r"'([^']*)'", str(e.get("ctx", {}).get("expected", "")))
            msg += _did_you_mean(e.get("input"), expected)
        found.append((loc, msg, e["type"]))
    lines = [f"invalid config {path}"]
    for loc, msg, kind in found:
        noise = kind in _UNION_NOISE and any(
            other[:len(loc)] == loc and other_kind not in _UNION_NOISE
            for other, _, other_kind in found)
        if not noise:
            lines.append(f"  {_where(loc, raw)}: {msg}")
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
        raise ConfigError(_format_errors(path, exc, raw)) from None
