"""The alert rule file, loaded as data, and a test copy with short ``for:`` durations.

``monitors/alerts.yml`` is the rule file Prometheus loads. End-to-end tests cannot wait
15 minutes for an alert, so :func:`rules_with_for` returns the same rules with every
``for:`` replaced by a short duration (expressions and thresholds unchanged)::

    python -m monitors.alert_rules --for 5 > /tmp/alerts-fast.yml

>>> "WorkerDown" in alert_names()
True
>>> "for: 5s" in rules_with_for(5)
True
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import yaml

#: The rule file shipped with the package.
ALERTS_PATH = Path(__file__).with_name("alerts.yml")


def load_rules(path: str | Path = ALERTS_PATH) -> dict[str, Any]:
    """The rule file as data (``{"groups": [...]}``)."""
    return yaml.safe_load(Path(path).read_text())


def _rules(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in data["groups"] for rule in group["rules"]]


def alert_names(path: str | Path = ALERTS_PATH) -> list[str]:
    return [r["alert"] for r in _rules(load_rules(path)) if "alert" in r]


def recording_rule_names(path: str | Path = ALERTS_PATH) -> list[str]:
    return [r["record"] for r in _rules(load_rules(path)) if "record" in r]


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'")
_MATCHERS = re.compile(r"\{[^}]*\}|\[[^\]]*\]")
_NAMES = re.compile(
    r"(?<![\w:$])(streambed_[A-Za-z0-9_]*|[A-Za-z_][A-Za-z0-9_]*:[A-Za-z0-9_:]+|up)\b"
)


def metric_names_in(expr: str) -> set[str]:
    """Metric and recording-rule names a PromQL expression reads (streambed_*, x:y:z, up).

    >>> sorted(metric_names_in('sum by (job) (rate(streambed_events_total{outcome="a:b"}[5m]))'
    ...                        ' / job:streambed_events:rate5m and up'))
    ['job:streambed_events:rate5m', 'streambed_events_total', 'up']
    """
    bare = _MATCHERS.sub(" ", _STRINGS.sub('""', expr))
    return set(_NAMES.findall(bare))


def prometheus_duration(seconds: float) -> str:
    """``5`` → ``"5s"``, ``0.5`` → ``"500ms"`` (Prometheus durations are whole units)."""
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{round(seconds * 1000)}ms"


def rules_with_for(seconds: float, path: str | Path = ALERTS_PATH) -> str:
    """The rule file as YAML text with every alert's ``for:`` set to ``seconds``."""
    data = load_rules(path)
    for rule in _rules(data):
        if "alert" in rule:
            rule["for"] = prometheus_duration(seconds)
    return yaml.safe_dump(data, sort_keys=False, width=1000)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print the alert rules with short for: durations")
    parser.add_argument("--for", dest="seconds", type=float, default=5.0,
                        help="seconds for every alert's for: (default 5)")
    args = parser.parse_args(argv)
    print(rules_with_for(args.seconds), end="")


if __name__ == "__main__":
    main()
