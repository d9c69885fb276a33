"""Test helpers that talk to real processes: a worker subprocess, topic reads, /metrics."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from streams.config import Topics
from streams.devtools.sinks import Pacer
from streams.learner.fetch import fetch_options

REPO = Path(__file__).resolve().parents[1]


def fresh_config(dest: Path, bootstrap: str, prefix: str = "t", partitions: int = 2,
                 **overrides: Any) -> Path:
    """The quickstart config pointed at ``bootstrap``, with a name and every topic unique
    to this call (nothing shared with another test), written to ``dest/config.yaml``."""
    import uuid

    import yaml

    raw = yaml.safe_load((REPO / "examples" / "quickstart.yaml").read_text())
    suffix = uuid.uuid4().hex[:8]
    raw.update(name=f"{prefix}{suffix}", broker=f"kafka://{bootstrap}", **overrides)
    raw["topics"] = {k: f"{v}.{suffix}" for k, v in raw["topics"].items()
                     if k != "partitions"}
    for name in ("training", "model_versions", "model_audit", "model_commands",
                 "learner_state"):
        raw["topics"][name] = f"{name}.{suffix}"
    raw["topics"]["partitions"] = partitions
    path = dest / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


#: Hypothesis profiles, by name (``HYPOTHESIS_PROFILE``; tests/conftest.py registers and
#: loads them): the profile's settings, and how many examples a property test that asks
#: :func:`max_examples` runs against the number written in it. "ci" is what ``make test``
#: runs: half of them (never fewer than 10), no example database (a fresh clone has none
#: to replay) and a failure's reproduction blob printed. "thorough" runs five times as
#: many, for a change to the feature engine or the learner. Without a profile: as written.
HYPOTHESIS_PROFILES: dict[str, tuple[dict[str, Any], float]] = {
    "ci": ({"database": None, "print_blob": True}, 0.5),
    "thorough": ({}, 5.0),
}


def max_examples(written: int) -> int:
    """The ``max_examples`` of a property test that names ``written``, under the profile in
    force (:data:`HYPOTHESIS_PROFILES`).

    >>> profile = os.environ.get("HYPOTHESIS_PROFILE")
    >>> max_examples(70) == {"ci": 35, "thorough": 350}.get(profile, 70)
    True
    >>> max_examples(8) == {"thorough": 40}.get(profile, 8)  # never fewer than 10
    True
    """
    _, scale = HYPOTHESIS_PROFILES.get(os.environ.get("HYPOTHESIS_PROFILE", ""), ({}, 1.0))
    return max(min(written, 10), round(written * scale))


@dataclass(frozen=True)
class Ran:
    """What a command line gave back (the fields of ``subprocess.CompletedProcess`` that
    the tests read)."""

    returncode: int
    stdout: str
    stderr: str


def streambed(*args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None
              ) -> Ran:
    """``streambed ARGS`` run in this process by the console script's own function
    (:func:`streams.cli.main`), with its output captured: the same parsing, commands and
    exit status, without the 3 to 4 CPU seconds a fresh interpreter spends importing
    River, SciPy, pandas and MLflow on every call. ``cwd`` and ``env`` (the whole
    environment) hold for the call only. A test whose claim is about a fresh process (its
    imports, its start-up) runs ``python -m streams.cli`` instead."""
    from streams.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    try:
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse's errors and --help
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return Ran(code, out.getvalue(), err.getvalue())


def model_command(config_path: Path, *args: str) -> Ran:
    """``streambed model ARGS --config CONFIG_PATH`` (in this process, :func:`streambed`)."""
    return streambed("model", *args, "--config", str(config_path))


def audit_records(config: Any) -> list[dict[str, Any]]:
    """Every record of the config's ``model.audit`` topic, as JSON."""
    from streams.topics import read_all

    return [json.loads(v) for _, _, v, _ in read_all(config, config.topics.model_audit)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class Worker:
    """``streambed worker`` as a child process with its own data directory and log."""

    def __init__(self, config: Path, web_port: int, data_dir: Path, role: str = "worker",
                 loglevel: str | None = None) -> None:
        self.config, self.web_port, self.data_dir = config, web_port, data_dir
        self.role = role
        #: The worker's log level (default: $STREAMBED_TEST_LOGLEVEL, else warning).
        self.loglevel = loglevel or os.environ.get("STREAMBED_TEST_LOGLEVEL", "warning")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.with_suffix(".log")

    def start(self, ready_timeout_seconds: float = 60.0, *, wait: bool = True) -> None:
        """Start the process; with ``wait``, return once its /metrics answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", self.role, "--config", str(self.config),
             "--web-port", str(self.web_port),
             # only a scorer keeps local files (the learner keeps its state on Kafka)
             *(["--data-dir", str(self.data_dir)] if self.role == "worker" else []),
             "--loglevel", self.loglevel],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
        )
        if not wait:
            return
        deadline = time.monotonic() + ready_timeout_seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}:\n{self.log()}")
            try:
                self.metrics_text()
                return
            except OSError:
                time.sleep(0.3)
        raise AssertionError(f"worker /metrics not up in {ready_timeout_seconds}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def metrics_text(self) -> str:
        url = f"http://127.0.0.1:{self.web_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample (0.0 when the series is absent)."""
        for family in text_string_to_metric_families(self.metrics_text()):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v
                                               for k, v in labels.items()):
                    return sample.value
        return 0.0

    def kill(self) -> None:
        """SIGKILL the whole process group (the supervisor and its worker): a crash."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout_seconds: float = 15.0) -> None:
        stop_all([self], timeout_seconds)


def stop_all(workers: list[Worker], timeout_seconds: float = 15.0) -> None:
    """SIGTERM every worker's process group at once, then wait for each (SIGKILL after
    ``timeout_seconds``): their shutdowns overlap instead of adding up."""
    running = [w.proc for w in workers if w.proc is not None and w.proc.poll() is None]
    for proc in running:
        with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_seconds
    for proc in running:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def produce(bootstrap: str, topic: str, records: list[tuple[str, bytes]]) -> None:
    produce_to(bootstrap, [(topic, key, value) for key, value in records])


def produce_to(bootstrap: str, records: list[tuple[str, str, bytes]],
               per_second: float = 0.0) -> None:
    """Send ``(topic, key, value)`` records in order with one producer, and wait for acks.

    The producer is idempotent: without it a retried batch can land after the next one,
    and the partition's order (which decides what is late) differs from the list's.

    ``per_second`` paces the records like a live source (0: as fast as possible).
    """
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                             enable_idempotence=True,
                             max_request_size=4 * 1024 * 1024)
    pacer = Pacer(per_second)
    for topic, key, value in records:
        producer.send(topic, key=key.encode(), value=value)
        pacer.tick()
    producer.flush(timeout=60)
    producer.close()


def read_topic(bootstrap: str, topic: str, expected: int, timeout_seconds: float = 90.0,
               done: Callable[[list[Any]], bool] | None = None,
               max_message_bytes: int = Topics().max_message_bytes) -> list[Any]:
    """Read a topic from the start until ``expected`` records arrived (or ``done`` says so)
    or time runs out. Fetch sizes fit records of ``max_message_bytes`` (the broker's limit;
    kafka-python's defaults refuse a full 1 MiB fetch with ``Invalid frame length``)."""
    done = done or (lambda out: len(out) >= expected)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest",
                             **fetch_options(max_message_bytes))
    out: list[Any] = []
    deadline = time.monotonic() + timeout_seconds
    try:
        while time.monotonic() < deadline and consumer.partitions_for_topic(topic) is None:
            time.sleep(0.2)
        parts = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in parts])
        while not done(out) and time.monotonic() < deadline:
            for recs in consumer.poll(timeout_ms=500).values():
                out.extend(recs)
        # Anything beyond `expected` would be a bug (a duplicate): read everything the topic
        # holds now, up to its end offsets (a condition, not a pause).
        ends = consumer.end_offsets(list(consumer.assignment()))
        while time.monotonic() < deadline and any(
                consumer.position(tp) < end for tp, end in ends.items()):
            for tp, recs in consumer.poll(timeout_ms=500).items():
                out.extend(r for r in recs if r.offset < ends[tp])
    finally:
        consumer.close()
    return out


