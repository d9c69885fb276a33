"""docker-compose.yml and deploy/, checked without a Docker engine.

The compose file must be valid against the Compose Specification's JSON Schema (vendored
next to this file, see README.md), mount only files that exist in the repository, pin every
image, wait for healthy dependencies, and wire Prometheus, Alertmanager and Grafana to the
services that exist.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from tests.alerting import alertmanager_exe

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = Path(__file__).with_name("compose-spec.json")
PROMETHEUS = ROOT / "deploy" / "prometheus" / "compose.yml"
ALERTMANAGER = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
GRAFANA = ROOT / "deploy" / "grafana"


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def schema_errors(document: dict[str, Any]) -> list[str]:
    schema = json.loads(SCHEMA.read_text())
    assert "draft-07" in schema["$schema"]  # written for draft 7; validate with draft 7
    Draft7Validator.check_schema(schema)
    validator = Draft7Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in validator.iter_errors(document)]


def bind_sources(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(service, host path) of every bind mount and build context (named volumes are not
    paths). Short syntax: a source that starts with ``.``, ``/`` or ``~`` is a path."""
    found = []
    for name, service in document["services"].items():
        for volume in service.get("volumes", []):
            if isinstance(volume, str):
                source = volume.split(":", 1)[0]
                if source.startswith((".", "/", "~")):
                    found.append((name, source))
            elif volume.get("type") == "bind":
                found.append((name, volume["source"]))
        build = service.get("build")
        if build is not None:
            context = build if isinstance(build, str) else build.get("context", ".")
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get(
                "dockerfile", "Dockerfile")
            found.append((name, context))
            found.append((name, str(Path(context) / dockerfile)))
    for kind in ("configs", "secrets"):
        for name, item in (document.get(kind) or {}).items():
            if "file" in item:
                found.append((f"{kind}.{name}", item["file"]))
    return found


def unpinned_images(document: dict[str, Any]) -> list[str]:
    """Services whose image has no tag or digest, or uses ``latest``."""
    bad = []
    for name, service in document["services"].items():
        image = service.get("image")
        if image is None:
            if "build" not in service:
                bad.append(f"{name}: neither image nor build")
            continue
        if "@sha256:" in image:
            continue
        last = image.rsplit("/", 1)[-1]
        tag = last.split(":", 1)[1] if ":" in last else ""
        if not tag or tag == "latest" or "$" in tag:
            bad.append(f"{name}: {image}")
    return bad


# ------------------------------------------------------------------ the compose file


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    assert schema_errors(compose()) == []


def test_the_schema_check_is_not_vacuous() -> None:
    broken = compose()
    broken["services"]["scorer"]["depends_on"] = {"kafka": {"condition": "healthy"}}
    broken["services"]["grafana"]["ports"] = [{"target": "3000", "bogus": 1}]
    broken["services"]["kafka"]["healthchek"] = {}
    errors = schema_errors(broken)
    assert len(errors) >= 3, errors


def test_every_mounted_file_exists_in_the_repository() -> None:
    sources = bind_sources(compose())
    assert any(s.startswith("./deploy/grafana/provisioning") for _, s in sources)
    missing = [(svc, src) for svc, src in sources if not (ROOT / src).exists()]
    assert missing == []


def test_the_mount_check_notices_a_missing_file() -> None:
    document = compose()
    document["services"]["prometheus"]["volumes"].append("./deploy/nope.yml:/etc/x.yml:ro")
    assert ("prometheus", "./deploy/nope.yml") in bind_sources(document)


def test_every_image_is_pinned() -> None:
    assert unpinned_images(compose()) == []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.upper().startswith("FROM "):
            image = line.split()[1]
            assert ":" in image and not image.endswith(":latest"), line


def test_the_pin_check_notices_latest_and_missing_tags() -> None:
    document = {"services": {"a": {"image": "grafana/grafana:latest"},
                             "b": {"image": "prom/prometheus"},
                             "c": {"image": "localhost:5000/x"},
                             "d": {"image": "apache/kafka:4.1.1"},
                             "e": {"image": "redis@sha256:" + "0" * 64}}}
    assert [b.split(":")[0] for b in unpinned_images(document)] == ["a", "b", "c"]


