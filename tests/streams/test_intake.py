"""The scorer's intake (streams/scorer/intake.py) and recovery predicate, without a broker:
a batch of events waits for the champion, marks its partitions active, has skipped records
put back and runs with their count and its wait; labels do not wait for a model."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from streams.scorer.app import tables_recovering
from streams.scorer.intake import Intake, in_record
from streams.scorer.readback import GapRepair
from streams.scorer.runner import BatchRunner
from streams.scorer.timers import PartitionActivity
from tests.streams.test_processor import NOW_MS, event, label, make, rec, scored
from tests.streams.test_scorer_shell import FakePublisher, FakeReader, _count, _observer


def _intake(p: Any, reader: FakeReader, *, labels: bool = False,
            loaded: asyncio.Event | None = None) -> tuple[Intake, FakePublisher,
                                                          PartitionActivity, Any]:
    observer, metrics, _ = _observer()
    publisher = FakePublisher()
    activity = PartitionActivity()
    intake = Intake("labels" if labels else "events", labels=labels,
                    process=p.process_labels if labels else p.process_events,
                    activity=activity, repair=GapRepair(p, reader),
                    runner=BatchRunner(publisher, observer),  # type: ignore[arg-type]
                    champion_loaded=loaded, clock=lambda: 42.0)
    return intake, publisher, activity, metrics


def test_events_wait_for_the_champion_then_run_with_skipped_records_put_back() -> None:
    p = make()
    values = [event(i, NOW_MS + i) for i in range(5)]
    p.process_events([rec(values[0], 0)], NOW_MS)
    loaded = asyncio.Event()
    intake, publisher, activity, metrics = _intake(p, FakeReader({("events", 0): values}),
                                                   loaded=loaded)

    async def scenario() -> None:
        batch = asyncio.create_task(intake.batch([rec(values[o], o) for o in (3, 4)],
                                                 waited=0.02))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not publisher.published, "scored before the champion was known"
        loaded.set()
        await asyncio.wait_for(batch, 5)

    asyncio.run(scenario())
    (res,) = publisher.published
    assert [s["event_id"] for s in scored(res)] == ["e1", "e2", "e3", "e4"]
    assert res.skipped_offsets == 2 and res.batch_wait_seconds == 0.02
    assert _count(metrics, "streambed_skipped_offsets_total") == 2
    assert not activity.idle("events", 0, now=51.0, idle_seconds=10), "delivered at 42 s"


def test_labels_do_not_wait_for_a_model() -> None:
    p = make()
    intake, publisher, _, _ = _intake(p, FakeReader({}), labels=True)
    asyncio.run(asyncio.wait_for(
        intake.batch([rec(label(0, NOW_MS), 0, topic="labels")]), 5))
    assert len(publisher.published) == 1 and len(p.tables.held) == 1


def test_take_runs_each_batch_the_stream_hands_over() -> None:
    p = make()
    intake, publisher, _, _ = _intake(p, FakeReader({}))
    msg = SimpleNamespace(value=event(0, NOW_MS), key=b"k", topic="events", partition=0,
                          offset=0, timestamp=NOW_MS / 1000)

    async def batches() -> Any:
        yield [SimpleNamespace(message=msg)], 0.0
        yield [SimpleNamespace(message=SimpleNamespace(**{**vars(msg), "offset": 1,
                                                          "value": event(1, NOW_MS)}))], 0.01

    asyncio.run(intake.take(batches()))
    assert [s["event_id"] for res in publisher.published for s in scored(res)] == ["e0", "e1"]


def test_a_message_becomes_an_input_record_with_its_timestamp_in_ms() -> None:
    msg = SimpleNamespace(value=None, key=b"k", topic="events", partition=3, offset=9,
                          timestamp=1_700_000_000.25)
    r = in_record(msg)
    assert (r.raw, r.partition, r.offset, r.timestamp_ms) == (b"", 3, 9, 1_700_000_000_250)


def test_the_tables_count_as_recovering_while_faust_rebalances_or_recovers() -> None:
    done, pending = asyncio.Event(), asyncio.Event()
    done.set()

    def app(rebalancing: bool, in_recovery: bool, completed: asyncio.Event) -> Any:
        return SimpleNamespace(rebalancing=rebalancing, in_recovery=in_recovery,
                               tables=SimpleNamespace(recovery=SimpleNamespace(
                                   completed=completed)))

    assert not tables_recovering(app(False, False, done))
    assert tables_recovering(app(True, False, done))
    assert tables_recovering(app(False, True, done))
    assert tables_recovering(app(False, False, pending))
