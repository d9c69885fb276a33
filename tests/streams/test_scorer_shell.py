"""The scorer's shell, part by part, without a broker: the publish in steps, the batch
runner, gap read-back, timers, the model follower, the HTTP views and the app's wiring.

The processor is real (over dict tables); what would talk to Kafka is a small fake that
records what it was asked to do.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from governance import LogisticModel, ModelSpec
from monitors.metrics import Metrics
from streams.scorer.batch import BatchResult
from streams.scorer.champion import Champion, ModelFollower, VersionBoard
from streams.scorer.observe import ScorerMetrics
from streams.scorer.processor import Processor
from streams.scorer.publisher import (
    TABLE_STEPS,
    OutRecord,
    ProducerSender,
    StepPublisher,
)
from streams.scorer.readback import GapRepair
from streams.scorer.runner import BatchRunner
from streams.scorer.timers import (
    TAIL_BATCH_RECORDS,
    ExpiryRound,
    PartitionActivity,
    TailCheck,
)
from streams.scorer.views import ScorerViews, readiness
from tests.streams.test_champion import version_records
from tests.streams.test_processor import CONFIG, NOW_MS, event, label, make, rec, scored


class FakeSender:
    """Accepts everything, except the records whose topic it is told to refuse (for as
    many attempts as it is told)."""

    def __init__(self, refuse: dict[str, int] | None = None) -> None:
        self.calls: list[list[OutRecord]] = []
        self.refuse = dict(refuse or {})

    async def send_all(self, records: list[OutRecord]) -> list[tuple[OutRecord, BaseException]]:
        self.calls.append(list(records))
        failed = []
        for topic in {r[0] for r in records}:
            if self.refuse.get(topic, 0) > 0:
                self.refuse[topic] -= 1
                failed += [(r, RuntimeError("refused")) for r in records if r[0] == topic]
        return failed


async def _no_sleep(seconds: float) -> None:
    return None


class FakeMonitoring:
    def __init__(self) -> None:
        self.batches: list[tuple[int, str]] = []
        self.labelled: list[tuple[float, int, int, str]] = []

    def on_scored_batch(self, observations: list[Any], *, model_version: str,
                        now: float) -> None:
        self.batches.append((len(observations), model_version))

    def on_labelled(self, *, score: float, decision: int, label: int,
                    model_version: str) -> None:
        self.labelled.append((score, decision, label, model_version))

    def snapshot(self) -> dict[str, Any]:
        return {"drift": {}}


def _observer() -> tuple[ScorerMetrics, Metrics, FakeMonitoring]:
    metrics = Metrics(CollectorRegistry())
    monitoring = FakeMonitoring()
    return ScorerMetrics(metrics, monitoring, CONFIG.features.identity), metrics, monitoring  # type: ignore[arg-type]


def _count(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def _a_batch() -> BatchResult:
    p = make()
    p.process_events([rec(event(0, NOW_MS), 0)], NOW_MS)
    return p.process_events([rec(event(1, NOW_MS + 1), 1), rec(b"[]", 2)], NOW_MS)


# -- the publish in steps ------------------------------------------------------------------


def _tables_of(res: BatchResult, records: list[OutRecord]) -> set[str]:
    changelog = {cl: name for name, writes in res.writes.items() for cl, *_ in writes}
    return {changelog[r[0]] for r in records if r[0] in changelog}


def test_publish_sends_outputs_pending_and_held_then_entities_then_positions() -> None:
    res = _a_batch()
    assert set(res.writes) == {name for step in TABLE_STEPS for name in step}
    sender = FakeSender()
    asyncio.run(StepPublisher(sender, sleep=_no_sleep).publish(res))
    first, states, positions = sender.calls
    assert [r for r in first if r[0] in (CONFIG.topics.scored, CONFIG.topics.dlq)] == res.sends
    assert _tables_of(res, first) == {"pending"}
    assert _tables_of(res, states) == {"entities"} and len(states) == len(res.writes["entities"])
    assert _tables_of(res, positions) == {"partitions"}


def test_a_refused_first_step_is_retried_alone_and_the_next_waits_for_it() -> None:
    res = _a_batch()
    refused: list[str] = []
    sender = FakeSender(refuse={CONFIG.topics.scored: 2})
    asyncio.run(StepPublisher(sender, refused.append, sleep=_no_sleep).publish(res))
    assert len(sender.calls) == 5
    retry_1, retry_2 = sender.calls[1], sender.calls[2]
    assert {r[0] for r in retry_1} == {r[0] for r in retry_2} == {CONFIG.topics.scored}
    assert [_tables_of(res, c) for c in sender.calls[3:]] == [{"entities"}, {"partitions"}]
    assert refused == [CONFIG.topics.scored] * 2, "each refusal counted when it happens"


def test_no_position_is_sent_while_the_entity_states_before_it_are_refused() -> None:
    """The crash-before-ack interleaving: the broker refuses the entities changelog; the
    positions are not sent until it takes them."""
    res = _a_batch()
    entities_changelog = res.writes["entities"][0][0]
    sender = FakeSender(refuse={entities_changelog: 3})
    asyncio.run(StepPublisher(sender, sleep=_no_sleep).publish(res))
    tried = [_tables_of(res, c) for c in sender.calls[1:]]
    assert tried == [{"entities"}] * 4 + [{"partitions"}]


def test_a_table_without_a_step_is_refused_rather_than_published_in_no_order() -> None:
    res = BatchResult(writes={"shadows": [("cl", b"k", b"v", 0)]})
    with pytest.raises(ValueError, match="no step"):
        asyncio.run(StepPublisher(FakeSender(), sleep=_no_sleep).publish(res))


class FakeAioProducer:
    """What :class:`ProducerSender` uses of aiokafka's producer: real batch builders (of
    ``batch_size`` bytes), sends that record whether each batch was complete (closed: sent
    without waiting out the linger) and acknowledge at a running offset."""

    def __init__(self, batch_size: int = 16384) -> None:
        from aiokafka.producer.message_accumulator import BatchBuilder

        self.builder = lambda: BatchBuilder(batch_size, 0)
        self.client = self
        self.sent: list[tuple[str, int, int, bool]] = []  # topic, partition, records, closed
        self.offsets: dict[tuple[str, int], int] = {}

    async def _wait_on_metadata(self, topic: str) -> None:
        return None

    def _partition(self, topic: str, partition: Any, key: Any, value: Any, sk: Any,
                   sv: Any) -> int:
        return len(sk) % 4  # the serialised key

    def create_batch(self) -> Any:
        return self.builder()

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> Any:
        self.sent.append((topic, partition, batch.record_count(), batch.closed()))
        base = self.offsets.get((topic, partition), 0)
        self.offsets[(topic, partition)] = base + batch.record_count()
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(SimpleNamespace(topic=topic, partition=partition, offset=base))
        return done


def _sender_over(aio: FakeAioProducer) -> ProducerSender:
    return ProducerSender(SimpleNamespace(producer=SimpleNamespace(_ensure_producer=lambda: aio)))


def test_the_sender_hands_over_one_closed_batch_per_partition_that_never_lingers() -> None:
    aio = FakeAioProducer()
    records: list[OutRecord] = [("scored", b"k%d" % i, b"v" * 100, None) for i in range(40)]
    records += [("cl-pending", b"e%d" % i, b"p", 2) for i in range(5)]
    failed = asyncio.run(_sender_over(aio).send_all(records))
    assert failed == []
    assert all(closed for *_, closed in aio.sent), "an open batch waits out the linger"
    assert sorted((t, p, n) for t, p, n, _ in aio.sent) == [
        ("cl-pending", 2, 5), ("scored", 2, 10), ("scored", 3, 30)], \
        "one producer batch per partition"


def test_a_step_larger_than_a_producer_batch_goes_in_several_all_closed() -> None:
    aio = FakeAioProducer(batch_size=2048)
    records: list[OutRecord] = [("scored", b"kk", b"v" * 200, None) for _ in range(30)]
    sender = _sender_over(aio)
    assert asyncio.run(sender.send_all(records)) == []
    assert len(aio.sent) > 1 and all(closed for *_, closed in aio.sent)
    assert sum(n for _, _, n, _ in aio.sent) == 30
    assert sender.acked == {("scored", 2): aio.offsets[("scored", 2)] - aio.sent[-1][2]}


# -- one batch at a time: process, publish, count ---------------------------------------


class ChampionSwapDuringPublish:
    """A publisher during whose await a new champion is adopted (as the follower may)."""

    def __init__(self, processor: Processor, new: Champion) -> None:
        self.processor, self.new = processor, new

    async def publish(self, res: BatchResult) -> None:
        await asyncio.sleep(0)
        self.processor.champion = self.new


def _trained_champion() -> Champion:
    return Champion(LogisticModel(CONFIG.model.spec), "trained-v9")


def test_a_champion_adopted_during_a_publish_does_not_relabel_the_batch() -> None:
    p = make()
    old = p.champion.version
    observer, _, monitoring = _observer()
    publisher = ChampionSwapDuringPublish(p, _trained_champion())
    runner = BatchRunner(publisher, observer)  # type: ignore[arg-type]
    res = asyncio.run(runner.run(lambda now: p.process_events([rec(event(1, NOW_MS), 0)], now)))
    assert p.champion.version == "trained-v9", "adopted meanwhile"
    assert res.model_version == old
    assert monitoring.batches == [(1, old)], "the monitors hear the version that scored"
    assert [s["model_version"] for s in scored(res)] == [old]
    res = asyncio.run(runner.run(lambda now: p.process_events([rec(event(2, NOW_MS), 1)], now)))
    assert monitoring.batches[-1] == (1, "trained-v9"), "the next batch is the new one's"


def test_counts_reach_the_metrics_after_the_publish_and_skipped_offsets_with_them() -> None:
    p = make()
    observer, metrics, _ = _observer()
    seen_during: list[float] = []

    class Publisher:
        async def publish(self, res: BatchResult) -> None:
            seen_during.append(_count(metrics, "streambed_events_total", outcome="scored"))

    runner = BatchRunner(Publisher(), observer)  # type: ignore[arg-type]
    asyncio.run(runner.run(lambda now: p.process_events([rec(event(1, NOW_MS), 0)], now),
                           skipped_offsets=3))
    assert seen_during == [0.0]
    assert _count(metrics, "streambed_events_total", outcome="scored") == 1
    assert _count(metrics, "streambed_skipped_offsets_total") == 3
    assert _count(metrics, "streambed_batch_records_count") == 1


def test_a_joined_label_reaches_the_performance_monitor_after_the_publish() -> None:
    """The scorer checks its estimate against realised labels: each joined example's
    score, decision, label and scoring version, once its batch is published."""
    p = make()
    observer, _, monitoring = _observer()
    heard_during: list[int] = []

    class Publisher:
        async def publish(self, res: BatchResult) -> None:
            heard_during.append(len(monitoring.labelled))

    runner = BatchRunner(Publisher(), observer)  # type: ignore[arg-type]
    scored_res = asyncio.run(runner.run(
        lambda now: p.process_events([rec(event(1, NOW_MS), 0)], now)))
    score = scored(scored_res)[0]
    asyncio.run(runner.run(lambda now: p.process_labels(
        [rec(label(1, NOW_MS + 5, value=0), 0, topic="labels")], now)))
    assert heard_during == [0, 0]
    assert monitoring.labelled == [(score["score"], score["decision"], 0,
                                    score["model_version"])]


def test_expiry_and_eviction_counts_travel_in_the_result() -> None:
    p = make(CONFIG.model_copy(update={"state": CONFIG.state.model_copy(
        update={"max_pending": 1})}))
    observer, metrics, _ = _observer()
    runner = BatchRunner(FakePublisher(), observer)  # type: ignore[arg-type]
    asyncio.run(runner.run(lambda now: p.process_events(
        [rec(event(i, NOW_MS + i, f"u{i}"), i) for i in range(3)], now)))
    assert _count(metrics, "streambed_predictions_evicted_total") == 2
    p = make()
    asyncio.run(runner.run(lambda now: p.process_events([rec(event(1, NOW_MS), 0)], now)))
    later = NOW_MS + CONFIG.model.label_ttl_ms + CONFIG.event.allowed_lateness_ms + 10
    asyncio.run(runner.run(lambda now: p.process_events([rec(event(9, later, "x"), 3,
                                                             ts_ms=later)], now)))
    asyncio.run(runner.run(lambda now: p.expire([0])))
    assert _count(metrics, "streambed_predictions_expired_total") == 1


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[BatchResult] = []

    async def publish(self, res: BatchResult) -> None:
        self.published.append(res)


# -- gap read-back ------------------------------------------------------------------------


@dataclass
class _Raw:
    value: bytes
    key: bytes
    topic: str
    partition: int
    offset: int
    timestamp: int


class FakeReader:
    def __init__(self, log: dict[tuple[str, int], list[bytes]]) -> None:
        self.log = log
        self.reads: list[tuple[str, int, int, int]] = []

    async def read(self, topic: str, partition: int, start: int, end: int) -> list[_Raw]:
        self.reads.append((topic, partition, start, end))
        values = self.log[(topic, partition)]
        return [_Raw(values[o], b"k", topic, partition, o, NOW_MS) for o in range(start, end)]

    async def end_offset(self, topic: str, partition: int) -> int:
        return len(self.log[(topic, partition)])


def test_skipped_records_are_read_back_before_the_record_that_reveals_them() -> None:
    p = make()
    values = [event(i, NOW_MS + i) for i in range(8)]
    p.process_events([rec(values[0], 0)], NOW_MS)
    reader = FakeReader({("events", 0): values})
    repair = GapRepair(p, reader)
    # The consumer delivers 3, then 6 and 7: 1-2 and 4-5 were skipped.
    batch = [rec(values[o], o) for o in (3, 6, 7)]
    filled, skipped = asyncio.run(repair.fill(batch))
    assert [r.offset for r in filled] == list(range(1, 8)) and skipped == 4
    assert reader.reads == [("events", 0, 1, 3), ("events", 0, 4, 6)]
    res = p.process_events(filled, NOW_MS)
    assert [s["event_id"] for s in scored(res)] == [f"e{i}" for i in range(1, 8)]


def test_nothing_is_read_back_on_a_partition_never_processed_or_without_a_gap() -> None:
    p = make()
    reader = FakeReader({("events", 0): [event(i, NOW_MS) for i in range(5)]})
    repair = GapRepair(p, reader)
    filled, skipped = asyncio.run(repair.fill([rec(event(4, NOW_MS), 4)]))
    assert skipped == 0 and [r.offset for r in filled] == [4] and not reader.reads


class FakeConsumer:
    """``positions``: the stream consumer's next fetch offset per partition."""

    def __init__(self, tps: set[Any], highwater: dict[Any, int] | None = None,
                 positions: dict[Any, int] | None = None) -> None:
        self.tps = tps
        self.high = highwater or {}
        self.positions = positions or {}

    def assignment(self) -> set[Any]:
        return set(self.tps)

    def highwater(self, tp: Any) -> int | None:
        return self.high.get(tp)

    def position(self, tp: Any) -> int | None:
        return self.positions.get(tp)


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


