"""The scorer's and the learner's HTTP endpoints, described once as pydantic models.

:func:`openapi` builds the OpenAPI 3.1 document shipped as ``streams/schemas/openapi.json``
(``make schemas``); tests validate live responses against it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from streams.records import FeatureValue


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Health(_Body):
    """The process is up (says nothing about Kafka)."""

    status: str = Field(description='Always "up"')


class Readiness(_Body):
    """Whether the process does its job yet, and if not why."""

    ready: bool
    reason: str = Field(description='"ready", or what it is waiting for')
    model_version: str | None = Field(default=None, description="The champion it serves")
    assigned_partitions: list[int] | None = Field(
        default=None, description="Scorer: the events partitions it holds")


class EntityFeatures(_Body):
    """An entity's features as of its latest event: what its next scored record starts from."""

    entity_id: str
    features: dict[str, FeatureValue | str]
    as_of: int = Field(description="Event time of the entity's latest event, epoch ms UTC")
    feature_set: str = Field(description="Identity (hash) of the feature definitions")
    model_version: str = Field(description="The champion this scorer serves")


class Problem(_Body):
    error: str
    entity_id: str | None = None
    path: str | None = None


def _response(description: str, model: type[BaseModel] | None,
              media: str = "application/json") -> dict[str, Any]:
    if model is None:
        return {"description": description, "content": {media: {"schema": {"type": "string"}}}}
    return {"description": description, "content": {media: {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}


def openapi() -> dict[str, Any]:
    """The OpenAPI document of both roles' endpoints (scorer: port 6066, learner: 6067)."""
    ready = {"200": _response("Ready", Readiness),
             "503": _response("Not ready yet; the reason says why", Readiness)}
    metrics = {"200": _response("Prometheus text exposition format 0.0.4", None,
                                "text/plain")}
    components = {m.__name__: m.model_json_schema(ref_template="#/components/schemas/{model}")
                  for m in (Health, Readiness, EntityFeatures, Problem)}
    return {
        "openapi": "3.1.0",
        "info": {"title": "streambed scorer and learner", "version": "1",
                 "description": "Scorers (streambed worker, default port 6066) serve every "
                                "path; the learner (streambed learner, 6067) serves /metrics, "
                                "/health and /ready."},
        "paths": {
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": metrics}},
            "/health": {"get": {"summary": "Liveness",
                                "responses": {"200": _response("Up", Health)}}},
            "/ready": {"get": {"summary": "Readiness", "responses": ready}},
            "/features/{entity_id}": {"get": {
                "summary": "An entity's current features (routed to the scorer holding it)",
                "parameters": [{"name": "entity_id", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {"200": _response("The features", EntityFeatures),
                              "404": _response("Unknown entity", Problem)}}},
        },
        "components": {"schemas": components},
    }
