"""The scorer's Faust application: the wiring of topics, tables, agents, timers and views.

This is the imperative shell, and only wiring: each part it connects is a small class
tested without a broker. Each agent takes a batch of records (:mod:`.batching`: what is
in hand at once, more only while records arrive faster than they are processed, bounded
by 1,000 records / 50 ms), puts back any the consumer skipped (:mod:`.readback`), and
hands it to :class:`~streams.scorer.processor.Processor` through a
:class:`~streams.scorer.runner.BatchRunner`, which publishes the result in ordered steps
(:mod:`.publisher`) before its counts reach the metrics (:mod:`.observe`) and Faust
acknowledges its input offsets. Timers (:mod:`.timers`) read back skipped tails and expire
pending predictions; the model follower adopts each new champion between batches
(:class:`~streams.scorer.champion.ModelFollower`); the web views are
:class:`~streams.scorer.views.ScorerViews`. Agents run with concurrency 1
(faust-streaming #606: with more, an offset can be committed past a message still in
flight).

Tables hold plain-data bytes (:mod:`streams.scorer.state`); their changelogs are written
once per dirty key per batch (:mod:`streams.scorer.tables`). With ``state.store: rocksdb``
they live in RocksDB under the data directory and a restart replays only the changelog
past what each partition database persisted; with ``memory`` they are restored from their
changelogs from the beginning. Each worker joins its group as a static member (a group
instance id from its host, data directory and web port), so a worker restarted after a crash takes
its partitions back at once instead of after the session timeout; faust-streaming's fixed
start-up waits are removed (:mod:`.quick_start`) and River is imported only once the
tables are recovered, so a warm restart reaches its first score in seconds. The worker
times its own GC pauses (:mod:`.gc_watch`).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import hashlib
import importlib
import logging
import socket
import time
from pathlib import Path
from typing import Any

import faust
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from faust.exceptions import ConsumerNotStarted
from prometheus_client import CollectorRegistry, disable_created_metrics

from monitors.metrics import Metrics, add_standard_collectors
from monitors.monitoring import Monitoring
from streams.config import Config
from streams.kafka_clients import aiokafka_options, faust_credentials
from streams.scorer import restore
from streams.scorer.batching import AdaptiveBatching, take_batches
from streams.scorer.champion import Champion, ModelFollower, VersionBoard
from streams.scorer.gaps import GapReader, VersionFollower
from streams.scorer.gc_bounds import FETCH_BYTES, POLL_RECORDS
from streams.scorer.gc_watch import watch_gc
from streams.scorer.intake import Intake
from streams.scorer.observe import ScorerMetrics
from streams.scorer.processor import Processor
from streams.scorer.publisher import ProducerSender, StepPublisher
from streams.scorer.quick_start import (
    FETCH_MAX_WAIT_MS,
    QuickTableManager,
    freeze_startup,
    quick_fetches,
)
from streams.scorer.readback import GapRepair
from streams.scorer.runner import BatchRunner
from streams.scorer.tables import Tables, rocksdb_options, state_table
from streams.scorer.timers import (
    EXPIRY_SECONDS,
    TAIL_CHECK_SECONDS,
    ExpiryRound,
    PartitionActivity,
    TailCheck,
    never_crash,
)
from streams.scorer.views import TEXT_FORMAT_0_0_4, ScorerViews, readiness

log = logging.getLogger(__name__)


def group_instance_id(app_id: str, data_dir: Path, web_port: int) -> str:
    """A stable static-membership id: one per worker (its host, data directory and web
    port), the same across its restarts. The port is part of it because a static member
    that rejoins is handed its previous assignment, and faust's assignor refuses one made
    for another URL (``assert metadata.url == self._url``): a worker restarted on another
    port must join as a new member, or its coordinator routine dies and it never gets a
    partition."""
    where = f"{socket.gethostname()}:{data_dir.resolve()}:{web_port}"
    return f"{app_id}-{hashlib.sha256(where.encode()).hexdigest()[:16]}"


def faust_app(config: Config, web_port: int, web_host: str, data_dir: Path) -> faust.App:
    """The Faust app with the scorer's settings (nothing connects until it runs)."""
    app_id = f"streambed-{config.name}"
    app = faust.App(
        app_id,
        broker=config.broker,
        broker_credentials=faust_credentials(config),
        store="rocksdb://" if config.state.store == "rocksdb" else "memory://",
        datadir=str(data_dir),
        # Static membership: a restarted worker rejoins as itself and gets its partitions
        # back without a rebalance that waits for the session timeout.
        consumer_group_instance_id=group_instance_id(app_id, data_dir, web_port),
        # Other scorers reach this one (table routing) at web_host: when it binds every
        # interface (in a container), they reach it by its host name.
        web_host=socket.gethostname() if web_host == "0.0.0.0" else web_host,
        web_port=web_port,
        web_bind=web_host,
        topic_partitions=config.topics.partitions,
        topic_disable_leader=True,
        processing_guarantee="at_least_once",
        stream_wait_empty=False,
        producer_acks=-1,
        # Batch produce requests: without a linger every record went out in its own
        # request, and a quarter of the worker's time was spent writing to sockets.
        producer_linger=0.005,
        producer_max_request_size=config.topics.max_message_bytes,
        # One producer batch per topic-partition per publish step: aiokafka keeps one
        # produce request in flight per broker and one undrained batch per partition, so
        # a step of 1,000 scored records in 16 KiB batches (the default) took ~20 round
        # trips one after another instead of one.
        producer_max_batch_size=config.topics.max_message_bytes,
        broker_commit_every=10_000,
        broker_commit_interval=1.0,
        # A scorer killed with SIGKILL leaves the group only when its session times out:
        # 10 s (Faust's default is 60 s) before its partitions move to another scorer.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        # Every table partition is kept up to date on one other worker (its changelog is
        # read continuously), which takes it over without a recovery from the start
        # (docs/operations.md, "State on disk").
        table_standby_replicas=1,
        # faust's own starts with a fixed 1 s sleep (:mod:`.quick_start`).
        TableManager=QuickTableManager,
        # A poll parses at most a batch of records, from partitions taken in small turns:
        # what a full collection walks (gc_bounds).
        broker_max_poll_records=POLL_RECORDS,
        consumer_max_fetch_size=FETCH_BYTES,
    )
    quick_fetches()  # recovery's offset look-ups no longer queue behind 1.5 s fetches
    app.conf.web_enabled = True
    if config.state.store == "rocksdb":  # each active partition restored in bulk first
        # (its consumer's offset look-ups do not wait behind a fetch held 500 ms either)
        app.conf.store = restore.register(app, {**aiokafka_options(config),
                                                "fetch_max_wait_ms": FETCH_MAX_WAIT_MS})
    return app


