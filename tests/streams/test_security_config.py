"""The config's ``security`` section and the client options made from it.

A bad section fails at start-up naming its dotted path; the password, from the file or
the environment, reaches every kind of client and is never printed.
"""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path

import faust
import pytest
import yaml

from streams.config import ConfigError, load_config
from streams.kafka_clients import (
    VERSION_PROBE_MS,
    aiokafka_options,
    faust_credentials,
    kafka_python_options,
)
from tests.support import REPO

QUICKSTART = REPO / "examples" / "quickstart.yaml"
SASL = {"protocol": "SASL_PLAINTEXT", "username": "streambed", "password_env": "SB_TEST_PW"}


def _write(tmp_path: Path, security: dict | None) -> Path:
    raw = yaml.safe_load(QUICKSTART.read_text())
    if security is not None:
        raw["security"] = security
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_without_a_security_section_clients_use_plaintext(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, None))
    assert kafka_python_options(config) == {"bootstrap_servers": "127.0.0.1:9092",
                                            "api_version_auto_timeout_ms": VERSION_PROBE_MS,
                                            "security_protocol": "PLAINTEXT"}
    assert faust_credentials(config) is None


@pytest.mark.parametrize(
    ("security", "path", "words"),
    [
        ({"protocol": "SASL"}, "security.protocol", "'SASL_PLAINTEXT'"),
        ({**SASL, "sasl_mechanism": "GSSAPI"}, "security.sasl_mechanism", "SCRAM-SHA-256"),
        ({"protocol": "SASL_SSL", "password": "x"}, "security.username", "required"),
        ({"protocol": "SASL_PLAINTEXT", "username": "u"}, "security.password",
         "exactly one of password and password_env"),
        ({**SASL, "password": "x"}, "security.password", "exactly one"),
        ({"protocol": "PLAINTEXT", "username": "u"}, "security.username", "only for"),
        ({"protocol": "SSL", "ssl_cafile": "/no/such/ca.pem"}, "security.ssl_cafile",
         "no such file"),
        ({**SASL, "ssl_cafile": "/etc/hostname"}, "security.ssl_cafile",
         "only for SSL and SASL_SSL"),
        ({**SASL, "pasword": "x"}, "security.pasword", "did you mean 'password'"),
    ],
)
def test_a_bad_security_section_names_its_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, security: dict, path: str, words: str,
) -> None:
    monkeypatch.setenv("SB_TEST_PW", "secret")
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, security))
    message = str(info.value)
    assert f"  {path}: " in message, message
    assert words in message, message


def test_a_missing_password_env_fails_at_start_up_naming_the_field(tmp_path: Path) -> None:
    """The worker exits 2 before connecting, naming security.password_env and the variable."""
    proc = subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker", "--config", str(_write(tmp_path, SASL)),
         "--broker", "kafka://127.0.0.1:1"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
        env={k: v for k, v in __import__("os").environ.items() if k != "SB_TEST_PW"},
    )
    assert proc.returncode == 2, proc.stderr
    assert "security.password_env" in proc.stderr and "SB_TEST_PW" in proc.stderr


def test_the_password_from_the_environment_reaches_every_client_and_is_never_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SB_TEST_PW", "s3cret-from-env")
    config = load_config(_write(tmp_path, {**SASL, "sasl_mechanism": "SCRAM-SHA-512"}))
    for opts in (kafka_python_options(config), aiokafka_options(config)):
        assert opts["security_protocol"] == "SASL_PLAINTEXT"
        assert opts["sasl_mechanism"] == "SCRAM-SHA-512"
        assert (opts["sasl_plain_username"], opts["sasl_plain_password"]) == \
            ("streambed", "s3cret-from-env")
        assert "ssl_context" not in opts
    creds = faust_credentials(config)
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.protocol.value, creds.mechanism.value) == ("SASL_PLAINTEXT", "SCRAM-SHA-512")
    assert creds.password == "s3cret-from-env"
    for shown in (repr(config), str(config.security), repr(creds),
                  config.model_dump_json()):
        assert "s3cret-from-env" not in shown


def test_tls_protocols_verify_the_broker_with_the_given_ca(tmp_path: Path) -> None:
    import certifi  # a real PEM bundle (requests, a dev dependency, brings it) as the CA

    cafile = certifi.where()
    config = load_config(_write(tmp_path, {"protocol": "SASL_SSL", "username": "u",
                                           "password": "p", "ssl_cafile": cafile}))
    opts = kafka_python_options(config)
    context = opts["ssl_context"]
    assert opts["security_protocol"] == "SASL_SSL"
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert aiokafka_options(config)["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    creds = faust_credentials(config)
    assert isinstance(creds, faust.SASLCredentials) and creds.protocol.value == "SASL_SSL"

    ssl_only = load_config(_write(tmp_path, {"protocol": "SSL", "ssl_cafile": cafile}))
    creds = faust_credentials(ssl_only)
    assert isinstance(creds, faust.SSLCredentials) and creds.protocol.value == "SSL"
    assert kafka_python_options(ssl_only)["security_protocol"] == "SSL"