def test_named_volumes_keep_kafka_and_worker_state() -> None:
    document = compose()
    declared = set(document["volumes"])
    # The learner keeps no local state (its snapshots live on Kafka), so it has no volume.
    for service, target in [("kafka", "/var/lib/kafka/data"), ("scorer", "/var/lib/streambed")]:
        named = [v.split(":")[0] for v in document["services"][service]["volumes"]
                 if v.split(":")[1] == target]
        assert named and named[0] in declared, f"{service} keeps {target} in no named volume"
    env = document["services"]["kafka"]["environment"]
    assert env["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"
    # Replicas share the scorer-state volume, so each uses its own directory in it.
    assert "$$HOSTNAME" in " ".join(document["services"]["scorer"]["command"])


def test_services_wait_for_healthy_dependencies() -> None:
    services = compose()["services"]
    long_running = [n for n, s in services.items() if s.get("restart") != "no"]
    for name in long_running:
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on without conditions"
        for dependency, condition in depends.items():
            assert condition == {"condition": "service_healthy"}, (name, dependency)
            assert "healthcheck" in services[dependency], (name, dependency)
    assert "kafka" in services["scorer"]["depends_on"]
    assert "kafka" in services["learner"]["depends_on"]


def test_roles_run_their_commands_on_their_ports() -> None:
    services = compose()["services"]
    scorer = " ".join(services["scorer"]["command"])
    learner = " ".join(services["learner"]["command"])
    assert "streambed worker --config" in scorer and "--web-port 6066" in scorer
    assert "streambed learner --config" in learner and "--web-port 6067" in learner
    assert "6066" in services["scorer"]["healthcheck"]["test"][-1]
    assert "6067" in services["learner"]["healthcheck"]["test"][-1]
    # Replicas cannot share a host port: the scorer publishes none.
    assert "ports" not in services["scorer"]
    assert services["scorer"]["deploy"]["replicas"] >= 1


# ------------------------------------------------------------------ Prometheus


def test_prometheus_scrapes_every_scorer_replica_and_the_learner_by_service_name() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    services = compose()["services"]
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    for job, service, port in [("streambed", "scorer", 6066),
                               ("streambed-learner", "learner", 6067)]:
        assert "static_configs" not in jobs[job], f"{job}: a fixed host misses replicas"
        (sd,) = jobs[job]["dns_sd_configs"]
        assert sd["names"] == [service] and sd["type"] == "A" and sd["port"] == port
        assert service in services
    (am,) = config["alerting"]["alertmanagers"][0]["static_configs"]
    assert am["targets"] == ["alertmanager:9093"]


def test_prometheus_compose_config_passes_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed (Debian package `prometheus`)"
    mounts = {v.split(":")[1]: v.split(":")[0]
              for v in compose()["services"]["prometheus"]["volumes"]}
    rules_source = mounts["/etc/prometheus/alerts.yml"]
    text = PROMETHEUS.read_text().replace("/etc/prometheus/alerts.yml",
                                          str(ROOT / rules_source))
    (tmp_path / "prometheus.yml").write_text(text)
    result = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------ Grafana


def test_grafana_provisions_the_prometheus_data_source_and_the_dashboard() -> None:
    grafana = compose()["services"]["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    provisioning = GRAFANA / "provisioning"
    (source,) = yaml.safe_load(
        (provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"] is True
    assert source["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load(
        (provisioning / "dashboards" / "streambed.yml").read_text())["providers"]
    path = provider["options"]["path"]
    dashboards = [target for target, src in mounts.items() if target.startswith(path + "/")]
    assert dashboards, f"nothing mounted under the provider's path {path}"
    for target in dashboards:
        assert json.loads((ROOT / mounts[target]).read_text())["uid"] == "streambed"
    # The dashboard picks its data source through a datasource variable: no hard-coded uid.
    dashboard = (GRAFANA / "streambed.json").read_text()
    assert '"uid": "${datasource}"' in dashboard


# ------------------------------------------------------------------ Alertmanager


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("amtool")
    assert exe and alertmanager_exe(), (
        "amtool/alertmanager not found: `make test` installs Debian's prometheus-alertmanager")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60,
                          check=False)


def test_alertmanager_config_is_valid_and_mounted() -> None:
    result = amtool("check-config", str(ALERTMANAGER))
    assert result.returncode == 0, result.stdout + result.stderr
    mounts = {v.split(":")[1]: v.split(":")[0]
              for v in compose()["services"]["alertmanager"]["volumes"]}
    assert mounts["/etc/alertmanager/alertmanager.yml"] == "./deploy/alertmanager/alertmanager.yml"


@pytest.mark.parametrize(("labels", "receiver"), [
    (["alertname=WorkerDown", "severity=critical"], "oncall-pager"),
    (["alertname=ProduceErrors", "severity=critical"], "oncall-pager"),
    (["alertname=FeatureDriftDetected", "severity=warning", "feature=amount"], "team-chat"),
    (["alertname=Something", "severity=info"], "team-chat"),
])
def test_alerts_are_routed_by_severity(labels: list[str], receiver: str) -> None:
    result = amtool("config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_alerts_are_grouped_by_name_not_by_feature() -> None:
    route = yaml.safe_load(ALERTMANAGER.read_text())["route"]
    routes = [route, *route.get("routes", [])]
    for r in routes:
        group_by = r.get("group_by", route["group_by"])
        assert "alertname" in group_by
        assert not {"feature", "attribute", "instance", "..."} & set(group_by), group_by


def test_every_alert_severity_has_a_route() -> None:
    from monitors.alert_rules import load_rules

    config = yaml.safe_load(ALERTMANAGER.read_text())
    matchers = " ".join(m for r in config["route"]["routes"] for m in r["matchers"])
    severities = {r["labels"]["severity"] for g in load_rules()["groups"] for r in g["rules"]
                  if "alert" in r}
    for severity in severities:
        assert re.search(rf"severity=~?\"[^\"]*\b{severity}\b", matchers), severity
