"""The scorer's Faust application: topics, tables, agents, timers and web views.

This is the imperative shell. Each agent takes a micro-batch of records (bounded by count
and time), hands it to :class:`streams.scorer.processor.Processor`, and publishes what
comes back (:func:`Publisher.publish`): every scored record, dead letter, training example
and changelog write is handed to the producer without awaiting each, then the batch waits
once for all of them to be accepted, and only then are its outcomes counted and its input
offsets acknowledged (Faust acks a ``take_events`` batch when the loop comes back for the
next one). Agents run with concurrency 1 (faust-streaming #606: with more, an offset can be
committed past a message still in flight).

Tables hold plain-data bytes (:mod:`streams.scorer.state`) in memory and are restored from
their changelog topics on restart; their changelogs are written once per dirty key per
batch (:mod:`streams.scorer.tables`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import time
from pathlib import Path
from typing import Any

import faust
from prometheus_client import CollectorRegistry, disable_created_metrics, generate_latest

from monitors.metrics import Metrics, add_standard_collectors
from monitors.monitoring import Monitoring
from streams.config import Config
from streams.kafka_clients import aiokafka_options, faust_credentials
from streams.scorer.batch import BatchResult, InRecord
from streams.scorer.champion import Champion, VersionBoard, VersionRefused
from streams.scorer.gaps import GapReader, VersionFollower
from streams.scorer.processor import Processor, Tables
from streams.scorer.tables import StateTable

log = logging.getLogger(__name__)
#: The text exposition format generate_latest() writes; aiohttp appends the charset.
TEXT_FORMAT_0_0_4 = "text/plain; version=0.0.4"

#: A batch is at most this many records, or what arrived within this many seconds.
BATCH_MAX_RECORDS = 1000
BATCH_WITHIN_SECONDS = 0.05
#: How often idle partitions are checked for skipped records at their tail, and how long a
#: partition must have delivered nothing before its tail is trusted to be skipped, not late.
TAIL_CHECK_SECONDS = 5.0
IDLE_SECONDS = 10.0
#: How often scored events and held labels past their label TTL are forgotten.
EXPIRY_SECONDS = 2.0
#: Backoff between attempts to deliver a batch's records while the broker refuses them.
RETRY_FIRST_SECONDS, RETRY_MAX_SECONDS = 0.5, 10.0


def never_crash(timer: Any) -> Any:
    """A timer body whose errors are logged, not raised: Faust crashes the whole app when a
    timer raises."""

    @functools.wraps(timer)
    async def guarded() -> None:
        try:
            await timer()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("timer %s failed; it runs again at its next interval",
                          timer.__name__)

    return guarded


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def in_record(message: Any) -> InRecord:
    """What the processor needs of a Faust message (its timestamp is in seconds)."""
    stamp = message.timestamp
    return InRecord(message.value or b"", message.key, message.topic, message.partition,
                    message.offset, int(stamp * 1000) if stamp else _now_ms())


class Publisher:
    """Hands a batch's records to the producer at once, waits once, then counts."""

    def __init__(self, app: faust.App, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def publish(self, res: BatchResult) -> None:
        # Two steps: an entity's state must not land without the records of its events.
        await self._send_until_accepted([*res.sends, *res.changelog])
        await self._send_until_accepted(res.progress)
        acked = time.time()
        res.count_into(self.metrics)
        observe = self.metrics.event_latency.observe
        for produced_ms in res.scored_produce_ms:
            observe(max(acked - produced_ms / 1000, 0.0))

    async def _send_until_accepted(self, records: list[Any]) -> None:
        delay = RETRY_FIRST_SECONDS
        while records:
            failed = await self._send_all(records)
            if not failed:
                break
            # Nothing is acknowledged until every record is accepted: retry only what
            # failed (one write per key per batch, so order within a key is kept).
            log.error("%d of %d records not accepted (%r); retrying in %.1f s",
                      len(failed), len(records), failed[0][1], delay)
            records = [r for r, _ in failed]
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)

    async def _send_all(self, records: list[Any]) -> list[tuple[Any, BaseException]]:
        """Send every record, grouped into one producer batch per topic-partition (a send
        per record cost two awaits and a future each); return the records refused."""
        aio = self.app.producer._ensure_producer()  # the app's aiokafka producer
        by_partition: dict[tuple[str, int], list[int]] = {}
        for topic in {r[0] for r in records}:
            await aio.client._wait_on_metadata(topic)
        for i, (topic, key, value, partition) in enumerate(records):
            if partition is None:  # the key's partition, by the producer's own partitioner
                partition = aio._partition(topic, None, None, None, key, value)
            by_partition.setdefault((topic, partition), []).append(i)
        futures: list[tuple[Any, list[int]]] = []
        for (topic, partition), members in by_partition.items():
            batch, held = aio.create_batch(), []
            for i in members:
                key, value = records[i][1], records[i][2]
                if batch.append(key=key, value=value, timestamp=None) is not None:
                    held.append(i)
                    continue
                if held:  # the batch is full: send it, start the next one
                    futures.append((await aio.send_batch(batch, topic, partition=partition),
                                    held))
                    batch, held = aio.create_batch(), []
                if batch.append(key=key, value=value, timestamp=None) is not None:
                    held.append(i)
                else:  # larger than a batch on its own
                    futures.append((await aio.send(topic, value, key=key, partition=partition),
                                    [i]))
            if held:
                futures.append((await aio.send_batch(batch, topic, partition=partition), held))
        results = await asyncio.gather(*(f for f, _ in futures), return_exceptions=True)
        failed = []
        for (_, members), result in zip(futures, results, strict=True):
            if isinstance(result, BaseException):
                for i in members:
                    self.metrics.produce_errors.labels(topic=records[i][0]).inc()
                    failed.append((records[i], result))
        return failed


