"""The local broker runner: clear errors without Java/Maven, ids argparse cannot misread."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from kafka.admin import ACLOperation, ACLPermissionType, ACLResourcePatternType, ResourceType

from streams.config import Topics
from streams.devtools.kafka_acls import acl_plan
from streams.devtools.kafka_local import (
    SASL_USERS,
    BrokerError,
    BrokerOptions,
    _scram_arguments,
    _server_properties,
    port_in_use,
    principal_security,
    sasl_passwords,
)
from tests.support import REPO, free_port


def test_missing_java_and_maven_are_named_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path), "STREAMBED_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "streams.cli", "kafka", "start", "--port", str(free_port()),
         "--data-dir", str(tmp_path / "k")],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "java and mvn not found" in proc.stderr and "install" in proc.stderr


def test_server_properties_are_loopback_only_and_single_node(tmp_path: Path) -> None:
    props = _server_properties(BrokerOptions(port=29999, data_dir=tmp_path), tmp_path / "log")
    assert "listeners=PLAINTEXT://127.0.0.1:29999,CONTROLLER://127.0.0.1:30999" in props
    assert "controller.quorum.voters=1@127.0.0.1:30999" in props
    assert "offsets.topic.replication.factor=1" in props
    assert "0.0.0.0" not in props


def test_the_controller_port_defaults_to_port_plus_1000_and_is_configurable(
    tmp_path: Path,
) -> None:
    assert BrokerOptions(port=29999).controller_port == 30999
    opts = BrokerOptions(port=29999, controller_port=31555, data_dir=tmp_path)
    props = _server_properties(opts, tmp_path / "log")
    assert "listeners=PLAINTEXT://127.0.0.1:29999,CONTROLLER://127.0.0.1:31555" in props
    assert "controller.quorum.voters=1@127.0.0.1:31555" in props
    with pytest.raises(ValueError, match="must differ"):
        BrokerOptions(port=29999, controller_port=29999)
    with pytest.raises(ValueError, match="give --controller-port"):
        BrokerOptions(port=65000)
    assert BrokerOptions(port=65000, controller_port=64000).controller_port == 64000


def _start(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STREAMBED_CACHE": str(tmp_path / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", "kafka", "start", *args,
         "--data-dir", str(tmp_path / "k")],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=60,
    )


@contextmanager
def listening(port: int) -> Iterator[None]:
    """Something else holds ``port`` (a listening socket, as another server would)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        yield


def _port_pair() -> tuple[int, int]:
    for _ in range(50):
        port = free_port()
        if port + 1000 < 65536 and not port_in_use(port + 1000):
            return port, port + 1000
    raise RuntimeError("no free port pair")


def test_a_taken_default_controller_port_is_named_in_one_line(tmp_path: Path) -> None:
    port, controller = _port_pair()
    with listening(controller):
        proc = _start(tmp_path, "--port", str(port))
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert f"controller port {controller}" in proc.stderr and "--controller-port" in proc.stderr
    assert "Exception" not in proc.stderr + proc.stdout
    assert not (tmp_path / "k" / "broker.pid").exists(), "no broker process was started"


def test_a_taken_explicit_controller_port_is_named_in_one_line(tmp_path: Path) -> None:
    port, controller = free_port(), free_port()
    with listening(controller):
        proc = _start(tmp_path, "--port", str(port), "--controller-port", str(controller))
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert f"controller port {controller}" in proc.stderr


def test_a_taken_client_port_is_named_in_one_line(tmp_path: Path) -> None:
    port, _ = _port_pair()
    with listening(port):
        proc = _start(tmp_path, "--port", str(port))
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert f"client port {port}" in proc.stderr and "--port" in proc.stderr


