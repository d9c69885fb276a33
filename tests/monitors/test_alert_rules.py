"""The alert rules: promtool-valid, unit-tested, well-annotated, reading real metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, start_http_server

from monitors.alert_rules import (
    ALERTS_PATH,
    alert_names,
    load_rules,
    metric_names_in,
    recording_rule_names,
    rules_with_for,
)
from monitors.metrics import Metrics
from tests.support import Prometheus, free_port, wait_until

pytestmark = pytest.mark.prometheus

ROOT = Path(__file__).resolve().parents[2]
RULE_TESTS = Path(__file__).with_name("alerts_test.yml")
OPERATIONS = ROOT / "docs" / "operations.md"
DASHBOARD = ROOT / "deploy" / "grafana" / "streambed.json"
#: Metrics every Prometheus target has without streambed declaring them, and the process
#: and garbage-collector collectors of prometheus_client that the scorer exports.
STANDARD_METRICS = {
    "up", "scrape_duration_seconds", "scrape_samples_scraped",
    "process_cpu_seconds_total", "process_resident_memory_bytes",
    "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
    "process_start_time_seconds",
    "python_gc_objects_collected_total", "python_gc_objects_uncollectable_total",
    "python_gc_collections_total", "python_info",
}
REQUIRED_ALERTS = {
    "ModelPerformanceDegraded",
    "GroupImpactDisparity", "GroupEqualizedOddsGap", "LabelsStopped", "ModelStale",
    "DeadLetterRateHigh", "ScoringLatencyHigh", "WorkerDown",
    "LearnerDown", "ScorerFallingBehind", "EventsStale", "EntityStateLimit",
    "ProcessingErrors", "StateDecodeErrors", "ModelVersionRefused",
    "TrainingExamplesStopped", "ModelPromotionHeld", "ImpactUnmeasurable",
    "FeatureDriftDetected", "PredictionDriftDetected", "ModelPerformanceEstimatedDrop",
    "PerformanceEstimateUnreliable", "ModelErrorRateChanged",
}
#: Alerts on label-based statistics, which only the learner computes (over all partitions).
LEARNER_ALERTS = {"ModelPerformanceDegraded", "ModelStale", "ModelPromotionHeld",
                  "GroupEqualizedOddsGap", "LearnerDown"}


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
    for name in REQUIRED_ALERTS - {"ModelErrorRateChanged"}:  # for: 0m by design
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
    assert "SUCCESS: 1 rule files found" in result.stdout  # the rules load from this file
    scrape = yaml.safe_load(config.read_text())["scrape_configs"]
    job = next(s for s in scrape if s["job_name"] == "streambed")
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:6066"]
    learner = next(s for s in scrape if s["job_name"] == "streambed-learner")
    assert learner["static_configs"][0]["targets"][0] == "127.0.0.1:6067"


def test_compose_prometheus_finds_scorers_and_learner_by_dns_and_loads_the_rules() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "compose.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    jobs = {s["job_name"]: s for s in config["scrape_configs"]}
    for job, service, port in (("streambed", "scorer", 6066),
                               ("streambed-learner", "learner", 6067)):
        (sd,) = jobs[job]["dns_sd_configs"]
        assert sd["names"] == [service] and sd["port"] == port, job


def test_label_based_alerts_read_the_learner_and_follow_the_champion() -> None:
    """The learner computes performance and equalized odds; a standby's gauges are stale,
    so they are read only where streambed_learner_active == 1. Performance is keyed on the
    champion's one series: a version label would restart for: at every promotion."""
    rules = {r["alert"]: r for r in alert_rules()}
    for name in LEARNER_ALERTS:
        assert 'job="streambed-learner"' in rules[name]["expr"], name
    for name in LEARNER_ALERTS - {"LearnerDown"}:
        assert "streambed_learner_active == 1" in rules[name]["expr"], name
    degraded = rules["ModelPerformanceDegraded"]["expr"]
    assert "streambed_champion_roc_auc_ratio" in degraded and "model_version" not in degraded


def test_staleness_is_performance_never_time_since_a_promotion() -> None:
    """ModelStale compares estimated or realised AUC with the champion's own evaluation;
    it must not read when the last promotion happened (that pushed people to promote)."""
    rules = {r["alert"]: r for r in alert_rules()}
    stale = metric_names_in(rules["ModelStale"]["expr"])
    assert "streambed_model_last_promotion_timestamp_seconds" not in stale
    assert {"streambed_estimated_roc_auc_ratio", "streambed_champion_roc_auc_ratio",
            "streambed_champion_evaluation_roc_auc_ratio"} <= stale
    assert "time()" not in rules["ModelStale"]["expr"]


