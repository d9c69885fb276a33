"""``evaluate``/``report --from-kafka`` on a real broker: events and labels from their
topics, the learner's versions and decisions from ``model.versions``/``model.audit``."""

from __future__ import annotations

from pathlib import Path

import pytest

from governance.records import dumps
from streams.backtest import load_history, run_backtest
from streams.config import load_config
from streams.devtools.simulate import SimulationOptions, Simulator
from streams.topics import ensure_topics
from tests.backtest.tracking import cli_env
from tests.support import REPO, Ran, produce_to, streambed

pytestmark = pytest.mark.kafka


def cli(*args: str) -> Ran:
    """``streambed ARGS`` in this process (tests/support.py's ``streambed``)."""
    return streambed(*args, cwd=REPO, env=cli_env())


def test_evaluate_and_report_read_history_and_decisions_from_kafka(
        kafka_bootstrap: str, topic_config: Path, tmp_path: Path) -> None:
    config = load_config(topic_config)
    ensure_topics(config)
    sim = Simulator(config, SimulationOptions(count=1500, seed=5, malformed_ratio=0.02))
    produce_to(kafka_bootstrap, [
        (config.topics.events if r.kind == "event" else config.topics.labels, r.key, r.value)
        for r in sim.records()])

    history = load_history(config, from_kafka=True)
    assert len(history.records) == 1500 and len(history.labels) > 1000
    assert history.versions == [] and history.audit == []
    # what a learner would have published, on the topics the report reads
    outputs = run_backtest(config, history).run.outputs
    produce_to(kafka_bootstrap, [
        (config.topics.model_versions if hasattr(r, "artifact") else config.topics.model_audit,
         getattr(r, "version", "") if hasattr(r, "artifact") else r.audit_id, dumps(r))
        for r in outputs])

    done = cli("evaluate", "--config", str(topic_config), "--from-kafka", "--bootstrap",
               "20", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "demographic_parity_ratio" in done.stdout and "history: kafka" in done.stdout

    page = tmp_path / "report.html"
    done = cli("report", "--config", str(topic_config), "--from-kafka", "--bootstrap", "20",
               "--no-progress", "--out", str(page))
    assert done.returncode == 0, done.stderr
    html = page.read_text()
    assert "production: the learner&#x27;s decisions (model.audit)" in html
    assert "production: model.versions" in html
    assert html.count("bootstrap") >= 2  # the decision, in both timelines
