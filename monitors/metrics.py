"""Every Prometheus metric streambed exports, declared once with its help text.

Create one :class:`Metrics` per process (or per test) with the registry to register in;
call sites update the objects it holds. Names follow Prometheus conventions: prefix
``streambed_``, base units, ``_total`` for counters, bounded label values only (never an
entity or event id). Ratios that PromQL can derive from counters are left to PromQL.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

EVENT_OUTCOMES = ("scored", "rejected", "late", "duplicate")
LABEL_OUTCOMES = ("joined", "unmatched", "duplicate", "expired", "invalid")

#: Latency buckets in seconds, from a millisecond to a minute: event produced → scored acked.
LATENCY_BUCKETS_SECONDS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)
#: Every dead-letter reason (the wire contract's list, streams.records.DLQ_REASONS; a test
#: holds the two equal): the bounded label set of streambed_rejections_total.
REJECTION_REASONS = (
    "too_large", "malformed_json", "not_an_object", "missing_field", "unknown_field",
    "wrong_type", "out_of_range", "bad_timestamp", "late", "duplicate_event_id",
    "entity_state_limit", "held_labels_full", "processing_error",
)
#: The tables whose values are decoded from plain data (a bounded label set).
STATE_TABLES = ("entities", "pending", "held", "partitions")


class Metrics:
    """The metric objects, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.events = Counter(
            "streambed_events",
            "Events received on the events topic, by outcome (scored, rejected by validation, "
            "late beyond the allowed lateness, duplicate: redelivered after its state was "
            "applied and its label joined, so nothing is re-sent).",
            ["outcome"],
            registry=registry,
        )
        self.rejections = Counter(
            "streambed_rejections",
            "Events sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=registry,
        )
        self.redeliveries = Counter(
            "streambed_redeliveries",
            "Events delivered again after a restart whose state was already applied; their "
            "feature state is not applied twice.",
            registry=registry,
        )
        self.skipped_offsets = Counter(
            "streambed_skipped_offsets",
            "Input records the stream consumer skipped (an offset gap), read back directly and "
            "processed in order.",
            registry=registry,
        )
        self.labels = Counter(
            "streambed_labels",
            "Labels received, by outcome of the join with pending predictions.",
            ["outcome"],
            registry=registry,
        )
        self.labels_waiting = Gauge(
            "streambed_labels_waiting",
            "Labels received before their event was scored, held until it is (or until the "
            "label TTL has passed on the partition's event-time clock: then unmatched).",
            registry=registry,
        )
        self.event_latency = Histogram(
            "streambed_event_latency_seconds",
            "Time from an event's Kafka record timestamp (when it was produced) to its scored "
            "record being acknowledged by the broker: consumer lag shows in it.",
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "streambed_consumer_lag_records",
            "Records of an assigned events partition not yet processed (high watermark minus "
            "the next offset due).",
            ["partition"],
            registry=registry,
        )
        self.state_decode_errors = Counter(
            "streambed_state_decode_errors",
            "Table values that failed to decode as plain data (logged with their key, never "
            "executed; the entry is treated as absent).",
            ["table"],
            registry=registry,
        )
        self.training_examples = Counter(
            "streambed_training_examples",
            "Examples (a joined label with the features as scored) appended to the training "
            "topic.",
            registry=registry,
        )
        self.predictions_expired = Counter(
            "streambed_predictions_expired",
            "Scored events whose label did not come within the label TTL (forgotten).",
            registry=registry,
        )
        self.predictions_evicted = Counter(
            "streambed_predictions_evicted",
            "Scored events forgotten before their label TTL because state.max_pending was "
            "reached.",
            registry=registry,
        )
        self.model_versions_refused = Counter(
            "streambed_model_versions_refused",
            "Records on model.versions refused by a scorer: not a valid version record, or "
            "an artifact that does not match its SHA-256 (never executed).",
            registry=registry,
        )
        self.batch_records = Histogram(
            "streambed_batch_records",
            "Input records per processed batch.",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
            registry=registry,
        )
        self.batch_wait = Histogram(
            "streambed_batch_wait_seconds",
            "How long an input batch waited for more records once its first was in hand: "
            "0 unless records arrive faster than they are processed, then at most 50 ms.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
            registry=registry,
        )
        self.shadow_versions = Gauge(
            "streambed_shadow_versions",
            "Candidate versions this scorer scores in shadow beside the champion (status "
            "shadow, its feature set, at most model.promotion.max_shadows).",
            registry=registry,
        )
        self.shadow_scores = Counter(
            "streambed_shadow_scores",
            "Scores given by versions in shadow (one per accepted event per shadow; never "
            "served, carried into the training examples).",
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
        self.produce_errors = Counter(
            "streambed_produce_errors",
            "Records (scored, dead letters, model snapshots) the producer failed to deliver.",
            ["topic"],
            registry=registry,
        )
        self.assigned_partitions = Gauge(
            "streambed_assigned_partitions",
            "Partitions of the events topic this worker is assigned (0 until it has joined).",
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
        self._declare_learner()
        self._declare_drift()
        self._declare_performance()
        self._declare_impact()
        self.monitoring_last_refresh = Gauge(
            "streambed_monitoring_last_refresh_timestamp_seconds",
            "Time of the last recomputation of drift, performance and impact gauges "
            "(Unix seconds, on the clock the worker passes in).",
            registry=registry,
        )
        for table in STATE_TABLES:
            self.state_decode_errors.labels(table=table)
        # Every series of a bounded label set exists from the start, at 0, so increase()
        # sees the first count (an alert on a series born with value 1 would miss it).
        for reason in REJECTION_REASONS:
            self.rejections.labels(reason=reason)
        for decision in ("bootstrap", "promote", "hold", "await_review", "refuse", "rollback",
                         "pause", "resume", "pin_baseline"):
            self.model_decisions.labels(decision=decision)
        for outcome in ("learned", "skipped", "repeated", "invalid"):
            self.learner_examples.labels(outcome=outcome)
        for outcome in EVENT_OUTCOMES:
            self.events.labels(outcome=outcome)
        for outcome in LABEL_OUTCOMES:
            self.labels.labels(outcome=outcome)

    def _gauge(self, name: str, documentation: str, *labels: str) -> Gauge:
        return Gauge(name, documentation, list(labels), registry=self.registry)

    def _counter(self, name: str, documentation: str, *labels: str) -> Counter:
        return Counter(name, documentation, list(labels), registry=self.registry)

    def _declare_learner(self) -> None:
        g, c = self._gauge, self._counter
        self.learner_examples = c(
            "streambed_learner_examples",
            "Training examples read by the learner, by outcome: learned, skipped (another "
            "feature set), repeated (an event_id learned already: a scorer's at-least-once "
            "repeat).",
            "outcome",
        )
        self.learner_next_offset = g(
            "streambed_learner_next_offset",
            "The training offset the learner reads next (its snapshot covers the ones before).",
        )
        self.learner_active = g(
            "streambed_learner_active",
            "1 on the learner that holds the training partition, 0 on a standby.",
        )
        self.model_decisions = c(
            "streambed_model_decisions",
            "Lifecycle decisions recorded on model.audit, by decision (bootstrap, promote, "
            "hold, await_review, refuse, rollback, pause, resume, pin_baseline).",
            "decision",
        )
        self.model_last_promotion = g(
            "streambed_model_last_promotion_timestamp_seconds",
            "When the serving champion last changed (bootstrap, promotion or rollback), "
            "by the training record's time (Unix seconds).",
        )
        self.model_held_since_promotion = g(
            "streambed_model_held_versions",
            "Versions cut and held (or awaiting review) since the champion last changed.",
        )
        self.promotion_paused = g(
            "streambed_model_promotion_paused",
            "1 while drift in the training examples pauses automatic promotion "
            "(model.promotion.on_drift: pause), else 0.",
        )
        self.champion_roc_auc = g(
            "streambed_champion_roc_auc_ratio",
            "ROC AUC of the scores the serving champions gave, over the learner's evaluation "
            "window of recent labels (NaN below the minimum): one series across versions.",
        )
        self.champion_log_loss = g(
            "streambed_champion_log_loss",
            "Log loss of the scores the serving champions gave over the evaluation window.",
        )
        self.learner_snapshot_bytes = g(
            "streambed_learner_snapshot_bytes",
            "Size of the learner's last snapshot on the learner-state topic (gzipped JSON).",
        )

    def _declare_drift(self) -> None:
        g = self._gauge
        self.feature_drift_psi = g(
            "streambed_feature_drift_psi",
            "Population Stability Index of a feature: recent window vs reference, "
            "over reference-quantile bins (NaN until enough data).",
            "feature",
        )
        self.feature_drift_ks = g(
            "streambed_feature_drift_ks",
            "Kolmogorov-Smirnov statistic (largest CDF gap, 0-1) of a numeric feature, "
            "recent window vs reference, on fine reference-quantile bins.",
            "feature",
        )
        self.feature_drift_reference_events = g(
            "streambed_feature_drift_reference_events",
            "Events in a feature's drift reference (or collected so far while it is built).",
            "feature",
        )
        self.feature_drift_window_events = g(
            "streambed_feature_drift_window_events",
            "Events in a feature's current drift window.",
            "feature",
        )
        self.prediction_drift_psi = g(
            "streambed_prediction_drift_psi",
            "Population Stability Index of the model score: recent window vs reference.",
        )
        self.prediction_drift_ks = g(
            "streambed_prediction_drift_ks",
            "Kolmogorov-Smirnov statistic of the model score: recent window vs reference.",
        )
        self.prediction_drift_reference_events = g(
            "streambed_prediction_drift_reference_events",
            "Scores in the prediction drift reference (or collected so far).",
        )
        self.prediction_drift_window_events = g(
            "streambed_prediction_drift_window_events",
            "Scores in the current prediction drift window.",
        )
        self._declare_drift_tests()

    def _declare_drift_tests(self) -> None:
        g = self._gauge
        self.feature_drift_detected = g(
            "streambed_feature_drift_detected",
            "1 if the drift test flagged a feature on the last complete disjoint window "
            "(chi-square on the PSI bins against the champion's reference, and against the "
            "pinned baseline when there is one, at monitors.drift.false_alarm_rate per "
            "window, with the minimum effect), else 0 (also while no verdict is possible).",
            "feature",
        )
        self.feature_drift_statistic = g(
            "streambed_feature_drift_statistic",
            "The drift test's chi-square statistic for a feature on the last complete "
            "window (NaN: no verdict: too few events, no reference or dispersion yet).",
            "feature",
        )
        self.feature_drift_threshold = g(
            "streambed_feature_drift_threshold",
            "The statistic's threshold: the chi-square quantile at 1 - false_alarm_rate for "
            "the bins in use, times the estimated dispersion of window counts.",
            "feature",
        )
        self.prediction_drift_detected = g(
            "streambed_prediction_drift_detected",
            "1 if the drift test flagged the score on the last complete window, else 0.",
        )
        self.prediction_drift_statistic = g(
            "streambed_prediction_drift_statistic",
            "The drift test's chi-square statistic for the score on the last complete window.",
        )
        self.prediction_drift_threshold = g(
            "streambed_prediction_drift_threshold",
            "The score drift statistic's threshold (see streambed_feature_drift_threshold).",
        )

    def _declare_performance(self) -> None:
        g = self._gauge
        self.model_roc_auc = g(
            "streambed_model_roc_auc_ratio",
            "ROC AUC of a model version over its most recent labels (NaN below the minimum).",
            "model_version",
        )
        self.model_log_loss = g(
            "streambed_model_log_loss",
            "Log loss (mean negative log-likelihood, nats) of a model version over its "
            "most recent labels.",
            "model_version",
        )
        self.model_accuracy = g(
            "streambed_model_accuracy_ratio",
            "Share of a model version's recent decisions that matched their label.",
            "model_version",
        )
        self.model_window_labels = g(
            "streambed_model_window_labels",
            "Labels in a model version's performance window.",
            "model_version",
        )
        self.performance_error = g(
            "streambed_performance_error_ratio",
            "ADWIN's estimate of the current error rate (decision != label), all versions.",
        )
        self.performance_drift_detections = self._counter(
            "streambed_performance_drift_detections",
            "Changes of the error rate detected by ADWIN on the labelled error stream.",
        )
        self._declare_estimates()

    def _declare_estimates(self) -> None:
        g, bound = self._gauge, "bound"
        self.estimated_roc_auc = g(
            "streambed_estimated_roc_auc_ratio",
            "ROC AUC the champion's recent scores will show once labelled, estimated from its "
            "calibrated probabilities (CBPE), bound = estimate, lower, upper (the interval "
            "at monitors.performance.estimate_level; valid while the scores are calibrated).",
            bound,
        )
        self.estimated_accuracy = g(
            "streambed_estimated_accuracy_ratio",
            "Accuracy at the decision threshold the champion's recent decisions will show, "
            "estimated by CBPE, bound = estimate, lower, upper.",
            bound,
        )
        self.estimated_group_favourable_rate = g(
            "streambed_estimated_group_favourable_rate_ratio",
            "A group's favourable-outcome rate over the events CBPE estimates on (observed: "
            "no label needed), bound = estimate, lower, upper (Wilson interval).",
            "attribute", "group", bound,
        )
        self.estimated_group_true_positive_rate = g(
            "streambed_estimated_group_true_positive_rate_ratio",
            "A group's true positive rate on recent traffic, estimated by CBPE, bound = "
            "estimate, lower, upper (NaN below the minimum group size).",
            "attribute", "group", bound,
        )
        self.estimated_group_false_positive_rate = g(
            "streambed_estimated_group_false_positive_rate_ratio",
            "A group's false positive rate on recent traffic, estimated by CBPE, bound = "
            "estimate, lower, upper.",
            "attribute", "group", bound,
        )
        self.performance_estimate_reliable = g(
            "streambed_performance_estimate_reliable",
            "1 while the CBPE estimate holds on the champion's recent labelled examples: a "
            "calibrator fitted on their older half, judged on the newer half, passes "
            "Hosmer-Lemeshow (or the calibration error is within max_calibration_error) and "
            "the realised AUC falls in the CBPE interval; a calibrated estimate is flagged "
            "in at most calibration_alpha of checks. 0 when not (concept shift: "
            "P(label | features) moved); 1 with too few labels to tell.",
        )
        self.calibration_error = g(
            "streambed_calibration_error_ratio",
            "Expected calibration error of the champion's calibrated probabilities on the "
            "newer half of its recent labelled examples (the calibrator fitted on the older "
            "half; NaN below calibration_min_labels).",
        )
        self.estimated_roc_auc_gap = g(
            "streambed_estimated_roc_auc_gap",
            "On the newer half of the champion's recent labelled examples: the CBPE estimate "
            "of ROC AUC (calibrator fitted on the older half) minus the AUC they realised.",
        )
        self.estimated_roc_auc_covered = g(
            "streambed_estimated_roc_auc_covered",
            "1 if the realised ROC AUC of the newer half of the recent labelled examples lies "
            "inside its CBPE interval (calibrator fitted on the older half), else 0 (NaN: "
            "too few labels).",
        )
        self.champion_evaluation_roc_auc = g(
            "streambed_champion_evaluation_roc_auc_ratio",
            "The serving champion's own ROC AUC when it was judged (from its version record): "
            "what ModelStale compares recent performance with.",
        )

    def _declare_impact(self) -> None:
        g, group = self._gauge, ("attribute", "group")
        self.group_decisions = self._counter(
            "streambed_group_decisions",
            "Decisions by sensitive attribute, group and decision (1 = positive).",
            *group, "decision",
        )
        self.group_outcomes = self._counter(
            "streambed_group_outcomes",
            "Labelled predictions by sensitive attribute, group and confusion-matrix cell "
            "(tp, fp, tn, fn).",
            *group, "outcome",
        )
        self.group_favourable_decisions = self._counter(
            "streambed_group_favourable_decisions",
            "Decisions with the favourable outcome (monitors.favourable_outcome) by sensitive "
            "attribute and group; intersections are attributes of their own.",
            *group,
        )
        self.group_selection_rate = g(
            "streambed_group_selection_rate_ratio",
            "Share of decisions with the FAVOURABLE outcome (monitors.favourable_outcome) in "
            "a group over the recent impact window (NaN below the minimum group size).",
            *group,
        )
        self.group_true_positive_rate = g(
            "streambed_group_true_positive_rate_ratio",
            "True positive rate of a group over the recent impact window (NaN below minimum).",
            *group,
        )
        self.group_false_positive_rate = g(
            "streambed_group_false_positive_rate_ratio",
            "False positive rate of a group over the recent impact window (NaN below minimum).",
            *group,
        )
        self.group_window_decisions = g(
            "streambed_group_window_decisions",
            "Decisions for a group in the recent impact window.",
            *group,
        )
        self.demographic_parity_ratio = g(
            "streambed_demographic_parity_ratio",
            "Lowest over highest group rate of the favourable outcome for an attribute, over "
            "groups with enough decisions (four-fifths rule: below 0.8 is adverse impact).",
            "attribute",
        )
        self.equalized_odds_difference = g(
            "streambed_equalized_odds_difference",
            "Largest gap in true or false positive rate between an attribute's groups.",
            "attribute",
        )

    def sample_names(self) -> set[str]:
        """Every sample name these metrics export (``_total``, ``_bucket``, ... included)."""
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_count", "_sum"),
            "gauge": ("",),
        }
        names: set[str] = set()
        for value in vars(self).values():
            if isinstance(value, MetricWrapperBase):
                for family in value.describe():
                    names.update(family.name + s for s in suffixes[family.type])
        return names

    def set_model(self, model_version: str, feature_set: str) -> None:
        """Point ``streambed_model_info`` at the version now scoring (one series at 1)."""
        self.model_info.clear()
        self.model_info.labels(model_version=model_version, feature_set=feature_set).set(1)


def add_standard_collectors(registry: CollectorRegistry) -> None:
    """The process_*, python_gc_* and python_info series every Prometheus client exports
    (a process's own registry lacks them unless asked)."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