def test_drift_alerts_key_on_the_tests_verdicts() -> None:
    """Drift pages only on a test with a stated false-alarm rate: the detected gauges. PSI
    and KS against fixed thresholds have none (their null mean moves with the reference
    and window sizes), so they stay on the dashboards and no alert reads them."""
    rules = {r["alert"]: r for r in alert_rules()}
    assert metric_names_in(rules["FeatureDriftDetected"]["expr"]) == {
        "streambed_feature_drift_detected"}
    assert metric_names_in(rules["PredictionDriftDetected"]["expr"]) == {
        "streambed_prediction_drift_detected"}
    fixed_threshold = {"streambed_feature_drift_psi", "streambed_feature_drift_ks",
                       "streambed_prediction_drift_psi", "streambed_prediction_drift_ks"}
    for name, rule in rules.items():
        assert not metric_names_in(rule["expr"]) & fixed_threshold, name
    assert not {"FeatureDriftHigh", "PredictionDriftHigh"} & set(rules)


def test_required_alerts_exist_with_severity_and_annotations() -> None:
    assert set(alert_names()) >= REQUIRED_ALERTS
    for rule in alert_rules():
        name = rule["alert"]
        assert name[0].isupper() and "_" not in name, name
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        notes = rule["annotations"]
        assert {"summary", "description", "runbook", "runbook_url", "dashboard_url"} <= set(
            notes), name
        assert notes["runbook"].startswith(notes["runbook_url"] + " - 1."), name
        assert notes["runbook_url"] == "docs/operations.md#" + name.lower(), name


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings (lower case, punctuation out,
    spaces to hyphens)."""
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", markdown, flags=re.M):
        text = re.sub(r"[`*_]", "", heading).strip().lower()
        anchors.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return anchors


def runbook_section(markdown: str, alert: str) -> str:
    """The text under ``### <alert>`` up to the next heading."""
    match = re.search(rf"^###\s+{alert}\s*$(.*?)(?=^#{{1,3}}\s)", markdown + "\n# end",
                      flags=re.M | re.S)
    assert match, f"docs/operations.md has no runbook section for {alert}"
    return match.group(1)


def test_every_runbook_url_points_at_a_runbook_in_the_operations_docs() -> None:
    docs = OPERATIONS.read_text()
    anchors = github_anchors(docs)
    for rule in alert_rules():
        path, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert (ROOT / path) == OPERATIONS and anchor in anchors, rule["alert"]
        section = runbook_section(docs, rule["alert"])
        for part in ("What it means", "Check", "Act"):
            assert f"**{part}" in section, f"{rule['alert']}'s runbook has no '{part}' part"


def test_every_dashboard_url_opens_the_shipped_dashboard() -> None:
    uid = json.loads(DASHBOARD.read_text())["uid"]
    for rule in alert_rules():
        assert rule["annotations"]["dashboard_url"].startswith(f"/d/{uid}/"), rule["alert"]


def test_every_metric_a_runbook_names_exists() -> None:
    """Runbook steps (annotation and docs) name only metrics streambed declares, recording
    rules, or standard ones: an SRE copying a query gets data, not an empty result."""
    samples = Metrics(CollectorRegistry()).sample_names()
    histograms = {n.removesuffix("_bucket") for n in samples if n.endswith("_bucket")}
    known = samples | histograms | set(recording_rule_names()) | STANDARD_METRICS
    docs = OPERATIONS.read_text()
    for rule in alert_rules():
        text = rule["annotations"]["runbook"] + runbook_section(docs, rule["alert"])
        bare = re.findall(r"(?<![\w:])streambed_\w+(?![\w:])", text)
        standard = re.findall(r"(?<![\w:])(?:process|python_gc)_\w+(?![\w:])", text)
        named = metric_names_in(text) | set(bare)
        assert named, f"{rule['alert']}'s runbook names no metric to check"
        unknown = (named | set(standard)) - known
        assert not unknown, f"{rule['alert']}'s runbook names unknown metrics {unknown}"


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


def test_the_operations_doc_has_its_sections() -> None:
    anchors = github_anchors(OPERATIONS.read_text())
    for section in ["trust-boundary", "health-readiness-and-lag", "alert-routing",
                    "scaling-scorers", "local-broker", "the-compose-stack", "runbooks"]:
        assert section in anchors, section


