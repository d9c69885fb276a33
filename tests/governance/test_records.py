"""Governance wire records: JSON Schema, strict validation, config defaults."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from governance import ModelSpec, PromotionConfig, TrainingExample, json_schemas

EXAMPLE = {
    "event_id": "e1", "entity_id": "u1", "features": {"amount": 12.5, "apps_1h": 3,
                                                      "secs_since_prev": None},
    "label": 1, "score": 0.73, "decision": 1, "model_version": "fs-316b4076-v3",
    "feature_set": "fs", "groups": {"group": "B", "age_band": "unknown"},
    "event_ts": 1_700_000_000_000, "label_ts": 1_700_000_360_000,
    "scored_at": 1_700_000_000_020,
    "event_source": {"topic": "events", "partition": 2, "offset": 41},
    "label_source": {"topic": "labels", "partition": 2, "offset": 17},
}


def test_every_record_has_a_json_schema_with_its_fields() -> None:
    schemas = json_schemas()
    assert set(schemas["training_example"]["required"]) >= {
        "event_id", "features", "label", "score", "decision", "model_version", "event_ts",
        "label_ts"}
    assert "artifact_sha256" in schemas["model_version"]["properties"]
    assert "gates" in schemas["audit"]["properties"]
    json.dumps(schemas)


def test_training_example_round_trips_and_rejects_what_it_should() -> None:
    example = TrainingExample.model_validate_json(json.dumps(EXAMPLE))
    assert example.features["secs_since_prev"] is None
    # examples written before shadow scoring (no shadow_scores) are still read
    assert json.loads(example.model_dump_json()) == {**EXAMPLE, "shadow_scores": {}}
    for bad in ({"label": 2}, {"score": 1.5}, {"event_ts": "yesterday"},
                {"event_ts": 1.5}, {"unexpected": 1}):
        with pytest.raises(ValidationError):
            TrainingExample.model_validate({**EXAMPLE, **bad})


def test_config_defaults_are_the_documented_ones_and_typos_are_errors() -> None:
    p = PromotionConfig()
    assert (p.mode, p.examples_per_version, p.evaluation_window, p.roc_auc_margin,
            p.log_loss_margin, p.parity_ratio_min, p.equalized_odds_max,
            p.min_group_examples, p.small_groups, p.min_label_examples) == (
        "gated", 500, 2000, 0.01, 0.02, 0.8, 0.1, 30, "hold", 30)
    with pytest.raises(ValidationError, match="parity_ratio_min"):
        PromotionConfig(parity_ratio_min=1.5)
    with pytest.raises(ValidationError, match="Extra inputs"):
        PromotionConfig(window=10)


def test_the_config_file_s_model_section_is_the_model_spec_plus_deployment_settings() -> None:
    """One definition: every ModelSpec field is configurable in ``model:`` under the same
    name, type and default, and ``config.model.spec`` carries it (text_buckets was lost
    once by a hand-made copy)."""
    from streams.config import ModelConfig

    for name, field in ModelSpec.model_fields.items():
        mirror = ModelConfig.model_fields[name]
        assert (mirror.annotation, mirror.default) == (field.annotation, field.default), name
    assert set(ModelConfig.model_fields) - set(ModelSpec.model_fields) == {
        "label_ttl_ms", "promotion"}
    assert ModelConfig().spec == ModelSpec()
    config = ModelConfig(learning_rate=0.1, l2=0.01, text_buckets=64, label_ttl="1h")
    spec = config.spec
    assert type(spec) is ModelSpec
    assert (spec.learning_rate, spec.l2, spec.threshold, spec.text_buckets) == (0.1, 0.01,
                                                                                0.5, 64)
    assert spec.config_hash == config.config_hash != ModelSpec().config_hash
    assert ModelConfig(label_ttl="2h").config_hash == ModelSpec().config_hash
