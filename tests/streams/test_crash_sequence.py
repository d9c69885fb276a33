"""The crash-before-ack failure of the chaos suite, replayed without a broker, step by step.

The sequence seen in CI (tests/chaos/test_crash_before_ack.py, ``entities`` refused): a
scorer publishes batch B; the broker takes the batch's outputs and pending predictions,
refuses its entity states and (when both went in one step) takes its positions; the scorer
is killed; the partition moves. The next owner's tables are what the changelogs hold: the
positions say B was applied, the entity states do not have it. Its tail check (which then
compared the partition's end, not the stream consumer's position, with the next offset
due), with the partition idle since its assignment, read the records after that position
and scored them against states without B's events; when the stream then redelivered B, each of its
events is taken for already applied (its entity's last offset is past it), so the later
records keep features missing B's events (``apps_lifetime`` 6 where replay says 7).

Here the "broker" is a dict of logs that refuses the entities changelog, the crash is the
publish cancelled while it retries, and the new owner's tables are rebuilt from the logs.
The claim is the chaos test's: every scored record's features equal a replay of every
event. Also here: the timers leave the tables alone while they are recovered.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import pytest

from features.reference import reference_features
from streams.scorer.batch import BatchResult
from streams.scorer.processor import Processor
from streams.scorer.publisher import OutRecord, StepPublisher
from streams.scorer.readback import GapRepair
from streams.scorer.runner import BatchRunner
from streams.scorer.timers import ExpiryRound, PartitionActivity, TailCheck
from streams.validation import EventValidator, ValidEvent
from tests.streams.test_processor import CONFIG, NOW_MS, event, make, rec, scored
from tests.streams.test_scorer_shell import TP, FakeConsumer, FakeReader, _observer


class Killed(BaseException):
    """The process dies (SIGKILL): nothing after this point runs."""


class Broker:
    """The logs of every topic, appended in the order records are accepted; records of
    the ``refused`` topic are refused (MESSAGE_TOO_LARGE, as ``max.message.bytes=1``)."""

    def __init__(self) -> None:
        self.logs: dict[str, list[OutRecord]] = defaultdict(list)
        self.refused: str | None = None

    async def send_all(self, records: list[OutRecord]) -> list[tuple[OutRecord, BaseException]]:
        failed: list[tuple[OutRecord, BaseException]] = []
        for r in records:
            if r[0] == self.refused:
                failed.append((r, RuntimeError("MESSAGE_TOO_LARGE")))
            else:
                self.logs[r[0]].append(r)
        return failed


def _killed_after(retries: int) -> Any:
    """A publisher's backoff sleep that kills the process at its ``retries``-th wait."""
    waits = [0]

    async def sleep(seconds: float) -> None:
        waits[0] += 1
        if waits[0] >= retries:
            raise Killed

    return sleep


def _recovered_from(broker: Broker) -> Processor:
    """A new owner whose tables hold exactly what their changelogs hold."""
    p = make()
    for table in p.tables.all():
        for _, key, value, partition in broker.logs[table.changelog]:
            assert key is not None and partition is not None
            if value is None:
                table.delete(key, partition)
            else:
                table.put(key, value, partition)
        table.flush()
    return p


