"""Drift, performance and group-impact monitoring, Prometheus metrics and alert rules.

The statistics are a pure core (no Kafka, no clock, no I/O): :func:`psi`, :func:`ks`,
:func:`roc_auc`, :func:`demographic_parity_ratio`, ... The worker feeds a
:class:`Monitoring` and exports a :class:`Metrics`; the alert rules are
``monitors/alerts.yml`` (test copies: :mod:`monitors.alert_rules`). See docs/monitoring.md.
"""

from monitors.bins import Binning
from monitors.buckets import TimeBuckets
from monitors.cbpe import PerformanceEstimate, calibration_check, estimate_performance
from monitors.config import (
    DriftConfig,
    ImpactConfig,
    MonitorsConfig,
    PerformanceConfig,
    ReferenceConfig,
)
from monitors.drift import DriftStats, DriftVerdict, VariableDrift, drift_verdict
from monitors.drift_watch import DriftState, DriftWatch, reference_from_examples
from monitors.impact import (
    AttributeImpact,
    demographic_parity_ratio,
    equalized_odds_difference,
    group_of,
)
from monitors.ks import ks
from monitors.metrics import Metrics
from monitors.monitoring import Monitoring
from monitors.performance import PerformanceMonitor, accuracy, log_loss, roc_auc
from monitors.psi import psi
from monitors.reference import Reference, ReferenceSample, load_reference, write_reference
from monitors.sketch import (
    DriftReference,
    VariableSketch,
    impact_sketches,
    max_encoded_bytes,
    reference_at_cut,
)

__all__ = [
    "AttributeImpact",
    "Binning",
    "DriftConfig",
    "DriftReference",
    "DriftState",
    "DriftStats",
    "DriftVerdict",
    "DriftWatch",
    "ImpactConfig",
    "Metrics",
    "Monitoring",
    "MonitorsConfig",
    "PerformanceConfig",
    "PerformanceEstimate",
    "PerformanceMonitor",
    "Reference",
    "ReferenceConfig",
    "ReferenceSample",
    "TimeBuckets",
    "VariableDrift",
    "VariableSketch",
    "accuracy",
    "calibration_check",
    "demographic_parity_ratio",
    "drift_verdict",
    "equalized_odds_difference",
    "estimate_performance",
    "group_of",
    "impact_sketches",
    "ks",
    "load_reference",
    "log_loss",
    "max_encoded_bytes",
    "psi",
    "reference_at_cut",
    "reference_from_examples",
    "roc_auc",
    "write_reference",
]
