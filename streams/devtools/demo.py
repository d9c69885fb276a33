"""``make demo``: the whole slice on a real broker, start to finish, in about two minutes.

Starts a fresh local Kafka broker, one scorer, one learner, and the simulator (with
malformed records, and feature drift plus a group disparity injected part-way through);
shows progress from their own /metrics (with the versions the scorer scores in shadow);
waits until every record is accounted for and the learner has read the whole training
log; prints drift (the scorer's verdicts), parity, latency, every version cut into shadow
and every look at it, every lifecycle decision (promotions and holds) with each gate's
estimate, interval and bound, and a summary whose last line reads
``demo: events=N scored=N rejected=N labels=N joined=N model_version=V``; and stops
everything it started, even on failure or Ctrl-C. The two roles run as two processes.

Drift is judged as the quickstart would, on shorter windows: the demo runs the
quickstart's config with ``monitors.drift.window_seconds: 10`` (the scorer's disjoint
windows; the quickstart's 60 s would give a first verdict only after four complete
windows, four minutes, longer than the demo) and ``watch_examples: 500`` (the learner's
windows of training examples), written to ``var/demo/config.yaml``. The learner pauses
automatic promotion when the drift reaches its training examples; once everything is
accounted for, the demo prints the pause and resumes it as an operator would
(``streambed model resume --by "Demo Operator" --reason ...``), then prints the
champion's AUC estimated before labels (CBPE, with its interval) beside the AUC its
labels realised.

The promotion policy is the config's (the quickstart's: the default gates). Under it a
look needs 1,000 paired examples (events a candidate scored in shadow, labelled since),
and a candidate better than the champion is promoted after a median ~4,000 to 8,000:
hence 24,000 events, labels about a minute of event time after their event, and the
drift and disparity injected at 65%, after the first verdicts. A candidate judged on
events after the disparity fails the parity gate, its interval beyond the bound: the
hold. Applicants are drawn from a million entities, so nearly every one applies once:
lifetime counts and gaps since the previous application stay as they were when a
candidate was cut (a frozen candidate's scaler would otherwise see them grow out of
range, and its log loss with them).
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
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from governance import AuditRecord, Evaluation, GateVerdict, ModelVersionRecord
from streams.config import Config, load_config
from streams.devtools.kafka_local import BrokerOptions, start, stop
from streams.devtools.simulate import SimulationOptions, Simulator
from streams.devtools.sinks import KafkaSink, Pacer
from streams.learner.commands import drift_lines
from streams.topics import ensure_topics, read_all

#: Applications the simulator sends.
DEMO_COUNT = 24_000
#: After the last record is sent: how long the scorer and the learner may take to catch up.
DEADLINE_SECONDS = 120.0


#: A scrape may wait this long: a busy worker answers /metrics between batches (Prometheus
#: itself waits 10 s by default), and the demo must not die of one slow answer.
SCRAPE_TIMEOUT_SECONDS = 30.0


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                timeout=SCRAPE_TIMEOUT_SECONDS) as resp:
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
    p.add_argument("--count", type=int, default=DEMO_COUNT)
    p.add_argument("--rate", type=float, default=400.0)
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
    args.config = str(_demo_config(Path(args.config), args.workdir))
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

        opts = SimulationOptions(count=args.count, seed=42, entities=1_000_000,
                                 malformed_ratio=0.03, drift_at=DRIFT_AT,
                                 disparity_at=DRIFT_AT,
                                 mean_gap_ms=20_000, label_delay_ms=60_000)
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

        deadline = time.monotonic() + DEADLINE_SECONDS
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
                time.monotonic() - began, args, url)
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


#: Where the simulator injects the feature drift and the group disparity.
DRIFT_AT = 0.65
#: The demo's drift windows (see the module docstring).
DEMO_DRIFT = {"window_seconds": 10, "window_buckets": 10, "watch_examples": 500}


def _demo_config(path: Path, workdir: Path) -> Path:
    """The config with the demo's shorter drift windows, written beside the demo's data."""
    raw = yaml.safe_load(path.read_text())
    raw.setdefault("monitors", {}).setdefault("drift", {}).update(DEMO_DRIFT)
    out = workdir / "config.yaml"
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    print(f"demo: config {path} with monitors.drift {DEMO_DRIFT} ({out})", flush=True)
    return out


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
          f"{_get(learner, 'streambed_learner_examples_total', outcome='learned'):.0f} | in "
          f"shadow {_get(m, 'streambed_shadow_versions'):.0f}", flush=True)


def _report(sent: dict[str, int], m: dict, learner: dict, config: Config,
            took: float, args: argparse.Namespace, url: str) -> None:
    scored = _get(m, "streambed_events_total", outcome="scored")
    rejected = _get(m, "streambed_events_total", outcome="rejected")
    late = _get(m, "streambed_events_total", outcome="late")
    joined = _get(m, "streambed_labels_total", outcome="joined")
    count = _get(m, "streambed_event_latency_seconds_count")
    total = _get(m, "streambed_event_latency_seconds_sum")
    drifted = sorted(dict(lab)["feature"] for (n, lab), v in m.items()
                     if n == "streambed_feature_drift_detected" and v == 1)
    print("demo: drift psi by feature: " + ", ".join(
        f"{dict(lab)['feature']}={v:.2f}" for (n, lab), v in sorted(m.items())
        if n == "streambed_feature_drift_psi")
        + f"; drift detected: {', '.join(drifted) or 'none'}", flush=True)
    print("demo: demographic parity ratio (learner, served, all partitions): " + ", ".join(
        f"{dict(lab)['attribute']}={v:.2f}" for (n, lab), v in sorted(learner.items())
        if n == "streambed_demographic_parity_ratio"), flush=True)
    print("demo: labels " + " ".join(
        f"{o}={_get(m, 'streambed_labels_total', outcome=o):.0f}"
        for o in ("joined", "unmatched", "duplicate", "expired", "invalid")), flush=True)
    print(f"demo: mean event latency (produce to acknowledged) {1000 * total / max(count, 1):.1f}"
          f" ms over {count:.0f} records; took {took:.0f}s", flush=True)
    from streams.learner.commands import versions

    for line in _lifecycle(config):
        print(f"demo: {line}", flush=True)
    _resume_if_paused(config, args, url)
    for line in _auc_lines(m, config, args.count):
        print(f"demo: {line}", flush=True)
    decisions = _decisions(config)
    counts = {d: sum(r.decision.value == d for r in decisions)
              for d in ("promote", "hold", "await_review", "pause", "resume")}
    cuts = [v for v in versions(config).values() if v.sequence >= 1]
    in_shadow = [v.version for v in cuts if v.status.value == "shadow"]
    print(f"demo: versions cut={len(cuts)} in shadow={len(in_shadow)} "
          f"promoted={counts['promote']} held={counts['hold']} awaiting review="
          f"{counts['await_review']} paused={counts['pause']} resumed={counts['resume']} "
          f"champion={_model_version(m)}", flush=True)
    print(f"demo: events={sent['events']} scored={scored:.0f} rejected={rejected + late:.0f} "
          f"labels={sent['labels']} joined={joined:.0f} model_version={_model_version(m)}",
          flush=True)


def _lifecycle(config: Config) -> list[str]:
    """Every version cut into shadow, every look at it, and every decision, in order."""
    from streams.learner.commands import audit_records

    lines: list[str] = []
    seen: set[tuple[str, int | None]] = set()
    for record in _version_history(config):
        ev = record.evaluation
        if record.status.value == "shadow" and ev is None and (record.version, None) not in seen:
            seen.add((record.version, None))
            lines.append(f"shadow    {record.version}: cut after {record.examples_learned} "
                         "examples; scored in shadow beside the champion, not served")
        elif (record.status.value == "shadow" and ev is not None and ev.look is not None
              and (record.version, ev.look) not in seen):
            seen.add((record.version, ev.look))
            open_gates = [g for g in ev.gates if g.outcome.value != "pass"]
            lines.append(f"look      {record.version}: #{ev.look} on {ev.examples} paired "
                         f"examples vs {ev.champion}: {ev.outcome.value}, stays in shadow; "
                         f"not yet shown: " + "; ".join(_gate(g) for g in open_gates))
    for audit in sorted(audit_records(config),
                        key=lambda r: int(r.audit_id.rsplit(":", 1)[-1])):
        if audit.decision.value not in ("promote", "hold", "rollback", "bootstrap",
                                        "await_review", "pause", "resume"):
            continue
        ev = audit.evaluation
        look = (f" (look {ev.look}{', final' if ev.final else ''}, {ev.examples} paired "
                f"examples vs {ev.champion})" if ev is not None and ev.look else "")
        lines.append(f"{audit.decision.value:9} {audit.version}: {audit.reason}{look}"
                     f"{'' if audit.by == 'policy' else f' [by {audit.by}]'}")
        if ev is not None:
            lines += _gate_lines(ev)
        lines += [f"    {line}" for line in drift_lines(audit)]
    return lines


def _resume_if_paused(config: Config, args: argparse.Namespace, url: str) -> None:
    """If drift paused automatic promotion, resume it as an operator would: by name, with
    a reason, through the CLI (recorded on model.audit)."""
    last = [a for a in _decisions(config) if a.decision.value in ("pause", "resume")]
    if not last or last[-1].decision.value != "pause":
        print("demo: automatic promotion is not paused now"
              + (" (it resumed by policy)" if last else " (no drift reached the learner)"),
              flush=True)
        return
    print(f"demo: automatic promotion is paused since training offset "
          f"{last[-1].training_offset}: {last[-1].reason}", flush=True)
    command = [sys.executable, "-m", "streams.cli", "model", "resume", "--config",
               args.config, "--broker", url, "--by", "Demo Operator", "--reason",
               "reviewed: the drift is the simulator's injection at 65%"]
    print("demo: $ streambed model resume --by 'Demo Operator' --reason 'reviewed: the drift "
          "is the simulator's injection at 65%'", flush=True)
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    for line in (done.stdout + done.stderr).splitlines():
        print(f"demo: {line}", flush=True)


def _auc_lines(m: dict, config: Config, count: int) -> list[str]:
    """The champion's ROC AUC estimated before labels (CBPE) beside the AUC its labels
    realised: live on the scorer (its last scored events, no labels yet), and on the
    champion's labelled examples from the training log, before and after the injected
    drift (the monitor's own reliability check: scores calibrated on the older half,
    estimate and calibration judged on the newer half), each saying whether the estimate
    can be trusted."""
    from monitors.cbpe import reliability_check
    from streams.learner.commands import _training_log

    champion = _model_version(m)
    perf = config.monitors.performance
    est = {b: _get(m, "streambed_estimated_roc_auc_ratio", bound=b)
           for b in ("estimate", "lower", "upper")}
    lines = [f"AUC of the champion {champion}, estimated before labels (CBPE) and realised:",
             f"  live (scorer, its last {perf.estimate_events} scored events, no label yet): "
             f"estimated {est['estimate']:.3f} [{est['lower']:.3f}, {est['upper']:.3f}]"]
    onset = DRIFT_AT * count
    served = [e for _, _, e in _training_log(config)
              if e is not None and e.model_version == champion]
    for name, part in (("before the drift", [e for e in served if _index(e) < onset]),
                       ("after the drift", [e for e in served if _index(e) >= onset])):
        part = part[-perf.estimate_events:]
        if len(part) < perf.calibration_min_labels:
            lines.append(f"  {name}: {len(part)} labelled examples served by it, too few")
            continue
        r = reliability_check([e.score for e in part], [e.decision for e in part],
                              [e.label for e in part], false_flag_rate=perf.calibration_alpha,
                              max_error=perf.max_calibration_error,
                              min_labels=perf.calibration_min_labels,
                              simulations=perf.estimate_simulations,
                              level=perf.estimate_level, seed=len(part))
        guess, check = r.estimate, r.calibration
        lines.append(
            f"  {name} (calibrated on the older {len(part) - r.labels} of its last "
            f"{len(part)} labelled examples, judged on the newer {r.labels}): estimated "
            f"{guess.value:.3f} [{guess.lower:.3f}, {guess.upper:.3f}], realised "
            f"{r.realised_roc_auc:.3f}: {'inside' if r.covered else 'outside'} the interval; "
            f"calibration error {check.calibration_error:.3f} (Hosmer-Lemeshow p "
            f"{check.p_value:.2g}): "
            + ("reliable" if r.reliable else "flagged UNRELIABLE (P(label | features) "
               "changed: the estimate does not hold)"))
    return lines


def _index(example: Any) -> int:
    """The simulator's event number, from its event id ``e{seed}-{i}``."""
    try:
        return int(example.event_id.rsplit("-", 1)[-1])
    except ValueError:
        return -1


def _gate_lines(ev: Evaluation) -> list[str]:
    """One line per gate: outcome, estimate, interval, bound and the champion's value."""
    return [f"    {g.outcome.value:4}  {_gate(g)}  champion {_num(g.champion_value)}"
            for g in ev.gates]


def _gate(g: GateVerdict) -> str:
    name = g.gate + (f"[{g.attribute}]" if g.attribute else "")
    return (f"{name} {_num(g.value)} [{_num(g.lower)}, {_num(g.upper)}] "
            f"bound {_num(g.threshold)}")


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _version_history(config: Config) -> list[ModelVersionRecord]:
    """Every record on model.versions in the order published (republished on each look)."""
    from streams.learner.commands import read_version

    out = []
    for _, _, value, _ in read_all(config, config.topics.model_versions, 60.0):
        if value is not None:
            out.append(read_version(value))
    return out


def _decisions(config: Config) -> list[AuditRecord]:
    from streams.learner.commands import audit_records

    return sorted(audit_records(config), key=lambda r: int(r.audit_id.rsplit(":", 1)[-1]))


if __name__ == "__main__":
    sys.exit(main())
