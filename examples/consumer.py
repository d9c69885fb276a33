"""A real-time application's consumer of the ``scored`` topic: validate, de-duplicate, act.

Run it against a broker (``make demo`` or ``streambed kafka start`` plus a worker)::

    python examples/consumer.py --bootstrap 127.0.0.1:9092 --topic scored --group my-app

On a broker that requires SASL (``streambed kafka start --sasl``: the ``analyst`` user may
read ``scored`` with groups named ``scored-*``), log in with a user and the name of the
environment variable holding its password::

    KAFKA_PASSWORD=... python examples/consumer.py --username analyst --group scored-my-app

What an application must know about ``scored``:

- One JSON record per accepted event, described by the JSON Schema shipped in
  ``streams/schemas/scored.schema.json`` (generated from the pydantic model; see
  ``streambed schemas``). Validate against it, so a contract change fails loudly here
  rather than as a ``KeyError`` deep in the application.
- Delivery is at least once: after a worker restart or a rebalance, an event can be
  scored and published again. Records of one entity are keyed by ``entity_id`` and stay
  in order within a partition. De-duplicate by ``event_id``; the first record wins (a
  re-scored duplicate may carry a later ``scored_at`` or even another ``model_version``).
- The de-duplication memory here is bounded (at most ``max_ids`` ids, each forgotten
  after ``ttl_seconds``), so it catches redeliveries, which arrive close together, without
  growing forever. It is lost when this process restarts, and so are offsets not yet
  committed: an application whose effects must happen once should also make them
  idempotent on ``event_id`` (for example a unique key in its database).
- Offsets are committed after the records of a poll have been handled, never before, so
  a crash re-delivers instead of losing records.

Only ``kafka-python`` (the project's dependency) and ``jsonschema`` are needed.

>>> seen = SeenIds(max_ids=2, ttl_seconds=60)
>>> [seen.check_and_add(i, now=0) for i in ["a", "b", "a"]]
[False, False, True]
>>> seen.check_and_add("c", now=1), "a" in seen   # "a" is the oldest: evicted at the cap
(False, False)
>>> seen.check_and_add("b", now=61.5)            # expired after ttl_seconds: new again
False
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "streams" / "schemas" / "scored.schema.json"


class SeenIds:
    """Event ids seen recently: an insertion-ordered map bounded in size and age."""

    def __init__(self, max_ids: int = 100_000, ttl_seconds: float = 3600.0) -> None:
        if max_ids < 1 or ttl_seconds <= 0:
            raise ValueError("max_ids and ttl_seconds must be positive")
        self.max_ids, self.ttl_seconds = max_ids, ttl_seconds
        self._first_seen: OrderedDict[str, float] = OrderedDict()

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._first_seen

    def __len__(self) -> int:
        return len(self._first_seen)

    def check_and_add(self, event_id: str, now: float | None = None) -> bool:
        """True if ``event_id`` was seen within the TTL (a duplicate); else remember it."""
        now = time.monotonic() if now is None else now
        self._expire(now)
        if event_id in self._first_seen:
            return True
        self._first_seen[event_id] = now
        while len(self._first_seen) > self.max_ids:
            self._first_seen.popitem(last=False)  # the oldest first
        return False

    def _expire(self, now: float) -> None:
        while self._first_seen:
            oldest, seen_at = next(iter(self._first_seen.items()))
            if now - seen_at <= self.ttl_seconds:
                break
            del self._first_seen[oldest]


@dataclass
class Outcome:
    """What happened to one raw record: ``accepted`` (with its record), ``duplicate``,
    or ``invalid`` (with the reason)."""

    status: str
    record: dict[str, Any] | None = None
    reason: str = ""


@dataclass
class ScoredReader:
    """Validation and de-duplication of raw ``scored`` values, without any I/O."""

    schema_path: Path = SCHEMA_PATH
    seen: SeenIds = field(default_factory=SeenIds)
    counts: dict[str, int] = field(
        default_factory=lambda: {"accepted": 0, "duplicate": 0, "invalid": 0})

    def __post_init__(self) -> None:
        schema = json.loads(Path(self.schema_path).read_text())
        Draft202012Validator.check_schema(schema)
        self._validator = Draft202012Validator(schema)

    def read(self, value: bytes, now: float | None = None) -> Outcome:
        outcome = self._read(value, now)
        self.counts[outcome.status] += 1
        return outcome

    def _read(self, value: bytes, now: float | None) -> Outcome:
        try:
            record = json.loads(value)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return Outcome("invalid", reason=f"not JSON: {exc}")
        error = next(iter(sorted(self._validator.iter_errors(record), key=str)), None)
        if error is not None:
            where = "/".join(map(str, error.absolute_path)) or "<record>"
            return Outcome("invalid", reason=f"{where}: {error.message}")
        if self.seen.check_and_add(record["event_id"], now):
            return Outcome("duplicate", record=record)
        return Outcome("accepted", record=record)


def handle(record: dict[str, Any]) -> None:
    """The application's work. Here: print the decision, one line per event."""
    print(f"{record['event_id']} entity={record['entity_id']} score={record['score']:.3f} "
          f"decision={record['decision']} model={record['model_version']}", flush=True)