def test_the_tail_of_an_idle_partition_is_read_back_and_a_busy_one_left_alone() -> None:
    p = make()
    labels = [label(i, NOW_MS) for i in range(4)]
    p.process_labels([rec(labels[0], 0, topic="labels")], NOW_MS)
    p.process_events([rec(event(0, NOW_MS), 0, partition=1)], NOW_MS)
    reader = FakeReader({("labels", 0): labels, ("events", 1): [event(0, NOW_MS)] * 3})
    observer, metrics, _ = _observer()
    publisher = FakePublisher()
    runner = BatchRunner(publisher, observer)  # type: ignore[arg-type]
    activity = PartitionActivity()
    activity.assigned("labels", [0], now=0.0)
    activity.assigned("events", [1], now=0.0)
    activity.delivered("events", [1], now=15.0)
    clock = iter([20.0]).__next__
    # The stream consumer was handed labels 1-3 (its position is 4) and the events up to 3.
    check = TailCheck(FakeConsumer({TP("labels", 0), TP("events", 1)},
                                   positions={TP("labels", 0): 4, TP("events", 1): 3}),
                      activity, GapRepair(p, reader), runner, p, "events", "labels",
                      idle_seconds=10, clock=clock)
    asyncio.run(check.check())
    assert reader.reads == [("labels", 0, 1, 4)], "the events partition delivered 5 s ago"
    assert len(publisher.published) == 1 and len(p.tables.held) == 3, "held for their events"
    assert p.next_offset(0, labels=True) == 4
    assert _count(metrics, "streambed_skipped_offsets_total") == 3


