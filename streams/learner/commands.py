"""``streambed model ...``: versions and decisions, for people.

``list``, ``show`` and ``audit`` read ``model.versions`` (the latest record of each
version) and ``model.audit`` (every decision, de-duplicated by ``audit_id``: the learner
publishes at least once). ``promote`` and ``rollback`` send a command to the learner on
``model.commands`` and wait for its answer: the audit record carrying the command's
request id (promoted, refused on the gates, rolled back) or an error answer. ``rebuild
VERSION --verify`` relearns the version from ``training`` and compares artifacts.
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
    ModelCommand,
    ModelVersionRecord,
    TrainingExample,
)
from governance.records import dumps
from streams.config import Config
from streams.kafka_clients import kafka_python_options
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


def summary_row(r: ModelVersionRecord) -> list[str]:
    ev = r.evaluation
    auc = ev.candidate_performance.roc_auc if ev else None
    parities = [i.demographic_parity_ratio for i in (ev.candidate_impact.values() if ev else [])
                if i.demographic_parity_ratio is not None]
    odds = [i.equalized_odds_difference for i in (ev.candidate_impact.values() if ev else [])
            if i.equalized_odds_difference is not None]
    gates = " ".join(f"{g.gate}{'/' + g.attribute if g.attribute else ''}:{g.outcome.value}"
                     for g in ev.gates) if ev else "-"
    return [r.version, r.status.value, _when(r.created_at), str(r.examples_learned), _num(auc),
            _num(min(parities) if parities else None), _num(max(odds) if odds else None),
            gates]


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
    header = ["version", "status", "created (UTC)", "examples", "auc", "parity", "eod",
              "gates"]
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
    print(json.dumps(body, indent=2))
    return 0


def cmd_audit(config: Config, args: argparse.Namespace) -> int:
    records = audit_records(config)
    if args.version:
        records = [r for r in records if r.version == args.version]
    rows = [[_when(r.time), r.version, r.decision.value + (" (override)" if r.override else ""),
             r.by, r.champion or "-", r.reason] for r in records]
    print(_table(rows, ["time (UTC)", "version", "decision", "by", "champion after",
                        "reason"]) if rows else "model: no decisions yet")
    return 0


def send_command(config: Config, command: ModelCommand, timeout_seconds: float,
                 ) -> AuditRecord | CommandAnswer | None:
    """Send a command to the learner and wait for its answer (None: no answer in time)."""
    client = kafka_python_options(config)
    consumer = KafkaConsumer(**client, enable_auto_commit=False)
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
    for gate in answer.gates:
        print(f"  {gate.gate}{'/' + gate.attribute if gate.attribute else ''}: "
              f"{gate.outcome.value} ({gate.detail})")
    print(f"model: champion is {answer.champion}")
    return 0 if answer.decision.value in ("promote", "rollback") else 1


def cmd_promote(config: Config, args: argparse.Namespace) -> int:
    return _decide(config, args, "promote")


def cmd_rollback(config: Config, args: argparse.Namespace) -> int:
    args.version = args.to
    return _decide(config, args, "rollback")


def cmd_rebuild(config: Config, args: argparse.Namespace) -> int:
    from governance.rebuild import rebuild, verify

    record = versions(config).get(args.version)
    if record is None:
        print(f"model: no version {args.version!r}", file=sys.stderr)
        return 1
    to = record.training.to_offset
    examples = []
    for offset, _, value, _ in read_all(config, config.topics.training, 600.0):
        if to is not None and offset > to:
            break
        try:
            examples.append((offset, TrainingExample.model_validate_json(value or b"")))
        except (ValidationError, ValueError):
            continue
    if not args.verify:
        model, learned = rebuild(examples, spec=record.model, feature_set=record.feature_set,
                                 from_offset=record.training.from_offset, to_offset=to)
        print(json.dumps({"version": record.version, "examples_learned": learned,
                          "artifact": model.to_artifact()}, indent=2))
        return 0
    result = verify(record, examples)
    print(result.describe())
    return 0 if result.ok else 1


def add_model_parser(sub: Any, config_of: Any) -> None:
    m = sub.add_parser("model", help="versions and decisions, for people")
    msub = m.add_subparsers(dest="model_command", required=True)

    def command(name: str, fun: Any, help_text: str) -> argparse.ArgumentParser:
        p = msub.add_parser(name, help=help_text)
        p.add_argument("--config", required=True)
        p.add_argument("--broker")
        p.set_defaults(func=lambda args: fun(config_of(args), args))
        return p

    command("list", cmd_list, "every version: status, examples, AUC, parity, EOD, gates")
    show = command("show", cmd_show, "one version's lineage and evaluation")
    show.add_argument("version")
    show.add_argument("--artifact", action="store_true", help="the whole artifact")
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
    rb = command("rebuild", cmd_rebuild, "relearn a version from the training log")
    rb.add_argument("version")
    rb.add_argument("--verify", action="store_true",
                    help="compare with the published version (artifact SHA-256)")
    from streams.mlflow_export import add_export_command  # `model export` (its own module)
    add_export_command(command)