def consume(messages: Callable[[], Iterable[Any]], reader: ScoredReader,
            on_record: Callable[[dict[str, Any]], None], commit: Callable[[], None],
            log: Callable[[str], None]) -> None:
    """One poll's worth: validate, de-duplicate, handle, then commit."""
    for message in messages():
        outcome = reader.read(message.value)
        if outcome.status == "accepted":
            on_record(outcome.record)
        elif outcome.status == "invalid":
            # Do not stop the stream for one bad record: report it (a real application
            # would count it in a metric and keep the raw bytes for inspection).
            log(f"invalid record at {message.topic}[{message.partition}]@{message.offset}: "
                f"{outcome.reason}")
    commit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="scored")
    parser.add_argument("--group", default="scored-example")
    parser.add_argument("--schema", type=Path, default=SCHEMA_PATH)
    parser.add_argument("--max-ids", type=int, default=100_000,
                        help="event ids remembered for de-duplication")
    parser.add_argument("--ttl-seconds", type=float, default=3600.0,
                        help="how long an event id is remembered")
    parser.add_argument("--exit-when-idle", type=float, default=0.0, metavar="SECONDS",
                        help="stop after this long without records (0: run forever)")
    parser.add_argument("--username", help="log in with SASL as this user (default: no login)")
    parser.add_argument("--password-env", default="KAFKA_PASSWORD",
                        help="the environment variable holding the user's password")
    parser.add_argument("--sasl-mechanism", default="PLAIN",
                        choices=["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
    parser.add_argument("--tls", action="store_true", help="SASL_SSL instead of SASL_PLAINTEXT")
    args = parser.parse_args(argv)
    auth: dict[str, Any] = {}
    if args.username:
        password = os.environ.get(args.password_env)
        if not password:
            parser.error(f"--username {args.username}: set {args.password_env} to its password")
        auth = {"security_protocol": "SASL_SSL" if args.tls else "SASL_PLAINTEXT",
                "sasl_mechanism": args.sasl_mechanism, "sasl_plain_username": args.username,
                "sasl_plain_password": password}

    from kafka import KafkaConsumer

    reader = ScoredReader(args.schema, SeenIds(args.max_ids, args.ttl_seconds))
    consumer = KafkaConsumer(args.topic, bootstrap_servers=args.bootstrap,
                             group_id=args.group, enable_auto_commit=False,
                             auto_offset_reset="earliest", **auth)
    idle_since = time.monotonic()
    try:
        while True:
            batch = [m for ms in consumer.poll(timeout_ms=500).values() for m in ms]
            if batch:
                idle_since = time.monotonic()
                consume(lambda b=batch: b, reader, handle, consumer.commit,
                        lambda line: print(line, file=sys.stderr, flush=True))
            elif args.exit_when_idle and time.monotonic() - idle_since > args.exit_when_idle:
                break
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
        print(f"done: {reader.counts}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
