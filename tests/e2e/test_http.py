"""The scorers' HTTP endpoints over HTTP, with two scorers on the real broker.

``/ready`` turns from 503 (with a reason) to 200 once partitions are assigned, tables are
recovered and the champion is loaded; ``/features/{entity}`` answers for any entity on
either scorer (Faust routes to the one holding it) with the features of the entity's
latest scored record; an unknown entity is a JSON 404; every body matches the shipped
OpenAPI document; ``/metrics`` has the standard process and GC series.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from streams.config import load_config
from streams.topics import ensure_topics
from tests.e2e.test_slice import _valid_events
from tests.support import (
    REPO,
    Worker,
    free_port,
    produce,
    read_scored_for,
    wait_until,
)

pytestmark = pytest.mark.kafka
OPENAPI = json.loads((REPO / "streams" / "schemas" / "openapi.json").read_text())


def get(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def check(body: Any, component: str) -> None:
    """Validate a body against a component of the shipped OpenAPI document."""
    schema = {**OPENAPI["components"]["schemas"][component],
              "components": OPENAPI["components"]}
    jsonschema.validate(body, schema)


def test_ready_turns_200_and_features_are_served_by_either_scorer(
    kafka_bootstrap: str, topic_config: Path, tmp_path: Path
) -> None:
    config = load_config(topic_config)
    ensure_topics(config)
    one = Worker(topic_config, free_port(), tmp_path / "one")
    two = Worker(topic_config, free_port(), tmp_path / "two")
    try:
        one.start()
        seen: list[tuple[int, str]] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            status, body = get(one.web_port, "/ready")
            check(body, "Readiness")
            if not seen or seen[-1][0] != status:
                seen.append((status, body["reason"]))
            if status == 200:
                break
            time.sleep(0.2)
        assert seen[-1][0] == 200, seen
        print(f"/ready transition: {seen}")
        two.start()
        wait_until(lambda: one.metric("streambed_assigned_partitions") == 1
                   and two.metric("streambed_assigned_partitions") == 1, 90,
                   "both scorers to hold a partition")
        wait_until(lambda: get(two.web_port, "/ready")[0] == 200, 90, "the second to be ready")

        valid = _valid_events(config, count=120, seed=3)
        produce(kafka_bootstrap, config.topics.events, [(r.key, r.value) for r in valid])
        _, scored = read_scored_for(kafka_bootstrap, config.topics.scored, valid)
        latest: dict[str, dict[str, Any]] = {}
        for record in scored:
            best = latest.get(record["entity_id"])
            if best is None or (record["ts"], record["source"]["offset"]) >= (
                    best["ts"], best["source"]["offset"]):
                latest[record["entity_id"]] = record
        partitions = {r["source"]["partition"] for r in latest.values()}
        assert partitions == {0, 1}, "entities on both scorers"
        for entity, record in latest.items():
            for scorer in (one, two):
                status, body = get(scorer.web_port, f"/features/{entity}")
                assert status == 200, (entity, body)
                check(body, "EntityFeatures")
                assert body["features"] == record["features"], entity
                assert body["as_of"] == record["ts"]
                assert body["feature_set"] == config.features.identity
        status, body = get(one.web_port, "/features/nobody-at-all")
        assert status == 404 and body["entity_id"] == "nobody-at-all"
        check(body, "Problem")
        status, body = get(one.web_port, "/health")
        assert status == 200
        check(body, "Health")
        text = one.metrics_text()
        assert "process_resident_memory_bytes" in text and "python_gc_objects_collected_total" \
            in text
    finally:
        two.stop()
        one.stop()
