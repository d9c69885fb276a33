"""The one place where a config's ``security`` section becomes client options.

Every Kafka client streambed constructs takes its connection and authentication options
from here, so a broker that requires SASL or TLS is reached the same way by the Faust app,
the aiokafka gap reader, and the kafka-python admin, consumers and producers::

    KafkaConsumer(**kafka_python_options(config), enable_auto_commit=False)
    AIOKafkaConsumer(**aiokafka_options(config), group_id=None)
    faust.App(..., broker=config.broker, broker_credentials=faust_credentials(config))

The password is read from the config's secret only here, when a client is built; nothing
here logs it.

>>> from streams.config import Security
>>> sorted(kafka_python_auth(Security()))
['security_protocol']
>>> opts = kafka_python_auth(Security(protocol="SASL_PLAINTEXT", username="u", password="p"))
>>> opts["sasl_mechanism"], opts["sasl_plain_username"], opts["sasl_plain_password"]
('PLAIN', 'u', 'p')
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

from streams.config import Config, Security

if TYPE_CHECKING:
    import faust


def ssl_context(security: Security) -> ssl.SSLContext | None:
    """The TLS context for SSL and SASL_SSL (verifying the broker, hostname included),
    trusting ``ssl_cafile`` or else the system's CAs; None without TLS."""
    if not security.tls:
        return None
    cafile = str(security.ssl_cafile) if security.ssl_cafile else None
    return ssl.create_default_context(purpose=ssl.Purpose.SERVER_AUTH, cafile=cafile)


#: How long a kafka-python client waits for the broker to answer its version probe.
VERSION_PROBE_MS = 15_000


def _sasl(security: Security) -> dict[str, Any]:
    if not security.sasl:
        return {}
    assert security.password is not None  # the config validator resolved it
    return {
        "sasl_mechanism": security.sasl_mechanism,
        "sasl_plain_username": security.username,
        "sasl_plain_password": security.password.get_secret_value(),
    }


def kafka_python_auth(security: Security) -> dict[str, Any]:
    """Authentication keyword arguments for kafka-python's KafkaConsumer, KafkaProducer
    and KafkaAdminClient (without ``bootstrap_servers``)."""
    opts: dict[str, Any] = {"security_protocol": security.protocol, **_sasl(security)}
    context = ssl_context(security)
    if context is not None:
        opts["ssl_context"] = context
    return opts


def aiokafka_auth(security: Security) -> dict[str, Any]:
    """Authentication keyword arguments for aiokafka's clients (same names as
    kafka-python's; aiokafka takes TLS only as an ``ssl_context``)."""
    return kafka_python_auth(security)


def kafka_python_options(config: Config) -> dict[str, Any]:
    """``bootstrap_servers`` and authentication for a kafka-python client of ``config``.

    kafka-python probes the broker's version when a client starts and gives up after 2 s
    by default (``NoBrokersAvailable``); a loaded host can take longer to answer."""
    return {"bootstrap_servers": config.bootstrap_servers,
            "api_version_auto_timeout_ms": VERSION_PROBE_MS,
            **kafka_python_auth(config.security)}


def aiokafka_options(config: Config) -> dict[str, Any]:
    """``bootstrap_servers`` and authentication for an aiokafka client of ``config``."""
    return {"bootstrap_servers": config.bootstrap_servers, **aiokafka_auth(config.security)}


def faust_credentials(config: Config) -> faust.types.auth.CredentialsT | None:
    """``broker_credentials`` for ``faust.App`` (None for PLAINTEXT).

    faust-streaming picks the protocol from the credentials' type: SASLCredentials is
    SASL_PLAINTEXT, or SASL_SSL when given an ``ssl_context``; SSLCredentials is SSL. The
    ``broker`` URL keeps its ``kafka://`` scheme (the scheme names Faust's transport
    driver, not the security protocol).
    """
    import faust

    security = config.security
    context = ssl_context(security)
    if security.sasl:
        assert security.password is not None
        return faust.SASLCredentials(
            username=security.username, password=security.password.get_secret_value(),
            mechanism=security.sasl_mechanism, ssl_context=context)
    if context is not None:
        # Pass the context: SSLCredentials(cafile=...) without a purpose cannot build one.
        return faust.SSLCredentials(context)
    return None
