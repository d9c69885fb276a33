"""Drift, performance and group-impact monitoring, Prometheus metrics and alert rules.

The statistics are a pure core (no Kafka, no clock, no I/O): :func:`psi`, :func:`ks`,
:func:`roc_auc`, :func:`demographic_parity_ratio`, ... The worker feeds a
:class:`Monitoring` and exports a :class:`Metrics`; the alert rules are
``monitors/alerts.yml`` (test copies: :mod:`monitors.alert_rules`). See docs/monitoring.md.
"""

from monitors.bins import Binning
from monitors.buckets import TimeBuckets
from monitors.config import (
    DriftConfig,
    ImpactConfig,
    MonitorsConfig,
    PerformanceConfig,
    ReferenceConfig,
)
from monitors.drift import DriftStats, VariableDrift
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

__all__ = [
    "AttributeImpact",
    "Binning",
    "DriftConfig",
    "DriftStats",
    "ImpactConfig",
    "Metrics",
    "Monitoring",
    "MonitorsConfig",
    "PerformanceConfig",
    "PerformanceMonitor",
    "Reference",
    "ReferenceConfig",
    "ReferenceSample",
    "TimeBuckets",
    "VariableDrift",
    "accuracy",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "group_of",
    "ks",
    "load_reference",
    "log_loss",
    "psi",
    "roc_auc",
    "write_reference",
]