def test_a_long_tail_is_read_back_one_bounded_batch_per_check() -> None:
    p = make()
    n = TAIL_BATCH_RECORDS + 500
    values = [event(i, NOW_MS, f"u{i}") for i in range(n)]
    p.process_events([rec(values[0], 0)], NOW_MS)
    reader = FakeReader({("events", 0): values})
    observer, _, _ = _observer()
    publisher = FakePublisher()
    runner = BatchRunner(publisher, observer)  # type: ignore[arg-type]
    activity = PartitionActivity()
    activity.assigned("events", [0], now=0.0)
    check = TailCheck(FakeConsumer({TP("events", 0)}, positions={TP("events", 0): n}),
                      activity, GapRepair(p, reader), runner, p, "events", "labels",
                      idle_seconds=10, clock=iter([20.0, 21.0, 22.0]).__next__)
    asyncio.run(check.check())
    assert reader.reads == [("events", 0, 1, 1 + TAIL_BATCH_RECORDS)]
    assert p.next_offset(0) == 1 + TAIL_BATCH_RECORDS
    asyncio.run(check.check())
    assert reader.reads[-1] == ("events", 0, 1 + TAIL_BATCH_RECORDS, n)
    asyncio.run(check.check())
    assert len(reader.reads) == 2 and p.next_offset(0) == n, "nothing left to read back"


