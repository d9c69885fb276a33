"""Where the scorer's shell meets its metrics and monitors.

:class:`ScorerMetrics` is the one bridge: a published batch's result brings every count
(:meth:`~streams.scorer.batch.BatchResult.count_into`), its latency observations and its
scored observations for the monitors, tagged with the model version that scored them
(carried by the result, never read back from the processor after the publish); the shell's
timers and rebalances set the gauges through it.
"""

from __future__ import annotations

from collections.abc import Iterable

from monitors.metrics import Metrics
from monitors.monitoring import Monitoring
from streams.scorer.batch import BatchResult


class ScorerMetrics:
    """The scorer's metrics and monitors, updated from batch results and the shell."""

    def __init__(self, metrics: Metrics, monitoring: Monitoring, feature_set: str) -> None:
        self.metrics = metrics
        self.monitoring = monitoring
        self.feature_set = feature_set
        self._lag_series: set[int] = set()

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
        if res.examples:
            self.metrics.last_label_timestamp.set(acked_s)

    def serving(self, model_version: str) -> None:
        self.metrics.set_model(model_version, self.feature_set)

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
