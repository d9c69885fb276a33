"""The chaos suite: hostile input, killed processes and a broker outage, then the invariant.

On its own real broker (free ports, its own data directory), a scorer (state on RocksDB,
the default store) and a learner take a stream of valid simulated events and labels mixed
with hostile payloads of every kind in :mod:`tests.chaos.hostile`, while the suite kills
the scorer with SIGKILL at random points (restarting it on its data directory each time),
kills the learner once, and kills the broker for an outage. Faults in a recovery: a scorer
that lost its disk recovers every table from its changelogs, and the moment faust's log
says it started reading them the suite kills the scorer or the broker (the fault must come
before the log says it was done, and the scorer must be ready again). Then it checks, from
the topics themselves:

- **nothing lost, one outcome each**: every record of ``events`` has a scored record or a
  dead letter at its source position, never both;
- **every invalid label** has a dead letter;
- **parity**: the features of every scored record equal what ``replay --order arrival``
  computes from the same topic (entities with an online-only rejection excluded);
- **exactly-once learning**: ``rebuild --verify`` of the latest version passes;

and prints a figures table. Every loop is bounded.

    python -m tests.chaos.suite            # make chaos: >= 10,000 hostile payloads, 3 kills,
                                           # a kill and a broker kill in recoveries
    python -m tests.chaos.suite --small    # what make test runs
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from streams.config import Config, load_config
from streams.devtools.kafka_local import BrokerOptions, _read_pid, start, stop
from streams.devtools.simulate import SimulationOptions, Simulator
from streams.replay import read_events_topic, replay
from streams.topics import ensure_topics, read_all
from tests.chaos.hostile import EVENT_KINDS, hostile_stream
from tests.conftest import free_broker_port
from tests.support import REPO, Worker, free_port, fresh_config, wait_until

#: Dead-letter reasons only the online scorer can give (replay does not know them).
ONLINE_ONLY = {"duplicate_event_id", "entity_state_limit", "processing_error"}


@dataclass
class Plan:
    valid_events: int
    hostile_events: int
    hostile_labels: int
    scorer_kills: int
    learner_kill: bool
    outage_seconds: float
    rate: float
    #: Faults while a scorer that lost its disk recovers its tables from their changelogs:
    #: "scorer_in_recovery" (SIGKILL the scorer), "broker_in_recovery" (SIGKILL the broker).
    in_recovery: tuple[str, ...] = ()
    #: The broker outage of "broker_in_recovery".
    recovery_outage_seconds: float = 5.0
    #: Fail when a fault meant for the recovery came after it was done.
    must_land_in_recovery: bool = True
    seed: int = 7


FULL = Plan(valid_events=6_000, hostile_events=10_000, hostile_labels=2_000, scorer_kills=3,
            learner_kill=True, outage_seconds=30.0, rate=250.0,
            in_recovery=("scorer_in_recovery", "broker_in_recovery"))
SMALL = Plan(valid_events=1_500, hostile_events=1_200, hostile_labels=300, scorer_kills=0,
             learner_kill=True, outage_seconds=0.0, rate=1_200.0,
             in_recovery=("scorer_in_recovery",))


@dataclass
class Figures:
    values: dict[str, Any] = field(default_factory=dict)

    def table(self) -> str:
        width = max(len(k) for k in self.values)
        return "\n".join(f"| {k.ljust(width)} | {v} |" for k, v in self.values.items())


def _config(work: Path, bootstrap: str) -> Path:
    return fresh_config(work, bootstrap, "chaos",
                        model={**_quickstart_model(), "promotion": {"examples_per_version": 300}})


def _quickstart_model() -> dict[str, Any]:
    return yaml.safe_load((REPO / "examples" / "quickstart.yaml").read_text())["model"]


def _stream(config: Config, plan: Plan) -> list[tuple[str, str, bytes, str]]:
    topics = {"event": config.topics.events, "label": config.topics.labels}
    sim = SimulationOptions(count=plan.valid_events, seed=plan.seed, entities=400,
                            mean_gap_ms=2_000, label_delay_ms=60_000)
    valid = [(topics[r.kind], r.key, r.value, "valid") for r in Simulator(config, sim).records()]
    start_ms = sim.start_ms
    hostile = [(topics[kind_in], key, value, kind) for kind_in, key, value, kind in
               hostile_stream(plan.hostile_events, plan.hostile_labels, start_ms, plan.seed)]
    rng = random.Random(plan.seed)
    out: list[tuple[str, str, bytes, str]] = []
    h = 0
    for rec in valid:  # hostile records spread evenly through the valid stream
        out.append(rec)
        while h < len(hostile) and rng.random() < len(hostile) / len(valid):
            out.append(hostile[h])
            h += 1
    out.extend(hostile[h:])
    return out


class Producer(threading.Thread):
    """Produces the stream at a pace; pauses while the broker is down."""

    def __init__(self, bootstrap: str, records: list[tuple[str, str, bytes, str]],
                 rate: float) -> None:
        super().__init__(daemon=True)
        from kafka import KafkaProducer

        self.records, self.rate = records, rate
        self.sent = 0
        self.paused = threading.Event()
        self.error: BaseException | None = None
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                      enable_idempotence=True, retries=2**31 - 1,
                                      max_block_ms=120_000,
                                      request_timeout_ms=30_000, delivery_timeout_ms=600_000,
                                      max_request_size=4 << 20)

    def run(self) -> None:
        try:
            began = time.monotonic()
            for topic, key, value, _ in self.records:
                while self.paused.is_set():
                    time.sleep(0.1)
                    began = time.monotonic() - self.sent / self.rate
                self.producer.send(topic, key=key.encode(), value=value)
                self.sent += 1
                ahead = self.sent / self.rate - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)
            self.producer.flush(timeout=300)
        except BaseException as exc:  # reported by the suite, never swallowed
            self.error = exc

    def wait_for(self, fraction: float, deadline: float) -> None:
        while self.sent < fraction * len(self.records) and time.monotonic() < deadline:
            if not self.is_alive():
                return
            time.sleep(0.05)


def run(plan: Plan, work: Path, say: Any = print) -> Figures:
    figures = Figures()
    broker = BrokerOptions(port=free_broker_port(), data_dir=work / "kafka")
    start(broker, log=say)
    procs: list[Worker] = []
    began = time.monotonic()
    try:
        path = _config(work, broker.bootstrap)
        config = load_config(path)
        assert config.state.store == "rocksdb", "the chaos suite runs on the RocksDB store"
        ensure_topics(config)
        records = _stream(config, plan)
        # Logging at info: faust's recovery says when it starts reading the changelogs.
        scorer = Worker(path, free_port(), work / "scorer", loglevel="info")
        learner = Worker(path, free_port(), work / "learner", role="learner")
        for w in (scorer, learner):
            w.start(120)
            procs.append(w)
        producer = Producer(broker.bootstrap, records, plan.rate)
        producer.start()
        deadline = (time.monotonic() + 30 + 4 * len(records) / plan.rate + plan.outage_seconds
                    + 60 * len(plan.in_recovery))
        rng = random.Random(plan.seed)
        faults: list[tuple[float, str]] = [(rng.uniform(0.1, 0.9), "scorer")
                                           for _ in range(plan.scorer_kills)]
        if plan.learner_kill:
            faults.append((rng.uniform(0.2, 0.8), "learner"))
        if plan.outage_seconds:
            faults.append((rng.uniform(0.3, 0.7), "broker"))
        faults.extend((rng.uniform(0.5, 0.95), what) for what in plan.in_recovery)
        recoveries: list[str] = []
        for at, what in sorted(faults):
            producer.wait_for(at, deadline)
            say(f"chaos: {what} at {producer.sent}/{len(records)} records")
            if what == "scorer":  # restarted on its data directory, as a supervisor does
                scorer.kill()
                scorer.start(120)
            elif what == "learner":
                learner.kill()
                procs.remove(learner)
                learner = Worker(path, free_port(), work / f"learner-{producer.sent}",
                                 role="learner")
                learner.start(120)
                procs.append(learner)
            elif what == "broker":
                producer.paused.set()
                _kill_broker(broker)
                time.sleep(plan.outage_seconds)
                start(broker, log=say)
                producer.paused.clear()
            else:  # a fault while the scorer recovers its tables from their changelogs
                landed = _in_recovery(scorer, what, broker, plan, producer, say)
                recoveries.append(f"{what}: {'during' if landed else 'after'} recovery")
                assert landed or not plan.must_land_in_recovery, \
                    f"{what} missed the recovery:\n{scorer.log()}"
        producer.join(timeout=max(1.0, deadline - time.monotonic()))
        assert producer.error is None, f"producing failed: {producer.error!r}"
        assert not producer.is_alive(), "the producer did not finish in time"
        figures.values.update(_check(config, path, records, scorer, learner, say))
        figures.values["scorer kills (SIGKILL)"] = plan.scorer_kills
        figures.values["learner kills (SIGKILL)"] = int(plan.learner_kill)
        figures.values["broker outage (s)"] = plan.outage_seconds
        figures.values["faults in recovery (SIGKILL)"] = ", ".join(recoveries) or "none"
        figures.values["state store"] = config.state.store
        figures.values["wall time (s)"] = round(time.monotonic() - began)
        return figures
    finally:
        for w in procs:
            w.stop()
        stop(broker, log=say)


#: What faust-streaming logs (at info, tables/recovery.py) when it starts and when it is done
#: reading the changelogs of the table partitions it was given.
#: A recovery begins with the scorer's bulk restore (streams/scorer/restore.py), or with
#: faust's own record-by-record recovery when no bulk restore applies; either way faust
#: says "Recovery complete" when the tables are recovered.
RECOVERY_STARTS = ("in bulk from the changelog", "Restoring state from changelog topics")
RECOVERY_ENDS = "Recovery complete"


def _kill_broker(broker: BrokerOptions) -> None:
    pid = _read_pid(broker)
    assert pid is not None, "the broker is not running"
    os.kill(pid, signal.SIGKILL)


def _in_recovery(scorer: Worker, what: str, broker: BrokerOptions, plan: Plan,
                 producer: Producer, say: Any) -> bool:
    """Kill the scorer and lose its disk, then restart it (same data directory and port, so
    the same static member): it recovers every table from its changelogs from their
    beginning. The moment its log says it started reading them, SIGKILL the scorer
    (``scorer_in_recovery``; restarted on what it recovered so far) or the broker
    (``broker_in_recovery``; back after ``plan.recovery_outage_seconds``). True when the
    fault came before the recovery was done (its log does not say it was)."""
    scorer.kill()
    shutil.rmtree(scorer.data_dir)
    mark = scorer.log_path.stat().st_size

    def log_text() -> str:
        return scorer.log_path.read_bytes()[mark:].decode(errors="replace")

    scorer.start(wait=False)
    wait_until(lambda: any(m in log_text() for m in RECOVERY_STARTS), 120,
               "the scorer to start recovering",
               step=0.01)
    if what == "scorer_in_recovery":
        scorer.kill()
        landed = RECOVERY_ENDS not in log_text()
        scorer.start(120)
    else:
        producer.paused.set()
        _kill_broker(broker)
        landed = RECOVERY_ENDS not in log_text()
        time.sleep(plan.recovery_outage_seconds)
        start(broker, log=say)
        producer.paused.clear()
    began = time.monotonic()
    try:
        wait_until(lambda: _ready(scorer), 180, f"the scorer to recover after {what}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}:\n{scorer.log()}") from None
    say(f"chaos: {what} {'during' if landed else 'after'} the recovery; the scorer was "
        f"ready {time.monotonic() - began:.1f} s later")
    return landed


def _ready(worker: Worker) -> bool:
    """The worker's /ready says ready (partitions assigned, tables recovered, the champion
    loaded)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/ready",
                                    timeout=5) as resp:
            return bool(json.load(resp)["ready"])
    except OSError:  # 503 (not ready) included, or not listening yet
        return False