def test_a_partition_behind_a_backlog_is_left_to_the_stream() -> None:
    """Idle for the tail check (faust served the other partitions) but nothing skipped:
    the stream consumer has not been handed the records past the next offset due, so
    they come from the stream, however far the partition's end is."""
    p = make()
    values = [event(i, NOW_MS, f"u{i}") for i in range(50)]
    p.process_events([rec(values[0], 0)], NOW_MS)
    reader = FakeReader({("events", 0): values})
    publisher = FakePublisher()
    observer, _, _ = _observer()
    activity = PartitionActivity()
    activity.assigned("events", [0, 1], now=0.0)
    events_0, events_1 = TP("events", 0), TP("events", 1)
    check = TailCheck(FakeConsumer({events_0, events_1}, {events_0: 50},
                                   positions={events_0: 1}),  # events[1]: position unknown
                      activity, GapRepair(p, reader), BatchRunner(publisher, observer),  # type: ignore[arg-type]
                      p, "events", "labels", idle_seconds=10, clock=lambda: 20.0)
    asyncio.run(check.check())
    assert reader.reads == [] and publisher.published == [] and p.next_offset(0) == 1


def test_the_expiry_round_publishes_its_batch_then_sets_sizes_and_lag() -> None:
    p = make()
    p.process_events([rec(event(i, NOW_MS + i, f"u{i}"), i) for i in range(3)], NOW_MS)
    observer, metrics, _ = _observer()
    publisher = FakePublisher()
    runner = BatchRunner(publisher, observer)  # type: ignore[arg-type]
    events_0 = TP("events", 0)
    tick = ExpiryRound(FakeConsumer({events_0, TP("labels", 0)}, {events_0: 10}), p, runner,
                       observer, "events", lambda: (len(p.tables.pending), len(p.tables.held)))
    asyncio.run(tick.tick())
    assert len(publisher.published) == 1
    assert _count(metrics, "streambed_pending_predictions") == 3
    assert _count(metrics, "streambed_consumer_lag_records", partition="0") == 7
    observer.assigned([1])
    assert metrics.registry.get_sample_value("streambed_consumer_lag_records",
                                             {"partition": "0"}) is None
    assert _count(metrics, "streambed_assigned_partitions") == 1


