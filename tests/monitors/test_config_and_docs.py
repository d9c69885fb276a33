"""MonitorsConfig defaults and validation; docs and doctests stay in step with the code."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

import monitors
from monitors import MonitorsConfig
from monitors.alert_rules import alert_names
from monitors.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]


def test_the_quickstart_monitors_section_is_valid() -> None:
    raw = yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text())
    config = MonitorsConfig.model_validate(raw["monitors"])
    assert config.sensitive_attributes["group"] == ["A", "B", "C"]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"drift": {"bins": 10, "ks_bins": 55}}, "multiple of bins"),
        ({"drift": {"window_secs": 10}}, "Extra inputs are not permitted"),
        ({"sensitive_attributes": {"group": ["A", "other"]}}, "reserved"),
        ({"drift": {"reference": {"source": "file"}}}, "needs a path"),
        ({"drift": {"psi_warn": 0.3, "psi_alert": 0.2}}, "warn thresholds"),
    ],
)
def test_bad_sections_fail_with_the_path(section: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MonitorsConfig.model_validate(section)


def test_every_metric_and_alert_is_documented() -> None:
    docs = (ROOT / "docs" / "monitoring.md").read_text()
    for name in Metrics(CollectorRegistry()).sample_names():
        base = name.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum")
        assert base in docs, f"{base} is not in docs/monitoring.md"
    for alert in alert_names():
        assert f"### {alert}" in docs, f"alert {alert} has no section in docs/monitoring.md"


def test_doctests_in_monitors_pass() -> None:
    failures = 0
    for info in pkgutil.iter_modules(monitors.__path__):
        module = importlib.import_module(f"monitors.{info.name}")
        flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
        result = doctest.testmod(module, optionflags=flags)
        failures += result.failed
    assert failures == 0
