"""``make demo``: the whole slice on a real broker, start to finish, in about a minute.

Starts a fresh local Kafka broker, one scorer, one learner, and the simulator (with
malformed records, and feature drift plus a group disparity injected part-way through);
shows progress from their own /metrics; waits until every record is accounted for and the
learner has read the whole training log; prints drift, parity, latency, every lifecycle
decision with its reason (promotions and holds), and a summary whose last line reads
``demo: events=N scored=N rejected=N labels=N joined=N model_version=V``; and stops
everything it started, even on failure or Ctrl-C. The two roles run as two processes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from governance import AuditRecord
from streams.config import Config, load_config
from streams.devtools.kafka_local import BrokerOptions, start, stop
from streams.devtools.simulate import SimulationOptions, Simulator
from streams.devtools.sinks import KafkaSink, Pacer
from streams.topics import ensure_topics

DEADLINE_SECONDS = 150.0


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def _get(m: dict, name: str, **labels: str) -> float:
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


def _model_version(m: dict) -> str:
    for (name, labels), value in m.items():
        if name == "streambed_model_info" and value == 1:
            return dict(labels)["model_version"]
    return "?"


def _spawn(role: str, args: argparse.Namespace, url: str, port: int) -> tuple[
        subprocess.Popen[bytes], Path]:
    log_path = args.workdir / f"{role}.log"
    print(f"demo: starting the {role} (log {log_path})", flush=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", role, "--config", args.config,
         "--broker", url, "--web-port", str(port),
         *(["--data-dir", str(args.workdir / role)] if role == "worker" else [])],
        stdout=open(log_path, "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
        start_new_session=True,
    )
    return proc, log_path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", default="examples/quickstart.yaml")
    p.add_argument("--count", type=int, default=4000)
    p.add_argument("--rate", type=float, default=250.0)
    p.add_argument("--port", type=int, default=29092)
    p.add_argument("--web-port", type=int, default=6066)
    p.add_argument("--learner-port", type=int, default=6067)
    p.add_argument("--workdir", type=Path, default=Path("var/demo"))
    args = p.parse_args(argv)
    began = time.monotonic()

    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    broker = BrokerOptions(port=args.port, data_dir=args.workdir / "kafka")
    url = f"kafka://{broker.bootstrap}"
    config = load_config(args.config, broker=url)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        start(broker, log=lambda line: print(f"demo: {line}", flush=True))
        ensure_topics(config)
        for role, port in (("worker", args.web_port), ("learner", args.learner_port)):
            proc, log_path = _spawn(role, args, url, port)
            procs.append(proc)
            _wait_for_worker(port, proc, log_path)
        print(f"demo: scorer metrics at http://127.0.0.1:{args.web_port}/metrics, learner "
              f"at http://127.0.0.1:{args.learner_port}/metrics", flush=True)

        opts = SimulationOptions(count=args.count, seed=42, entities=300,
                                 malformed_ratio=0.03, drift_at=0.6, disparity_at=0.6,
                                 mean_gap_ms=20_000, label_delay_ms=600_000)
        sent = {"events": 0, "labels": 0}
        pacer = Pacer(args.rate)
        last_report = time.monotonic()
        with KafkaSink(config) as sink:
            for rec in Simulator(config, opts).records():
                sink.write(rec)
                sent["events" if rec.kind == "event" else "labels"] += 1
                if rec.kind == "event":
                    pacer.tick()
                if time.monotonic() - last_report >= 3:
                    last_report = time.monotonic()
                    _progress(sent, _scrape(args.web_port), _scrape(args.learner_port))

        deadline = began + DEADLINE_SECONDS
        while time.monotonic() < deadline:
            metrics, learned = _scrape(args.web_port), _scrape(args.learner_port)
            seen = sum(_get(metrics, "streambed_events_total", outcome=o)
                       for o in ("scored", "rejected", "late"))
            labels_done = sum(
                _get(metrics, "streambed_labels_total", outcome=o)
                for o in ("joined", "unmatched", "duplicate", "expired", "invalid"))
            examples = _get(metrics, "streambed_training_examples_total")
            if (seen >= sent["events"] and labels_done >= sent["labels"]
                    and _get(learned, "streambed_learner_next_offset") >= examples):
                break
            time.sleep(1)
        time.sleep(3)  # let the monitors' timers refresh the gauges once more
        _report(sent, _scrape(args.web_port), _scrape(args.learner_port), config,
                time.monotonic() - began)
        return 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        stop(broker, log=lambda line: print(f"demo: {line}", flush=True))


def _wait_for_worker(port: int, worker: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise SystemExit(f"demo: it exited:\n{log_path.read_text()[-3000:]}")
        try:
            _scrape(port)
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"demo: nothing served /metrics on port {port} within 60s")


def _progress(sent: dict[str, int], m: dict, learner: dict) -> None:
    print(f"demo: sent events={sent['events']} labels={sent['labels']} | scorer scored="
          f"{_get(m, 'streambed_events_total', outcome='scored'):.0f} rejected="
          f"{_get(m, 'streambed_events_total', outcome='rejected'):.0f} joined="
          f"{_get(m, 'streambed_labels_total', outcome='joined'):.0f} | learner learned="
          f"{_get(learner, 'streambed_learner_examples_total', outcome='learned'):.0f}",
          flush=True)


def _report(sent: dict[str, int], m: dict, learner: dict, config: Config,
            took: float) -> None:
    scored = _get(m, "streambed_events_total", outcome="scored")
    rejected = _get(m, "streambed_events_total", outcome="rejected")
    late = _get(m, "streambed_events_total", outcome="late")
    joined = _get(m, "streambed_labels_total", outcome="joined")
    count = _get(m, "streambed_event_latency_seconds_count")
    total = _get(m, "streambed_event_latency_seconds_sum")
    print("demo: drift psi by feature: " + ", ".join(
        f"{dict(lab)['feature']}={v:.2f}" for (n, lab), v in sorted(m.items())
        if n == "streambed_feature_drift_psi"), flush=True)
    print("demo: demographic parity ratio (learner, all partitions): " + ", ".join(
        f"{dict(lab)['attribute']}={v:.2f}" for (n, lab), v in sorted(learner.items())
        if n == "streambed_demographic_parity_ratio"), flush=True)
    print(f"demo: mean event latency (produce to acknowledged) {1000 * total / max(count, 1):.1f}"
          f" ms over {count:.0f} records; took {took:.0f}s", flush=True)
    decisions = _decisions(config)
    for record in decisions:
        if record.decision.value in ("promote", "hold", "rollback", "bootstrap"):
            print(f"demo: {record.decision.value:9} {record.version}: {record.reason}",
                  flush=True)
    counts = {d: sum(r.decision.value == d for r in decisions)
              for d in ("promote", "hold")}
    cut = sum(1 for r in decisions if r.decision.value in ("promote", "hold", "await_review"))
    print(f"demo: versions cut={cut} promoted={counts['promote']} held={counts['hold']} "
          f"champion={_model_version(m)}", flush=True)
    print(f"demo: events={sent['events']} scored={scored:.0f} rejected={rejected + late:.0f} "
          f"late={late:.0f} labels={sent['labels']} joined={joined:.0f} "
          f"model_version={_model_version(m)}", flush=True)


def _decisions(config: Config) -> list[AuditRecord]:
    from streams.learner.commands import audit_records

    return sorted(audit_records(config), key=lambda r: int(r.audit_id.rsplit(":", 1)[-1]))


if __name__ == "__main__":
    sys.exit(main())