# -- the model follower -------------------------------------------------------------------


def test_the_follower_adopts_each_new_champion_and_says_when_it_caught_up() -> None:
    board = VersionBoard("fs", ModelSpec())
    serving = [Champion.bootstrap(ModelSpec(), "fs")]
    why: list[str] = []
    follower = ModelFollower(board, lambda: serving[-1].version, serving.append, why.append)
    records = version_records()
    follower.take([b"not json", None], caught_up=False)
    assert len(serving) == 1 and len(why) == 1 and not follower.loaded.is_set()
    follower.take(records, caught_up=True)
    assert follower.loaded.is_set()
    assert serving[-1].version == board.champion_record().version  # type: ignore[union-attr]
    assert len(serving) == 2, "one adoption per new champion, none for the same one"
    follower.take([], caught_up=True)
    assert len(serving) == 2


# -- the HTTP views ------------------------------------------------------------------------


def test_views_answer_from_the_processor_state() -> None:
    p = make()
    p.process_events([rec(event(1, NOW_MS), 0)], NOW_MS)
    state = {"ok": (False, "no partitions assigned yet")}
    views = ScorerViews(p, FakeMonitoring(), CollectorRegistry(), CONFIG.features.identity,
                        lambda: state["ok"], lambda: [1, 0])
    body, status = views.readiness()
    assert status == 503 and body["reason"] == "no partitions assigned yet"
    assert body["assigned_partitions"] == [0, 1] and body["model_version"] == p.champion.version
    state["ok"] = (True, "ready")
    assert views.readiness()[1] == 200
    body, status = views.features("u1")
    assert status == 200 and body["features"]["apps_lifetime"] == 1 and body["as_of"] == NOW_MS
    assert views.features("nobody") == ({"error": "unknown entity", "entity_id": "nobody"}, 404)
    snap, _ = views.monitors()
    assert snap["model_version"] == p.champion.version
    assert snap["feature_set"] == CONFIG.features.identity
    assert views.health() == ({"status": "up"}, 200)


