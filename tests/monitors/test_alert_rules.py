"""The alert rules: promtool-valid, unit-tested, well-annotated, reading real metrics."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from monitors.alert_rules import (
    ALERTS_PATH,
    alert_names,
    load_rules,
    metric_names_in,
    recording_rule_names,
    rules_with_for,
)
from monitors.metrics import Metrics

pytestmark = pytest.mark.prometheus

ROOT = Path(__file__).resolve().parents[2]
RULE_TESTS = Path(__file__).with_name("alerts_test.yml")
REQUIRED_ALERTS = {
    "FeatureDriftHigh", "PredictionDriftHigh", "ModelPerformanceDegraded",
    "GroupImpactDisparity", "GroupEqualizedOddsGap", "LabelsStopped", "ModelStale",
    "DeadLetterRateHigh", "ScoringLatencyHigh", "WorkerDown",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool is not installed (Debian package `prometheus`); it is required")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60, check=False)


def alert_rules() -> list[dict]:
    return [r for g in load_rules()["groups"] for r in g["rules"] if "alert" in r]


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(ALERTS_PATH))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_notice_alerts_that_fire_too_early(tmp_path: Path) -> None:
    """With every for: at 0 the must-stay-quiet cases fail: those cases are not vacuous."""
    (tmp_path / "alerts.yml").write_text(rules_with_for(0))
    tests = RULE_TESTS.read_text().replace("../../monitors/alerts.yml", "alerts.yml")
    (tmp_path / "alerts_test.yml").write_text(tests)
    result = promtool("test", "rules", str(tmp_path / "alerts_test.yml"))
    assert result.returncode != 0
    for name in REQUIRED_ALERTS - {"ModelStale"}:  # ModelStale's quiet case is about time()
        assert f"alertname: {name}," in result.stdout + result.stderr


def test_the_test_copy_with_short_for_is_valid(tmp_path: Path) -> None:
    fast = tmp_path / "fast.yml"
    fast.write_text(rules_with_for(5))
    assert promtool("check", "rules", str(fast)).returncode == 0
    rules = [r for g in yaml.safe_load(fast.read_text())["groups"] for r in g["rules"]]
    assert {r["for"] for r in rules if "alert" in r} == {"5s"}
    assert rules_with_for(0.5).count("for: 500ms") == len(alert_rules())


def test_prometheus_example_config_is_valid_and_scrapes_the_worker() -> None:
    config = ROOT / "deploy" / "prometheus" / "prometheus.yml"
    result = promtool("check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    scrape = yaml.safe_load(config.read_text())["scrape_configs"]
    job = next(s for s in scrape if s["job_name"] == "streambed")
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:6066"]


def test_required_alerts_exist_with_severity_and_annotations() -> None:
    assert set(alert_names()) >= REQUIRED_ALERTS
    for rule in alert_rules():
        name = rule["alert"]
        assert name[0].isupper() and "_" not in name, name
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), name
        assert rule["annotations"]["runbook"].startswith("docs/monitoring.md#" + name.lower())
        assert "1." in rule["annotations"]["runbook"], f"{name}: runbook needs steps"


def test_every_alert_has_a_firing_and_a_quiet_promtool_case() -> None:
    cases = [
        case
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    for name in alert_names():
        mine = [c for c in cases if c["alertname"] == name]
        assert any(c["exp_alerts"] for c in mine), f"{name} has no case that must fire"
        assert any(not c["exp_alerts"] for c in mine), f"{name} has no case that must stay quiet"


def test_rules_only_read_metrics_that_exist() -> None:
    known = Metrics(CollectorRegistry()).sample_names() | set(recording_rule_names()) | {"up"}
    for group in load_rules()["groups"]:
        for rule in group["rules"]:
            unknown = metric_names_in(rule["expr"]) - known
            assert not unknown, f"{rule.get('alert') or rule.get('record')} reads {unknown}"
