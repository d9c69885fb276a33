"""The scorer's HTTP views as plain functions of its state: ``(body, status)`` pairs.

The Faust app (:mod:`streams.scorer.app`) routes ``/metrics``, ``/health``, ``/ready``,
``/features/{entity_id}`` (to the scorer holding the entity) and ``/monitoring`` here; the
bodies are those described in :mod:`streams.scorer.http_api`.

>>> readiness(assigned=False, recovering=False, champion_loaded=True)
(False, 'no partitions assigned yet')
>>> readiness(assigned=True, recovering=False, champion_loaded=True)
(True, 'ready')
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, generate_latest

#: The text exposition format generate_latest() writes; aiohttp appends the charset.
TEXT_FORMAT_0_0_4 = "text/plain; version=0.0.4"

Body = dict[str, Any]


class Serving(Protocol):
    @property
    def champion(self) -> Any: ...

    def entity_features(self, entity_id: str) -> dict[str, Any] | None: ...


class Snapshots(Protocol):
    def snapshot(self) -> dict[str, Any]: ...


def readiness(*, assigned: bool, recovering: bool, champion_loaded: bool) -> tuple[bool, str]:
    """Ready: partitions assigned, tables recovered, the champion loaded."""
    if not assigned:
        return False, "no partitions assigned yet"
    if recovering:
        return False, "tables are being recovered from their changelogs"
    if not champion_loaded:
        return False, "the champion is not loaded yet from model.versions"
    return True, "ready"


class ScorerViews:
    def __init__(self, processor: Serving, monitoring: Snapshots, registry: CollectorRegistry,
                 feature_set: str, ready: Callable[[], tuple[bool, str]],
                 events_partitions: Callable[[], list[int]],
                 drift_reference: Callable[[], Body] = dict) -> None:
        self.processor = processor
        self.monitoring = monitoring
        self.registry = registry
        self.feature_set = feature_set
        self.ready = ready
        self.events_partitions = events_partitions
        self.drift_reference = drift_reference

    def metrics_text(self) -> str:
        return generate_latest(self.registry).decode()

    def health(self) -> tuple[Body, int]:
        return {"status": "up"}, 200

    def readiness(self) -> tuple[Body, int]:
        ok, reason = self.ready()
        return {"ready": ok, "reason": reason,
                "model_version": self.processor.champion.version,
                "assigned_partitions": sorted(self.events_partitions())}, 200 if ok else 503

    def features(self, entity_id: str) -> tuple[Body, int]:
        entry = self.processor.entity_features(entity_id)
        if entry is None:
            return {"error": "unknown entity", "entity_id": entity_id}, 404
        return entry, 200

    def monitors(self) -> tuple[Body, int]:
        snap = dict(self.monitoring.snapshot())
        snap["model_version"] = self.processor.champion.version
        snap["feature_set"] = self.feature_set
        snap["drift_reference"] = self.drift_reference()
        return snap, 200