@pytest.mark.parametrize(("assigned", "recovering", "loaded", "reason"), [
    (False, True, False, "no partitions assigned yet"),
    (True, True, False, "tables are being recovered from their changelogs"),
    (True, False, False, "the champion is not loaded yet from model.versions"),
    (True, False, True, "ready"),
])
def test_readiness_names_the_first_thing_it_waits_for(assigned: bool, recovering: bool,
                                                       loaded: bool, reason: str) -> None:
    ok, why = readiness(assigned=assigned, recovering=recovering, champion_loaded=loaded)
    assert why == reason and ok == (reason == "ready")


# -- the app's wiring ------------------------------------------------------------------------


def test_the_app_wires_two_agents_two_tasks_and_three_timers_without_connecting(
    tmp_path: Any,
) -> None:
    from streams.scorer.app import create_app

    app = create_app(CONFIG, web_port=6999, data_dir=tmp_path)
    assert sorted(a.split(".")[-1] for a in app.agents) == ["join_labels", "score_events"]
    assert sorted(app.tables) == ["entities", "held", "partitions", "pending"]
    assert sorted(t.__name__ for t in app._app_tasks) == [
        "expire_pending", "follow_model_versions", "freeze_after_recovery",
        "refresh_monitors", "repair_tail_gaps"]
    assert not hasattr(app, "streambed"), "no side door into the app's internals"
    # A publish step is one producer batch per partition (aiokafka sends the batches of a
    # partition one round trip after another).
    assert app.conf.producer_max_batch_size == CONFIG.topics.max_message_bytes
