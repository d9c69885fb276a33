"""Every Prometheus metric streambed exports, declared once with its help text.

Create one :class:`Metrics` per process (or per test) with the registry to register in;
call sites update the objects it holds. Names follow Prometheus conventions: prefix
``streambed_``, base units, ``_total`` for counters, bounded label values only (never an
entity or event id). Ratios that PromQL can derive from counters are left to PromQL.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

EVENT_OUTCOMES = ("scored", "rejected", "late")
LABEL_OUTCOMES = ("joined", "unmatched", "duplicate", "expired")

#: Latency buckets in seconds: sub-millisecond to 10 s, for event received → scored sent.
LATENCY_BUCKETS_SECONDS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)


class Metrics:
    """The metric objects, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.events = Counter(
            "streambed_events",
            "Events received on the events topic, by outcome "
            "(scored, rejected by validation, late beyond the allowed lateness).",
            ["outcome"],
            registry=registry,
        )
        self.rejections = Counter(
            "streambed_rejections",
            "Events sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=registry,
        )
        self.labels = Counter(
            "streambed_labels",
            "Labels received, by outcome of the join with pending predictions.",
            ["outcome"],
            registry=registry,
        )
        self.scoring_latency = Histogram(
            "streambed_scoring_latency_seconds",
            "Time from an event being received by the worker to its scored record being sent.",
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=registry,
        )
        self.model_info = Gauge(
            "streambed_model_info",
            "The model version and feature set currently scoring (value is always 1).",
            ["model_version", "feature_set"],
            registry=registry,
        )
        self.model_updates = Counter(
            "streambed_model_updates",
            "Labels the online model has learned from.",
            registry=registry,
        )
        self.pending_predictions = Gauge(
            "streambed_pending_predictions",
            "Scored events held by this worker while waiting for their label.",
            registry=registry,
        )
        self.last_event_timestamp = Gauge(
            "streambed_last_event_timestamp_seconds",
            "Event time of the newest accepted event (Unix seconds).",
            registry=registry,
        )
        self.last_label_timestamp = Gauge(
            "streambed_last_label_timestamp_seconds",
            "Wall-clock time the last label was joined (Unix seconds).",
            registry=registry,
        )
        self.model_last_updated = Gauge(
            "streambed_model_last_updated_timestamp_seconds",
            "Wall-clock time the online model last learned from a label (Unix seconds).",
            registry=registry,
        )
        for outcome in EVENT_OUTCOMES:
            self.events.labels(outcome=outcome)
        for outcome in LABEL_OUTCOMES:
            self.labels.labels(outcome=outcome)

    def set_model(self, model_version: str, feature_set: str) -> None:
        """Point ``streambed_model_info`` at the version now scoring (one series at 1)."""
        self.model_info.clear()
        self.model_info.labels(model_version=model_version, feature_set=feature_set).set(1)
