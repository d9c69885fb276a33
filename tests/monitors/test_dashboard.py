"""The Grafana dashboard: valid JSON whose queries read only metrics that exist."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from monitors.alert_rules import metric_names_in, recording_rule_names
from monitors.metrics import Metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "streambed.json"


def expressions(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if isinstance(variable.get("query"), dict):
            exprs.append(variable["query"]["query"])
    return exprs


def test_dashboard_is_valid_json_with_unique_panel_ids() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] == "streambed"


def test_every_query_reads_only_declared_metrics_or_recording_rules() -> None:
    known = Metrics(CollectorRegistry()).sample_names() | set(recording_rule_names()) | {"up"}
    for expr in expressions(json.loads(DASHBOARD.read_text())):
        names = metric_names_in(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= known, f"{expr!r} reads unknown {names - known}"


def test_dashboard_covers_what_an_sre_watches() -> None:
    text = " ".join(expressions(json.loads(DASHBOARD.read_text())))
    for needle in ["streambed_events_total", "streambed_event_latency_seconds_bucket",
                   "dead_letter", "streambed_feature_drift_psi", "streambed_prediction_drift_psi",
                   "streambed_group_selection_rate_ratio", "streambed_demographic_parity_ratio",
                   "streambed_equalized_odds_difference", "streambed_model_info",
                   "streambed_model_roc_auc_ratio", "streambed_last_label_timestamp_seconds",
                   "streambed_model_last_updated_timestamp_seconds"]:
        assert needle in text, needle