class _ShippedConfigPrometheus(Prometheus):
    """A real Prometheus on the shipped deploy/prometheus/prometheus.yml, its targets
    pointed at test exporters and its timers at one second."""

    def __init__(self, exe: str, workdir: Path, targets: dict[str, str]) -> None:
        super().__init__(exe, workdir, [], "")
        config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
        config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        config["rule_files"] = [str(ALERTS_PATH)]
        config.pop("alerting")
        config["scrape_configs"] = [s for s in config["scrape_configs"] if s["job_name"] in targets]
        for scrape in config["scrape_configs"]:
            scrape["static_configs"] = [{"targets": [targets[scrape["job_name"]]]}]
        self.config = config

    def __enter__(self) -> _ShippedConfigPrometheus:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(self.config))
        self.proc = subprocess.Popen(
            [self.exe, f"--config.file={self.workdir / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=(self.workdir / "prometheus.log").open("wb"))
        wait_until(self._ready, 30, "Prometheus to be ready")
        return self


def _scorer_and_learner() -> tuple[CollectorRegistry, CollectorRegistry]:
    scorer_registry, learner_registry = CollectorRegistry(), CollectorRegistry()
    scorer, learner = Metrics(scorer_registry), Metrics(learner_registry)
    scorer.events.labels(outcome="scored").inc(100)
    scorer.consumer_lag.labels(partition="0").set(12)
    scorer.set_model("v1", "fs1")
    for group in ("A", "B"):
        scorer.group_decisions.labels(attribute="group", group=group, decision="1").inc(10)
    scorer.demographic_parity_ratio.labels(attribute="group").set(float("nan"))
    learner.learner_active.set(1)
    learner.learner_examples.labels(outcome="learned").inc(50)
    learner.model_decisions.labels(decision="promote").inc()
    learner.model_last_promotion.set(time.time())
    learner.champion_roc_auc.set(0.9)
    learner.set_model("v1", "fs1")
    return scorer_registry, learner_registry


def test_the_shipped_prometheus_config_scrapes_both_jobs_and_every_rule_evaluates(
    tmp_path: Path, prometheus_bin: str,
) -> None:
    """Recording and alert rules evaluate without error (no duplicate label sets, no
    many-to-many matches) on what a scorer and a learner export, under the shipped jobs."""
    servers = []
    try:
        targets = {}
        for job, registry in zip(("streambed", "streambed-learner"), _scorer_and_learner(),
                                 strict=True):
            port = free_port()
            servers.append(start_http_server(port, addr="127.0.0.1", registry=registry))
            targets[job] = f"127.0.0.1:{port}"
        with _ShippedConfigPrometheus(prometheus_bin, tmp_path, targets) as prom:
            def rules() -> list[dict]:
                return [r for g in prom.api("rules")["groups"] for r in g["rules"]]

            wait_until(lambda: all(r["health"] != "unknown" for r in rules()), 30,
                       "every rule to be evaluated")
            wait_until(lambda: bool(prom.query('job:streambed_events:rate5m{job="streambed"}')),
                       30, "the recording rules to have two scrapes to rate over")
            bad = {r["name"]: r.get("lastError") for r in rules() if r["health"] != "ok"}
            assert not bad, bad
            up = {m["job"]: v for m, v in prom.query("up")}
            assert up == {"streambed": 1.0, "streambed-learner": 1.0}
            # An evaluation before the learner's first scrape sees it absent (pending):
            # with an active learner scraped, the alert must clear.
            wait_until(lambda: "LearnerDown" not in {a[0] for a in prom.alerts()}, 30,
                       "LearnerDown to clear with an active learner scraped")
    finally:
        for server, thread in servers:
            server.shutdown()
            thread.join(timeout=5)


def test_every_alert_routes_to_the_receiver_of_its_severity() -> None:
    """amtool walks the shipped routing tree with each alert's labels: critical pages,
    warning and info go to the team's chat."""
    exe = shutil.which("amtool")
    if exe is None:
        pytest.fail("amtool is not installed (Debian package `prometheus-alertmanager`)")
    config = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
    receivers = {"critical": "oncall-pager", "warning": "team-chat", "info": "team-chat"}
    for rule in alert_rules():
        severity = rule["labels"]["severity"]
        result = subprocess.run(
            [exe, "config", "routes", "test", f"--config.file={config}",
             f"alertname={rule['alert']}", f"severity={severity}", "job=streambed"],
            capture_output=True, text=True, timeout=30, check=False)
        assert result.stdout.strip() == receivers[severity], (rule["alert"], result.stdout)
