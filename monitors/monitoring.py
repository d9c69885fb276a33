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
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from typing import Any

from monitors.calibration import bootstrap_probabilities, fit_logistic
from monitors.cbpe import (
    NO_ESTIMATE,
    Estimate,
    PerformanceEstimate,
    estimate_performance,
    reliability_check,
)
from monitors.config import INTERSECTION_JOIN, MonitorsConfig
from monitors.drift import DriftStats, VariableDrift
from monitors.impact import OUTCOMES, AttributeImpact, outcome_of
from monitors.metrics import Metrics
from monitors.performance import PerformanceMonitor
from monitors.reference import Reference, load_reference
from monitors.sketch import DriftReference

BOUNDS = ("estimate", "lower", "upper")


def _set_bounds(gauge: Any, estimate: Estimate, labels: dict[str, str] | None = None) -> None:
    for bound, value in zip(BOUNDS, (estimate.value, estimate.lower, estimate.upper),
                            strict=True):
        gauge.labels(**(labels or {}), bound=bound).set(value)


def _json_number(value: float) -> float | None:
    """NaN (not valid JSON) becomes None."""
    return None if isinstance(value, float) and math.isnan(value) else value


def _jsonable(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _jsonable(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_jsonable(v) for v in data]
    return _json_number(data) if isinstance(data, float) else data


def favourable_decision(config: MonitorsConfig) -> int:
    """The decision a person wants: 0 (below the threshold) or 1."""
    return 0 if config.favourable_outcome == "below_threshold" else 1


def with_intersections(groups: Mapping[str, str | None],
                       intersections: Sequence[Sequence[str]]) -> dict[str, str | None]:
    """The event's groups plus one per intersection (``A×18-25``; None if a member is
    missing, so it counts as unknown).

    >>> with_intersections({"group": "A", "age": "18-25"}, [["group", "age"]])
    {'group': 'A', 'age': '18-25', 'group×age': 'A×18-25'}
    """
    out = dict(groups)
    for members in intersections:
        values = [groups.get(m) for m in members]
        missing = any(v is None or v == "" for v in values)
        out[INTERSECTION_JOIN.join(members)] = (
            None if missing else INTERSECTION_JOIN.join(str(v) for v in values))
    return out


def intersection_groups(config: MonitorsConfig) -> dict[str, list[str]]:
    """Each sensitive attribute's groups, and each intersection's (the combinations)."""
    out = dict(config.sensitive_attributes)
    for members in config.intersections:
        combos = [""]
        for member in members:
            combos = [f"{c}{INTERSECTION_JOIN if c else ''}{g}"
                      for c in combos for g in config.sensitive_attributes[member]]
        out[INTERSECTION_JOIN.join(members)] = combos
    return out


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
        #: Against the pinned baseline reference, when one is set (:meth:`set_reference`).
        self._baseline: dict[str, VariableDrift] = {}
        #: The version whose stored reference the drift compares with (source champion).
        self.reference_version: str | None = None
        self._performance = PerformanceMonitor(config.performance)
        self._favourable = favourable_decision(config)
        self._impact = {
            attribute: AttributeImpact(groups, config.impact)
            for attribute, groups in intersection_groups(config).items()
        }
        #: Recent (score, decision, groups) of the champion's events, for CBPE.
        self._recent: deque[tuple[float, int, tuple[str, ...]]] = deque(
            maxlen=config.performance.estimate_events)
        self._estimate: dict[str, Any] = {}
        self._estimated_at = -math.inf
        self.champion_evaluation_auc = math.nan
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
        self._favourable_counters = {
            (attribute, group): metrics.group_favourable_decisions.labels(
                attribute=attribute, group=group)
            for attribute, impact in self._impact.items()
            for group in impact.groups
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
            if name in self._baseline:
                self._baseline[name].observe(features.get(name), now)
        self._prediction.observe(score, now)
        if "" in self._baseline:
            self._baseline[""].observe(score, now)
        self._count_decisions([(score, int(decision), groups)], now)

    def _count_decisions(self, events: Sequence[tuple[float, int, Mapping[str, Any]]],
                         now: float) -> None:
        """Group decision counts (the favourable outcome) and the recent scores for CBPE."""
        intersections = self.config.intersections
        rows = [(score, decision, with_intersections(groups, intersections))
                for score, decision, groups in events]
        favourable = [int(d == self._favourable) for _, d, _ in rows]
        names = []
        for attribute, impact in self._impact.items():
            groups = [impact.group(g.get(attribute)) for _, _, g in rows]
            names.append(groups)
            impact.on_decisions(groups, favourable, now)
            for (group, decision), n in Counter(
                    zip(groups, (d for _, d, _ in rows), strict=True)).items():
                self._decision_counters[attribute, group, decision].inc(n)
            for group, n in Counter(
                    g for g, f in zip(groups, favourable, strict=True) if f).items():
                self._favourable_counters[attribute, group].inc(n)
        for i, (score, decision, _) in enumerate(rows):
            self._recent.append((float(score), decision, tuple(g[i] for g in names)))

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
            values = [o.features.get(name) for o in observations]
            drift.observe_many(values, now)
            if name in self._baseline:
                self._baseline[name].observe_many(values, now)
        scores = [o.score for o in observations]
        self._prediction.observe_many(scores, now)
        if "" in self._baseline:
            self._baseline[""].observe_many(scores, now)
        self._count_decisions([(o.score, int(o.decision), o.groups) for o in observations], now)

    def on_labelled(self, *, score: float, decision: int, label: int,
                    model_version: str) -> None:
        """A scorer's joined label: performance only (realised AUC, ADWIN, the calibration
        check of the estimate and its gap to what labels realise). The impact counts stay
        the learner's (:meth:`on_example`), which sees every partition's examples: counted
        on scorers too, each group's outcomes would be alerted on twice."""
        if self._performance.observe(score=score, decision=int(decision), label=int(label),
                                     model_version=model_version):
            self.metrics.performance_drift_detections.inc()

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
        self.on_labelled(score=score, decision=decision, label=label,
                         model_version=model_version)
        outcome = outcome_of(decision, label)
        groups = with_intersections(groups, self.config.intersections)
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
        self._count_decisions([(score, int(decision), groups)], now)
        self.on_label(score=score, decision=decision, label=label, groups=groups,
                      model_version=model_version, now=now)

    def on_model_version(self, model_version: str, now: float) -> None:
        """A new champion scores from now on: rebuild the prediction drift reference."""
        if model_version == self.model_version:
            return
        if self.model_version is not None and self.config.drift.reference.reset_on_model_version:
            self._prediction.reset()  # a new champion scores differently; features do not
            if self.reference_version not in (None, model_version):
                # The old champion's score sketch no longer applies: first events until
                # the new champion's reference is set.
                self._prediction = VariableDrift(self.config.drift)
                self._baseline.pop("", None)
        self._recent.clear()  # CBPE estimates the champion now scoring
        self.model_version = model_version

    def set_reference(self, reference: DriftReference, *, model_version: str | None = None,
                      baseline: DriftReference | None = None) -> None:
        """Compare from now on with a version's stored reference (``source: champion``):
        the scorer calls this with the champion's record (at start and at every change),
        so every scorer and every restart compares with the same reference. A pinned
        ``baseline`` is compared too (slow drift is not absorbed by successive versions);
        each comparison is then tested at half the false-alarm rate, so a feature's rate
        per window stays as stated. Features the reference lacks keep their reference.
        Ignored unless ``monitors.drift.reference.source`` is ``champion``."""
        if self.config.drift.reference.source != "champion":
            return
        drift = self.config.drift
        alpha = drift.false_alarm_rate / (2 if baseline is not None else 1)
        for name, monitor in self._features.items():
            if name in reference.features:
                monitor.set_sketch(reference.features[name])
            monitor.alpha = alpha
        if reference.score is not None:
            self._prediction.set_sketch(reference.score)
        self._prediction.alpha = alpha
        self._baseline = {}
        if baseline is not None:
            for name in self._features:
                if name in baseline.features:
                    self._baseline[name] = VariableDrift(drift, alpha=alpha)
                    self._baseline[name].set_sketch(baseline.features[name])
            if baseline.score is not None:
                self._baseline[""] = VariableDrift(drift, alpha=alpha)
                self._baseline[""].set_sketch(baseline.score)
        self.reference_version = model_version

    def set_champion_evaluation(self, roc_auc: float | None) -> None:
        """The serving champion's own ROC AUC when it was judged (its version record):
        what ModelStale compares recent estimated and realised performance with."""
        self.champion_evaluation_auc = math.nan if roc_auc is None else float(roc_auc)
        self.metrics.champion_evaluation_roc_auc.set(self.champion_evaluation_auc)

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
        baseline = self._baseline.get("")
        prediction_detected = prediction.detected or (
            baseline is not None and baseline.verdict(now).detected)
        m.prediction_drift_detected.set(int(prediction_detected))
        m.prediction_drift_statistic.set(prediction.statistic)
        m.prediction_drift_threshold.set(prediction.threshold)
        return _jsonable(
            {
                "refreshed_at": now,
                "model_version": self.model_version,
                "feature_drift": {k: v.to_dict() for k, v in features.items()},
                "prediction_drift": {**prediction.to_dict(), "detected": prediction_detected},
                "performance": {**self._set_performance_gauges(),
                                "estimate": self._set_estimate_gauges(now)},
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
            baseline = self._baseline.get(name)
            if baseline is not None and baseline.verdict(now).detected:
                stats[name] = s = DriftStats(**{**s.to_dict(), "detected": True})
            m.feature_drift_detected.labels(feature=name).set(int(s.detected))
            m.feature_drift_statistic.labels(feature=name).set(s.statistic)
            m.feature_drift_threshold.labels(feature=name).set(s.threshold)
        return stats

    def _set_estimate_gauges(self, now: float) -> dict[str, Any]:
        """CBPE over the champion's recent events and its check on labelled ones, at most
        every ``performance.estimate_every_seconds``."""
        cfg = self.config.performance
        if now - self._estimated_at < cfg.estimate_every_seconds and self._estimate:
            return self._estimate
        self._estimated_at = now
        m = self.metrics
        recent = list(self._recent)
        labelled = self._performance.window(self.model_version or "")
        scores = [s for s, _, _ in labelled]
        labels_ = [y for _, _, y in labelled]
        recent_scores = [r[0] for r in recent]
        # Calibrate before estimating (as NannyML's CBPE does): on the champion's most
        # recent labelled examples (at most performance.window_labels); below
        # calibration_min_labels the raw scores are taken as probabilities, and said so.
        calibrated = len(labelled) >= cfg.calibration_min_labels and len(recent) > 0
        calibrator = fit_logistic(scores, labels_) if calibrated else None
        estimate = estimate_performance(
            recent_scores, [r[1] for r in recent],
            {a: [r[2][i] for r in recent] for i, a in enumerate(self._impact)},
            favourable_decision=self._favourable, simulations=cfg.estimate_simulations,
            level=cfg.estimate_level, seed=len(recent),
            min_group_size=self.config.impact.min_group_size,
            probabilities=calibrator.apply(recent_scores) if calibrator else None,
            probability_draws=bootstrap_probabilities(scores, labels_, recent_scores,
                                                      seed=len(recent))
            if calibrator else None,
        ) if len(recent) >= cfg.min_labels else PerformanceEstimate(len(recent), NO_ESTIMATE,
                                                                      NO_ESTIMATE)
        _set_bounds(m.estimated_roc_auc, estimate.roc_auc)
        _set_bounds(m.estimated_accuracy, estimate.accuracy)
        for attribute, groups in estimate.groups.items():
            for group, g in groups.items():
                labels = {"attribute": attribute, "group": group}
                _set_bounds(m.estimated_group_favourable_rate, g.favourable_rate, labels)
                _set_bounds(m.estimated_group_true_positive_rate, g.true_positive_rate, labels)
                _set_bounds(m.estimated_group_false_positive_rate, g.false_positive_rate,
                            labels)
        # The flag: calibrator fitted on the older half of the labelled examples, judged on
        # the newer half (calibration check, and the realised AUC inside the CBPE interval);
        # a calibrated estimate is flagged in at most calibration_alpha of checks.
        check = reliability_check(scores, [d for _, d, _ in labelled], labels_,
                                  false_flag_rate=cfg.calibration_alpha,
                                  max_error=cfg.max_calibration_error,
                                  min_labels=cfg.calibration_min_labels,
                                  simulations=cfg.estimate_simulations,
                                  level=cfg.estimate_level, seed=len(labelled))
        covered = math.nan if math.isnan(check.gap) else float(check.covered)
        m.performance_estimate_reliable.set(int(check.reliable))
        m.calibration_error.set(check.calibration.calibration_error)
        m.estimated_roc_auc_gap.set(check.gap)
        m.estimated_roc_auc_covered.set(covered)
        self._estimate = {
            **estimate.to_dict(),
            "probabilities": "calibrated" if calibrator else "raw scores (too few labels)",
            "calibrator": ({"intercept": calibrator.intercept, "slope": calibrator.slope,
                            "labelled_examples": calibrator.examples}
                           if calibrator else None),
            "reliable": check.reliable,
            "calibration": check.calibration.to_dict(),
            "reliability": check.to_dict(),
            "roc_auc_gap": check.gap,
            "roc_auc_covered": covered,
            "champion_evaluation_roc_auc": self.champion_evaluation_auc,
        }
        return self._estimate

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
            "false_alarm_rate": c.drift.false_alarm_rate,
            "stale_margin": c.performance.stale_margin,
            "equalized_odds_alert": c.impact.equalized_odds_alert,
            "min_group_size": c.impact.min_group_size,
        }
