"""Authenticated Kafka: a ``--sasl`` broker refuses strangers and enforces who writes what.

The module starts its own broker with ``streambed kafka start --sasl --config FILE``
(SASL/PLAIN, ACLs, deny by default) on free ports, with the ACLs for a config with topics
of its own. Then: a client without credentials, or with a wrong password, gets nothing;
the input principal (``analyst``) may write ``events`` but not ``model.versions`` nor any
other output of the service; the service principal may, but may not write its own input;
and the scorer, logging in as the service principal with its password from the
environment, scores an event end to end.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, TopicAuthorizationFailedError

from streams.config import Config, load_config
from streams.devtools.kafka_local import (
    INPUT_USER,
    SERVICE_USER,
    BrokerOptions,
    principal_security,
    sasl_passwords,
    status,
    stop,
)
from streams.devtools.simulate import SimulationOptions, Simulator
from streams.kafka_clients import aiokafka_auth, kafka_python_auth
from streams.scorer.gaps import GapReader
from streams.topics import changelog_topics, ensure_topics
from streams.validation import EventValidator, ValidEvent
from tests.conftest import free_broker_port
from tests.support import REPO, Worker, free_port

pytestmark = pytest.mark.kafka

PASSWORD_ENV = "STREAMBED_TEST_KAFKA_PASSWORD"
#: How long a refused client may take to fail: refusals must be prompt, not hangs.
REFUSAL_SECONDS = 8.0


@pytest.fixture(scope="module")
def sasl_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quickstart config for a SASL broker, with topics of its own, logging in as the
    service principal with the password from the environment."""
    port = free_broker_port()
    raw = yaml.safe_load((REPO / "examples" / "quickstart.yaml").read_text())
    suffix = uuid.uuid4().hex[:8]
    raw["name"] = f"auth{suffix}"
    raw["broker"] = f"kafka://127.0.0.1:{port}"
    raw["topics"] = {k: f"{v}.{suffix}" for k, v in raw["topics"].items() if k != "partitions"}
    for name in ("training", "model_versions", "model_audit", "model_commands",
                 "learner_state"):
        raw["topics"][name] = f"{name}.{suffix}"
    raw["topics"]["partitions"] = 2
    raw["security"] = {"protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
                       "username": SERVICE_USER, "password_env": PASSWORD_ENV}
    path = tmp_path_factory.mktemp("auth-config") / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def sasl_broker(sasl_config: Path, tmp_path_factory: pytest.TempPathFactory,
                ) -> Iterator[BrokerOptions]:
    """``streambed kafka start --sasl --config FILE``: its own broker, the ACLs for the
    config's topics granted; then the service creates its topics, as itself."""
    port = int(yaml.safe_load(sasl_config.read_text())["broker"].rsplit(":", 1)[1])
    opts = BrokerOptions(port=port, data_dir=tmp_path_factory.mktemp("kafka-sasl"), sasl=True)
    proc = subprocess.run(
        [sys.executable, "-m", "streams.cli", "kafka", "start", "--sasl", "--port", str(port),
         "--data-dir", str(opts.data_dir), "--config", str(sasl_config)],
        capture_output=True, text=True, cwd=REPO, timeout=150, check=False)
    try:
        assert proc.returncode == 0, f"the SASL broker did not start:\n{proc.stderr}"
        assert "ACLs for topics" in proc.stdout, proc.stdout
        passwords = sasl_passwords(opts)
        assert not any(p in proc.stdout + proc.stderr for p in passwords.values())
        with pytest.MonkeyPatch.context() as env:
            env.setenv(PASSWORD_ENV, passwords[SERVICE_USER])
            ensure_topics(load_config(sasl_config))
        yield opts
    finally:
        stop(opts, log=lambda line: print(line, flush=True))


def _producer(opts: BrokerOptions, auth: dict[str, Any]) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=opts.bootstrap, acks="all",
                         max_block_ms=int(REFUSAL_SECONDS * 1000),
                         request_timeout_ms=int(REFUSAL_SECONDS * 1000), **auth)


def _as(opts: BrokerOptions, user: str) -> dict[str, Any]:
    return kafka_python_auth(principal_security(opts, user))


def _write(opts: BrokerOptions, user: str, topic: str) -> None:
    producer = _producer(opts, _as(opts, user))
    try:
        producer.send(topic, key=b"k", value=b"{}").get(timeout=REFUSAL_SECONDS)
    finally:
        producer.close(timeout=5)


def test_a_client_without_credentials_is_refused(sasl_broker: BrokerOptions) -> None:
    began = time.monotonic()
    with pytest.raises(KafkaError):
        admin = KafkaAdminClient(bootstrap_servers=sasl_broker.bootstrap,
                                 request_timeout_ms=5000, api_version_auto_timeout_ms=5000)
        try:
            admin.list_topics()
        finally:
            admin.close()
    with pytest.raises(KafkaError):
        producer = _producer(sasl_broker, {})
        try:
            producer.send("events", key=b"k", value=b"{}").get(timeout=REFUSAL_SECONDS)
        finally:
            producer.close(timeout=5)
    assert time.monotonic() - began < 3 * REFUSAL_SECONDS


def test_a_wrong_password_is_refused(sasl_broker: BrokerOptions) -> None:
    auth = {**_as(sasl_broker, SERVICE_USER), "sasl_plain_password": "not-the-password"}
    with pytest.raises(KafkaError):
        admin = KafkaAdminClient(bootstrap_servers=sasl_broker.bootstrap,
                                 request_timeout_ms=5000, api_version_auto_timeout_ms=5000,
                                 **auth)
        try:
            admin.list_topics()
        finally:
            admin.close()