class Runner:
    """A publisher for the new owner's batches (nothing refused any more)."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.results: list[BatchResult] = []

    async def publish(self, res: BatchResult) -> None:
        await StepPublisher(self.broker).publish(res)
        self.results.append(res)


def _replayed(values: list[bytes]) -> dict[str, dict[str, Any]]:
    validator = EventValidator(CONFIG.event)
    events = [validator.validate(v, NOW_MS) for v in values]
    assert all(isinstance(e, ValidEvent) for e in events)
    out = reference_features([(e.entity_id, e.ts_ms, e.attrs) for e in events],  # type: ignore[union-attr]
                             CONFIG.features)
    return {e.event_id: v for e, v in zip(events, out, strict=True)}  # type: ignore[union-attr]


def test_a_crash_with_the_entity_states_refused_then_a_move_keeps_replay_parity() -> None:
    # Two entities, events alternating: batch A lands whole, batch B is the crashed one,
    # and the rest comes after the crash.
    values = [event(i, NOW_MS - 60_000 + i * 1_000, f"u{i % 2}") for i in range(12)]
    a, b, after = range(0, 4), range(4, 8), range(8, 12)
    broker = Broker()
    old = make()
    published: list[BatchResult] = []

    async def old_owner() -> None:
        for batch in (a, b):
            res = old.process_events([rec(values[o], o) for o in batch], NOW_MS)
            if batch is b:
                broker.refused = res.writes["entities"][0][0]
            try:
                await StepPublisher(broker, sleep=_killed_after(3)).publish(res)
            finally:
                published.append(res)

    with pytest.raises(Killed):
        asyncio.run(old_owner())
    broker.refused = None  # the topic takes writes again; B's input offsets were not acked
    scored_b = [r for r in broker.logs[CONFIG.topics.scored] if r in published[1].sends]
    assert len(scored_b) == len(b), "B's outputs landed before the crash"

    new = _recovered_from(broker)
    assert new.next_offset(0) == b.start, \
        "a position landed without the entity states of the records before it"
    runner = Runner(broker)
    observer, _, _ = _observer()
    batches = BatchRunner(runner, observer)  # type: ignore[arg-type]
    activity = PartitionActivity()
    activity.assigned("events", [0], now=0.0)
    # The partition idle since its assignment; the consumer starts at the last committed
    # offset, B's first (with the states of A and B but not B's position, nothing is read).
    check = TailCheck(FakeConsumer({TP("events", 0)}, positions={TP("events", 0): b.start}),
                      activity, GapRepair(new, FakeReader({("events", 0): values})),
                      batches, new, "events", "labels", idle_seconds=10, clock=lambda: 20.0)
    asyncio.run(check.check())
    # Then the stream redelivers from the last committed offset (B's first).
    redelivered = [rec(values[o], o) for o in (*b, *after)]
    asyncio.run(batches.run(lambda now_ms: new.process_events(redelivered, now_ms)))

    replay = _replayed(values)
    sent = [*scored(published[0]), *scored(published[1]),
            *(s for res in runner.results for s in scored(res))]
    assert {s["event_id"] for s in sent} == set(replay)
    wrong = [(s["event_id"], s["features"]["apps_lifetime"],
              replay[s["event_id"]]["apps_lifetime"])
             for s in sent if s["features"] != pytest.approx(replay[s["event_id"]])]
    assert not wrong, wrong


class Recovery:
    def __init__(self) -> None:
        self.on = True

    def __call__(self) -> bool:
        return self.on


def test_the_tail_check_waits_for_the_recovery_and_counts_idle_from_its_end() -> None:
    p = make()
    p.process_events([rec(event(0, NOW_MS), 0)], NOW_MS)
    reader = FakeReader({("events", 0): [event(i, NOW_MS + i) for i in range(3)]})
    observer, _, _ = _observer()
    runner = Runner(Broker())
    activity = PartitionActivity()
    activity.assigned("events", [0], now=0.0)
    now = [20.0]
    recovering = Recovery()
    check = TailCheck(FakeConsumer({TP("events", 0)}, positions={TP("events", 0): 3}),
                      activity, GapRepair(p, reader),
                      BatchRunner(runner, observer), p, "events", "labels",  # type: ignore[arg-type]
                      idle_seconds=10, clock=lambda: now[0], recovering=recovering)
    asyncio.run(check.check())
    assert reader.reads == [] and runner.results == [], "nothing read while recovering"
    recovering.on = False
    now[0] = 25.0  # recovered at 20 s at the latest: idle 5 s, not 25 s
    asyncio.run(check.check())
    assert reader.reads == []
    now[0] = 31.0
    asyncio.run(check.check())
    assert reader.reads == [("events", 0, 1, 3)] and len(runner.results) == 1


def test_the_expiry_round_waits_for_the_recovery() -> None:
    p = make()
    p.process_events([rec(event(0, NOW_MS), 0)], NOW_MS)
    observer, _, _ = _observer()
    runner = Runner(Broker())
    recovering = Recovery()
    events_0 = TP("events", 0)
    tick = ExpiryRound(FakeConsumer({events_0}, {events_0: 1}), p,
                       BatchRunner(runner, observer), observer, "events",  # type: ignore[arg-type]
                       lambda: (len(p.tables.pending), len(p.tables.held)),
                       recovering=recovering)
    asyncio.run(tick.tick())
    assert runner.results == []
    recovering.on = False
    asyncio.run(tick.tick())
    assert len(runner.results) == 1
