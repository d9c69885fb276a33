"""The Grafana dashboard: valid JSON whose queries read only metrics that exist."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
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
                   "streambed_model_last_updated_timestamp_seconds",
                   "streambed_consumer_lag_records", "entity_state_limit", "processing_error",
                   "streambed_model_decisions_total", "streambed_champion_roc_auc_ratio",
                   "streambed_learner_active", "streambed_learner_next_offset",
                   "streambed_model_last_promotion_timestamp_seconds"]:
        assert needle in text, needle


def panel_queries(dashboard: dict[str, Any]) -> dict[str, str]:
    """Each panel's title → its queries joined."""
    return {p["title"]: " ".join(t["expr"] for t in p.get("targets", []))
            for p in dashboard["panels"]}


def test_panels_for_the_two_roles_read_what_each_role_exports() -> None:
    """Lag, event latency from produce time, the DLQ reasons that need a person, the
    champion and its lifecycle, and the learner: each panel exists and reads its metric."""
    panels = panel_queries(json.loads(DASHBOARD.read_text()))
    known = Metrics(CollectorRegistry()).sample_names() | set(recording_rule_names()) | {"up"}
    wanted = {
        "Event latency from produce time": ["streambed_event_latency_seconds_bucket"],
        "Consumer lag per events partition": ["streambed_consumer_lag_records"],
        "Dead letters by reason": ["streambed_rejections_total"],
        "Dead letters needing a person": ["streambed_rejections_total", "entity_state_limit",
                                          "processing_error"],
        "State decode errors and refused model versions": [
            "streambed_state_decode_errors_total", "streambed_model_versions_refused_total"],
        "Champion serving now": ["streambed_model_info"],
        "Champion over time": ["streambed_model_info", "model_version"],
        "Lifecycle decisions": ["streambed_model_decisions_total",
                                "streambed_model_held_versions"],
        "Champion ROC AUC": ["streambed_champion_roc_auc_ratio", "streambed_learner_active"],
        "Learner active": ["streambed_learner_active"],
        "Learner next training offset": ["streambed_learner_next_offset"],
        "Training examples": ["streambed_training_examples_total",
                              "streambed_learner_examples_total"],
    }
    for prefix, needles in wanted.items():
        matches = [q for title, q in panels.items() if title.startswith(prefix)]
        assert len(matches) == 1, f"one panel titled {prefix!r}..., found {len(matches)}"
        (query,) = matches
        for needle in needles:
            assert needle in query, f"{prefix!r} does not read {needle}"
        assert metric_names_in(query) <= known, f"{prefix!r} reads unknown metrics"


def test_learner_panels_read_the_learner_job_and_scorer_panels_the_scorers() -> None:
    panels = panel_queries(json.loads(DASHBOARD.read_text()))
    for title, query in panels.items():
        for metric in ("streambed_champion_", "streambed_learner_next_offset",
                       "streambed_model_decisions_total", "streambed_model_roc_auc_ratio"):
            if metric in query:
                assert 'job="streambed-learner"' in query, (title, metric)
        if "streambed_consumer_lag_records" in query:
            assert 'job="streambed"' in query, title


def test_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], int] = {}
    for p in json.loads(DASHBOARD.read_text())["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps panel {cells[(x, y)]}"
                cells[(x, y)] = p["id"]


def test_every_query_parses_as_promql(tmp_path: Path) -> None:
    """promtool parses each panel query (the dashboard variables filled in) as a recording
    rule; the variables' own queries are Grafana's label_values(), not PromQL."""
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool is not installed (Debian package `prometheus`); it is required")
    queries = [e.replace("$job", "streambed").replace("$attribute", ".*")
               for e in expressions(json.loads(DASHBOARD.read_text()))
               if not e.startswith("label_values(")]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": q} for i, q in enumerate(queries)]}]}
    path = tmp_path / "dashboard.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run([exe, "check", "rules", str(path)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