def test_port_in_use_sees_listeners_only() -> None:
    port = free_port()
    assert not port_in_use(port)
    with listening(port):
        assert port_in_use(port)
    assert not port_in_use(port)


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_a_sasl_broker_authenticates_both_listeners_and_denies_without_an_acl(
    tmp_path: Path,
) -> None:
    opts = BrokerOptions(port=29999, data_dir=tmp_path, sasl=True)
    passwords = sasl_passwords(opts, create=True)
    props = _props(_server_properties(opts, tmp_path / "log", passwords))
    assert props["listeners"] == \
        "SASL_PLAINTEXT://127.0.0.1:29999,CONTROLLER://127.0.0.1:30999"
    assert props["advertised.listeners"] == "SASL_PLAINTEXT://127.0.0.1:29999"
    assert props["listener.security.protocol.map"] == \
        "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT"
    assert "PLAINTEXT://" not in props["listeners"].replace("SASL_PLAINTEXT://", "")
    assert props["authorizer.class.name"] == \
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:admin"  # not ANONYMOUS, not the service
    for listener in ("sasl_plaintext", "controller"):
        jaas = props[f"listener.name.{listener}.plain.sasl.jaas.config"]
        assert jaas.startswith("org.apache.kafka.common.security.plain.PlainLoginModule")
        assert f'username="admin" password="{passwords["admin"]}"' in jaas
        for user in SASL_USERS:
            assert f'user_{user}="{passwords[user]}"' in jaas
    assert props["sasl.enabled.mechanisms"] == "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
    assert props["listener.name.controller.sasl.enabled.mechanisms"] == "PLAIN"
    assert props["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"] == \
        "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    scram = _scram_arguments(passwords)
    assert scram.count("--add-scram") == 6
    assert f"SCRAM-SHA-256=[name=streambed,password={passwords['streambed']}]" in scram
    assert "0.0.0.0" not in "".join(props.values())


def test_sasl_passwords_are_generated_once_owner_only_and_distinct(tmp_path: Path) -> None:
    opts = BrokerOptions(port=29999, data_dir=tmp_path, sasl=True)
    with pytest.raises(BrokerError, match="--sasl"):
        sasl_passwords(opts)
    first = sasl_passwords(opts, create=True)
    assert set(first) == {"admin", "streambed", "analyst"}
    assert len(set(first.values())) == 3 and all(len(p) >= 24 for p in first.values())
    assert (opts.credentials_file.stat().st_mode & 0o777) == 0o600
    assert sasl_passwords(opts, create=True) == first  # a restart keeps them
    security = principal_security(opts, "analyst")
    assert security.protocol == "SASL_PLAINTEXT" and security.username == "analyst"
    assert security.password is not None and \
        security.password.get_secret_value() == first["analyst"]


def test_a_plaintext_broker_has_no_sasl_settings(tmp_path: Path) -> None:
    props = _server_properties(BrokerOptions(port=29999, data_dir=tmp_path), tmp_path / "log")
    assert "sasl" not in props and "authorizer" not in props


def test_the_acls_let_only_the_service_write_its_outputs() -> None:
    topics = Topics(events="ev", labels="lb", scored="sc", dlq="dl", training="tr",
                    model_versions="mv", model_audit="ma", model_commands="mc",
                    learner_state="ml")
    plan = acl_plan(topics, "streambed-lending")
    assert all(a.permission_type == ACLPermissionType.ALLOW for a in plan)

    def allowed(principal: str, op: ACLOperation, rtype: ResourceType,
                name: str) -> bool:
        """Does the plan allow it, as the broker matches LITERAL and PREFIXED patterns?"""
        for a in plan:
            pattern = a.resource_pattern
            hit = (name == pattern.resource_name
                   if pattern.pattern_type == ACLResourcePatternType.LITERAL
                   else name.startswith(pattern.resource_name))
            if a.principal == principal and a.operation == op and \
                    pattern.resource_type == rtype and hit:
                return True
        return False

    service, analyst = "User:streambed", "User:analyst"
    write, read, topic, group = (ACLOperation.WRITE, ACLOperation.READ, ResourceType.TOPIC,
                                 ResourceType.GROUP)
    outputs = ["sc", "dl", "tr", "mv", "ma", "mc", "ml", "streambed-lending-entities-changelog",
               "streambed-lending-__assignor-__leader"]
    for name in outputs:
        assert allowed(service, write, topic, name), name
    for name in ["ev", "lb", *outputs]:
        assert allowed(service, ACLOperation.CREATE, topic, name), name
    # The service reads its input and never forges it.
    assert not allowed(service, write, topic, "ev") and not allowed(service, write, topic, "lb")
    for name in ["ev", "lb", "mv", "tr"]:
        assert allowed(service, read, topic, name), name
    assert allowed(service, read, group, "streambed-lending")
    assert allowed(analyst, write, topic, "ev") and allowed(analyst, write, topic, "lb")
    assert allowed(analyst, read, topic, "sc") and allowed(analyst, read, group, "scored-app")
    for name in outputs:
        assert not allowed(analyst, write, topic, name), name
    for name in ["ev", "lb", "mv", "tr", "ma", "dl", "mc", "ml"]:
        assert not allowed(analyst, read, topic, name), name
    assert allowed(service, read, group, "streambed-lending-learner")
    # Joining the scorer's group would take partitions of events away from the scorer.
    assert not allowed(analyst, read, group, "streambed-lending")
    assert not any(a.principal not in (service, analyst) for a in plan)
