"""Where the scorer's shell meets its metrics and monitors.

:class:`ScorerMetrics` is the one bridge: a published batch's result brings every count
(:meth:`~streams.scorer.batch.BatchResult.count_into`), its latency observations and its
scored observations for the monitors, tagged with the model version that scored them
(carried by the result, never read back from the processor after the publish); the shell's
timers and rebalances set the gauges through it.

It also hands the champion's drift references (:func:`~streams.scorer.champion.drift_references`)
to the monitors (``monitors.drift.reference.source: champion``) with the champion's own
evaluation ROC AUC (what ModelStale compares with), and says which reference drift
compares with (:meth:`ScorerMetrics.reference_info`, shown by ``/monitoring``): its
version and the SHA-256 of its compact encoding, the same in every scorer and restart.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from monitors.metrics import Metrics
from monitors.monitoring import Monitoring
from streams.scorer.batch import BatchResult
from streams.scorer.champion import DriftReferences


class ScorerMetrics:
    """The scorer's metrics and monitors, updated from batch results and the shell."""

    def __init__(self, metrics: Metrics, monitoring: Monitoring, feature_set: str) -> None:
        self.metrics = metrics
        self.monitoring = monitoring
        self.feature_set = feature_set
        self._lag_series: set[int] = set()
        #: What drift compares with: first events until a champion's reference is set.
        self._reference: dict[str, Any] | None = None
        self._refused: list[str] = []

    def drift_references(self, references: DriftReferences) -> None:
        """The champion (or its references) changed: compare with its reference, and
        judge staleness against its own evaluation."""
        self.monitoring.set_champion_evaluation(references.evaluation_roc_auc)
        self._refused = list(references.refused)
        if (self.monitoring.config.drift.reference.source != "champion"
                or references.reference is None):
            return
        self.monitoring.set_reference(references.reference, model_version=references.champion,
                                      baseline=references.baseline)
        self._reference = {
            "source": "champion", "version": references.reference_from,
            "champion": references.champion, "sha256": references.reference_sha256,
            "examples": references.reference.examples,
            "baseline_sha256": references.baseline_sha256,
        }

    def reference_info(self) -> dict[str, Any]:
        """The reference drift compares with now, and any refused on the last change."""
        reference = self._reference or {
            "source": self.monitoring.config.drift.reference.source, "version": None,
            "champion": None, "sha256": None, "examples": None, "baseline_sha256": None}
        return {**reference, "refused": list(self._refused)}

    def batch_published(self, res: BatchResult, acked_s: float) -> None:
        """A batch whose sends were all accepted at ``acked_s`` (epoch seconds)."""
        res.count_into(self.metrics)
        observe = self.metrics.event_latency.observe
        for produced_ms in res.scored_produce_ms:
            observe(max(acked_s - produced_ms / 1000, 0.0))
        if res.observations:
            assert res.model_version is not None, "scored observations name their model"
            self.monitoring.on_scored_batch(res.observations, model_version=res.model_version,
                                            now=acked_s)
        if res.newest_event_ms is not None:
            self.metrics.last_event_timestamp.set(res.newest_event_ms / 1000)
        for score, decision, label, version in res.labelled:
            self.monitoring.on_labelled(score=score, decision=decision, label=label,
                                        model_version=version)
        if res.examples:
            self.metrics.last_label_timestamp.set(acked_s)

    def serving(self, model_version: str) -> None:
        self.metrics.set_model(model_version, self.feature_set)

    def shadows(self, versions: int) -> None:
        self.metrics.shadow_versions.set(versions)

    def version_refused(self) -> None:
        self.metrics.model_versions_refused.inc()

    def produce_refused(self, topic: str) -> None:
        self.metrics.produce_errors.labels(topic=topic).inc()

    def assigned(self, events_partitions: Iterable[int]) -> None:
        """The events partitions now held; lag series of the others are removed."""
        mine = set(events_partitions)
        self.metrics.assigned_partitions.set(len(mine))
        for partition in self._lag_series - mine:
            self.metrics.consumer_lag.remove(str(partition))
        self._lag_series &= mine

    def lag(self, partition: int, records: int) -> None:
        self.metrics.consumer_lag.labels(partition=str(partition)).set(max(records, 0))
        self._lag_series.add(partition)

    def table_sizes(self, pending: int, held: int) -> None:
        self.metrics.pending_predictions.set(pending)
        self.metrics.labels_waiting.set(held)