def read_scored_for(bootstrap: str, topic: str, events: list[Any],
                    timeout_seconds: float = 90.0) -> tuple[set[str], list[dict[str, Any]]]:
    """The ids of ``events`` (raw simulated records) and the scored records read until every
    one of them has a scored record (duplicates included) or time runs out."""
    ids = {json.loads(r.value)["event_id"] for r in events}
    records = read_topic(
        bootstrap, topic, len(events), timeout_seconds,
        done=lambda out: {json.loads(r.value)["event_id"] for r in out} >= ids)
    return ids, json_values(records)


def json_values(records: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in records]


def wait_until(predicate: Any, timeout_seconds: float, what: str, step: float = 0.5) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout_seconds}s waiting for {what}")


class ServerProcess:
    """A server child process on loopback with a ``/-/ready`` page (Prometheus and
    Alertmanager share this): ready-checking that notices an early exit, and a stop."""

    name = "server"
    proc: subprocess.Popen[bytes] | None
    workdir: Path
    url: str

    def log(self) -> str:
        return (self.workdir / f"{self.name}.log").read_text(errors="replace")[-3000:]

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.log()}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class Prometheus(ServerProcess):
    """A real Prometheus (Debian's package) on loopback scraping ``targets`` every second.

    ``rules`` is the text of a rule file (e.g. ``rules_with_for(1)``); ``alertmanager``, a
    ``host:port`` to send alerts to. Use as a context manager; it is stopped on exit.
    """

    name = "prometheus"

    def __init__(self, exe: str, workdir: Path, targets: list[str], rules: str,
                 alertmanager: str | None = None) -> None:
        self.exe, self.workdir, self.targets, self.rules = exe, workdir, targets, rules
        self.alertmanager = alertmanager
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Prometheus:
        import yaml

        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "alerts.yml").write_text(self.rules)
        config: dict[str, Any] = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["alerts.yml"],
            "scrape_configs": [{"job_name": "streambed",
                                "static_configs": [{"targets": self.targets}]}],
        }
        if self.alertmanager:
            config["alerting"] = {
                "alertmanagers": [{"static_configs": [{"targets": [self.alertmanager]}]}]}
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.proc = subprocess.Popen(
            [self.exe, f"--config.file={self.workdir / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}",
             "--rules.alert.resend-delay=1s"],
            stdout=subprocess.DEVNULL, stderr=(self.workdir / "prometheus.log").open("wb"),
        )
        wait_until(self._ready, 30, "Prometheus to be ready")
        return self


    def api(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}", timeout=5) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return body["data"]

    def alerts(self) -> set[tuple[str, str, str]]:
        """(alertname, feature or attribute label, state) of every pending/firing alert."""
        return {(a["labels"]["alertname"],
                 a["labels"].get("feature") or a["labels"].get("attribute", ""), a["state"])
                for a in self.api("alerts")["alerts"]}

    def evaluated_after(self, group: str, wall_time: float) -> bool:
        """True once rule group ``group`` has begun an evaluation after ``wall_time``."""
        for g in self.api("rules")["groups"]:
            if g["name"] == group:
                stamp = re.sub(r"(\.\d{6})\d*", r"\1", g["lastEvaluation"])
                return datetime.fromisoformat(stamp).timestamp() > wall_time
        raise AssertionError(f"no rule group {group!r} in Prometheus")

    def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        data = self.api("query?query=" + urllib.parse.quote(promql))
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]
