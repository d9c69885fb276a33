"""The Faust application: topics, tables, agents, timers and web views of one worker.

This is the imperative shell. Each agent reads a record, hands it with the tables to
:class:`streams.scorer.processor.Processor` and writes what comes back: a scored record, a
dead letter, a model snapshot. Agents run with concurrency 1 (faust-streaming #606: with
more, an offset can be committed past a message still in flight). Tables live in memory
and are restored from their changelog topics on restart.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import faust
from prometheus_client import CollectorRegistry, disable_created_metrics, generate_latest

from monitors.metrics import Metrics
from monitors.monitoring import Monitoring
from streams.config import Config
from streams.model import OnlineModel
from streams.records import Source, dumps
from streams.scorer.gaps import GapReader
from streams.scorer.processor import Processor, partition_key

log = logging.getLogger(__name__)
#: The text exposition format generate_latest() writes; aiohttp appends the charset.
TEXT_FORMAT_0_0_4 = "text/plain; version=0.0.4"


class PickledTable(MutableMapping[str, Any]):
    """A Faust table seen as a mapping of Python objects, pickled into its bytes values.

    Live objects are cached, so an entity's state is unpickled once, not on every event;
    every set still writes the pickled value (and so the changelog). The cache is dropped
    whenever partitions are revoked or assigned, when the table may change under it.
    """

    def __init__(self, table: Any, partition: int | None = None) -> None:
        self.table = table
        self.cache: dict[str, Any] = {}
        self.partition = partition

    def __getitem__(self, key: str) -> Any:
        if key in self.cache:
            return self.cache[key]
        raw = self.table.get(key)
        if raw is None:
            raise KeyError(key)
        value = self.cache[key] = pickle.loads(raw)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self._write(key, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        self.cache[key] = value

    def __delitem__(self, key: str) -> None:
        del self.table[key]
        self.cache.pop(key, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self.table.keys())

    def __len__(self) -> int:
        return len(self.table)

    def drop_cache(self) -> None:
        self.cache.clear()

    def bound_to(self, partition: int) -> PickledTable:
        """This table for writes outside a stream event (Faust otherwise takes the changelog
        partition from the current event), with changelog entries sent to ``partition``."""
        bound = PickledTable(self.table, partition)
        bound.cache = self.cache
        return bound

    def _write(self, key: str, raw: bytes) -> None:
        if self.partition is None:
            self.table[key] = raw
        else:  # what Table.__setitem__ does, with an explicit changelog partition
            self.table.send_changelog(self.partition, key, raw)
            self.table.data[key] = raw


#: How often idle partitions are checked for skipped records at their tail, and how long a
#: partition must have delivered nothing before its tail is trusted to be skipped, not late.
TAIL_CHECK_SECONDS = 5.0
IDLE_SECONDS = 10.0


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def create_app(
    config: Config,
    *,
    web_port: int = 6066,
    data_dir: Path = Path("var/worker"),
    model: OnlineModel | None = None,
    registry: CollectorRegistry | None = None,
) -> faust.App:
    """Build the worker's Faust app for ``config`` (nothing connects until it runs)."""
    disable_created_metrics()  # *_created series only add noise to every scrape
    registry = registry or CollectorRegistry()
    metrics = Metrics(registry)
    monitoring = Monitoring(config.monitors, config.features.names, metrics)
    model = model or OnlineModel(config.model, config.features.identity)
    processor = Processor(config, model, metrics, monitoring)
    topics = config.topics

    app = faust.App(
        f"streambed-{config.name}",
        broker=config.broker,
        store="memory://",
        datadir=str(data_dir),
        web_host="127.0.0.1",
        web_port=web_port,
        web_bind="127.0.0.1",
        topic_partitions=topics.partitions,
        topic_disable_leader=True,
        processing_guarantee="at_least_once",
        stream_wait_empty=False,
        producer_acks=-1,
        # Batch produce requests: without a linger every record went out in its own
        # request, and a quarter of the worker's time was spent writing to sockets.
        producer_linger=0.005,
        broker_commit_every=1000,
        broker_commit_interval=1.0,
    )
    app.conf.web_enabled = True

    def raw_topic(name: str) -> Any:
        return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw", partitions=topics.partitions)

    events_topic = raw_topic(topics.events)
    labels_topic = raw_topic(topics.labels)
    scored_topic = raw_topic(topics.scored)
    dlq_topic = raw_topic(topics.dlq)
    versions_topic = app.topic(topics.model_versions, key_serializer="raw",
                               value_serializer="raw", partitions=1)

    # Faust picks a table's codecs from key_type/value_type alone (json unless bytes), so
    # values are stored as bytes and pickled by PickledTable.
    entities_table = app.Table("entities", default=None, key_type=str, value_type=bytes,
                               partitions=topics.partitions)
    partitions_table = app.Table("partitions", default=None, key_type=str, value_type=bytes,
                                 partitions=topics.partitions)
    entities = PickledTable(entities_table)
    partitions = PickledTable(partitions_table)

    @app.on_partitions_revoked.connect
    async def _revoked(app: Any, revoked: Any, **kwargs: Any) -> None:
        entities.drop_cache()
        partitions.drop_cache()

    @app.on_partitions_assigned.connect
    async def _assigned(app: Any, assigned: Any, **kwargs: Any) -> None:
        entities.drop_cache()
        partitions.drop_cache()
        metrics.assigned_partitions.set(sum(tp.topic == topics.events for tp in assigned))
        now = time.monotonic()
        for tp in assigned:
            last_seen[partition_key(tp.topic, tp.partition)] = now

    def count_failure(fut: Any) -> bool:
        """Send callback: count (and log) a record the producer could not deliver."""
        exc = fut.exception() if fut.done() and not fut.cancelled() else None
        if exc is None:
            return False
        topic = fut.message.channel.get_topic_name()
        metrics.produce_errors.labels(topic=topic).inc()
        log.error("could not produce to %s: %r", topic, exc)
        return True

    async def send_dead_letter(key: bytes | None, letter: Any) -> None:
        await dlq_topic.send(key=key, value=dumps(letter), callback=count_failure)

    async def publish_new_model_version() -> None:
        """Snapshot the model to its compacted topic after a version was cut."""
        if processor.new_versions == 0:
            return
        processor.new_versions = 0
        snap = model.snapshot(_now_ms())
        await versions_topic.send(key=config.name.encode(), value=dumps(snap),
                                  callback=count_failure)
        log.info("model version %s after %d labels", snap.model_version, snap.labels_learned)

    gap_reader = GapReader(config.bootstrap_servers)
    #: When each events partition last delivered (or was assigned), for the tail check.
    last_seen: dict[str, float] = {}

    async def read_back(topic: str, partition: int, start: int, end: int,
                        tables: tuple[PickledTable, PickledTable] | None = None) -> None:
        log.error("events %s[%d]: offsets %d..%d were skipped by the consumer; reading them "
                  "back", topic, partition, start, end - 1)
        for rec in await gap_reader.read(topic, partition, start, end):
            metrics.skipped_offsets.inc()
            await score_one(rec.value or b"", rec.key,
                            Source(topic=rec.topic, partition=rec.partition, offset=rec.offset),
                            rec.timestamp, time.perf_counter(), tables)

    @app.timer(interval=TAIL_CHECK_SECONDS)
    async def repair_tail_gaps() -> None:
        """Records skipped at the end of an idle partition: nothing later reveals them."""
        now = time.monotonic()
        for tp in app.consumer.assignment():
            key = partition_key(tp.topic, tp.partition)
            if tp.topic != topics.events or now - last_seen.get(key, now) < IDLE_SECONDS:
                continue
            part = partitions.get(key)
            if part is None or part.next_offset == 0:
                continue
            end = await gap_reader.end_offset(tp.topic, tp.partition)
            if end > part.next_offset and tp in app.consumer.assignment():
                await read_back(tp.topic, tp.partition, part.next_offset, end,
                                (entities.bound_to(tp.partition),
                                 partitions.bound_to(tp.partition)))

    @app.on_before_shutdown.connect
    async def _close_gap_reader(app: Any, **kwargs: Any) -> None:
        await gap_reader.close()

    async def score_one(raw: bytes, key: bytes | None, source: Source, record_ts_ms: int,
                        received: float, tables: tuple[PickledTable, PickledTable] | None = None,
                        ) -> None:
        entity_table, partition_table = tables or (entities, partitions)
        last_seen[partition_key(source.topic, source.partition)] = time.monotonic()
        result = processor.handle_event(raw, source, record_ts_ms, _now_ms(), entity_table,
                                        partition_table)
        if result.dead_letter is not None:
            await send_dead_letter(key, result.dead_letter)
            return
        if result.scored is None:  # a duplicate with nothing to re-send
            return
        await publish_new_model_version()  # an early label may have joined just now

        def observe_latency(fut: Any, began: float = received) -> None:
            if not count_failure(fut):
                metrics.scoring_latency.observe(time.perf_counter() - began)

        await scored_topic.send(key=result.scored.entity_id.encode(),
                                value=dumps(result.scored), callback=observe_latency)

    @app.agent(events_topic, concurrency=1)
    async def score_events(stream: Any) -> None:
        async for event in stream.events():
            received = time.perf_counter()
            msg = event.message
            source = Source(topic=msg.topic, partition=msg.partition, offset=msg.offset)
            first_missing = processor.missing_before(source, partitions)
            if first_missing is not None:
                await read_back(msg.topic, msg.partition, first_missing, msg.offset)
            record_ts_ms = int(msg.timestamp * 1000) if msg.timestamp else _now_ms()
            await score_one(event.value or b"", msg.key, source, record_ts_ms, received)

    @app.agent(labels_topic, concurrency=1)
    async def join_labels(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            source = Source(topic=msg.topic, partition=msg.partition, offset=msg.offset)
            result = processor.handle_label(event.value or b"", source, _now_ms(), entities)
            if result.dead_letter is not None:
                await send_dead_letter(msg.key, result.dead_letter)
            await publish_new_model_version()

    @app.timer(interval=config.monitors.refresh_seconds)
    async def refresh_monitors() -> None:
        monitoring.refresh(time.time())
        records = list(entities.values())
        metrics.pending_predictions.set(
            sum(sum(not p.labelled for p in r.pending.values()) for r in records))
        metrics.labels_waiting.set(sum(len(r.early_labels) for r in records))

    @app.page("/metrics")
    async def metrics_view(web: Any, request: Any) -> Any:
        # aiohttp adds "; charset=utf-8" itself and refuses a charset in content_type.
        return web.text(generate_latest(registry).decode(), content_type=TEXT_FORMAT_0_0_4)

    @app.page("/monitoring")
    async def monitoring_view(web: Any, request: Any) -> Any:
        snap = dict(monitoring.snapshot())
        snap["model_version"] = model.version
        snap["feature_set"] = config.features.identity
        return web.json(snap)

    app.streambed = {  # type: ignore[attr-defined]
        "metrics": metrics, "monitoring": monitoring, "processor": processor, "model": model,
    }
    return app
