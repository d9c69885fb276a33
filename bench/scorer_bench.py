"""The scorer's benchmark (`make bench`): one broker, one run, every figure BENCHMARKS.md keeps.

Steps (each can be skipped or scaled; see --help):

  throughput  N pre-produced quickstart events (4 partitions, --entities entities) read by
              (a) a bare faust-streaming agent that only iterates ``stream.events()``
                  (bench/bare_faust.py, its own app and consumer group; its own clock,
                  first event to last),
              (a') the same bare agent producing one record per event in batches (Faust's
                  ``take_events``, one closed producer batch per partition, acks awaited per
                  batch): the scorer's I/O without its work; first batch to last ack,
              (b) a bare aiokafka loop: consume, produce each value to another topic, await
                  the acks per batch (first record to last ack),
              (c) ``streambed worker`` (its own consumer group), timed from its first scored
                  event to its last by its /metrics;
              ratios (c)/(a') (the target's), (c)/(a) and (c)/(b).
  latency     end to end as an application sees it: a fresh topic set and a running
              scorer; events produced (kafka-python, acks=all, no linger) paced at each of
              --latency-rates (default 200/s and half of (c)'s rate) for --latency-seconds
              after a warm-up, while a consumer (kafka-python, on a thread of the bench)
              reads ``scored``; per event, its send -> its scored record returned by the
              consumer's poll, one clock; exact p50/p99/max. Beside it, the scorer's own
              mean (``streambed_event_latency_seconds``: record timestamp -> batch
              published), and the floor of the same run: the same events, producer and
              consumer over a plain topic (one hop, no scorer) at the same pace, right
              after each window (the scorer's path is two such hops and three produce
              round trips; on a loaded machine the hop's p99 alone can pass the target).
  state       in process (no Kafka): streams.scorer.processor.Processor over dict tables;
              encoded bytes of each entity's table value (and of its feature-engine state)
              at the quickstart's rate (mean event gap 30 s over --entities entities), and
              for one entity receiving every event, every 500 events up to 5,000.
  processor   in process (no Kafka): the Processor alone over dict tables with a trained
              champion (learned on --processor-count simulated examples), batches of 1,000
              pre-built records over --entities entities; events/s, best of 3 runs.
  restart     (state on disk) a fresh topic set; --restart-entities entities of state put
              in place. --restart-load processor (default): the scorer's own Processor and
              RocksDB tables in this process over one event per entity, each batch's
              changelog records produced to the worker's changelog topics, the events to
              the events topic and the worker's group committed past them; then cold: a
              worker on an empty data directory (tables restored from their changelogs:
              changelog records / seconds to its first scored record), killed (SIGKILL),
              and warm: a new worker on that directory. --restart-load scorer: a worker
              scores the events and is killed; warm first, then cold. Each time a few
              fresh events wait; seconds from the process start to its first scored record,
              and its VmRSS then.
              With --restart-load scorer, the loading worker's VmRSS and its full-GC
              pauses (gc.callbacks, streambed_gc_pause_max_seconds) once it scored them.
              --restart-again FILE: more warm restarts on the same state, one each time
              FILE is touched, until it is removed.
  rss         a fresh topic set; --rss-count events over --rss-entities entities produced
              while one scorer runs; VmRSS/VmHWM of the worker process (from /proc) once
              every event is scored, and its full-GC pauses (gc.callbacks).
  pair        one scorer, then two in one consumer group, each on a fresh topic set, every
              worker up and assigned before --pair-count events are produced; throughput
              from the first scored event to the last (summed over the workers).
  profile     (--profile) another scorer drains the N events under ``py-spy record`` (GIL
              samples, by function); prints where the time goes by package and function.

Prints a table and appends a row to BENCHMARKS.md ("## Scorer") unless --no-record.

    .venv/bin/python bench/scorer_bench.py [--count 200000] [--profile] [--skip rss,pair]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from streams.config import Config, load_config  # noqa: E402
from streams.devtools.kafka_local import BrokerOptions, start, stop  # noqa: E402
from streams.devtools.simulate import SimulationOptions, Simulator  # noqa: E402
from streams.devtools.sinks import Pacer  # noqa: E402
from streams.topics import ensure_topics  # noqa: E402
from tests.support import Worker, free_port, port_is_free  # noqa: E402

STEPS = ("throughput", "latency", "state", "processor", "restart", "rss", "pair")
PARTITIONS = 4
#: The quickstart's simulated rate: mean event-time gap between consecutive events.
QUICKSTART_GAP_MS = SimulationOptions().mean_gap_ms
BEGAN = time.monotonic()


def say(msg: str) -> None:
    print(f"[{time.monotonic() - BEGAN:6.1f}s] {msg}", flush=True)


# -- setup ---------------------------------------------------------------------------------

def free_broker_port() -> int:
    for _ in range(50):
        port = free_port()
        if port + 1000 < 65536 and port_is_free(port + 1000):
            return port
    raise RuntimeError("no free port pair for the broker (port and port + 1000)")


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path, bootstrap: str) -> None:
        self.args, self.work, self.bootstrap = args, work, bootstrap
        self.quickstart = yaml.safe_load((REPO / "examples" / "quickstart.yaml").read_text())

    def config(self, tag: str, events_topic: str | None = None) -> tuple[Path, Config]:
        """The quickstart config with topics (and app id) of its own; ``events_topic``
        shares an existing events topic instead."""
        suffix = f"{tag}{uuid.uuid4().hex[:6]}"
        raw = dict(self.quickstart)
        raw["name"] = f"bench_{suffix}"
        raw["broker"] = f"kafka://{self.bootstrap}"
        raw["topics"] = {"events": events_topic or f"ev.{suffix}", "labels": f"lab.{suffix}",
                         "scored": f"sc.{suffix}", "dlq": f"dlq.{suffix}",
                         "training": f"tr.{suffix}", "model_versions": f"mv.{suffix}",
                         "model_audit": f"ma.{suffix}", "partitions": PARTITIONS}
        path = self.work / f"config-{suffix}.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        config = load_config(path)
        ensure_topics(config)
        return path, config

    def worker(self, cfg_path: Path, tag: str) -> Worker:
        w = Worker(cfg_path, free_port(), self.work / f"worker-{tag}-{uuid.uuid4().hex[:4]}")
        w.start(ready_timeout_seconds=180)
        return w


def events(config: Config, count: int, entities: int, seed: int,
           gap_ms: int = QUICKSTART_GAP_MS) -> Iterator[tuple[bytes, bytes]]:
    """Simulated quickstart events (no labels), all in the past: the validator refuses
    event times more than ``max_future`` after their Kafka timestamp."""
    start_ms = time.time_ns() // 1_000_000 - int(count * gap_ms * 1.3) - 86_400_000
    opts = SimulationOptions(count=count, seed=seed, entities=entities, label_ratio=0.0,
                             mean_gap_ms=gap_ms, start_ms=start_ms)
    for r in Simulator(config, opts).records():
        if r.kind == "event":
            yield r.key.encode(), r.value


def produce(bootstrap: str, topic: str, records: Iterable[tuple[bytes, bytes]],
            per_second: float = 0.0, what: str = "") -> tuple[int, float]:
    """Send records in order (paced at ``per_second`` if set); wait for every ack.
    Returns (count, seconds from first send to last ack)."""
    # Idempotent, so a retried batch cannot land after a later one: on a topic just
    # created, the first sends can fail (no leader yet) and, retried, reorder the first
    # records of a partition by minutes of event time (the scorer then rightly calls them
    # late).
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                             batch_size=65536, max_request_size=4 * 1024 * 1024,
                             enable_idempotence=True)
    deadline = time.monotonic() + 60
    while len(producer.partitions_for(topic) or ()) < PARTITIONS:
        if time.monotonic() > deadline:
            raise RuntimeError(f"topic {topic} has no {PARTITIONS} partitions after 60 s")
        time.sleep(0.2)
    pacer = Pacer(per_second)
    began, n, last_report = time.perf_counter(), 0, time.monotonic()
    try:
        for key, value in records:
            producer.send(topic, key=key, value=value)
            n += 1
            pacer.tick()
            if what and time.monotonic() - last_report > 15:
                last_report = time.monotonic()
                say(f"  {what}: {n:,} produced")
        producer.flush(timeout=120)
    finally:
        producer.close(timeout=30)
    return n, time.perf_counter() - began


# -- reading a worker ------------------------------------------------------------------------

#: A scrape waits this long: a worker busy with a large backlog (a million pending
#: predictions) has answered /metrics after more than 5 s, and the step must not die of it.
SCRAPE_TIMEOUT_SECONDS = 120.0
#: The slowest scrape since the last reset, in seconds (printed by the steps that reset it).
slowest_scrape = [0.0]


def samples(worker: Worker) -> list[Any]:
    if worker.proc is not None and worker.proc.poll() is not None:
        raise RuntimeError(f"worker exited {worker.proc.returncode}:\n{worker.log()}")
    began = time.perf_counter()
    url = f"http://127.0.0.1:{worker.web_port}/metrics"
    with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_SECONDS) as resp:
        text = resp.read().decode()
    slowest_scrape[0] = max(slowest_scrape[0], time.perf_counter() - began)
    return [s for fam in text_string_to_metric_families(text) for s in fam.samples]


def outcomes(worker: Worker) -> Counter[str]:
    return Counter({s.labels["outcome"]: s.value for s in samples(worker)
                    if s.name == "streambed_events_total"})


def oddities(worker: Worker) -> dict[str, float]:
    """Counters that should stay at zero on a clean drain (read back, redelivered, ...)."""
    names = ("streambed_skipped_offsets_total", "streambed_redeliveries_total",
             "streambed_state_decode_errors_total", "streambed_produce_errors_total")
    out: dict[str, float] = Counter()
    for s in samples(worker):
        if s.name in names:
            out[s.name.removeprefix("streambed_").removesuffix("_total")] += s.value
    return {k: v for k, v in out.items() if v}


def done_count(workers: list[Worker]) -> float:
    """Events that reached an outcome (scored, rejected, late, duplicate), over workers."""
    return sum(sum(outcomes(w).values()) for w in workers)


def histogram(worker: Worker) -> tuple[list[tuple[float, float]], float, float]:
    """(sorted (le, cumulative count) buckets, sum, count) of the latency histogram."""
    buckets, total, n = [], 0.0, 0.0
    for s in samples(worker):
        if s.name == "streambed_event_latency_seconds_bucket":
            buckets.append((float(s.labels["le"]), s.value))
        elif s.name == "streambed_event_latency_seconds_sum":
            total = s.value
        elif s.name == "streambed_event_latency_seconds_count":
            n = s.value
    return sorted(buckets), total, n


def quantile(buckets: list[tuple[float, float]], q: float) -> tuple[float, float, float]:
    """(estimate, bucket low, bucket high) of a quantile from cumulative buckets, linear
    inside the bucket that holds it."""
    total = buckets[-1][1]
    prev_le, prev_n = 0.0, 0.0
    for le, n in buckets:
        if n >= q * total and n > prev_n:
            if le == math.inf:
                return prev_le, prev_le, le
            return prev_le + (le - prev_le) * (q * total - prev_n) / (n - prev_n), prev_le, le
        prev_le, prev_n = le, n
    return math.nan, math.nan, math.nan


def ready(worker: Worker) -> tuple[bool, list[int]]:
    url = f"http://127.0.0.1:{worker.web_port}/ready"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = json.load(resp)
    except urllib.error.HTTPError as exc:
        body = json.load(exc)
    except OSError:
        return False, []
    return bool(body.get("ready")), list(body.get("assigned_partitions", []))


def wait_assigned(workers: list[Worker], timeout: float = 120.0) -> None:
    """Every worker ready and the partitions split between them, twice 1 s apart."""
    deadline, stable = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        states = [ready(w) for w in workers]
        parts = [p for _, ps in states for p in ps]
        good = all(ok and ps for ok, ps in states) and sorted(parts) == list(range(PARTITIONS))
        stable = stable + 1 if good else 0
        if stable >= 2:
            return
        for w in workers:
            samples(w)  # raises if a worker died
        time.sleep(1.0)
    raise RuntimeError(f"workers not ready and assigned within {timeout:.0f}s: {states}")


def drain(workers: list[Worker], target: int, timeout: float,
          what: str) -> tuple[float, float, float]:
    """Wait for the first outcome, then for ``target`` outcomes over ``workers``.
    Returns (outcomes at the first look that saw some, seconds from then to the end,
    events/s over that time). Polls /metrics rarely while far from the end (a scrape
    costs the worker), every 50 ms near it."""
    deadline = time.monotonic() + timeout
    n = done_count(workers)
    while n <= 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: no event scored within {timeout:.0f}s")
        time.sleep(0.05)
        n = done_count(workers)
    t0, n0, last_report = time.perf_counter(), n, time.monotonic()
    while n < target:
        now = time.perf_counter()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: {n:,.0f} of {target:,} events after {timeout:.0f}s")
        rate = (n - n0) / (now - t0) if n > n0 else 0.0
        left = (target - n) / rate if rate else math.inf
        time.sleep(0.05 if left < 2 else min(1.0, left / 4))
        n = done_count(workers)
        if time.monotonic() - last_report > 15:
            last_report = time.monotonic()
            say(f"  {what}: {n:,.0f} / {target:,} ({rate:,.0f} events/s)")
    took = time.perf_counter() - t0
    return n0, took, (n - n0) / took if n > n0 else math.nan


def gc_pauses(worker: Worker) -> dict[str, float]:
    """The worker's full collections so far (``streams.scorer.gc_watch``, timed through
    ``gc.callbacks`` in the worker): count, summed and longest wall-clock pause since it
    began serving, the longest before (start-up, recovery), and the most objects one
    collection walked while serving."""
    out = {"count": 0.0, "total": 0.0, "max": 0.0, "startup": 0.0, "max_cpu": 0.0,
           "walked": 0.0}
    names = {"streambed_gc_pauses_total": "count", "streambed_gc_pause_seconds_total": "total",
             "streambed_gc_pause_max_seconds": "max",
             "streambed_gc_startup_pause_max_seconds": "startup",
             "streambed_gc_pause_max_cpu_seconds": "max_cpu",
             "streambed_gc_walked_objects_max": "walked"}
    for s in samples(worker):
        if s.name in names and s.labels.get("generation") == "2":
            out[names[s.name]] = s.value
    return out


def rss_kib(pid: int) -> dict[str, int]:
    """VmRSS/VmHWM of the Faust worker: ``streambed worker`` is a supervisor whose child
    runs the worker, so read the child when there is one."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    if children:
        pid = int(children[0])
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


