"""The façade the worker feeds: events, labels and model versions in; metrics and a snapshot out.

The per-event calls (:meth:`Monitoring.on_scored`, :meth:`Monitoring.on_label`) only
count: a bin lookup per feature, a few counter increments. The statistics (PSI, KS, AUC,
group rates and disparities) are computed by :meth:`Monitoring.refresh`, which the worker
calls on a timer (``monitors.refresh_seconds``); it sets the gauges and keeps a JSON-able
:meth:`Monitoring.snapshot`. Time is always passed in as ``now`` (Unix seconds, one clock
for all calls); nothing here reads a clock or does I/O, except reading a reference file
at construction when the config names one.

>>> from prometheus_client import CollectorRegistry
>>> from monitors.config import MonitorsConfig
>>> from monitors.metrics import Metrics
>>> config = MonitorsConfig(sensitive_attributes={"group": ["A", "B"]},
...                         drift={"reference": {"events": 10}, "min_window_events": 5})
>>> m = Monitoring(config, ["amount"], Metrics(CollectorRegistry()))
>>> for i in range(20):
...     m.on_scored(features={"amount": float(i)}, score=i / 20, decision=int(i >= 10),
...                 groups={"group": "A"}, model_version="v1", now=float(i))
>>> m.refresh(now=20.0)
>>> m.snapshot()["feature_drift"]["amount"]["status"]   # 10..19 vs reference 0..9
'alert'
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from monitors.config import MonitorsConfig
from monitors.drift import DriftStats, VariableDrift
from monitors.impact import OUTCOMES, AttributeImpact, outcome_of
from monitors.metrics import Metrics
from monitors.performance import PerformanceMonitor
from monitors.reference import Reference, load_reference


def _json_number(value: float) -> float | None:
    """NaN (not valid JSON) becomes None."""
    return None if isinstance(value, float) and math.isnan(value) else value


def _jsonable(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _jsonable(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_jsonable(v) for v in data]
    return _json_number(data) if isinstance(data, float) else data


class Monitoring:
    """Drift, performance and group impact for one worker, exported through ``metrics``."""

    def __init__(self, config: MonitorsConfig, feature_names: list[str], metrics: Metrics) -> None:
        self.config = config
        unknown = sorted(set(config.drift.features or ()) - set(feature_names))
        if unknown:
            raise ValueError(f"monitors.drift.features names unknown features: {unknown}")
        self.feature_names = list(config.drift.features or feature_names)
        self.metrics = metrics
        reference = self._reference_file(config)
        drift = config.drift
        self._features = {
            name: VariableDrift(drift, reference.features[name] if reference else None)
            for name in self.feature_names
        }
        self._prediction = VariableDrift(drift, reference.prediction if reference else None)
        self._performance = PerformanceMonitor(config.performance)
        self._impact = {
            attribute: AttributeImpact(groups, config.impact)
            for attribute, groups in config.sensitive_attributes.items()
        }
        self.model_version: str | None = None
        self._exported_versions: set[str] = set()
        self._snapshot: dict[str, Any] = {"refreshed_at": None}
        self._decision_counters = {
            (attribute, group, decision): metrics.group_decisions.labels(
                attribute=attribute, group=group, decision=str(decision)
            )
            for attribute, impact in self._impact.items()
            for group in impact.groups
            for decision in (0, 1)
        }
        self._outcome_counters = {
            (attribute, group, outcome): metrics.group_outcomes.labels(
                attribute=attribute, group=group, outcome=outcome
            )
            for attribute, impact in self._impact.items()
            for group in impact.groups
            for outcome in OUTCOMES
        }
        self._publish(now=0.0)  # every series exists from the start, NaN until computed

    def _reference_file(self, config: MonitorsConfig) -> Reference | None:
        settings = config.drift.reference
        if settings.source != "file" or settings.path is None:
            return None
        reference = load_reference(settings.path)
        missing = [name for name in self.feature_names if name not in reference.features]
        if missing:
            raise ValueError(
                f"reference file {settings.path} lacks features {missing}; "
                "rewrite it from a training set of the current feature set"
            )
        return reference

    # ---- per event (cheap) ------------------------------------------------------------

    def on_scored(
        self,
        *,
        features: dict[str, float | int | None],
        score: float,
        decision: int,
        groups: dict[str, str | None],
        model_version: str,
        now: float,
    ) -> None:
        """Count a scored event into drift windows and group decision counts."""
        if model_version != self.model_version:
            self.on_model_version(model_version, now)
        for name, drift in self._features.items():
            drift.observe(features.get(name), now)
        self._prediction.observe(score, now)
        decision = int(decision)
        for attribute, impact in self._impact.items():
            group = impact.group(groups.get(attribute))
            impact.on_decision(group, decision, now)
            self._decision_counters[attribute, group, decision].inc()

    def on_scored_batch(
        self,
        observations: Sequence[Any],
        *,
        model_version: str,
        now: float,
    ) -> None:
        """Count a batch of scored events (objects with ``features``, ``score``,
        ``decision`` and ``groups``): the same counts as :meth:`on_scored` one by one, with
        one numpy pass per monitored variable instead of a call per event."""
        if not observations:
            return
        if model_version != self.model_version:
            self.on_model_version(model_version, now)
        for name, drift in self._features.items():
            drift.observe_many([o.features.get(name) for o in observations], now)
        self._prediction.observe_many([o.score for o in observations], now)
        decisions = [int(o.decision) for o in observations]
        for attribute, impact in self._impact.items():
            groups = [impact.group(o.groups.get(attribute)) for o in observations]
            impact.on_decisions(groups, decisions, now)
            for (group, decision), n in Counter(zip(groups, decisions, strict=True)).items():
                self._decision_counters[attribute, group, decision].inc(n)

    def on_label(
        self,
        *,
        score: float,
        decision: int,
        label: int,
        groups: dict[str, str | None],
        model_version: str,
        now: float,
    ) -> None:
        """Count a joined label into performance, ADWIN and the group confusion matrices."""
        decision, label = int(decision), int(label)
        if self._performance.observe(
            score=score, decision=decision, label=label, model_version=model_version
        ):
            self.metrics.performance_drift_detections.inc()
        outcome = outcome_of(decision, label)
        for attribute, impact in self._impact.items():
            group = impact.group(groups.get(attribute))
            impact.on_outcome(group, outcome, now)
            self._outcome_counters[attribute, group, outcome].inc()

    def on_example(
        self,
        *,
        score: float,
        decision: int,
        label: int,
        groups: dict[str, str | None],
        model_version: str,
        now: float,
    ) -> None:
        """The learner's view of one labelled example: its decision and its outcome, so
        selection rates, TPR, FPR and their disparities cover every partition."""
        for attribute, impact in self._impact.items():
            group = impact.group(groups.get(attribute))
            impact.on_decision(group, int(decision), now)
            self._decision_counters[attribute, group, int(decision)].inc()
        self.on_label(score=score, decision=decision, label=label, groups=groups,
                      model_version=model_version, now=now)

    def on_model_version(self, model_version: str, now: float) -> None:
        """A new champion scores from now on: rebuild the prediction drift reference."""
        if model_version == self.model_version:
            return
        if self.model_version is not None and self.config.drift.reference.reset_on_model_version:
            self._prediction.reset()  # a new champion scores differently; features do not
        self.model_version = model_version

    # ---- on a timer -------------------------------------------------------------------

    def refresh(self, now: float) -> None:
        """Recompute every statistic over the windows ending at ``now`` and set the gauges."""
        self._snapshot = self._publish(now)
        self.metrics.monitoring_last_refresh.set(now)

    def _publish(self, now: float) -> dict[str, Any]:
        """Compute the statistics, set the gauges, return them as JSON-able data."""
        features = self._set_drift_gauges(now)
        prediction = self._prediction.statistics(now)
        m = self.metrics
        m.prediction_drift_psi.set(prediction.psi)
        m.prediction_drift_ks.set(prediction.ks)
        m.prediction_drift_reference_events.set(prediction.reference_events)
        m.prediction_drift_window_events.set(prediction.window_events)
        return _jsonable(
            {
                "refreshed_at": now,
                "model_version": self.model_version,
                "feature_drift": {k: v.to_dict() for k, v in features.items()},
                "prediction_drift": prediction.to_dict(),
                "performance": self._set_performance_gauges(),
                "impact": self._set_impact_gauges(now),
                "thresholds": self._thresholds(),
            }
        )

    def snapshot(self) -> dict[str, Any]:
        """The statistics as of the last :meth:`refresh`, as plain JSON-able data (NaN → None)."""
        return copy.deepcopy(self._snapshot)

    def _set_drift_gauges(self, now: float) -> dict[str, DriftStats]:
        m = self.metrics
        stats = {name: drift.statistics(now) for name, drift in self._features.items()}
        for name, s in stats.items():
            m.feature_drift_psi.labels(feature=name).set(s.psi)
            m.feature_drift_ks.labels(feature=name).set(s.ks)
            m.feature_drift_reference_events.labels(feature=name).set(s.reference_events)
            m.feature_drift_window_events.labels(feature=name).set(s.window_events)
        return stats

    def _set_performance_gauges(self) -> dict[str, Any]:
        m = self.metrics
        stats = self._performance.statistics()
        for gone in self._exported_versions - set(stats):
            for gauge in (m.model_roc_auc, m.model_log_loss, m.model_accuracy,
                          m.model_window_labels):
                gauge.remove(gone)
        for version, s in stats.items():
            m.model_roc_auc.labels(model_version=version).set(s.roc_auc)
            m.model_log_loss.labels(model_version=version).set(s.log_loss)
            m.model_accuracy.labels(model_version=version).set(s.accuracy)
            m.model_window_labels.labels(model_version=version).set(s.labels)
        self._exported_versions = set(stats)
        m.performance_error.set(self._performance.error_ratio)
        current = stats.get(self.model_version or "")
        auc = current.roc_auc if current else float("nan")
        if math.isnan(auc):
            status = "pending"
        else:
            status = "alert" if auc < self.config.performance.roc_auc_alert else "ok"
        return {
            "versions": {v: s.to_dict() for v, s in stats.items()},
            "error_ratio": self._performance.error_ratio,
            "drift_detections": self._performance.detections,
            "status": status,
        }

    def _set_impact_gauges(self, now: float) -> dict[str, Any]:
        m = self.metrics
        out: dict[str, Any] = {}
        cfg = self.config.impact
        for attribute, impact in self._impact.items():
            stats = impact.statistics(now)
            for group, g in stats.groups.items():
                labels = {"attribute": attribute, "group": group}
                m.group_selection_rate.labels(**labels).set(g.selection_rate)
                m.group_true_positive_rate.labels(**labels).set(g.true_positive_rate)
                m.group_false_positive_rate.labels(**labels).set(g.false_positive_rate)
                m.group_window_decisions.labels(**labels).set(g.decisions)
            m.demographic_parity_ratio.labels(attribute=attribute).set(
                stats.demographic_parity_ratio
            )
            m.equalized_odds_difference.labels(attribute=attribute).set(
                stats.equalized_odds_difference
            )
            parity, odds = stats.demographic_parity_ratio, stats.equalized_odds_difference
            if math.isnan(parity) and math.isnan(odds):
                status = "pending"
            elif parity < cfg.parity_ratio_alert or odds > cfg.equalized_odds_alert:
                status = "alert"
            else:
                status = "ok"
            out[attribute] = {**stats.to_dict(), "status": status}
        return out

    def _thresholds(self) -> dict[str, float]:
        c = self.config
        return {
            "psi_warn": c.drift.psi_warn,
            "psi_alert": c.drift.psi_alert,
            "ks_warn": c.drift.ks_warn,
            "ks_alert": c.drift.ks_alert,
            "roc_auc_alert": c.performance.roc_auc_alert,
            "parity_ratio_alert": c.impact.parity_ratio_alert,
            "equalized_odds_alert": c.impact.equalized_odds_alert,
            "min_group_size": c.impact.min_group_size,
        }