def test_the_input_principal_writes_events_but_not_model_versions(
    sasl_broker: BrokerOptions, sasl_config: Path,
) -> None:
    config = _load(sasl_config)
    _write(sasl_broker, INPUT_USER, config.topics.events)
    _write(sasl_broker, INPUT_USER, config.topics.labels)
    with pytest.raises(TopicAuthorizationFailedError):
        _write(sasl_broker, INPUT_USER, config.topics.model_versions)


def test_only_the_service_principal_writes_the_services_outputs(
    sasl_broker: BrokerOptions, sasl_config: Path,
) -> None:
    config = _load(sasl_config)
    t = config.topics
    outputs = [t.scored, t.dlq, t.training, t.model_versions, t.model_audit,
               t.model_commands, t.learner_state, *changelog_topics(config)]
    for topic in outputs:
        with pytest.raises(TopicAuthorizationFailedError):
            _write(sasl_broker, INPUT_USER, topic)
    _write(sasl_broker, SERVICE_USER, t.model_versions)
    with pytest.raises(TopicAuthorizationFailedError):  # it reads its input, never forges it
        _write(sasl_broker, SERVICE_USER, t.events)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_the_service_logs_in_with_scram_from_kafka_python_and_aiokafka(
    sasl_broker: BrokerOptions, sasl_config: Path, mechanism: str,
) -> None:
    """SCRAM never sends the password; both client libraries the service uses speak it."""
    config = _load(sasl_config)
    security = principal_security(sasl_broker, SERVICE_USER, mechanism)
    producer = _producer(sasl_broker, kafka_python_auth(security))
    try:
        sent = producer.send(config.topics.model_versions, key=b"k", value=b"{}")
        offset = sent.get(timeout=REFUSAL_SECONDS).offset
    finally:
        producer.close(timeout=5)
    reader = GapReader({"bootstrap_servers": sasl_broker.bootstrap, **aiokafka_auth(security)})

    async def read_end() -> int:
        try:
            return await reader.end_offset(config.topics.model_versions, 0)
        finally:
            await reader.close()

    assert asyncio.run(asyncio.wait_for(read_end(), 30)) == offset + 1


def test_status_finds_the_sasl_broker_without_the_flag(sasl_broker: BrokerOptions) -> None:
    """``streambed kafka status`` reads the data dir's settings and logs in as admin."""
    st = status(BrokerOptions(port=sasl_broker.port, data_dir=sasl_broker.data_dir))
    assert st.running and st.reachable, st.detail


def test_the_scorer_scores_on_the_sasl_broker_as_the_service_principal(
    sasl_broker: BrokerOptions, sasl_config: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    password = sasl_passwords(sasl_broker)[SERVICE_USER]
    monkeypatch.setenv(PASSWORD_ENV, password)  # inherited by the worker process
    config = load_config(sasl_config)
    worker = Worker(sasl_config, free_port(), tmp_path / "worker")
    worker.start()
    try:
        event = _one_valid_event(config)
        producer = _producer(sasl_broker, _as(sasl_broker, INPUT_USER))
        producer.send(config.topics.events, key=event["entity_id"].encode(),
                      value=json.dumps(event).encode()).get(timeout=10)
        producer.close(timeout=5)
        scored = _read_scored(sasl_broker, config.topics.scored, event["event_id"], 60.0)
        assert scored is not None, f"no scored record within 60 s:\n{worker.log()}"
        assert scored["entity_id"] == event["entity_id"]
        assert scored["feature_set"] == config.features.identity
        # An application reads it with the input principal and a group of its own.
        app = subprocess.run(
            [sys.executable, "examples/consumer.py", "--bootstrap", sasl_broker.bootstrap,
             "--topic", config.topics.scored, "--group", "scored-auth-test",
             "--username", INPUT_USER, "--exit-when-idle", "3"],
            capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
            env={**os.environ, "KAFKA_PASSWORD": sasl_passwords(sasl_broker)[INPUT_USER]})
        assert app.returncode == 0, app.stderr
        assert "'accepted': 1" in app.stderr, app.stderr
    finally:
        worker.stop()
    assert password not in worker.log_path.read_text(errors="replace")


def _load(path: Path) -> Config:
    with pytest.MonkeyPatch.context() as env:
        env.setenv(PASSWORD_ENV, "unused-here")
        return load_config(path)


def _one_valid_event(config: Config) -> dict[str, Any]:
    validator = EventValidator(config.event)
    now_ms = time.time_ns() // 1_000_000
    for rec in Simulator(config, SimulationOptions(count=20, seed=3)).records():
        if rec.kind == "event" and rec.valid:
            event = json.loads(rec.value)
            event["ts"] = now_ms  # within the accepted range of the wall clock
            assert isinstance(validator.validate(json.dumps(event).encode(), now_ms),
                              ValidEvent)
            return event
    raise AssertionError("the simulator made no valid event")


def _read_scored(opts: BrokerOptions, topic: str, event_id: str,
                 timeout_seconds: float) -> dict[str, Any] | None:
    """Read ``scored`` as the input principal (an application) until ``event_id`` shows."""
    consumer = KafkaConsumer(bootstrap_servers=opts.bootstrap, enable_auto_commit=False,
                             **_as(opts, INPUT_USER))
    deadline = time.monotonic() + timeout_seconds
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in parts])
        consumer.seek_to_beginning()
        while time.monotonic() < deadline:
            for recs in consumer.poll(timeout_ms=500).values():
                for rec in recs:
                    value = json.loads(rec.value)
                    if value.get("event_id") == event_id:
                        return value
    finally:
        consumer.close()
    return None