def create_app(
    config: Config,
    *,
    web_port: int = 6066,
    web_host: str = "127.0.0.1",
    data_dir: Path = Path("var/worker"),
    champion: Champion | None = None,
    registry: CollectorRegistry | None = None,
) -> faust.App:
    """Build the scorer's Faust app for ``config`` (nothing connects until it runs)."""
    disable_created_metrics()  # *_created series only add noise to every scrape
    if registry is None:
        registry = CollectorRegistry()
        add_standard_collectors(registry)
    metrics = Metrics(registry)
    monitoring = Monitoring(config.monitors, config.features.names, metrics)
    topics = config.topics

    app = faust.App(
        f"streambed-{config.name}",
        broker=config.broker,
        broker_credentials=faust_credentials(config),
        store="memory://",
        datadir=str(data_dir),
        # Other scorers reach this one (table routing) at web_host: when it binds every
        # interface (in a container), they reach it by its host name.
        web_host=socket.gethostname() if web_host == "0.0.0.0" else web_host,
        web_port=web_port,
        web_bind=web_host,
        topic_partitions=topics.partitions,
        topic_disable_leader=True,
        processing_guarantee="at_least_once",
        stream_wait_empty=False,
        producer_acks=-1,
        # Batch produce requests: without a linger every record went out in its own
        # request, and a quarter of the worker's time was spent writing to sockets.
        producer_linger=0.005,
        producer_max_request_size=topics.max_message_bytes,
        broker_commit_every=10_000,
        broker_commit_interval=1.0,
        # A scorer killed with SIGKILL leaves the group only when its session times out:
        # 10 s (Faust's default is 60 s) before its partitions move to another scorer.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
    )
    app.conf.web_enabled = True

    def raw_topic(name: str, partitions: int = topics.partitions) -> Any:
        return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw", partitions=partitions)

    events_topic = raw_topic(topics.events)
    labels_topic = raw_topic(topics.labels)

    faust_tables: dict[str, Any] = {}

    def table(name: str) -> StateTable:
        t = faust_tables[name] = app.Table(name, default=None, key_type=bytes,
                                           value_type=bytes, partitions=topics.partitions)
        return StateTable(name, t.data, t.changelog_topic.get_topic_name())

    tables = Tables(entities=table("entities"), pending=table("pending"), held=table("held"),
                    partitions=table("partitions"))

    def decode_error(table_name: str, key: bytes, why: str) -> None:
        metrics.state_decode_errors.labels(table=table_name).inc()

    bootstrap = Champion.bootstrap(config.model.spec, config.features.identity)
    processor = Processor(config, tables, champion or bootstrap, on_decode_error=decode_error)
    metrics.set_model(processor.champion.version, config.features.identity)
    publisher = Publisher(app, metrics)
    gap_reader = GapReader(aiokafka_options(config))
    #: When each events partition last delivered (or was assigned), for the tail check.
    #: When each assigned events (labels) partition last delivered a record.
    last_seen: dict[int, float] = {}
    last_label_seen: dict[int, float] = {}
    lag_series: set[int] = set()
    batch_lock = asyncio.Lock()

    @app.on_partitions_revoked.connect
    async def _revoked(app: Any, revoked: Any, **kwargs: Any) -> None:
        processor.forget_cache()

    @app.on_partitions_assigned.connect
    async def _assigned(app: Any, assigned: Any, **kwargs: Any) -> None:
        processor.forget_cache()
        mine = {tp.partition for tp in assigned if tp.topic == topics.events}
        metrics.assigned_partitions.set(len(mine))
        now = time.monotonic()
        for topic, seen in ((topics.events, last_seen), (topics.labels, last_label_seen)):
            held = {tp.partition for tp in assigned if tp.topic == topic}
            for partition in held:
                seen[partition] = now
            for partition in list(seen):
                if partition not in held:
                    del seen[partition]
        for partition in lag_series - mine:
            metrics.consumer_lag.remove(str(partition))
        lag_series.intersection_update(mine)

    async def run(records: list[InRecord], process: Any) -> None:
        """Process one batch and publish it; batches of every agent and timer take turns,
        so the tables change under one of them at a time."""
        async with batch_lock:
            res = process(records, _now_ms())
            await publisher.publish(res)
        if res.observations:
            monitoring.on_scored_batch(res.observations, model_version=processor.champion.version,
                                       now=time.time())
        if res.newest_event_ms is not None:
            metrics.last_event_timestamp.set(res.newest_event_ms / 1000)
        if res.examples:
            metrics.last_label_timestamp.set(time.time())

    async def with_gaps_read_back(records: list[InRecord], *,
                                  labels: bool = False) -> list[InRecord]:
        """The batch with any records the consumer skipped before them put back in place
        (``labels``: a batch of the labels topic)."""
        out: list[InRecord] = []
        expected: dict[int, int] = {}
        for rec in records:
            due = expected.get(rec.partition)
            if due is None:
                due = processor.next_offset(rec.partition, labels=labels)
            if 0 < due < rec.offset:
                out.extend(await read_back(rec.topic, rec.partition, due, rec.offset))
            out.append(rec)
            expected[rec.partition] = rec.offset + 1
        return out

    async def read_back(topic: str, partition: int, start: int, end: int) -> list[InRecord]:
        log.error("events %s[%d]: offsets %d..%d were skipped by the consumer; reading them "
                  "back", topic, partition, start, end - 1)
        records = [InRecord(r.value or b"", r.key, r.topic, r.partition, r.offset, r.timestamp)
                   for r in await gap_reader.read(topic, partition, start, end)]
        metrics.skipped_offsets.inc(len(records))
        return records

    board = VersionBoard(config.features.identity, config.model.spec)
    champion_loaded = asyncio.Event()

    def adopt(champion: Champion) -> None:
        if champion.version != processor.champion.version:
            log.warning("scoring with model version %s (was %s)", champion.version,
                        processor.champion.version)
        processor.champion = champion
        metrics.set_model(champion.version, config.features.identity)

    @app.task
    async def follow_model_versions() -> None:
        """Read ``model.versions`` from its start, adopt the champion, then follow it:
        a new champion serves from the next batch on, without a restart."""
        follower = VersionFollower(aiokafka_options(config), topics.model_versions)
        try:
            async for batch, caught_up in follower.batches():
                for raw in batch:
                    try:
                        board.add(raw)
                    except VersionRefused as exc:
                        metrics.model_versions_refused.inc()
                        log.error("model.versions: refused a record: %s", exc)
                record = board.champion_record()
                serving = record.version if record else bootstrap.version
                try:
                    if serving != processor.champion.version:
                        adopt(board.champion())
                except VersionRefused as exc:
                    metrics.model_versions_refused.inc()
                    log.error("model.versions: cannot serve the champion: %s", exc)
                if caught_up:
                    champion_loaded.set()
        finally:
            await follower.close()

    @app.agent(events_topic, concurrency=1)
    async def score_events(stream: Any) -> None:
        async for events in stream.take_events(BATCH_MAX_RECORDS, within=BATCH_WITHIN_SECONDS):
            await champion_loaded.wait()  # never score with a model that is not the champion
            records = [in_record(e.message) for e in events]
            metrics.batch_records.observe(len(records))
            now = time.monotonic()
            for rec in records:
                last_seen[rec.partition] = now
            await run(await with_gaps_read_back(records), processor.process_events)

    @app.agent(labels_topic, concurrency=1)
    async def join_labels(stream: Any) -> None:
        async for events in stream.take_events(BATCH_MAX_RECORDS, within=BATCH_WITHIN_SECONDS):
            records = [in_record(e.message) for e in events]
            now = time.monotonic()
            for rec in records:
                last_label_seen[rec.partition] = now
            await run(await with_gaps_read_back(records, labels=True), processor.process_labels)

    @app.timer(interval=TAIL_CHECK_SECONDS)
    @never_crash
    async def repair_tail_gaps() -> None:
        """Records skipped at the end of an idle partition: nothing later reveals them."""
        now = time.monotonic()
        for tp in app.consumer.assignment():
            if tp.topic == topics.events:
                seen, labels, process = last_seen, False, processor.process_events
            elif tp.topic == topics.labels:
                seen, labels, process = last_label_seen, True, processor.process_labels
            else:
                continue
            if now - seen.get(tp.partition, now) < IDLE_SECONDS:
                continue
            due = processor.next_offset(tp.partition, labels=labels)
            if due == 0:
                continue
            end = await gap_reader.end_offset(tp.topic, tp.partition)
            if end > due and tp in app.consumer.assignment():
                await run(await read_back(tp.topic, tp.partition, due, end), process)

    @app.timer(interval=EXPIRY_SECONDS)
    @never_crash
    async def expire_pending() -> None:
        partitions = [tp.partition for tp in app.consumer.assignment()
                      if tp.topic == topics.events]
        async with batch_lock:
            before_expired, before_evicted = (processor.predictions_expired,
                                              processor.predictions_evicted)
            res = processor.expire(partitions)
            await publisher.publish(res)
        metrics.predictions_expired.inc(processor.predictions_expired - before_expired)
        metrics.predictions_evicted.inc(processor.predictions_evicted - before_evicted)
        metrics.pending_predictions.set(len(tables.pending))
        metrics.labels_waiting.set(len(tables.held))
        for tp in app.consumer.assignment():
            highwater = app.consumer.highwater(tp) if tp.topic == topics.events else None
            if highwater is not None:  # None until the first fetch of the partition
                lag = highwater - processor.next_offset(tp.partition)
                metrics.consumer_lag.labels(partition=str(tp.partition)).set(max(lag, 0))
                lag_series.add(tp.partition)

    @app.timer(interval=config.monitors.refresh_seconds)
    @never_crash
    async def refresh_monitors() -> None:
        monitoring.refresh(time.time())

    @app.on_before_shutdown.connect
    async def _close_gap_reader(app: Any, **kwargs: Any) -> None:
        await gap_reader.close()

    @app.page("/metrics")
    async def metrics_view(web: Any, request: Any) -> Any:
        # aiohttp adds "; charset=utf-8" itself and refuses a charset in content_type.
        return web.text(generate_latest(registry).decode(), content_type=TEXT_FORMAT_0_0_4)

    def readiness() -> tuple[bool, str]:
        """Ready: partitions assigned, tables recovered, the champion loaded."""
        if not app.consumer.assignment():
            return False, "no partitions assigned yet"
        if app.rebalancing or getattr(app, "in_recovery", False) \
                or not app.tables.recovery.completed.is_set():
            return False, "tables are being recovered from their changelogs"
        if not champion_loaded.is_set():
            return False, "the champion is not loaded yet from model.versions"
        return True, "ready"

    @app.page("/health")
    async def health_view(web: Any, request: Any) -> Any:
        return web.json({"status": "up"})

    @app.page("/ready")
    async def ready_view(web: Any, request: Any) -> Any:
        ok, reason = readiness()
        return web.json({"ready": ok, "reason": reason,
                         "model_version": processor.champion.version,
                         "assigned_partitions": sorted(
                             tp.partition for tp in app.consumer.assignment()
                             if tp.topic == topics.events)},
                        status=200 if ok else 503)

    @app.page("/features/{entity_id}")
    @app.table_route(table=faust_tables["entities"], match_info="entity_id")
    async def features_view(web: Any, request: Any, entity_id: str) -> Any:
        entry = processor.entity_features(entity_id)
        if entry is None:
            return web.json({"error": "unknown entity", "entity_id": entity_id}, status=404)
        return web.json(entry)

    @app.page("/monitoring")
    async def monitoring_view(web: Any, request: Any) -> Any:
        snap = dict(monitoring.snapshot())
        snap["model_version"] = processor.champion.version
        snap["feature_set"] = config.features.identity
        return web.json(snap)

    app.streambed = {  # type: ignore[attr-defined]
        "metrics": metrics, "monitoring": monitoring, "processor": processor,
        "tables": tables,
    }
    return app