def _positions(values: list[tuple[int, bytes | None, bytes | None, int]]) -> list[dict]:
    return [json.loads(v) for _, _, v, _ in values if v]


def _all_partitions(config: Config, topic: str) -> list[tuple[int, bytes | None, bytes | None,
                                                              int]]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=config.bootstrap_servers,
                             enable_auto_commit=False, max_partition_fetch_bytes=8 << 20,
                             fetch_max_bytes=64 << 20,
                             receive_message_max_bytes=(64 << 20) + (1 << 20))
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out = []
        deadline = time.monotonic() + 120
        while any(consumer.position(tp) < ends[tp] for tp in tps) \
                and time.monotonic() < deadline:
            for tp, batch in consumer.poll(timeout_ms=500).items():
                out.extend((m.partition, m.key, m.value, m.offset) for m in batch
                           if m.offset < ends[tp])
        return out
    finally:
        consumer.close()


def _check(config: Config, path: Path, records: list[tuple[str, str, bytes, str]],
           scorer: Worker, learner: Worker, say: Any) -> dict[str, Any]:
    events = _all_partitions(config, config.topics.events)
    positions = {(p, off) for p, _, _, off in events}
    produced_events = sum(1 for t, *_ in records if t == config.topics.events)
    assert len(events) == produced_events, (len(events), produced_events)

    def accounted() -> tuple[set, set, list, list]:
        scored = [json.loads(v) for _, _, v, _ in _all_partitions(config, config.topics.scored)]
        dead = [json.loads(v) for _, _, v, _ in _all_partitions(config, config.topics.dlq)]
        s = {(r["source"]["partition"], r["source"]["offset"]) for r in scored}
        d = {(r["source"]["partition"], r["source"]["offset"]) for r in dead
             if r["input"] == "event"}
        return s, d, scored, dead

    deadline = time.monotonic() + 300
    s_pos, d_pos, scored, dead = accounted()
    while (s_pos | d_pos) != positions and time.monotonic() < deadline:
        time.sleep(3)
        s_pos, d_pos, scored, dead = accounted()
    lost = positions - (s_pos | d_pos)
    assert not lost, f"lost {len(lost)} events, e.g. {sorted(lost)[:5]}\n{scorer.log()}"
    both = s_pos & d_pos
    assert not both, f"{len(both)} events both scored and dead-lettered: {sorted(both)[:5]}"

    label_letters = [d for d in dead if d["input"] == "label"]
    invalid_labels = sum(1 for t, _, _, kind in records
                         if t == config.topics.labels and kind in (
                             "deep_label", "label_future", "label_malformed",
                             "label_not_binary"))
    letter_positions = {(d["source"]["partition"], d["source"]["offset"])
                        for d in label_letters}
    assert len(letter_positions) >= invalid_labels, (len(letter_positions), invalid_labels)

    # Parity: what the scorer sent equals replay in arrival order on the same topic.
    tainted = {_entity_of(d) for d in dead if d["reason"] in ONLINE_ONLY}
    frame = replay(config, read_events_topic(config), order="arrival").frame
    expected = {row["event_id"]: row for row in frame.to_dict("records")}
    compared = mismatched = 0
    names = config.features.names
    for rec in scored:
        if rec["entity_id"] in tainted or rec["event_id"] not in expected:
            continue
        want = expected[rec["event_id"]]
        compared += 1
        for name in names:
            got, w = rec["features"][name], want[name]
            w = None if w is None or (isinstance(w, float) and w != w) else w
            if (got is None) != (w is None) or (got is not None and abs(got - w) > 1e-9 * max(
                    1.0, abs(w))):
                mismatched += 1
                break
    assert mismatched == 0, f"{mismatched} of {compared} scored records differ from replay"

    # Exactly-once learning: the learner caught up, and the latest version rebuilds.
    training = [json.loads(v) for _, _, v, _ in read_all(config, config.topics.training, 120.0)]
    examples = len(training)
    # Every valid label names a scored event within the label TTL: each must give an
    # example (a label the consumer skipped would vanish without a count).
    valid_labels = {json.loads(v)["event_id"] for t, _, v, kind in records
                    if t == config.topics.labels and kind == "valid"}
    scored_ids = {r["event_id"] for r in scored}
    unjoined = sorted((valid_labels & scored_ids) - {e["event_id"] for e in training})
    assert not unjoined, f"{len(unjoined)} labels never joined, e.g. {unjoined[:5]}"
    wait_until(lambda: learner.metric("streambed_learner_next_offset") >= examples, 180,
               "the learner to reach the end of the training log")
    versions = {}
    for _, _, v, _ in read_all(config, config.topics.model_versions):
        record = json.loads(v)
        versions[record["version"]] = record
    latest = max(versions.values(), key=lambda r: r["sequence"])["version"]
    rebuilt = subprocess.run([sys.executable, "-m", "streams.cli", "model", "rebuild", latest,
                              "--verify", "--config", str(path)], capture_output=True,
                             text=True, cwd=REPO, timeout=300)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    say(f"chaos: {rebuilt.stdout.strip()}")

    reasons = Counter({(d["source"]["partition"], d["source"]["offset"]): d["reason"]
                       for d in dead if d["input"] == "event"}.values())
    distinct_scored = len({r["event_id"] for r in scored})
    return {
        "events produced (valid + hostile)": produced_events,
        "hostile event payloads / kinds": f"{sum(1 for *_, k in records if k != 'valid' and k in EVENT_KINDS)} / {len(EVENT_KINDS)}",  # noqa: E501
        "labels produced (valid + hostile)": sum(1 for t, *_ in records
                                                 if t == config.topics.labels),
        "events scored (distinct event_ids)": distinct_scored,
        "scored records sent again (at-least-once)": len(scored) - len(s_pos),
        "events dead-lettered": len(d_pos),
        "dead letters by reason": ", ".join(f"{r}={n}" for r, n in reasons.most_common()),
        "label dead letters": len(letter_positions),
        "lost": len(lost),
        "scored with both outcomes": len(both),
        "parity with replay (records compared / mismatched)": f"{compared} / {mismatched}",
        "training examples / versions": f"{examples} / {len(versions)}",
        "valid labels joined (distinct event_ids)": len(valid_labels & scored_ids),
        "rebuild --verify of the latest version": "identical",
    }


def _entity_of(letter: dict[str, Any]) -> str | None:
    try:
        return json.loads(base64.b64decode(letter["payload_base64"]))["entity_id"]
    except (ValueError, KeyError, TypeError):
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", action="store_true", help="the make test version")
    args = p.parse_args(argv)
    plan = SMALL if args.small else FULL
    work = Path(tempfile.mkdtemp(prefix="streambed-chaos-"))
    try:
        figures = run(plan, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"chaos: all invariants hold ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})")
    print(figures.table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
