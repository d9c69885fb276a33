"""Configuration of the monitors: which attributes are audited and how drift is judged.

Every field has a default, so ``monitors: {}`` (or no section at all) is a working
configuration. Unknown keys are errors, at every level, so a typo is seen::

    monitors:
      sensitive_attributes: {group: [A, B, C]}
      refresh_seconds: 5
      drift:
        reference: {source: first_events, events: 500}
        window_seconds: 900
        bins: 10
      performance: {window_labels: 1000}
      impact: {min_group_size: 30}

>>> MonitorsConfig().drift.psi_alert
0.2
>>> MonitorsConfig(drift={"reference": {"source": "file"}})
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for MonitorsConfig
drift.reference
  Value error, reference source 'file' needs a path ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: Group names the monitors use themselves; configured groups must not reuse them.
OTHER_GROUP = "other"
UNKNOWN_GROUP = "unknown"
#: Joins the member attributes of an intersection into its name (``group×age_band``).
INTERSECTION_JOIN = "×"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReferenceConfig(_Section):
    """Where the reference ("what normal looks like") distribution comes from."""

    #: ``champion``: the reference stored with the serving champion's version record (a
    #: sketch of the last ``examples`` training examples at its cut, :mod:`monitors.sketch`):
    #: every scorer and every restart compares with the same one. Until the champion's
    #: record carries one (older versions), the first events serve, reported as such.
    #: ``first_events``: the first ``events`` accepted events after start (for predictions,
    #: again after each champion change if ``reset_on_model_version``). ``file``: a JSON file
    #: written by :func:`monitors.reference.write_reference` (e.g. from a replayed
    #: training set); it must hold every configured feature, and if it has no scores,
    #: prediction drift falls back to first_events.
    source: Literal["champion", "first_events", "file"] = "champion"
    #: ``champion``: the learner sketches this many of the last training examples at a cut.
    examples: int = Field(default=2000, ge=10)
    #: ``champion``: a version cut from fewer examples keeps its parent's reference
    #: (:func:`monitors.sketch.reference_at_cut`).
    min_examples: int = Field(default=500, ge=10)
    events: int = Field(default=500, ge=10)
    #: Accepted events skipped after start before ``first_events`` begins: a 6-hour window
    #: over a fresh stream holds less than it will, and would make a biased reference.
    #: (Not re-applied after a model version change: the windows are warm by then.)
    warmup_events: int = Field(default=0, ge=0)
    path: Path | None = None
    #: Rebuild the PREDICTION drift reference (taken from first events) when a new champion
    #: starts serving: a new model has its own score distribution, and comparing it with
    #: the last one's would report the promotion, not drift. On by default: versions serve
    #: only when promoted, not every few hundred labels. Feature references never move with
    #: the model (features do not depend on it); file references are never rebuilt.
    reset_on_model_version: bool = True

    @model_validator(mode="after")
    def _path_for_file(self) -> ReferenceConfig:
        if self.source == "file" and self.path is None:
            raise ValueError("reference source 'file' needs a path (monitors.drift.reference.path)")
        if self.min_examples > self.examples:
            raise ValueError(f"min_examples ({self.min_examples}) cannot exceed examples "
                             f"({self.examples}): no reference would ever be a version's own")
        return self


class DriftConfig(_Section):
    """Feature and prediction drift: PSI and binned KS against a reference."""

    reference: ReferenceConfig = ReferenceConfig()
    #: The features watched for drift (default: all). Leave out features that are not
    #: stationary by design, such as lifetime counts, which grow for every entity.
    features: list[str] | None = None
    #: The current distribution covers the last ``window_seconds``, kept as
    #: ``window_buckets`` time buckets of binned counts (bounded memory).
    window_seconds: float = Field(default=900.0, gt=0)
    window_buckets: int = Field(default=15, ge=1, le=1000)
    #: PSI bins: reference quantiles for numeric variables.
    bins: int = Field(default=10, ge=2, le=100)
    #: KS bins: finer reference quantiles; a multiple of ``bins`` (PSI bins are unions of them).
    ks_bins: int = Field(default=100, ge=2, le=1000)
    #: Categorical variables keep their most frequent reference categories; the rest is 'other'.
    max_categories: int = Field(default=20, ge=1, le=1000)
    #: Below this many events in the current window, drift is not computed (NaN) and no
    #: drift verdict is given.
    min_window_events: int = Field(default=100, ge=1)
    #: The drift test (:mod:`monitors.chisquare`): the probability that one feature's
    #: verdict on one window (a disjoint ``window_seconds``) says drift when there is none.
    false_alarm_rate: float = Field(default=0.01, gt=0, lt=0.5)
    #: Family-wise: the probability that any watched statistic says drift in one window
    #: when none does; what pausing automatic promotion uses (:class:`monitors.DriftWatch`).
    family_false_alarm_rate: float = Field(default=0.01, gt=0, lt=0.5)
    #: Minimum effect: a window is flagged only if its PSI (same bins) is at least this, so
    #: windows of thousands of events do not flag shifts too small to matter (0.02 is about
    #: a 0.14-standard-deviation shift of a normal variable).
    min_effect_psi: float = Field(default=0.02, ge=0)
    #: The dispersion of window counts (windowed features of one entity are correlated
    #: from event to event) is estimated from the last ``dispersion_windows`` pairs of
    #: consecutive windows; no verdict until ``min_dispersion_pairs`` pairs are known
    #: (:func:`monitors.drift.dispersion`). The test accounts for the estimate's noise
    #: (an F threshold), so few pairs make it conservative: a two-bin statistic (a group's
    #: favourable share) has one degree of freedom per pair, hence 30.
    dispersion_windows: int = Field(default=30, ge=1, le=200)
    min_dispersion_pairs: int = Field(default=3, ge=1)
    #: Clean windows in a row after which a drift pause lifts by policy.
    resume_after: int = Field(default=3, ge=1)
    #: The learner's drift watch (:class:`monitors.DriftWatch`, what pauses automatic
    #: promotion) judges disjoint windows of this many training examples. 1000: a group of
    #: a tenth of the examples then has the ``min_window_events`` (100) its favourable
    #: share is judged on; two versions' worth at the quickstart's cadence.
    watch_examples: int = Field(default=1000, ge=10)
    #: Floor for empty-bin proportions in PSI, so ln(p/q) stays finite.
    psi_epsilon: float = Field(default=1e-4, gt=0, lt=0.01)
    #: PSI 0.1 / 0.2: common practice from credit scoring (Siddiqi 2006).
    psi_warn: float = Field(default=0.1, gt=0)
    psi_alert: float = Field(default=0.2, gt=0)
    #: KS 0.1 / 0.2: an effect size (largest CDF gap), not a significance test.
    ks_warn: float = Field(default=0.1, gt=0, le=1)
    ks_alert: float = Field(default=0.2, gt=0, le=1)

    @model_validator(mode="after")
    def _consistent(self) -> DriftConfig:
        if self.ks_bins % self.bins:
            raise ValueError(f"ks_bins ({self.ks_bins}) must be a multiple of bins ({self.bins})")
        if self.min_dispersion_pairs > self.dispersion_windows:
            raise ValueError("min_dispersion_pairs cannot exceed dispersion_windows")
        if self.psi_warn > self.psi_alert or self.ks_warn > self.ks_alert:
            raise ValueError("warn thresholds must not exceed alert thresholds")
        if self.watch_examples < self.min_window_events:
            raise ValueError(f"watch_examples ({self.watch_examples}) must be at least "
                             f"min_window_events ({self.min_window_events}): a smaller "
                             f"window is never judged")
        return self

    #: The settings that decide the learner's drift pauses: on record in its promotion
    #: policy (:meth:`governance.config.PromotionPolicy.on_record`); the others (the
    #: scorers' sliding window, the dashboard thresholds, where a scorer's reference
    #: comes from) are not part of that policy.
    NOT_PAUSING: ClassVar[dict[str, Any]] = {
        "window_seconds": True, "window_buckets": True, "false_alarm_rate": True,
        "psi_warn": True, "psi_alert": True, "ks_warn": True, "ks_alert": True,
        "reference": {"source": True, "events": True, "warmup_events": True, "path": True,
                      "reset_on_model_version": True}}

    @property
    def bucket_seconds(self) -> float:
        return self.window_seconds / self.window_buckets


class PerformanceConfig(_Section):
    """Model performance on delayed labels, per model version."""

    #: Most recent labels kept per model version for AUC, log loss and accuracy.
    window_labels: int = Field(default=1000, ge=10)
    #: Below this many labels for a version, its gauges are NaN.
    min_labels: int = Field(default=30, ge=1)
    #: Model versions tracked at once; the least recently labelled one is dropped.
    max_model_versions: int = Field(default=5, ge=1, le=100)
    #: ADWIN confidence on the 0/1 error stream (River's default, Bifet & Gavaldà 2007).
    adwin_delta: float = Field(default=0.002, gt=0, lt=1)
    #: AUC below this on the version now scoring is degraded (0.7: "acceptable
    #: discrimination", Hosmer & Lemeshow 2000). Used by the snapshot status and the alert.
    roc_auc_alert: float = Field(default=0.7, gt=0, le=1)
    #: Performance before labels (CBPE, :mod:`monitors.cbpe`): the most recent scored
    #: events estimated over, the simulations of their labels, the interval's level, and
    #: the least time between two estimates (seconds on the monitors' clock).
    estimate_events: int = Field(default=2000, ge=100, le=100_000)
    estimate_simulations: int = Field(default=300, ge=50, le=10_000)
    estimate_level: float = Field(default=0.95, gt=0.5, lt=1)
    estimate_every_seconds: float = Field(default=30.0, ge=0)
    #: The reliability flag on labelled examples (:func:`monitors.cbpe.reliability_check`):
    #: ``calibration_alpha`` is its family-wise false-flag rate per check (half to
    #: Hosmer-Lemeshow on the held-out half, which also needs the expected calibration
    #: error above ``max_calibration_error``; half to the realised AUC leaving the CBPE
    #: interval). ``calibration_min_labels``: labels needed to calibrate the scores before
    #: estimating and to check; below it the raw scores are estimated on, unchecked.
    calibration_alpha: float = Field(default=0.01, gt=0, lt=0.5)
    max_calibration_error: float = Field(default=0.05, ge=0, lt=1)
    calibration_min_labels: int = Field(default=200, ge=20)
    #: ModelStale: recent (estimated or realised) ROC AUC below the champion's own
    #: evaluation by more than this.
    stale_margin: float = Field(default=0.05, gt=0, lt=1)


class ImpactConfig(_Section):
    """Group impact: selection rate, TPR and FPR by sensitive group over a recent window."""

    window_seconds: float = Field(default=3600.0, gt=0)
    window_buckets: int = Field(default=12, ge=1, le=1000)
    #: A group with fewer samples than this in the window has NaN rates and is left out of
    #: the parity ratio and equalized-odds difference.
    min_group_size: int = Field(default=30, ge=1)
    #: Four-fifths rule (US EEOC Uniform Guidelines, 29 CFR 1607.4(D)).
    parity_ratio_alert: float = Field(default=0.8, gt=0, le=1)
    equalized_odds_alert: float = Field(default=0.1, gt=0, le=1)

    @property
    def bucket_seconds(self) -> float:
        return self.window_seconds / self.window_buckets


class MonitorsConfig(BaseModel):
    """The ``monitors:`` section of a streambed config file."""

    model_config = ConfigDict(extra="forbid")

    #: Sensitive attribute → its bounded set of groups; any other value counts as 'other'.
    sensitive_attributes: dict[str, list[str]] = Field(default_factory=dict)
    #: Which side of the model's threshold is the outcome a person wants (a loan approved,
    #: no fraud flag): selection rates, parity and the four-fifths bound are computed on it.
    #: ``below_threshold``: a score under the threshold (decision 0) is favourable, as in a
    #: risk score; ``above_threshold``: decision 1 is favourable.
    #: Default ``below_threshold``: streambed's scores are risks (default, fraud), where a low
    #: score is what the person wants; a config whose score means the opposite must say so,
    #: or every parity figure is inverted.
    favourable_outcome: Literal["below_threshold", "above_threshold"] = "below_threshold"
    #: Optional intersections of sensitive attributes (e.g. ``[[group, age_band]]``), each
    #: judged and monitored as one more attribute named ``group×age_band`` whose groups are
    #: the combinations of its members' groups.
    intersections: list[list[str]] = Field(default_factory=list)
    #: Seconds between recomputations of the expensive statistics.
    refresh_seconds: float = Field(default=5.0, gt=0)
    drift: DriftConfig = DriftConfig()
    performance: PerformanceConfig = PerformanceConfig()
    impact: ImpactConfig = ImpactConfig()

    @field_validator("sensitive_attributes")
    @classmethod
    def _bounded_groups(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for attribute, groups in value.items():
            reserved = {OTHER_GROUP, UNKNOWN_GROUP} & set(groups)
            if reserved:
                raise ValueError(
                    f"{attribute}: group names {sorted(reserved)} are reserved "
                    "(unlisted values count as 'other', missing ones as 'unknown')"
                )
            if len(set(groups)) != len(groups):
                raise ValueError(f"{attribute}: groups repeat")
            if len(groups) > 100:
                raise ValueError(f"{attribute}: at most 100 groups (label values stay bounded)")
        return value

    @model_validator(mode="after")
    def _known_intersections(self) -> MonitorsConfig:
        for i, members in enumerate(self.intersections):
            if len(members) < 2 or len(set(members)) != len(members):
                raise ValueError(f"intersections[{i}]: name two or more distinct attributes")
            unknown = [m for m in members if m not in self.sensitive_attributes]
            if unknown:
                raise ValueError(f"intersections[{i}]: {unknown} not in sensitive_attributes")
        return self

    def intersection_names(self) -> list[str]:
        """The attribute name of each intersection, e.g. ``group×age_band``."""
        return [INTERSECTION_JOIN.join(members) for members in self.intersections]
