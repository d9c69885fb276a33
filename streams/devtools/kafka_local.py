"""A real local Apache Kafka broker (KRaft, one combined node, loopback) for dev and tests.

No Docker here: the broker runs from its Maven artifacts. ``mvn dependency:copy-dependencies``
on ``streams/devtools/kafka/pom.xml`` resolves ``org.apache.kafka:kafka_2.13`` and its runtime
classpath into a cache outside git; ``kafka.tools.StorageTool format`` prepares the log
directory once; ``kafka.Kafka server.properties`` runs the broker in its own session so it
outlives the command that started it. Ready means an admin client can list topics, not
merely that the port accepts TCP.

With ``sasl=True`` (``streambed kafka start --sasl``) the broker authenticates every client
with SASL (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512) and authorizes every request with ACLs
(:mod:`.kafka_acls`): its users and their generated passwords are in
``<data dir>/credentials.json`` (mode 600).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field, model_validator

from streams.config import Security

_HERE = Path(__file__).resolve().parent / "kafka"
POM = _HERE / "pom.xml"
LOG4J2 = _HERE / "log4j2.properties"
READY_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 30.0

#: The SASL users of a ``--sasl`` broker: the broker itself and tooling (a super user), the
#: service's principal, and an ordinary principal that may only produce input and read
#: ``scored`` (an upstream producer or an application).
BROKER_USER, SERVICE_USER, INPUT_USER = "admin", "streambed", "analyst"
SASL_USERS = (BROKER_USER, SERVICE_USER, INPUT_USER)
SASL_LISTENER = "SASL_PLAINTEXT"
#: Offered to clients besides PLAIN; their credentials are stored when the log is formatted.
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")


class BrokerError(RuntimeError):
    """The broker cannot be resolved, started or reached; the message says what to do."""


def default_cache_dir() -> Path:
    base = os.environ.get("STREAMBED_CACHE") or os.environ.get("XDG_CACHE_HOME")
    return Path(base) / "streambed" if base else Path.home() / ".cache" / "streambed"


class BrokerOptions(BaseModel):
    """Where and how the local broker runs.

    The broker listens on two loopback ports: ``port`` for clients and ``controller_port``
    for its KRaft controller (default ``port + 1000``; not ``port + 1``, because 9093 is
    Alertmanager's port, which a local Prometheus setup uses).

    >>> BrokerOptions(port=9092).controller_port
    10092
    >>> BrokerOptions(port=9092, controller_port=19093).controller_port
    19093
    """

    port: int = Field(default=9092, ge=1024, le=65535)
    controller_port: int | None = Field(default=None, ge=1024, le=65535)
    data_dir: Path = Path("var/kafka")
    cache_dir: Path = Field(default_factory=default_cache_dir)
    heap_mb: int = Field(default=512, ge=128)
    #: Authenticate clients with SASL/PLAIN and authorize them with ACLs.
    sasl: bool = False

    @model_validator(mode="after")
    def _default_controller_port(self) -> BrokerOptions:
        if self.controller_port is None:
            if self.port + 1000 > 65535:
                raise ValueError(f"port {self.port} + 1000 is no port: give --controller-port")
            self.controller_port = self.port + 1000
        if self.controller_port == self.port:
            raise ValueError("the controller port must differ from the client port")
        return self

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def credentials_file(self) -> Path:
        return self.data_dir / "credentials.json"


def sasl_passwords(opts: BrokerOptions, *, create: bool = False) -> dict[str, str]:
    """The passwords of the ``--sasl`` broker's users, generated once into the data dir."""
    path = opts.credentials_file
    if path.exists():
        passwords = json.loads(path.read_text())
        if set(SASL_USERS) <= set(passwords):
            return passwords
    if not create:
        raise BrokerError(f"kafka: no SASL credentials in {path}: start the broker with --sasl")
    passwords = {user: secrets.token_urlsafe(24) for user in SASL_USERS}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(passwords, f, indent=2)
    return passwords


def principal_security(opts: BrokerOptions, user: str, mechanism: str = "PLAIN") -> Security:
    """The config ``security`` section that logs in to the ``--sasl`` broker as ``user``."""
    return Security(protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism, username=user,
                    password=sasl_passwords(opts)[user])


def sasl_configured(opts: BrokerOptions) -> bool:
    """True when this data dir's broker runs (or last ran) with ``--sasl``."""
    if opts.sasl:
        return True
    try:
        return "sasl.enabled.mechanisms=" in (opts.data_dir / "server.properties").read_text()
    except FileNotFoundError:
        return False


def admin_auth(opts: BrokerOptions) -> dict[str, object]:
    """kafka-python options for the broker's own super user (empty without SASL)."""
    from streams.kafka_clients import kafka_python_auth

    return kafka_python_auth(principal_security(opts, BROKER_USER)) \
        if sasl_configured(opts) else {}


@dataclass
class BrokerStatus:
    running: bool
    pid: int | None
    reachable: bool
    detail: str


def _require_tools() -> None:
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    if missing:
        raise BrokerError(
            f"{' and '.join(missing)} not found: install a Java 17+ JDK and Apache Maven "
            "(Debian: apt-get install openjdk-17-jdk-headless maven)"
        )


def resolve_classpath(opts: BrokerOptions) -> Path:
    """Resolve the broker's jars with Maven (once) and return the directory holding them."""
    version = _pom_kafka_version()
    libs = opts.cache_dir / f"kafka-{version}" / "libs"
    marker = libs / ".complete"
    if marker.exists():
        return libs
    _require_tools()
    libs.mkdir(parents=True, exist_ok=True)
    cmd = [
        "mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={libs}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BrokerError(f"Maven could not resolve Kafka {version}:\n{proc.stdout[-3000:]}")
    marker.write_text(version)
    return libs


def _pom_kafka_version() -> str:
    text = POM.read_text()
    start = text.index("<kafka.version>") + len("<kafka.version>")
    return text[start : text.index("</kafka.version>")]


def _jaas(passwords: dict[str, str]) -> str:
    """A PLAIN login module that logs in as the broker user (for its own connections) and
    accepts every user with its password."""
    users = " ".join(f'user_{u}="{p}"' for u, p in passwords.items())
    return ("org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{BROKER_USER}" password="{passwords[BROKER_USER]}" {users};')


def _sasl_properties(opts: BrokerOptions, passwords: dict[str, str]) -> dict[str, str]:
    """Both listeners authenticate with SASL/PLAIN: clients on the client port, and the
    broker on the controller port as the broker user (a PLAINTEXT controller listener
    would make every local process ANONYMOUS there, and ANONYMOUS would have to be a super
    user for the broker to register)."""
    jaas = _jaas(passwords)
    listener = SASL_LISTENER.lower()
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    return {
        "listeners": f"{SASL_LISTENER}://127.0.0.1:{opts.port},"
                     f"CONTROLLER://127.0.0.1:{opts.controller_port}",
        "advertised.listeners": f"{SASL_LISTENER}://127.0.0.1:{opts.port}",
        "listener.security.protocol.map": f"{SASL_LISTENER}:SASL_PLAINTEXT,"
                                          "CONTROLLER:SASL_PLAINTEXT",
        "inter.broker.listener.name": SASL_LISTENER,
        "sasl.enabled.mechanisms": ",".join(("PLAIN", *SCRAM_MECHANISMS)),
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "sasl.mechanism.controller.protocol": "PLAIN",
        f"listener.name.{listener}.plain.sasl.jaas.config": jaas,
        **{f"listener.name.{listener}.{m.lower()}.sasl.jaas.config": scram
           for m in SCRAM_MECHANISMS},
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": jaas,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{BROKER_USER}",
        "allow.everyone.if.no.acl.found": "false",
    }


def _scram_arguments(passwords: dict[str, str]) -> list[str]:
    """StorageTool arguments storing every user's SCRAM credentials in the new log (KRaft
    keeps them in its metadata; they can be added only when the log is formatted)."""
    return [arg for mechanism in SCRAM_MECHANISMS for user, password in passwords.items()
            for arg in ("--add-scram", f"{mechanism}=[name={user},password={password}]")]


def _server_properties(opts: BrokerOptions, log_dir: Path,
                       passwords: dict[str, str] | None = None) -> str:
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{opts.controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{opts.port},CONTROLLER://127.0.0.1:{opts.controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{opts.port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": "4",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "8",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "true",
        "log.retention.hours": "168",
    }
    if opts.sasl:
        if passwords is None:
            raise ValueError("a --sasl broker needs its users' passwords")
        props.update(_sasl_properties(opts, passwords))
    return "".join(f"{k}={v}\n" for k, v in props.items())


def _pid_file(opts: BrokerOptions) -> Path:
    return opts.data_dir / "broker.pid"


def _read_pid(opts: BrokerOptions) -> int | None:
    try:
        pid = int(_pid_file(opts).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        # Reap it if it is our own exited child, so a zombie does not look alive.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return None
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def port_in_use(port: int) -> bool:
    """True when something already listens on (or holds) 127.0.0.1:``port``.

    Binds the way the broker will (with SO_REUSEADDR, as Java's server sockets do on
    Linux), so a port in TIME_WAIT after a previous broker counts as free.
    """
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def check_ports_free(opts: BrokerOptions) -> None:
    """Raise a one-line :class:`BrokerError` naming the first port that is taken."""
    for what, port, flag in [("client port", opts.port, "--port"),
                             ("controller port", opts.controller_port, "--controller-port")]:
        if port_in_use(port):
            raise BrokerError(
                f"kafka: {what} {port} on 127.0.0.1 is already in use; stop what holds it "
                f"or choose another with {flag}")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def broker_ready(bootstrap: str, timeout_seconds: float = 5.0,
                 auth: dict[str, object] | None = None) -> bool:
    """True when an admin client (with ``auth``, kafka-python's authentication options)
    can list topics on ``bootstrap``."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(
            **(auth or {}),
            bootstrap_servers=bootstrap,
            request_timeout_ms=int(timeout_seconds * 1000),
            api_version_auto_timeout_ms=int(timeout_seconds * 1000),
        )
    except (KafkaError, OSError, ValueError):
        return False
    try:
        admin.list_topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def status(opts: BrokerOptions) -> BrokerStatus:
    pid = _read_pid(opts)
    reachable = _port_open(opts.port) and broker_ready(opts.bootstrap, 3.0, _auth_or_none(opts))
    if pid and reachable:
        detail = f"running (pid {pid}) on {opts.bootstrap}"
    elif pid:
        detail = f"process {pid} alive but {opts.bootstrap} does not serve metadata yet"
    elif reachable:
        detail = f"a broker not started by streambed answers on {opts.bootstrap}"
    else:
        detail = f"not running ({opts.bootstrap})"
    return BrokerStatus(running=pid is not None, pid=pid, reachable=reachable, detail=detail)


def _auth_or_none(opts: BrokerOptions) -> dict[str, object] | None:
    try:
        return admin_auth(opts)
    except BrokerError:
        return None  # a --sasl data dir without its credentials: not reachable by us


def start(opts: BrokerOptions, log: Callable[[str], None] = print) -> BrokerStatus:
    """Start the broker (or find it running) and wait until it serves metadata."""
    current = status(opts)
    if current.reachable:
        log(f"kafka: already {current.detail}")
        return current
    if current.pid:
        log(f"kafka: process {current.pid} is up but not serving; stopping it first")
        stop(opts, log)
    check_ports_free(opts)  # one line naming the port, not the JVM's bind trace
    _require_tools()
    began = time.monotonic()
    libs = resolve_classpath(opts)
    data = opts.data_dir.resolve()
    log_dir = data / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    props = data / "server.properties"
    passwords = sasl_passwords(opts, create=True) if opts.sasl else None
    # Owner-only: with --sasl it holds every user's password.
    fd = os.open(props, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(_server_properties(opts, log_dir, passwords))
    os.chmod(props, 0o600)
    java = ["java", f"-Xmx{opts.heap_mb}m", f"-Xms{opts.heap_mb}m", "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J2}", f"-Dkafka.logs.dir={data / 'logs'}",
            "-cp", f"{libs}/*"]
    if not (log_dir / "meta.properties").exists():
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        fmt = subprocess.run(
            # "--cluster-id=ID", not "-t ID": a base64url id may begin with "-".
            [*java, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
             "--config", str(props), "--ignore-formatted",
             *(_scram_arguments(passwords) if passwords else [])],
            capture_output=True, text=True, check=False,
        )
        if fmt.returncode != 0:
            out = f"{fmt.stdout}{fmt.stderr}"
            for secret in (passwords or {}).values():
                out = out.replace(secret, "***")
            raise BrokerError(f"formatting {log_dir} failed:\n{out}")
        if passwords:
            (data / "scram-users").write_text(" ".join(passwords) + "\n")
    elif passwords and not (data / "scram-users").exists():
        log(f"kafka: {log_dir} was formatted without --sasl: SCRAM logins will fail (no "
            "credentials stored); PLAIN works")
    out = open(data / "broker.out", "ab")  # noqa: SIM115 - handed to the detached broker
    proc = subprocess.Popen(
        [*java, "kafka.Kafka", str(props)],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    out.close()
    _pid_file(opts).write_text(str(proc.pid))
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (data / "broker.out").read_text(errors="replace")[-3000:]
            raise BrokerError(f"the broker exited with code {proc.returncode}:\n{tail}")
        if _port_open(opts.port) and broker_ready(opts.bootstrap, 2.0, admin_auth(opts)):
            took = time.monotonic() - began
            log(f"kafka: started (pid {proc.pid}) on {opts.bootstrap} in {took:.1f}s; data {data}")
            if opts.sasl:
                log(f"kafka: SASL/PLAIN with ACLs; users {', '.join(SASL_USERS)}; their "
                    f"passwords are in {opts.credentials_file.resolve()} (mode 600)")
            return status(opts)
        time.sleep(0.3)
    stop(opts, log)
    raise BrokerError(f"the broker did not serve metadata within {READY_TIMEOUT_SECONDS:.0f}s")


def stop(opts: BrokerOptions, log: Callable[[str], None] = print) -> None:
    """Stop the broker cleanly (SIGTERM, then SIGKILL after a grace period)."""
    pid = _read_pid(opts)
    if pid is None:
        _pid_file(opts).unlink(missing_ok=True)
        log(f"kafka: not running ({opts.bootstrap})")
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline and _read_pid(opts):
        time.sleep(0.2)
    if _read_pid(opts):
        os.kill(pid, signal.SIGKILL)
        log(f"kafka: broker {pid} ignored SIGTERM for {STOP_TIMEOUT_SECONDS:.0f}s; killed")
    _pid_file(opts).unlink(missing_ok=True)
    log(f"kafka: stopped (pid {pid})")