# -- (a) and (b) ---------------------------------------------------------------------------

def bare_faust(b: Bench, topic: str, count: int, produce_to: str | None = None) -> float:
    """Events/s of bench/bare_faust.py: iterating only, or producing one record per event
    to ``produce_to`` in batches (first batch in hand to the last acknowledgement)."""
    out = b.work / f"bare-faust-{uuid.uuid4().hex[:4]}.json"
    log = open(b.work / "bare-faust.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "bare_faust.py"), "--broker", b.bootstrap,
         "--topic", topic, "--count", str(count), "--group", f"bare_{uuid.uuid4().hex[:6]}",
         "--partitions", str(PARTITIONS), "--data-dir",
         str(b.work / f"bare-faust-{uuid.uuid4().hex[:4]}"), "--out", str(out),
         *(["--produce-to", produce_to] if produce_to else [])],
        stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
    try:
        deadline = time.monotonic() + 120 + count / 500
        while not out.exists():
            if proc.poll() is not None:
                tail = (b.work / "bare-faust.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"bare faust app exited {proc.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise RuntimeError("bare faust app did not see every event in time")
            time.sleep(0.2)
        time.sleep(0.1)
        result = json.loads(out.read_text())
    finally:
        kill_group(proc)
        log.close()
    # Iterating: first event to the N-th (N - 1 gaps); producing: first batch in hand to
    # the last acknowledgement (N events).
    return (result["count"] - (0 if produce_to else 1)) / result["seconds"]


def kill_group(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


async def _bare_aiokafka(bootstrap: str, topic: str, out_topic: str, count: int) -> float:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap,
                                group_id=f"bare_{uuid.uuid4().hex[:6]}",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await consumer.start()
    await producer.start()
    try:
        seen, first = 0, 0.0
        deadline = time.monotonic() + 120 + count / 2000
        while seen < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"aiokafka loop: {seen} of {count} events in time")
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            futures = []
            for records in batches.values():
                if records and not first:
                    first = time.perf_counter()
                for r in records:
                    futures.append(await producer.send(out_topic, r.value, key=r.key))
            await asyncio.gather(*futures)
            seen += len(futures)
        return seen / (time.perf_counter() - first)
    finally:
        await consumer.stop()
        await producer.stop()


def bare_aiokafka(bootstrap: str, topic: str, out_topic: str, count: int) -> float:
    return asyncio.run(_bare_aiokafka(bootstrap, topic, out_topic, count))


# -- steps -----------------------------------------------------------------------------------

def step_throughput(b: Bench, r: dict[str, Any]) -> str:
    a = b.args
    _, config = b.config("tp")
    topic = config.topics.events
    say(f"throughput: producing {a.count:,} quickstart events over {a.entities:,} entities "
        f"to {PARTITIONS} partitions")
    n, took = produce(b.bootstrap, topic, events(config, a.count, a.entities, seed=1),
                      what="produce")
    say(f"  produced {n:,} in {took:.1f}s ({n / took:,.0f}/s)")
    r["count"] = n
    say("(b) bare aiokafka consume -> produce")
    r["b"] = bare_aiokafka(b.bootstrap, topic, config.topics.scored, n)
    say(f"  {r['b']:,.0f} events/s")
    say("(a) bare faust agent iterating stream.events()")
    r["a"] = bare_faust(b, topic, n)
    say(f"  {r['a']:,.0f} events/s")
    say("(a') bare faust agent producing one record per event, in batches, acks awaited")
    r["ap"] = bare_faust(b, topic, n, produce_to=config.topics.scored)
    say(f"  {r['ap']:,.0f} events/s")
    say("(c) streambed worker")
    cfg_path, _ = b.config("c", events_topic=topic)
    w = b.worker(cfg_path, "c")
    try:
        _, secs, r["c"] = drain([w], n, 120 + n / 200, "scorer")
        out, odd = outcomes(w), oddities(w)
    finally:
        w.stop()
    say(f"  {r['c']:,.0f} events/s over {secs:.1f}s; outcomes "
        f"{ {k: int(v) for k, v in out.items() if v} }; {odd or 'no read-backs or redeliveries'}")
    if out["late"] or out["rejected"]:
        say(f"  NOTE: every event is valid and in time order per partition; late/rejected "
            f"ones mean the scorer saw them out of order (worker log {w.log_path})")
    r["topic"] = topic
    return topic


class ScoredWatch:
    """An application's consumer of ``scored`` (kafka-python, every partition assigned, no
    group), on a thread: when each event's scored record was in its hands (epoch s)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                      fetch_max_wait_ms=100, max_poll_records=5000)
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        self.consumer.assign(parts)
        self.consumer.seek_to_beginning(*parts)
        self.received: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scored-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            polled = self.consumer.poll(timeout_ms=50)
            now = time.time()  # in hand: the poll has returned them
            for records in polled.values():
                for rec in records:
                    self.received.setdefault(json.loads(rec.value)["event_id"], now)

    def wait_for(self, ids: list[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(i in self.received for i in ids):
                return True
            time.sleep(0.1)
        return False

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.consumer.close()


def app_producer(bootstrap: str) -> KafkaProducer:
    """An application's producer of events: acks from every replica, no linger."""
    return KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0,
                         enable_idempotence=True)


def produce_timed(producer: KafkaProducer, topic: str,
                  records: list[tuple[bytes, bytes, str]],
                  per_second: float) -> tuple[dict[str, float], float]:
    """Send ``(key, value, event_id)`` paced at ``per_second``; returns each event's send
    time (epoch s, the same clock as :class:`ScoredWatch`'s) and the rate achieved."""
    sent: dict[str, float] = {}
    pacer = Pacer(per_second)
    began = time.perf_counter()
    for key, value, event_id in records:
        sent[event_id] = time.time()
        producer.send(topic, key=key, value=value)
        pacer.tick()
    producer.flush(timeout=120)
    return sent, len(records) / (time.perf_counter() - began)


def latency_rates(a: argparse.Namespace, r: dict[str, Any]) -> list[tuple[str, float]]:
    """(name, events/s) of each latency window: a number, or ``half`` (of (c)'s rate)."""
    out = []
    for item in (x.strip() for x in a.latency_rates.split(",") if x.strip()):
        if item == "half":
            if "c" not in r:
                raise SystemExit("--latency-rates half needs the throughput step "
                                 "(or give a number)")
            out.append(("half", r["c"] / 2))
        else:
            out.append((item, float(item)))
    return out


def step_latency(b: Bench, r: dict[str, Any]) -> None:
    """End to end as an application sees it: an event produced -> its scored record in a
    consumer's hands, one clock, exact quantiles; one running scorer, fresh topics, one
    window per rate (each after a warm-up at its pace)."""
    a = b.args
    rates = latency_rates(a, r)
    sizes = [(int(rate * a.latency_warmup), int(rate * a.latency_seconds))
             for _, rate in rates]
    cfg_path, config = b.config("lat")
    records = [(k, v, json.loads(v)[config.event.id_field]) for k, v in
               events(config, sum(w + m for w, m in sizes), a.entities, seed=2)]
    say(f"latency: produce -> scored record in a consumer's hands, at "
        f"{', '.join(f'{rate:,.0f}/s' for _, rate in rates)} for {a.latency_seconds:.0f}s "
        f"each after a {a.latency_warmup:g}s warm-up; fresh topics, scorer running")
    w = b.worker(cfg_path, "lat")
    watch = ScoredWatch(b.bootstrap, config.topics.scored)
    producer = app_producer(b.bootstrap)  # one for every window: metadata fetched once
    out: list[dict[str, Any]] = []
    try:
        wait_assigned([w])
        at = 0
        for (name, rate), (warm, measured) in zip(rates, sizes, strict=True):
            produce_timed(producer, config.topics.events, records[at:at + warm], rate)
            at += warm
            window = records[at:at + measured]
            at += measured
            before = histogram(w)
            sent, achieved = produce_timed(producer, config.topics.events, window, rate)
            ids = [i for _, _, i in window]
            if not watch.wait_for(ids, 120):
                raise RuntimeError(f"latency: scored records of the {rate:,.0f}/s window "
                                   "not all in hand within 120 s of the last event")
            after = histogram(w)
            lat = sorted(watch.received[i] - sent[i] for i in ids)
            server = (after[1] - before[1]) / max(after[2] - before[2], 1)
            m = {"name": name, "rate": rate, "achieved": achieved, "count": len(lat),
                 "p50": quantile_exact(lat, 0.5), "p99": quantile_exact(lat, 0.99),
                 "max": lat[-1], "mean": statistics.fmean(lat), "server_mean": server}
            m["floor"] = one_hop(b, producer, window, rate)
            out.append(m)
            say(f"  {rate:,.0f}/s (produced at {achieved:,.0f}/s): e2e p50 "
                f"{m['p50'] * 1e3:.1f} ms, p99 {m['p99'] * 1e3:.1f} ms, max "
                f"{m['max'] * 1e3:.0f} ms, mean {m['mean'] * 1e3:.1f} ms (in the scorer, "
                f"record timestamp -> batch published: mean {server * 1e3:.1f} ms); one hop "
                f"without the scorer, same pace: {floor_text(m['floor'])}")
            if achieved < 0.95 * rate or m["p50"] > 1.0:
                say("  WARNING: not a steady state: the producer could not keep the pace, "
                    "or the scorer fell behind (half a second at the median)")
        odd = oddities(w)
    finally:
        producer.close(timeout=30)
        watch.close()
        w.stop()
    if odd:
        say(f"  read-backs or redeliveries during the step: {odd}")
    r["lat"] = out


def one_hop(b: Bench, producer: KafkaProducer, window: list[tuple[bytes, bytes, str]],
            rate: float) -> dict[str, float]:
    """The floor of the latency step: ``window`` produced at ``rate`` to a fresh plain topic
    (as many partitions) by the same producer and read by the same kind of consumer, no
    scorer between: produce -> record in a consumer's hands, exact p50/p99/max."""
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = f"lat-floor.{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    try:
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        admin.close()
    watch = ScoredWatch(b.bootstrap, topic)
    try:
        sent, _ = produce_timed(producer, topic, window, rate)
        ids = [i for _, _, i in window]
        if not watch.wait_for(ids, 120):
            raise RuntimeError(f"latency floor: records not all in hand within 120 s ({topic})")
        lat = sorted(watch.received[i] - sent[i] for i in ids)
    finally:
        watch.close()
    return {"p50": quantile_exact(lat, 0.5), "p99": quantile_exact(lat, 0.99), "max": lat[-1]}


def floor_text(f: dict[str, float]) -> str:
    """One hop's figures, as the step prints them.

    >>> floor_text({"p50": 0.004, "p99": 0.154, "max": 0.247})
    'p50 4.0 ms, p99 154.0 ms, max 247 ms'
    """
    return f"p50 {f['p50'] * 1e3:.1f} ms, p99 {f['p99'] * 1e3:.1f} ms, max {f['max'] * 1e3:.0f} ms"


def quantile_exact(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of sorted samples, nearest rank.

    >>> quantile_exact([1.0, 2.0, 3.0, 4.0], 0.5), quantile_exact([1.0, 2.0, 3.0, 4.0], 0.99)
    (2.0, 4.0)
    """
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


def step_state(b: Bench, r: dict[str, Any]) -> None:
    """Encoded entity state, in process: Processor over dict tables (no Kafka)."""
    from streams.scorer.batch import InRecord
    from streams.scorer.champion import Champion
    from streams.scorer.processor import Processor, Tables
    from streams.scorer.state import EntityEntry, decode
    from streams.scorer.tables import StateTable

    a = b.args
    config = load_config(REPO / "examples" / "quickstart.yaml")

    def processor() -> tuple[Processor, Tables]:
        t = Tables(*(StateTable(name, {}, f"cl-{name}")
                     for name in ("entities", "pending", "held", "partitions")))
        return Processor(config, t, Champion.bootstrap(config.model.spec,
                                                       config.features.identity)), t

    def run(p: Processor, recs: list[tuple[bytes, bytes]], offsets: dict[int, int],
            batch: int, after: Callable[[int], None] | None = None) -> None:
        done = 0
        for s in range(0, len(recs), batch):
            chunk = []
            for key, value in recs[s:s + batch]:
                part = zlib.crc32(key) % PARTITIONS
                ts = json.loads(value)["ts"] + 1
                chunk.append(InRecord(value, key, "events", part, offsets.get(part, 0), ts))
                offsets[part] = offsets.get(part, 0) + 1
            p.process_events(chunk, chunk[-1].timestamp_ms)
            done += len(chunk)
            if after:
                after(done)

    say(f"state: {a.state_count:,} events over {a.entities:,} entities in process "
        f"(mean event gap {QUICKSTART_GAP_MS / 1000:g} s)")
    p, t = processor()
    began = time.perf_counter()
    run(p, list(events(config, a.state_count, a.entities, seed=3)), {}, 1000)
    took = time.perf_counter() - began
    values = [raw for _, raw in t.entities.items()]
    entry = sorted(len(v) for v in values)
    feats = sorted(len(decode(v, EntityEntry).features) for v in values)
    pending = [len(v) for _, v in t.pending.items()]

    def p99(xs: list[int]) -> int:
        return xs[min(len(xs) - 1, int(0.99 * len(xs)))]

    r["state"] = {"entities": len(values), "mean": statistics.fmean(entry), "p99": p99(entry),
                  "max": entry[-1], "feat_mean": statistics.fmean(feats),
                  "feat_p99": p99(feats), "pending_mean": statistics.fmean(pending or [0]),
                  "in_process_rate": a.state_count / took}
    s = r["state"]
    say(f"  {len(values):,} entities: table value mean {s['mean']:,.0f} B, p99 {s['p99']:,} B, "
        f"max {s['max']:,} B (feature state mean {s['feat_mean']:,.0f} B, p99 "
        f"{s['feat_p99']:,} B); pending entry mean {s['pending_mean']:,.0f} B; "
        f"Processor in process {s['in_process_rate']:,.0f} events/s")

    say("  one entity receiving every event (mean gap 30 s), size every 500 events")
    p, t = processor()
    sizes: dict[int, int] = {}

    def look(done: int) -> None:
        if done % 500 == 0:
            sizes[done] = max(len(v) for _, v in t.entities.items())

    run(p, list(events(config, a.one_entity_count, 1, seed=4)), {}, 100, look)
    r["one"] = sizes
    say("  " + ", ".join(f"{k / 1000:g}k: {v:,} B" for k, v in sizes.items()))


def in_process_batches(config: Config, count: int, entities: int, seed: int,
                       batch: int = 1000) -> list[list[Any]]:
    """Quickstart events as the Processor receives them (4 partitions, contiguous offsets,
    Kafka timestamps just after event time), in batches."""
    from streams.scorer.batch import InRecord

    offsets: dict[int, int] = {}
    out: list[list[Any]] = [[]]
    for key, value in events(config, count, entities, seed=seed):
        part = zlib.crc32(key) % PARTITIONS
        out[-1].append(InRecord(value, key, "events", part, offsets.get(part, 0),
                                json.loads(value)["ts"] + 1))
        offsets[part] = offsets.get(part, 0) + 1
        if len(out[-1]) == batch:
            out.append([])
    return [b for b in out if b]


def trained_champion(config: Config, examples: int) -> Any:
    """A champion learned on simulated labelled events (features from a fresh engine), so
    scoring does the work a served model does (the untrained one scales nothing)."""
    from features.engine import FeatureEngine
    from governance import LogisticModel
    from streams.scorer.champion import Champion

    engine = FeatureEngine(config.features, config.event.allowed_lateness_ms)
    model = LogisticModel(config.model.spec)
    states: dict[str, Any] = {}
    opts = SimulationOptions(count=examples, seed=11, entities=200, label_ratio=0.0)
    for i, rec in enumerate(Simulator(config, opts).records()):
        ev = json.loads(rec.value)
        state = states.setdefault(ev["entity_id"], engine.new_state())
        attrs = {k: ev.get(k) for k in (config.event.group_field, *config.event.attributes)}
        model.learn(engine.apply(state, ev["ts"], attrs), i % 3 == 0)
    return Champion(model, "bench-trained")


def step_processor(b: Bench, r: dict[str, Any]) -> None:
    """The Processor alone, in process: what per-event Python costs, Kafka aside."""
    from streams.scorer.processor import Processor, Tables
    from streams.scorer.tables import StateTable

    a = b.args
    config = load_config(REPO / "examples" / "quickstart.yaml")
    champion = trained_champion(config, a.processor_examples)
    batches = in_process_batches(config, a.processor_count, a.entities, seed=3)
    say(f"processor: {a.processor_count:,} events over {a.entities:,} entities in process, "
        f"champion learned on {a.processor_examples:,} examples, best of 3")
    rates, cpu_rates = [], []
    for _ in range(3):
        t = Tables(*(StateTable(name, {}, f"cl-{name}")
                     for name in ("entities", "pending", "held", "partitions")))
        p = Processor(config, t, champion)
        began, cpu = time.perf_counter(), time.process_time()
        for batch in batches:
            p.process_events(batch, batch[-1].timestamp_ms)
        rates.append(a.processor_count / (time.perf_counter() - began))
        cpu_rates.append(a.processor_count / (time.process_time() - cpu))
    # On a shared machine the wall clock counts other processes' turns on the cores; the
    # process's own CPU time does not (it is the figure to compare across loaded runs).
    r["processor"], r["processor_cpu"] = max(rates), max(cpu_rates)
    say(f"  wall {', '.join(f'{x:,.0f}' for x in rates)} events/s; per CPU second "
        f"{', '.join(f'{x:,.0f}' for x in cpu_rates)}")


def changelog_records(bootstrap: str, config: Config) -> int:
    """Records on the scorer's four changelog topics (the sum of their end offsets)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        total = 0
        for table in ("entities", "pending", "held", "partitions"):
            topic = f"streambed-{config.name}-{table}-changelog"
            parts = consumer.partitions_for_topic(topic) or set()
            total += sum(consumer.end_offsets([TopicPartition(topic, p)
                                               for p in parts]).values())
        return total
    finally:
        consumer.close()


def first_scored_after_start(b: Bench, cfg_path: Path, data_dir: Path, port: int,
                             timeout: float = 600) -> tuple[float, Worker]:
    """Start a worker on ``data_dir`` and web ``port``; seconds from its process start to
    its first scored record (events for it must already wait on the topic). A worker
    restarted as an operator restarts it keeps its port: its static group membership
    (its host, data directory and port) is then the same, and it takes its partitions back
    at once instead of after the killed member's session timeout."""
    w = Worker(cfg_path, port, data_dir)
    began = time.monotonic()
    w.start(ready_timeout_seconds=timeout)
    while done_count([w]) < 1:
        if time.monotonic() - began > timeout:
            raise RuntimeError(f"restart: nothing scored within {timeout:.0f}s")
        time.sleep(0.05)
    return time.monotonic() - began, w


def load_state_in_process(b: Bench, config: Config, n: int) -> int:
    """Put ``n`` entities of state in place the fast way: the scorer's own Processor and
    RocksDB tables, in this process, over ``n`` quickstart events (one per entity), each
    batch's changelog records produced to the worker's changelog topics as its publisher
    sends them; the events themselves go to the events topic, and the worker's consumer
    group is committed past them, as after a worker that scored them. Returns the
    changelog records produced (a worker started on an empty data directory then
    restores from them)."""
    from gc_pauses import made_batches
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    from streams.scorer.champion import Champion
    from streams.scorer.processor import Processor
    from streams.scorer.tables import (
        DirectoryPartitions,
        RocksStateTable,
        Tables,
        rocksdb_options,
    )

    app_id = f"streambed-{config.name}"
    names = ("entities", "pending", "held", "partitions")
    # (the changelog topics exist: Bench.config made them, as a worker does)
    root = Path(tempfile.mkdtemp(prefix="state-load-", dir=b.work))
    options = rocksdb_options(config.state.rocksdb_memory_bytes, PARTITIONS)
    parts = list(range(PARTITIONS))
    tables = Tables(*(RocksStateTable(t, DirectoryPartitions(root, t, parts, options),
                                      f"{app_id}-{t}-changelog") for t in names))
    processor = Processor(config, tables, Champion.bootstrap(config.model.spec,
                                                             config.features.identity))
    producer = KafkaProducer(bootstrap_servers=b.bootstrap, acks="all", linger_ms=20,
                             batch_size=1 << 20, max_request_size=8 << 20,
                             enable_idempotence=True)
    records, next_offsets, began = 0, [0] * PARTITIONS, time.monotonic()
    for i, batch in enumerate(made_batches(config, n, n)):
        for rec in batch:
            producer.send(config.topics.events, key=rec.key, value=rec.raw,
                          partition=rec.partition, timestamp_ms=rec.timestamp_ms)
            next_offsets[rec.partition] = rec.offset + 1
        res = processor.process_events(batch, batch[-1].timestamp_ms)
        for writes in res.writes.values():
            for topic, key, value, partition in writes:
                producer.send(topic, key=key, value=value, partition=partition)
                records += 1
        tables.commit({(w[0], w[3]): i for ws in res.writes.values() for w in ws})
        if i % 50 == 0:
            say(f"  state load: {(i + 1) * 1000:,} events, {records:,} changelog records "
                f"({time.monotonic() - began:.0f} s)")
    producer.flush(timeout=300)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=app_id,
                             enable_auto_commit=False)
    consumer.commit({TopicPartition(config.topics.events, p): OffsetAndMetadata(o, "", -1)
                     for p, o in enumerate(next_offsets)})
    consumer.close()
    shutil.rmtree(root, ignore_errors=True)
    return records


def step_restart(b: Bench, r: dict[str, Any]) -> None:
    a = b.args
    n = a.restart_entities
    cfg_path, config = b.config("rst")
    raw = yaml.safe_load(cfg_path.read_text())
    raw.setdefault("state", {})["store"] = "rocksdb"
    cfg_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    cold = b.work / "worker-restart-cold"
    port = free_port()  # one port: a restarted worker is the same static member
    loaded: dict[str, int] = {}
    if a.restart_load == "processor":
        say(f"restart: {n:,} entities of state put in place by the Processor in process")
        load_state_in_process(b, config, n)
        kinds = [("cold", cold), ("warm", cold)]  # the cold restore's databases, reused
    else:
        say(f"restart: {n:,} events over {n:,} entities on the RocksDB store, then SIGKILL")
        data = b.work / "worker-restart"
        w = Worker(cfg_path, port, data)
        w.start(ready_timeout_seconds=180)
        try:
            wait_assigned([w])
            produce(b.bootstrap, config.topics.events, events(config, n, n, seed=9),
                    what="restart produce")
            drain([w], n, 300 + n / 100, "restart scorer")
            time.sleep(3)  # the last batch's commit, a timer round
            assert w.proc is not None
            loaded = rss_kib(w.proc.pid)
            gc_loaded = gc_pauses(w)
            say(f"  loaded: VmRSS {loaded['VmRSS'] / 1024:,.0f} MiB (peak "
                f"{loaded['VmHWM'] / 1024:,.0f}); full collections {gc_loaded['count']:.0f}, "
                f"longest {gc_loaded['max'] * 1e3:.0f} ms serving (CPU "
                f"{gc_loaded['max_cpu'] * 1e3:.0f} ms; "
                f"{gc_loaded['startup'] * 1e3:.0f} ms in start-up), {gc_loaded['total']:.1f} s "
                "in all")
        finally:
            w.kill()
        kinds = [("warm", data), ("cold", cold)]
    records = changelog_records(b.bootstrap, config)
    out: dict[str, Any] = {"entities": n, "changelog": records,
                           "rss_loaded": loaded.get("VmRSS", 0), "load": a.restart_load}
    if loaded:
        out["hwm_loaded"], out["gc_loaded"] = loaded["VmHWM"], gc_loaded
    for kind, where in kinds:
        produce(b.bootstrap, config.topics.events,
                events(config, 20, n, seed=10 + len(out)), what=f"{kind} fresh events")
        took, w = first_scored_after_start(b, cfg_path, where, port)
        try:
            assert w.proc is not None
            out[kind] = took
            out[f"rss_{kind}"] = rss_kib(w.proc.pid)["VmRSS"]
        finally:
            w.kill()
        say(f"  {kind}: first scored record {took:.1f} s after the process started "
            f"(VmRSS {out[f'rss_{kind}'] / 1024:,.0f} MiB)")
    out["restore_rate"] = records / out["cold"]
    if a.restart_again:
        out["again"] = warm_again(b, cfg_path, config, kinds[0][1] if kinds[0][0] == "warm"
                                  else kinds[1][1], port, Path(a.restart_again))
    r["restart"] = out
    say(f"  {records:,} changelog records: cold restore {out['restore_rate']:,.0f} records/s "
        "(start-up included)" + (f"; VmRSS with {n:,} entities loaded "
                                 f"{loaded['VmRSS'] / 1024:,.0f} MiB" if loaded else ""))


def warm_again(b: Bench, cfg_path: Path, config: Config, data: Path, port: int,
               flag: Path) -> list[float]:
    """Warm restarts on the same state, one each time ``flag`` is touched, until it is
    removed (start-up changes measured against state that took long to put in place; the
    workers run the code in the tree as it is at their start)."""
    flag.touch()
    seen, took_all = 0.0, []
    say(f"restart: a warm restart each time {flag} is touched; remove it to go on")
    while flag.exists():
        mtime = flag.stat().st_mtime
        if mtime == seen:
            time.sleep(1.0)
            continue
        seen = mtime
        produce(b.bootstrap, config.topics.events,
                events(config, 20, b.args.restart_entities, seed=100 + len(took_all)),
                what="warm-again fresh events")
        took, w = first_scored_after_start(b, cfg_path, data, port)
        w.kill()
        took_all.append(took)
        say(f"  warm again: first scored record {took:.1f} s after the process started "
            f"(load {os.getloadavg()[0]:.2f})")
    return took_all


def step_rss(b: Bench, r: dict[str, Any]) -> None:
    a = b.args
    cfg_path, config = b.config("rss")
    say(f"rss: {a.rss_count:,} events over {a.rss_entities:,} entities produced while one "
        "scorer runs")
    w = b.worker(cfg_path, "rss")
    try:
        wait_assigned([w])
        assert w.proc is not None
        idle = rss_kib(w.proc.pid)
        slowest_scrape[0] = 0.0
        produce(b.bootstrap, config.topics.events,
                events(config, a.rss_count, a.rss_entities, seed=5), what="rss produce")
        drain([w], a.rss_count, 300 + a.rss_count / 200, "rss scorer")
        time.sleep(3)  # a timer round: expiry, monitors
        mem = rss_kib(w.proc.pid)
        pending = sum(s.value for s in samples(w) if s.name == "streambed_pending_predictions")
        gc_run = gc_pauses(w)
    finally:
        w.stop()
    r["rss"] = {"idle": idle["VmRSS"], "rss": mem["VmRSS"], "hwm": mem["VmHWM"],
                "pending": pending, "slowest_scrape": slowest_scrape[0], "gc": gc_run}
    say(f"  VmRSS {mem['VmRSS'] / 1024:,.0f} MiB (peak {mem['VmHWM'] / 1024:,.0f} MiB; "
        f"{idle['VmRSS'] / 1024:,.0f} MiB idle before the events); "
        f"{pending:,.0f} predictions pending; slowest /metrics answer "
        f"{slowest_scrape[0]:.1f} s; full collections {gc_run['count']:.0f}, longest "
        f"{gc_run['max'] * 1e3:.0f} ms serving (CPU {gc_run['max_cpu'] * 1e3:.0f} ms; "
        f"{gc_run['startup'] * 1e3:.0f} ms in start-up), "
        f"{gc_run['total']:.1f} s in all")


def step_pair(b: Bench, r: dict[str, Any]) -> None:
    a = b.args
    records = None
    for k in (1, 2):
        cfg_path, config = b.config(f"pair{k}")
        if records is None:
            records = list(events(config, a.pair_count, a.entities, seed=6))
        say(f"pair: {k} scorer(s) in one group, {a.pair_count:,} events produced once all "
            "are assigned")
        workers = []
        try:
            for i in range(k):
                workers.append(b.worker(cfg_path, f"pair{k}-{i}"))
            wait_assigned(workers)
            sent, took = produce(b.bootstrap, config.topics.events, records)
            # Timed from the end of production: the producer no longer shares the cores
            # and the group does not rebalance; what is left is a backlog to drain.
            n0, secs, rate = drain(workers, a.pair_count, 120 + a.pair_count / 200,
                                   f"{k} scorer(s)")
            odd = [oddities(w) for w in workers]
        finally:
            for w in workers:
                w.stop()
        r[f"pair{k}"] = rate
        left = 1 - n0 / a.pair_count
        say(f"  {k} scorer(s): {rate:,.0f} events/s over the last {left:.0%} of the events "
            f"({secs:.1f}s, after {sent:,} were produced at {sent / took:,.0f}/s); "
            f"{[o for o in odd if o] or 'no read-backs or redeliveries'}")
        if left < 0.5:
            say("  WARNING: the producer was not much faster than the scorer(s): most of the "
                "backlog was drained while producing; raise --pair-count")


def step_profile(b: Bench, r: dict[str, Any], topic: str) -> None:
    a = b.args
    pyspy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or \
        shutil.which("py-spy")
    if pyspy is None:
        raise RuntimeError("py-spy not found: pip install py-spy (it is in the test extra)")
    n = r.get("count") or a.count
    cfg_path, _ = b.config("prof", events_topic=topic)
    out = Path(a.profile_out or REPO / "var" / "bench" /
               f"scorer-profile-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}.txt")
    out.parent.mkdir(parents=True, exist_ok=True)
    say(f"profile: a scorer drains the same {n:,} events under py-spy (GIL samples)")
    w = b.worker(cfg_path, "prof")
    spy = None
    try:
        assert w.proc is not None
        deadline = time.monotonic() + 120
        while done_count([w]) <= 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        spy = subprocess.Popen([pyspy, "record", "--pid", str(w.proc.pid), "--subprocesses",
                                "--rate", "100",
                                "--format", "raw", "--output", str(out), "--gil", "--nolineno",
                                "--full-filenames", "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        _, _, rate = drain([w], n, 120 + n / 150, "profiled scorer")
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            try:
                spy.wait(timeout=60)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait(timeout=10)
        w.stop()
    r["profile"] = {"path": out, "rate": rate}
    say(f"  {rate:,.0f} events/s under py-spy; raw stacks in {out}")
    print_profile(out, a.profile_top)


def classify(frame: str) -> str:
    path = frame[frame.rfind("(") + 1:].rstrip(")")
    for pkg in ("faust", "mode", "aiokafka", "kafka", "river", "prometheus_client",
                "msgspec", "aiohttp", "yarl", "croniter", "venusian", "opentracing"):
        if f"/site-packages/{pkg}/" in path:
            return pkg
    if f"{REPO}/" in path:
        rel = path[len(str(REPO)) + 1:]
        return "streambed:" + rel.split("/")[0]
    if "/asyncio/" in path:
        return "asyncio"
    if "python3" in path:
        return "stdlib"
    return "other"


def print_profile(path: Path, top: int) -> None:
    self_t: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    pkg_self: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n_str = line.rpartition(" ")
        if not stack or not n_str.isdigit():
            continue
        n = int(n_str)
        frames = stack.split(";")
        total += n
        self_t[frames[-1]] += n
        pkg_self[classify(frames[-1])] += n
        for f in set(frames):
            incl[f] += n
    if not total:
        print("  (no samples)")
        return

    def short(f: str) -> str:
        name, _, loc = f.partition(" (")
        loc = loc.rstrip(")")
        for marker in ("/site-packages/", f"{REPO}/", "/lib/python3.11/"):
            if marker in loc:
                loc = loc.split(marker, 1)[1]
        return f"{name} ({loc})"

    print(f"\n  {total:,} GIL samples. Self time by package:")
    for pkg, n in pkg_self.most_common():
        print(f"    {100 * n / total:5.1f}%  {pkg}")
    print(f"  Top {top} functions by self time:")
    for f, n in self_t.most_common(top):
        print(f"    {100 * n / total:5.1f}%  {short(f)}")
    print(f"  Top {top} functions by inclusive time:")
    for f, n in incl.most_common(top + 5)[:top + 5]:
        print(f"    {100 * n / total:5.1f}%  {short(f)}")
    print()


# -- report ----------------------------------------------------------------------------------

def fmt(x: float | None, unit: str = "") -> str:
    return "—" if x is None else f"{x:,.0f}{unit}"


def table(r: dict[str, Any], a: argparse.Namespace) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if "c" in r:
        rows += [
            ("(a) bare faust agent, `stream.events()`", fmt(r["a"], " events/s")),
            ("(a') bare faust agent producing a record per event, batches",
             fmt(r["ap"], " events/s")),
            ("(b) bare aiokafka consume → produce, acks per batch", fmt(r["b"], " events/s")),
            ("(c) `streambed worker`", fmt(r["c"], " events/s")),
            ("(c)/(a') (target 0.7)", f"{r['c'] / r['ap']:.2f}"),
            ("(c)/(a)", f"{r['c'] / r['a']:.2f}"),
            ("(c)/(b)", f"{r['c'] / r['b']:.3f}"),
        ]
    for lt in r.get("lat", ()):
        rows.append((f"e2e latency at {lt['rate']:,.0f}/s paced ({lt['achieved']:,.0f}/s "
                     f"achieved), {lt['count']:,} events",
                     f"p50 {lt['p50'] * 1e3:.1f} ms, p99 {lt['p99'] * 1e3:.1f} ms, max "
                     f"{lt['max'] * 1e3:.0f} ms (in the scorer: mean "
                     f"{lt['server_mean'] * 1e3:.1f} ms)"))
        rows.append((f"  one hop without the scorer at {lt['rate']:,.0f}/s (the floor)",
                     floor_text(lt["floor"])))
    if "state" in r:
        s = r["state"]
        rows.append((f"entity state, {a.state_count:,} events / {s['entities']:,} entities",
                     f"mean {s['mean']:,.0f} B, p99 {s['p99']:,} B (features {s['feat_mean']:,.0f}"
                     f" / {s['feat_p99']:,} B)"))
        one = r["one"]
        rows.append(("one entity, every event (30 s gap)",
                     ", ".join(f"{k / 1000:g}k {one[k] / 1000:.1f} KB" for k in one
                               if k in (1000, 2000, 3000, 4000, 5000))))
    if "processor" in r:
        rows.append((f"Processor alone in process, {a.processor_count:,} events",
                     f"{fmt(r['processor'], ' events/s')} wall, "
                     f"{fmt(r['processor_cpu'], ' events per CPU second')}"))
    if "restart" in r:
        m = r["restart"]
        rows.append((f"restart to first scored record, {m['entities']:,} entities on disk "
                     f"(state put in place by the {m.get('load', 'scorer')})",
                     f"warm {m['warm']:.1f} s, cold {m['cold']:.1f} s "
                     f"({m['changelog']:,} changelog records, {m['restore_rate']:,.0f}/s)"))
        if "gc_loaded" in m:
            g = m["gc_loaded"]
            rows.append(("worker's full collections while loading (gc.callbacks)",
                         f"{g['count']:,.0f}, longest {g['max'] * 1e3:,.0f} ms serving "
                         f"(CPU {g['max_cpu'] * 1e3:,.0f} ms; "
                         f"{g['startup'] * 1e3:,.0f} ms in start-up), "
                         f"{g['total']:,.1f} s in all, at most {g.get('walked', 0):,.0f} "
                         f"objects walked"))
        if m.get("again"):
            rows.append(("warm restarts again (--restart-again)",
                         ", ".join(f"{t:.1f} s" for t in m["again"])))
        rows.append(("worker VmRSS: loaded / warm restart / cold restart",
                     f"{m['rss_loaded'] / 1024 or math.nan:,.0f} / "
                     f"{m['rss_warm'] / 1024:,.0f} / "
                     f"{m['rss_cold'] / 1024:,.0f} MiB"))
    if "rss" in r:
        m = r["rss"]
        rows.append((f"worker RSS after {a.rss_count:,} events / {a.rss_entities:,} entities",
                     f"{m['rss'] / 1024:,.0f} MiB (peak {m['hwm'] / 1024:,.0f}, idle "
                     f"{m['idle'] / 1024:,.0f})"))
        rows.append(("worker's full collections in that run (gc.callbacks)",
                     f"{m['gc']['count']:,.0f}, longest {m['gc']['max'] * 1e3:,.0f} ms serving "
                     f"(CPU {m['gc']['max_cpu'] * 1e3:,.0f} ms; "
                     f"{m['gc']['startup'] * 1e3:,.0f} ms in start-up; at most "
                     f"{m['gc']['walked']:,.0f} objects walked)"))
    if "pair2" in r:
        rows.append((f"two scorers vs one, {a.pair_count:,} events",
                     f"{r['pair2']:,.0f} vs {r['pair1']:,.0f} events/s "
                     f"(×{r['pair2'] / r['pair1']:.2f})"))
    if "profile" in r:
        rows.append(("(c) under py-spy", fmt(r["profile"]["rate"], " events/s")))
    return rows


def record(r: dict[str, Any], a: argparse.Namespace, load0: float, load1: float) -> None:
    path = REPO / "BENCHMARKS.md"
    text = path.read_text()
    marker = "<!-- scorer_bench appends rows above this line -->"
    if marker not in text:
        raise RuntimeError(f"{path} has no '{marker}' line under '## Scorer'")
    cmd = shlex.join(["bench/scorer_bench.py", *sys.argv[1:]])
    nproc = len(os.sched_getaffinity(0))

    def cell(key: str, f: Callable[[Any], str]) -> str:
        return f(r[key]) if key in r else "—"

    row = " | ".join([
        dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
        f"{nproc} cores, Python {platform.python_version()}",
        f"`{cmd}`",
        f"{load0:.2f} → {load1:.2f}",
        cell("a", lambda v: f"{v:,.0f} iterating / {r['ap']:,.0f} producing"),
        cell("b", lambda v: f"{v:,.0f}"),
        cell("c", lambda v: f"{v:,.0f}"),
        (f"{r['c'] / r['ap']:.2f} (producing) / {r['c'] / r['a']:.2f} (iterating) / "
         f"{r['c'] / r['b']:.3f}") if "c" in r else "—",
        cell("lat", lambda v: "; ".join(
            f"e2e {m['p50'] * 1e3:.0f} / {m['p99'] * 1e3:.0f} ms at {m['rate']:,.0f}/s "
            f"(one hop {m['floor']['p50'] * 1e3:.0f} / {m['floor']['p99'] * 1e3:.0f} ms)"
            for m in v)),
        cell("state", lambda v: f"{v['mean']:,.0f} / {v['p99']:,}"),
        cell("one", lambda v: " / ".join(f"{v.get(k, 0) / 1000:.1f}" for k in (1000, 2000, 5000))),
        cell("rss", lambda v: f"{v['rss'] / 1024:,.0f} MiB"),
        cell("pair2", lambda v: f"{v:,.0f} vs {r['pair1']:,.0f}"),
        cell("processor_cpu", lambda v: f"{v:,.0f}"),
        cell("restart", lambda v: f"{v['warm']:.1f} / {v['cold']:.1f} s at {v['entities']:,} "
                                  f"entities ({v['restore_rate']:,.0f} records/s)"),
        "; ".join(f"{m['gc']['max'] * 1e3:,.0f} / {m['gc']['max_cpu'] * 1e3:,.0f} ms ({what})"
                  for what, m in (("rss step", r.get("rss")),
                                  ("restart step", {"gc": r.get("restart", {})
                                                    .get("gc_loaded")}))
                  if m and m["gc"]) or "—",
        a.note or "",
    ])
    path.write_text(text.replace(marker, f"| {row} |\n{marker}"))
    say(f"appended a row to {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=200_000, help="events for (a), (b), (c)")
    p.add_argument("--entities", type=int, default=2_000)
    p.add_argument("--latency-seconds", type=float, default=30.0)
    p.add_argument("--latency-warmup", type=float, default=5.0,
                   help="seconds produced at the same pace before the measured window")
    p.add_argument("--latency-rates", default="200,half",
                   help="events/s of each latency window, comma-separated; 'half': half of "
                        "(c)'s rate, measured in the same run")
    p.add_argument("--state-count", type=int, default=50_000)
    p.add_argument("--one-entity-count", type=int, default=5_000)
    p.add_argument("--processor-count", type=int, default=50_000)
    p.add_argument("--processor-examples", type=int, default=2_000)
    p.add_argument("--restart-entities", type=int, default=1_000_000)
    p.add_argument("--restart-load", choices=("processor", "scorer"), default="processor",
                   help="how the restart step's state is put in place: the Processor in "
                   "process writing the changelog (fast), or a worker scoring the events")
    p.add_argument("--restart-again", metavar="FILE",
                   help="after the restart step, a warm restart on the same state each time "
                   "FILE is touched, until it is removed")
    p.add_argument("--rss-count", type=int, default=1_000_000)
    p.add_argument("--rss-entities", type=int, default=1_000_000)
    p.add_argument("--pair-count", type=int, default=100_000)
    p.add_argument("--skip", default="", help=f"comma-separated steps to skip: {','.join(STEPS)}")
    p.add_argument("--profile", action="store_true",
                   help="also drain the N events with a scorer under py-spy and print the top")
    p.add_argument("--profile-top", type=int, default=25)
    p.add_argument("--profile-out", help="where py-spy's raw stacks go (default var/bench/)")
    p.add_argument("--keep", action="store_true",
                   help="keep the work directory (broker data, worker logs) and say where")
    p.add_argument("--no-record", action="store_true", help="do not append to BENCHMARKS.md")
    p.add_argument("--note", default="", help="text for the row's note column")
    a = p.parse_args()
    skip = {s.strip() for s in a.skip.split(",") if s.strip()}
    if skip - set(STEPS):
        p.error(f"unknown step(s) {sorted(skip - set(STEPS))}; steps: {', '.join(STEPS)}")

    load0 = os.getloadavg()[0]
    say(f"scorer bench: {len(os.sched_getaffinity(0))} cores, Python "
        f"{platform.python_version()}, load average {load0:.2f}; steps: "
        f"{', '.join(s for s in STEPS if s not in skip)}{' + profile' if a.profile else ''}")
    r: dict[str, Any] = {}
    if "state" not in skip:  # no broker needed: first, while the machine is fresh
        step_state(Bench(a, Path("."), ""), r)
    if "processor" not in skip:
        step_processor(Bench(a, Path("."), ""), r)
    needs_broker = bool(set(STEPS) - skip - {"state", "processor"}) or a.profile
    if needs_broker:
        work = Path(tempfile.mkdtemp(prefix="streambed-bench-"))
        broker = BrokerOptions(port=free_broker_port(), data_dir=work / "kafka", heap_mb=768)
        try:
            start(broker, log=say)
            b = Bench(a, work, broker.bootstrap)
            topic = None
            if "throughput" not in skip:
                topic = step_throughput(b, r)
            if "latency" not in skip:
                step_latency(b, r)
            if "pair" not in skip:
                step_pair(b, r)
            if "restart" not in skip:
                step_restart(b, r)
            if "rss" not in skip:
                step_rss(b, r)
            if a.profile:
                if topic is None:
                    _, config = b.config("prof_ev")
                    produce(b.bootstrap, config.topics.events,
                            events(config, a.count, a.entities, seed=1), what="produce")
                    topic = config.topics.events
                step_profile(b, r, topic)
        finally:
            with contextlib.suppress(Exception):
                stop(broker, log=say)
            if a.keep:
                say(f"kept {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)
    load1 = os.getloadavg()[0]
    rows = table(r, a)
    width = max(len(k) for k, _ in rows) if rows else 0
    print(f"\nScorer benchmark: quickstart events, {PARTITIONS} partitions, "
          f"{a.entities:,} entities; {len(os.sched_getaffinity(0))} cores, Python "
          f"{platform.python_version()}; load average {load0:.2f} → {load1:.2f}; "
          f"{time.monotonic() - BEGAN:.0f} s in all")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    if not a.no_record:
        record(r, a, load0, load1)


if __name__ == "__main__":
    main()