def create_app(config: Config, *, web_port: int = 6066, web_host: str = "127.0.0.1",
               data_dir: Path = Path("var/worker")) -> faust.App:
    """Build the scorer's Faust app for ``config`` (nothing connects until it runs)."""
    disable_created_metrics()  # *_created series only add noise to every scrape
    registry = CollectorRegistry()
    add_standard_collectors(registry)
    gc_pauses = watch_gc(registry)  # the longest full collection, and more
    metrics = Metrics(registry)
    monitoring = Monitoring(config.monitors, config.features.names, metrics)
    observer = ScorerMetrics(metrics, monitoring, config.features.identity)
    topics = config.topics
    app = faust_app(config, web_port, web_host, data_dir)

    def raw_topic(name: str) -> Any:
        return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw", partitions=topics.partitions)

    options = (rocksdb_options(config.state.rocksdb_memory_bytes, topics.partitions)
               if config.state.store == "rocksdb" else None)
    faust_tables = {name: app.Table(name, default=None, key_type=bytes, value_type=bytes,
                                    partitions=topics.partitions, options=options)
                    for name in ("entities", "pending", "held", "partitions")}
    tables = Tables(*(state_table(name, t.data, t.changelog_topic.get_topic_name())
                      for name, t in faust_tables.items()))

    board = VersionBoard(config.features.identity, config.model.spec)
    processor = Processor(config, tables,
                          Champion.bootstrap(config.model.spec, config.features.identity))
    observer.serving(processor.champion.version)

    def adopt(champion: Champion) -> None:
        log.warning("scoring with model version %s (was %s)", champion.version,
                    processor.champion.version)
        processor.champion = champion
        observer.serving(champion.version)

    def refused(why: str) -> None:
        observer.version_refused()
        log.error("model.versions: %s", why)

    def adopt_shadows(shadows: tuple[Champion, ...]) -> None:
        log.warning("scoring in shadow: %s", ", ".join(s.version for s in shadows) or "none")
        processor.shadows = shadows
        observer.shadows(len(shadows))

    follower = ModelFollower(board, lambda: processor.champion.version, adopt, refused,
                             adopt_shadows, config.model.promotion.max_shadows,
                             observer.drift_references,
                             config.monitors.drift.reference.min_examples)
    runner = BatchRunner(StepPublisher(ProducerSender(app), observer.produce_refused,
                                       on_landed=tables.commit), observer)
    gap_reader = GapReader(aiokafka_options(config))
    repair = GapRepair(processor, gap_reader)
    activity = PartitionActivity()
    consumer = _Consumer(app)

    recovering = functools.partial(tables_recovering, app)

    tail_check = TailCheck(consumer, activity, repair, runner, processor, topics.events,
                           topics.labels, recovering=recovering)
    expiry = ExpiryRound(consumer, processor, runner, observer, topics.events,
                         lambda: (len(tables.pending), len(tables.held)),
                         recovering=recovering)

    @app.on_partitions_revoked.connect
    async def _revoked(app: Any, revoked: Any, **kwargs: Any) -> None:
        processor.forget_cache()
        tables.forget()

    @app.on_partitions_assigned.connect
    async def _assigned(app: Any, assigned: Any, **kwargs: Any) -> None:
        processor.forget_cache()
        tables.forget()
        now = time.monotonic()
        for topic in (topics.events, topics.labels):
            activity.assigned(topic, (tp.partition for tp in assigned if tp.topic == topic),
                              now)
        observer.assigned(tp.partition for tp in assigned if tp.topic == topics.events)

    @app.task
    async def follow_model_versions() -> None:
        """Read ``model.versions`` from its start, adopt the champion, then follow it:
        a new champion serves from the next batch on, without a restart."""
        versions = VersionFollower(aiokafka_options(config), topics.model_versions)
        try:
            async for batch, caught_up in versions.batches():
                follower.take(batch, caught_up)
        finally:
            await versions.close()

    events_intake = Intake(topics.events, labels=False, process=processor.process_events,
                           activity=activity, repair=repair, runner=runner,
                           champion_loaded=follower.loaded)
    labels_intake = Intake(topics.labels, labels=True, process=processor.process_labels,
                           activity=activity, repair=repair, runner=runner)

    @app.agent(raw_topic(topics.events), concurrency=1)
    async def score_events(stream: Any) -> None:
        await events_intake.take(take_batches(stream, AdaptiveBatching()))

    @app.agent(raw_topic(topics.labels), concurrency=1)
    async def join_labels(stream: Any) -> None:
        await labels_intake.take(take_batches(stream, AdaptiveBatching()))

    @app.task
    async def freeze_after_recovery() -> None:
        """Once the tables are recovered, import what serving needs but start-up did not
        wait for (River, for the performance monitor's ADWIN at the first label: seconds
        of imports kept off a restart's path to its first scored record; on a thread, so
        batches go on meanwhile), then move what the start-up made out of the cyclic GC's
        reach: full collections then walk only what the scorer makes while it serves.

        The first time, the collector is off while River is imported (its ~80,000 new
        objects set off full collections of up to 70 ms of CPU, 0.5 s by the wall clock on
        the loaded machine, while batches were being scored) and what it made is frozen
        without a collection (start-up's objects were frozen before the worker started:
        what is new is the recovery's and River's; the little cyclic garbage among them
        stays). After a later recovery its garbage is collected, then the rest frozen."""
        recovery = app.tables.recovery
        first = True
        while True:
            await recovery.completed.wait()
            if first:
                first = False
                gc.disable()
                try:
                    await asyncio.to_thread(importlib.import_module, "river.drift")
                    gc.freeze()
                finally:
                    gc.enable()
            else:
                gc.collect()
                gc.freeze()
            gc_pauses.serving()
            while recovery.completed.is_set():
                await asyncio.sleep(1.0)

    @app.timer(interval=TAIL_CHECK_SECONDS)
    @never_crash
    async def repair_tail_gaps() -> None:
        await tail_check.check()

    @app.timer(interval=EXPIRY_SECONDS)
    @never_crash
    async def expire_pending() -> None:
        await expiry.tick()

    @app.timer(interval=config.monitors.refresh_seconds)
    @never_crash
    async def refresh_monitors() -> None:
        monitoring.refresh(time.time())

    @app.on_before_shutdown.connect
    async def _close_gap_reader(app: Any, **kwargs: Any) -> None:
        await gap_reader.close()

    def ready() -> tuple[bool, str]:
        return readiness(assigned=bool(app.consumer.assignment()),
                         recovering=recovering(),
                         champion_loaded=follower.loaded.is_set())

    views = ScorerViews(processor, monitoring, registry, config.features.identity, ready,
                        lambda: [tp.partition for tp in app.consumer.assignment()
                                 if tp.topic == topics.events],
                        observer.reference_info)

    @app.page("/metrics")
    async def metrics_view(web: Any, request: Any) -> Any:
        # aiohttp adds "; charset=utf-8" itself and refuses a charset in content_type.
        return web.text(views.metrics_text(), content_type=TEXT_FORMAT_0_0_4)

    @app.page("/health")
    async def health_view(web: Any, request: Any) -> Any:
        return _json(web, views.health())

    @app.page("/ready")
    async def ready_view(web: Any, request: Any) -> Any:
        return _json(web, views.readiness())

    @app.page("/features/{entity_id}")
    @app.table_route(table=faust_tables["entities"], match_info="entity_id")
    async def features_view(web: Any, request: Any, entity_id: str) -> Any:
        return _json(web, views.features(entity_id))

    @app.page("/monitoring")
    async def monitoring_view(web: Any, request: Any) -> Any:
        return _json(web, views.monitors())

    freeze_startup()  # faust's per-table collections at the first assignment walk less
    return app


