"""``streambed model ...``: versions and decisions, for people.

``list``, ``show`` and ``audit`` read ``model.versions`` (the latest record of each
version) and ``model.audit`` (every decision, de-duplicated by ``audit_id``: the learner
publishes at least once). ``promote`` and ``rollback`` send a command to the learner on
``model.commands`` and wait for its answer: the audit record carrying the command's
request id (promoted, refused on the gates, rolled back) or an error answer. ``rebuild
VERSION --verify`` relearns the version from ``training`` and compares artifacts, then
replays its lineage's decisions from the same log and compares them with ``model.audit``.

``resume`` (lift a drift pause of automatic promotion) and ``pin-baseline [VERSION]`` (pin
a version's drift reference as the baseline) are sent and answered the same way, with the
person's name and reason.

``show`` and ``audit --version`` print each gate's estimate, interval, bound, sample sizes
and the looks so far (:func:`evidence_lines`); ``audit`` prints each drift pause and
resume with its statistics (:func:`drift_lines`); ``list`` shows which versions are in
shadow and how far their evidence has come.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from pydantic import ValidationError

from governance import (
    AuditRecord,
    CommandAnswer,
    Evaluation,
    GateVerdict,
    ModelCommand,
    ModelVersionRecord,
    TrainingExample,
)
from governance.records import dumps
from streams.config import Config
from streams.kafka_clients import kafka_python_options
from streams.learner.fetch import fetch_options
from streams.scorer.champion import VersionRefused, read_version
from streams.topics import read_all


def versions(config: Config) -> dict[str, ModelVersionRecord]:
    out: dict[str, ModelVersionRecord] = {}
    for _, _, value, _ in read_all(config, config.topics.model_versions, 60.0):
        if value is None:
            continue
        try:
            record = read_version(value)
        except VersionRefused as exc:
            print(f"model: refused a record on {config.topics.model_versions}: {exc}",
                  file=sys.stderr)
            continue
        out[record.version] = record
    return out


def audit_records(config: Config) -> list[AuditRecord]:
    seen: dict[str, AuditRecord] = {}
    for _, _, value, _ in read_all(config, config.topics.model_audit, 60.0):
        try:
            record = AuditRecord.model_validate_json(value or b"")
        except (ValidationError, ValueError):
            continue
        seen.setdefault(record.audit_id, record)
    return list(seen.values())


def _when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _gate_name(gate: GateVerdict) -> str:
    return gate.gate + (f"[{gate.attribute}]" if gate.attribute else "")


def summary_row(r: ModelVersionRecord) -> list[str]:
    ev = r.evaluation
    if ev is None:
        evidence = "-"
    elif ev.look is None:  # a record from before shadow judging (prequential)
        evidence = f"prequential, {ev.examples} examples"
    else:
        evidence = (f"look {ev.look}{' final' if ev.final else ''}, {ev.examples} paired "
                    f"vs {ev.champion}")
    failing = ",".join(ev.failing()) if ev else ""
    return [r.version, r.status.value, _when(r.created_at), str(r.examples_learned),
            evidence, ev.outcome.value if ev else "-", failing or "-"]


def _interval(g: GateVerdict) -> str:
    if g.lower is None and g.upper is None:
        return ""
    level = f" at {g.confidence:.4g}" if g.confidence is not None else ""
    return f" [{_num(g.lower, 4)}, {_num(g.upper, 4)}]{level}"


def evidence_lines(ev: Evaluation | None) -> list[str]:
    """A person's view of an evaluation: each gate's estimate, interval, bound, champion's
    value and sample sizes, and every look so far."""
    if ev is None:
        return ["evidence: none yet (no look at its shadow scores)"]
    if ev.look is None:
        head = (f"evidence: prequential evaluation on {ev.examples} examples (recorded before "
                f"shadow judging)")
    else:
        head = (f"evidence: {ev.examples} events scored at event time by {ev.candidate} (in "
                f"shadow) and {ev.champion}, training offsets {ev.from_offset}..{ev.to_offset}"
                f"; look {ev.look}{' (final)' if ev.final else ''}, seed {ev.seed}: "
                f"{ev.outcome.value}")
    lines = [head]
    for g in ev.gates:
        sizes = ", ".join(f"{k}={v}" for k, v in g.sample_sizes.items())
        lines.append(f"  {_gate_name(g)}: {g.outcome.value}  estimate {_num(g.value, 4)}"
                     f"{_interval(g)}  bound {_num(g.threshold, 4)}  champion "
                     f"{_num(g.champion_value, 4)}" + (f"  n: {sizes}" if sizes else ""))
        if g.method:
            lines.append(f"      method: {g.method}")
        if g.detail:
            lines.append(f"      {g.detail}")
    for attribute, groups in ev.group_quality.items():
        lines.append(f"  per-group quality [{attribute}] (reported, not gated): " + "; ".join(
            f"{g} n={q.examples} AUC {_num(q.candidate_roc_auc, 3)} vs "
            f"{_num(q.champion_roc_auc, 3)}, ECE {_num(q.candidate_calibration_error, 3)} vs "
            f"{_num(q.champion_calibration_error, 3)}" for g, q in groups.items()))
    if ev.looks:
        lines.append("looks so far: " + "; ".join(
            f"#{k.look} n={k.examples} {k.outcome.value}"
            + (f" ({','.join(k.failing)})" if k.failing else "") for k in ev.looks))
    return lines


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def cmd_list(config: Config, args: argparse.Namespace) -> int:
    records = sorted(versions(config).values(), key=lambda r: (r.lineage, r.sequence))
    if not records:
        print("model: no versions yet (is the learner running?)")
        return 0
    header = ["version", "status", "created (UTC)", "learned", "evidence", "gates",
              "not passing"]
    print(_table([summary_row(r) for r in records], header))
    return 0


def cmd_show(config: Config, args: argparse.Namespace) -> int:
    record = versions(config).get(args.version)
    if record is None:
        print(f"model: no version {args.version!r} on {config.topics.model_versions}",
              file=sys.stderr)
        return 1
    body = record.model_dump(mode="json")
    if not args.artifact:
        body["artifact"] = {"weights": body["artifact"]["weights"],
                            "intercept": body["artifact"]["intercept"],
                            "(more)": "--artifact shows the scaler and optimizer state"}
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    print(f"{record.version}: {record.status.value} (lineage {record.lineage}, parent "
          f"{record.parent or '-'}), {record.examples_learned} examples learned at training "
          f"offsets {record.training.from_offset}..{record.training.to_offset}")
    print(f"created {_when(record.created_at)}, status since "
          f"{_when(record.status_changed_at)} UTC")
    for line in evidence_lines(record.evaluation):
        print(line)
    print(f"policy sha256: {record.policy_sha256 or '- (not on record)'}")
    if record.environment is not None:
        env = record.environment
        print(f"environment: streambed {env.package_version}, Python {env.python_version} "
              f"on {env.platform}, River {env.river_version}, dependencies sha256 "
              f"{env.dependencies_sha256[:16]}…")
    print("(--json for the whole record)")
    return 0


def cmd_audit(config: Config, args: argparse.Namespace) -> int:
    records = audit_records(config)
    if args.version:
        records = [r for r in records if r.version == args.version]
    rows = [[_when(r.time), r.version, r.decision.value + (" (override)" if r.override else ""),
             r.by, r.champion or "-", r.reason] for r in records]
    print(_table(rows, ["time (UTC)", "version", "decision", "by", "champion after",
                        "reason"]) if rows else "model: no decisions yet")
    for r in records:
        if r.decision.value in ("pause", "resume") and r.drift is not None:
            print(f"\n{_when(r.time)} {r.decision.value} by {r.by}:")
            for line in drift_lines(r):
                print(f"  {line}")
    if args.version:  # one version: the evidence behind each of its decisions
        for r in records:
            if r.evaluation is not None:
                print(f"\n{_when(r.time)} {r.decision.value} {r.version} "
                      f"(policy sha256 {(r.policy_sha256 or '-')[:16]}…):")
                for line in evidence_lines(r.evaluation):
                    print(f"  {line}")
    return 0


def send_command(config: Config, command: ModelCommand, timeout_seconds: float,
                 ) -> AuditRecord | CommandAnswer | None:
    """Send a command to the learner and wait for its answer (None: no answer in time)."""
    client = kafka_python_options(config)
    consumer = KafkaConsumer(**client, enable_auto_commit=False,
                             **fetch_options(config.topics.max_message_bytes))
    tps = [TopicPartition(config.topics.model_audit, 0),
           TopicPartition(config.topics.model_commands, 0)]
    try:
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, ends[tp])
        producer = KafkaProducer(**client, acks="all")
        producer.send(config.topics.model_commands, key=command.request_id.encode(),
                      value=dumps(command))
        producer.flush(timeout=30)
        producer.close()
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=500).items():
                for msg in records:
                    answer = _answer(tp.topic == config.topics.model_audit, msg.value,
                                     command.request_id)
                    if answer is not None:
                        return answer
        return None
    finally:
        consumer.close()


def _answer(is_audit: bool, raw: bytes | None, request_id: str,
            ) -> AuditRecord | CommandAnswer | None:
    try:
        record: Any = (AuditRecord if is_audit else CommandAnswer).model_validate_json(
            raw or b"")
    except (ValidationError, ValueError):
        return None
    return record if record.request_id == request_id else None


def _decide(config: Config, args: argparse.Namespace, action: str) -> int:
    command = ModelCommand(request_id=uuid.uuid4().hex, action=action,  # type: ignore[arg-type]
                           version=args.version, by=args.by, reason=args.reason,
                           override=getattr(args, "override", False),
                           sent_at=time.time_ns() // 1_000_000)
    answer = send_command(config, command, args.timeout)
    if answer is None:
        print(f"model: no answer from the learner in {args.timeout:.0f} s (is `streambed "
              f"learner` running?); the request {command.request_id} stays queued",
              file=sys.stderr)
        return 1
    if isinstance(answer, CommandAnswer):
        print(f"model: {action} refused: {answer.error}", file=sys.stderr)
        return 1
    print(f"model: {answer.decision.value} {answer.version} by {answer.by}"
          f"{' (override)' if answer.override else ''}: {answer.reason}")
    for line in evidence_lines(answer.evaluation) if answer.evaluation else []:
        print(f"  {line}")
    print(f"model: champion is {answer.champion}")
    if answer.drift is not None and answer.decision.value != "pin_baseline":
        for line in drift_lines(answer):
            print(f"  {line}")
    return 0 if answer.decision.value in ("promote", "rollback", "resume", "pin_baseline") \
        else 1


def cmd_promote(config: Config, args: argparse.Namespace) -> int:
    return _decide(config, args, "promote")


def cmd_rollback(config: Config, args: argparse.Namespace) -> int:
    args.version = args.to
    return _decide(config, args, "rollback")


def cmd_resume(config: Config, args: argparse.Namespace) -> int:
    args.version = None
    return _decide(config, args, "resume")


def cmd_pin_baseline(config: Config, args: argparse.Namespace) -> int:
    return _decide(config, args, "pin_baseline")


def drift_lines(record: AuditRecord) -> list[str]:
    """A person's view of a drift pause or resume: the window, the family-wise rate, and
    each flagged statistic with its threshold."""
    d = record.drift
    if d is None:
        return []
    against = d.reference_version or "-"
    if d.baseline_version:
        against += f" and the baseline of {d.baseline_version}"
    lines = [f"drift watch: windows of {d.window_examples} training examples against the "
             f"reference of {against}; {d.statistics} statistics, each at level "
             f"{d.level:.3g} (family-wise false-alarm rate {d.family_false_alarm_rate:g} per "
             f"window), minimum effect PSI {d.min_effect_psi:g}; {d.windows} windows judged, "
             f"{d.clean_windows} clean in a row (resumes by policy after {d.resume_after})"]
    lines += [f"  {f.statistic}: chi-square {f.value:.1f} > threshold {f.threshold:.1f} "
              f"(p = {f.p_value:.2g}, {f.events} examples)" for f in d.flags]
    return lines


def _training_log(config: Config) -> list[tuple[int, int, TrainingExample | None]]:
    """Every record of ``training``: (offset, timestamp, example or None if invalid)."""
    out: list[tuple[int, int, TrainingExample | None]] = []
    for offset, _, value, timestamp in read_all(config, config.topics.training, 600.0):
        try:
            out.append((offset, timestamp, TrainingExample.model_validate_json(value or b"")))
        except (ValidationError, ValueError):
            out.append((offset, timestamp, None))
    return out


def cmd_rebuild(config: Config, args: argparse.Namespace) -> int:
    from governance.rebuild import rebuild, replay_decisions, verify

    known = versions(config)
    record = known.get(args.version)
    if record is None:
        print(f"model: no version {args.version!r}", file=sys.stderr)
        return 1
    log = _training_log(config)
    examples = [(offset, example) for offset, _, example in log if example is not None]
    if not args.verify:
        model, learned = rebuild(examples, spec=record.model, feature_set=record.feature_set,
                                 from_offset=record.training.from_offset,
                                 to_offset=record.training.to_offset)
        print(json.dumps({"version": record.version, "examples_learned": learned,
                          "artifact": model.to_artifact()}, indent=2))
        return 0
    result = verify(record, examples)
    print(result.describe())
    decisions = replay_decisions(log, audit_records(config), known, record)
    print(decisions.describe())
    return 0 if result.ok and decisions.ok else 1


def add_model_parser(sub: Any, config_of: Any) -> None:
    m = sub.add_parser("model", help="versions and decisions, for people")
    msub = m.add_subparsers(dest="model_command", required=True)

    def command(name: str, fun: Any, help_text: str) -> argparse.ArgumentParser:
        p = msub.add_parser(name, help=help_text)
        p.add_argument("--config", required=True)
        p.add_argument("--broker")
        p.set_defaults(func=lambda args: fun(config_of(args), args))
        return p

    command("list", cmd_list, "every version: status (shadow: being judged), its evidence "
                              "and gates")
    show = command("show", cmd_show, "one version's lineage and evaluation")
    show.add_argument("version")
    show.add_argument("--artifact", action="store_true", help="the whole artifact (--json)")
    show.add_argument("--json", action="store_true", help="the whole record as JSON")
    audit = command("audit", cmd_audit, "the decision log")
    audit.add_argument("--version")
    for name, fun in (("promote", cmd_promote), ("rollback", cmd_rollback)):
        p = command(name, fun, f"{name} (sent to the learner, recorded with your name)")
        if name == "promote":
            p.add_argument("version")
            p.add_argument("--override", action="store_true",
                           help="promote although a gate does not pass (recorded as such)")
        else:
            p.add_argument("--to", help="the version to put back (default: the previous "
                                        "champion)")
        p.add_argument("--by", required=True, help="your name")
        p.add_argument("--reason", required=True)
        p.add_argument("--timeout", type=float, default=60.0)
    resume = command("resume", cmd_resume, "lift a drift pause of automatic promotion "
                                           "(sent to the learner, recorded with your name)")
    pin = command("pin-baseline", cmd_pin_baseline,
                  "pin a version's drift reference as the baseline every later version is "
                  "also compared with (sent to the learner, recorded with your name)")
    pin.add_argument("version", nargs="?", help="default: the champion")
    for p in (resume, pin):
        p.add_argument("--by", required=True, help="your name")
        p.add_argument("--reason", required=True)
        p.add_argument("--timeout", type=float, default=60.0)
    rb = command("rebuild", cmd_rebuild, "relearn a version from the training log")
    rb.add_argument("version")
    rb.add_argument("--verify", action="store_true",
                    help="compare with the published version (artifact SHA-256) and replay "
                         "the lineage's decisions against model.audit")
    from streams.mlflow_export import add_export_command  # `model export` (its own module)
    add_export_command(command)