def _json(web: Any, answer: tuple[dict[str, Any], int]) -> Any:
    body, status = answer
    return web.json(body, status=status)


def tables_recovering(app: Any) -> bool:
    """A rebalance or a table recovery in progress (the tables partly restored): the
    timers wait and ``/ready`` says so."""
    return bool(app.rebalancing or getattr(app, "in_recovery", False)
                or not app.tables.recovery.completed.is_set())


class _Consumer:
    """The app's consumer as the timers see it (assignment, positions, high watermarks)."""

    def __init__(self, app: faust.App) -> None:
        self.app = app

    def assignment(self) -> set[Any]:
        return set(self.app.consumer.assignment())

    def highwater(self, tp: Any) -> int | None:
        return self.app.consumer.highwater(tp)

    def position(self, tp: Any) -> int | None:
        """aiokafka's position, read from the consumer's subscription state; None while
        the partition has no valid position (a reset or a seek under way) or is not
        assigned. Not through ``consumer.position()``: faust runs that on its consumer
        thread's method queue (two workers, shared with ``getmany``), where it waits while
        the position is invalid and keeps a worker after the caller gave up."""
        try:
            consumer = self.app.consumer._thread._ensure_consumer()
            assignment = consumer._subscription.subscription.assignment
            state = assignment.state_value(TopicPartition(tp.topic, tp.partition))
        except (AttributeError, KafkaError, ConsumerNotStarted):
            return None
        if state is None or not state.has_valid_position:
            return None
        return int(state.position)
