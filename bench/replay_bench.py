"""Replay benchmark (`make bench`'s replay step; also runs alone): streambed against Kaskada.

Steps (``--steps``, default ``kaskada,dask,kafka``):

- ``kaskada``: one seeded Parquet history per size (``--sizes EVENTS:ENTITIES,...``,
  default 2,000,000 events over 100,000 entities; 30 days, quickstart-shaped: see
  ``bench/replay_history.py``). ``streambed replay --order event-time`` (default
  ``--memory-budget`` 1 GiB) and Kaskada 0.6.1 (``bench/kaskada_replay.py``, in the
  bench-only virtualenv ``.venv-kaskada``, made here if missing) compute the same ten
  features; each runs once, as its own process: wall time and peak RSS (``wait4``). The
  values are compared on every feature column, row by row (by event id).
- ``kafka``: a local broker, ``--kafka-events`` quickstart events produced to a topic,
  then ``streambed replay --from-kafka`` (confluent-kafka ``consume``, Arrow batches): records/s
  of the whole command and of its read alone.
- ``dask``: the first ``--sizes`` history, ``streambed replay --order event-time`` with the
  local engine and with ``--engine dask`` (a local cluster of 2 worker processes,
  ``--dask-partitions`` tasks, default 4): wall, CPU (``wait4`` counts the command and the
  worker processes it started and reaped), peak RSS (the largest of those processes), and
  both outputs compared sorted by
  ``entity_id, ts, event_id`` (values and dtypes).
- ``kernels``: vectorised ``compute_features`` against the online engine per event (the
  first replay benchmark, kept for its table in BENCHMARKS.md).

Prints a table; with ``--record`` appends it to BENCHMARKS.md ("## Replay at scale") with
the date, the command and the load average (the machine is shared: say so).

    .venv/bin/python bench/replay_bench.py [--sizes 2000000:100000,10000000:1000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from replay_history import FEATURES, write_history  # noqa: E402

KASKADA = "kaskada==0.6.1"
KASKADA_VENV = REPO / ".venv-kaskada"
BEGAN = time.monotonic()


def say(msg: str) -> None:
    print(f"[{time.monotonic() - BEGAN:6.1f}s] {msg}", flush=True)


def run_measured(cmd: list[str], cwd: Path | None = None) -> tuple[float, int, str, float]:
    """Run ``cmd`` as its own process: (wall seconds, peak RSS bytes, its output, CPU
    seconds: user + system, every thread). On a shared machine CPU time moves less with
    the load than wall time does."""
    with tempfile.TemporaryFile() as out:
        began = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - began
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{text[-3000:]}")
    return wall, usage.ru_maxrss * 1024, text, usage.ru_utime + usage.ru_stime


def kaskada_python() -> Path:
    """The bench-only virtualenv with Kaskada (made on first use; never the package's)."""
    python = KASKADA_VENV / "bin" / "python"
    if not python.exists():
        say(f"making {KASKADA_VENV} with {KASKADA}")
        subprocess.run([sys.executable, "-m", "venv", str(KASKADA_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", KASKADA], check=True)
    return python


def bench_config(work: Path) -> Path:
    raw = yaml.safe_load((REPO / "examples" / "quickstart.yaml").read_text())
    raw["features"] = FEATURES
    raw["monitors"]["drift"]["features"] = ["amount_last"]
    raw["event"]["max_future"] = "3650d"  # the history is dated 2026-01
    path = work / "bench.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def compare(ours: Path, theirs: Path) -> tuple[int, list[str]]:
    """Rows compared and the feature columns that differ (floats to 1e-9 relative;
    seconds since previous: Kaskada's are whole seconds)."""
    names = [f["name"] for f in FEATURES]
    a = pd.read_parquet(ours, columns=["event_id", *names]).set_index("event_id")
    b = pd.read_parquet(theirs, columns=["event_id", *names]).set_index("event_id")
    b = b.loc[a.index]
    differ = []
    for name in names:
        x, y = a[name].to_numpy(dtype=float), b[name].to_numpy(dtype=float)
        if name == "secs_since_prev":
            x = np.floor(x)
        same = np.isclose(x, y, rtol=1e-9, atol=0) | (np.isnan(x) & np.isnan(y))
        if not same.all():
            differ.append(f"{name} ({int((~same).sum())} rows)")
    return len(a), differ


def step_kaskada(args: argparse.Namespace, work: Path, results: dict[str, Any]) -> None:
    config = bench_config(work)
    python = kaskada_python()
    for size in args.sizes.split(","):
        events, entities = (int(x) for x in size.split(":"))
        history = work / f"history_{events}.parquet"
        if not history.exists():
            say(f"writing {events:,} events over {entities:,} entities")
            write_history(history, events, entities)
        ours, theirs = work / f"ours_{events}.parquet", work / f"kaskada_{events}.parquet"
        load = os.getloadavg()[0]
        say(f"streambed replay, {events:,} events (load {load:.1f})")
        wall, rss, text, cpu = run_measured([
            sys.executable, "-m", "streams.cli", "replay", "--config", str(config),
            "--events", str(history), "--order", "event-time", "--out", str(ours),
            "--no-progress", "--memory-budget", args.memory_budget], cwd=REPO)
        memory = [line.strip() for line in text.splitlines()
                  if line.strip().startswith(("memory:", "peak RSS by phase"))]
        for line in [*memory, text.strip().splitlines()[-1]]:
            say(line)
        load_k = os.getloadavg()[0]
        say(f"kaskada, {events:,} events (load {load_k:.1f})")
        k_wall, k_rss, _, k_cpu = run_measured(
            [str(python), str(REPO / "bench" / "kaskada_replay.py"), str(history), str(theirs)])
        rows, differ = compare(ours, theirs)
        results[f"kaskada_{events}"] = {
            "events": events, "entities": entities, "wall": wall, "rss": rss,
            "cpu": cpu, "k_cpu": k_cpu, "k_wall": k_wall, "k_rss": k_rss, "rows": rows,
            "differ": differ, "memory": memory,
            "load": (load + load_k + os.getloadavg()[0]) / 3,
            "buckets": next((line.split(":")[1].split()[0] for line in text.splitlines()
                             if "entity buckets" in line), "1")}
        say(f"ours {wall:.1f}s (CPU {cpu:.1f}s) {rss / 2**30:.2f} GiB; kaskada {k_wall:.1f}s "
            f"(CPU {k_cpu:.1f}s) "
            f"{k_rss / 2**30:.2f} GiB; {rows:,} rows compared, differing: {differ or 'none'}")
        for path in (ours, theirs):
            path.unlink(missing_ok=True)


def step_dask(args: argparse.Namespace, work: Path, results: dict[str, Any]) -> None:
    config = bench_config(work)
    events, entities = (int(x) for x in args.sizes.split(",")[0].split(":"))
    history = work / f"history_{events}.parquet"
    if not history.exists():
        say(f"writing {events:,} events over {entities:,} entities")
        write_history(history, events, entities)
    common = [sys.executable, "-m", "streams.cli", "replay", "--config", str(config),
              "--events", str(history), "--order", "event-time", "--no-progress"]
    local, dask = work / "local.parquet", work / "dask.parquet"
    shutil.rmtree(dask, ignore_errors=True)
    load = os.getloadavg()[0]
    say(f"local engine, {events:,} events (load {load:.1f})")
    wall, rss, text, cpu = run_measured([*common, "--out", str(local)], cwd=REPO)
    say(text.strip().splitlines()[-1])
    load_d = os.getloadavg()[0]
    say(f"dask engine, {args.dask_partitions} partitions, 2 workers (load {load_d:.1f})")
    d_wall, d_rss, d_text, d_cpu = run_measured(
        [*common, "--engine", "dask", "--partitions", str(args.dask_partitions),
         "--out", str(dask)], cwd=REPO)
    say(d_text.strip().splitlines()[-1])
    key = ["entity_id", "ts", "event_id"]
    a = pd.read_parquet(local).sort_values(key, kind="stable").reset_index(drop=True)
    b = pd.read_parquet(dask).sort_values(key, kind="stable").reset_index(drop=True)
    same = (list(a.columns) == list(b.columns) and a.dtypes.equals(b.dtypes)
            and a.equals(b))
    results["dask"] = {"events": events, "partitions": args.dask_partitions, "wall": wall,
                       "cpu": cpu, "rss": rss, "d_wall": d_wall, "d_cpu": d_cpu,
                       "d_rss": d_rss, "same": same, "rows": len(a),
                       "load": (load + load_d + os.getloadavg()[0]) / 3}
    say(f"local {wall:.1f}s, dask {d_wall:.1f}s ({wall / d_wall:.2f}x local); "
        f"outputs {'equal' if same else 'DIFFERENT'}")
    local.unlink(missing_ok=True)
    shutil.rmtree(dask, ignore_errors=True)


def step_kafka(args: argparse.Namespace, work: Path, results: dict[str, Any]) -> None:
    from streams.config import load_config
    from streams.devtools.kafka_local import BrokerOptions, start, stop
    from streams.replay.topic import TopicHistory
    from streams.topics import ensure_topics
    from tests.support import free_port, port_is_free

    port = next(p for p in (free_port() for _ in range(50))
                if p + 1000 < 65536 and port_is_free(p + 1000))
    broker = BrokerOptions(port=port, data_dir=work / "kafka", heap_mb=768)
    start(broker, log=say)
    try:
        raw = yaml.safe_load(bench_config(work).read_text())
        raw["broker"] = f"kafka://{broker.bootstrap}"
        raw["topics"] = {"events": "bench.events", "labels": "bench.labels",
                         "scored": "bench.scored", "dlq": "bench.dlq", "partitions": 4}
        path = work / "kafka.yaml"
        path.write_text(yaml.safe_dump(raw))
        config = load_config(path)
        ensure_topics(config)
        n = args.kafka_events
        say(f"producing {n:,} events")
        produce_history(broker.bootstrap, config.topics.events, n)
        load = os.getloadavg()[0]
        began, cpu_began = time.perf_counter(), time.process_time()
        read = sum(len(b) for b in TopicHistory(config, config.topics.events).batches())
        read_seconds = time.perf_counter() - began
        read_cpu = time.process_time() - cpu_began
        wall, rss, text, cpu = run_measured([
            sys.executable, "-m", "streams.cli", "replay", "--config", str(path),
            "--from-kafka", "--order", "arrival", "--out", str(work / "kafka.parquet"),
            "--no-progress"], cwd=REPO)
        say(text.strip().splitlines()[-1])
        results["kafka"] = {"events": n, "read": read, "read_seconds": read_seconds,
                            "read_cpu": read_cpu, "wall": wall, "rss": rss, "cpu": cpu,
                            "load": (load + os.getloadavg()[0]) / 2}
        say(f"--from-kafka: read {read / read_seconds:,.0f} records/s; whole replay "
            f"{n / wall:,.0f} records/s ({wall:.1f}s, {rss / 2**30:.2f} GiB)")
    finally:
        stop(broker, log=say)


def produce_history(bootstrap: str, topic: str, n: int) -> None:
    """``n`` quickstart events keyed by entity, produced with aiokafka in large batches."""
    import asyncio

    import pyarrow.parquet as pq
    from aiokafka import AIOKafkaProducer

    history = Path(tempfile.mkdtemp()) / "h.parquet"
    write_history(history, n, max(1, n // 20))
    frame = pq.read_table(history).to_pandas()
    lines = frame.to_json(orient="records", lines=True).splitlines()
    keys = frame["entity_id"].tolist()

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20,
                                    max_batch_size=1 << 20, acks=1)
        await producer.start()
        try:
            for lo in range(0, n, 20_000):
                futures = [await producer.send(topic, line.encode(), key=key.encode())
                           for line, key in zip(lines[lo:lo + 20_000], keys[lo:lo + 20_000],
                                                strict=True)]
                await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(send())
    shutil.rmtree(history.parent, ignore_errors=True)


def step_kernels(args: argparse.Namespace, results: dict[str, Any]) -> None:
    from replay_history import START_MS

    from features import FeatureEngine, FeatureSet, compute_features

    fs = FeatureSet(features=FEATURES)
    rng = np.random.default_rng(7)
    n = 1_000_000
    events = pd.DataFrame({"entity_id": rng.integers(0, 10_000, n),
                           "ts": np.sort(rng.integers(START_MS, START_MS + 30 * 86_400_000, n)),
                           "amount": rng.lognormal(3, 1.2, n), "income": 1000.0,
                           "credit_score": 700.0,
                           "channel": rng.choice(["web", "branch"], n)})
    began = time.perf_counter()
    compute_features(events, fs)
    offline = n / (time.perf_counter() - began)
    engine, states = FeatureEngine(fs, 0), {}
    sample = events.iloc[:50_000].to_dict("records")
    began = time.perf_counter()
    for row in sample:
        state = states.setdefault(row["entity_id"], engine.new_state())
        engine.apply(state, row["ts"], row)
    online = len(sample) / (time.perf_counter() - began)
    results["kernels"] = {"offline": offline, "online": online, "load": os.getloadavg()[0]}
    say(f"compute_features {offline:,.0f} events/s; online engine {online:,.0f} events/s")


def table(results: dict[str, Any]) -> list[str]:
    rows = ["| what | streambed | Kaskada 0.6.1 | ratio | load average |",
            "| --- | --- | --- | --- | --- |"]
    for key, r in results.items():
        if key.startswith("kaskada_"):
            differ = ", ".join(r["differ"]) or "none"
            rows.append(
                f"| {r['events']:,} events / {r['entities']:,} entities, wall | "
                f"{r['wall']:.1f} s ({r['events'] / r['wall']:,.0f} events/s) | "
                f"{r['k_wall']:.1f} s | {r['k_wall'] / r['wall']:.2f}x | {r['load']:.1f} |")
            rows.append(
                f"| same, CPU (user + system) | {r['cpu']:.1f} s | {r['k_cpu']:.1f} s | "
                f"{r['k_cpu'] / r['cpu']:.2f}x | |")
            rows.append(
                f"| same, peak RSS | {r['rss'] / 2**30:.2f} GiB ({r['buckets']} bucket(s)) | "
                f"{r['k_rss'] / 2**30:.2f} GiB | | |")
            rows.append(f"| same, values ({r['rows']:,} rows, 10 features) | differing "
                        f"columns: {differ} | | | |")
            for line in r.get("memory", []):
                rows.append(f"| same, streambed's {line.split(':')[0]} | "
                            f"{line.split(':', 1)[1].strip()} | | | |")
    if "kafka" in results:
        r = results["kafka"]
        rows.append(f"| `--from-kafka` read (confluent-kafka consume → Arrow), {r['read']:,} "
                    f"records | {r['read'] / r['read_seconds']:,.0f} records/s "
                    f"({r['read'] / r['read_cpu']:,.0f} per CPU second) | | | "
                    f"{r['load']:.1f} |")
        rows.append(f"| `replay --from-kafka` end to end, {r['events']:,} records | "
                    f"{r['events'] / r['wall']:,.0f} records/s ({r['wall']:.1f} s, "
                    f"{r['events'] / r['cpu']:,.0f} per CPU second, "
                    f"{r['rss'] / 2**30:.2f} GiB) | | | |")
    if "dask" in results:
        r = results["dask"]
        rows.append(f"| `--engine dask`, 2 worker processes, {r['partitions']} partitions, "
                    f"{r['events']:,} events: wall (local engine's) | {r['d_wall']:.1f} s "
                    f"({r['wall']:.1f} s: dask is {r['wall'] / r['d_wall']:.2f}x local) | "
                    f"| | {r['load']:.1f} |")
        rows.append(f"| same, CPU of the command and its workers, largest peak RSS (local "
                    f"engine's) | {r['d_cpu']:.1f} s, "
                    f"{r['d_rss'] / 2**30:.2f} GiB ({r['cpu']:.1f} s, "
                    f"{r['rss'] / 2**30:.2f} GiB) | | | |")
        rows.append(f"| same, outputs sorted by (entity_id, ts, event_id), {r['rows']:,} rows "
                    f"| {'equal, dtypes equal' if r['same'] else 'DIFFERENT'} | | | |")
    if "kernels" in results:
        r = results["kernels"]
        rows.append(f"| `compute_features` vs online engine (ten features) | "
                    f"{r['offline']:,.0f} vs {r['online']:,.0f} events/s | | | "
                    f"{r['load']:.1f} |")
    return rows


def record(rows: list[str], argv: list[str]) -> None:
    path = REPO / "BENCHMARKS.md"
    text = path.read_text()
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = (f"\n{when}, `.venv/bin/python bench/replay_bench.py {' '.join(argv)}` "
             f"(shared 2-core machine, loaded by other work: figures are one run each):\n\n"
             + "\n".join(rows) + "\n")
    heading = "## Replay at scale"
    if heading not in text:
        text = text.rstrip("\n") + f"\n\n{heading}\n"
    head, _, rest = text.partition(heading)
    nxt = rest.find("\n## ")
    section, tail = (rest, "") if nxt < 0 else (rest[:nxt], rest[nxt:])
    path.write_text(head + heading + section.rstrip("\n") + "\n" + block + tail)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", default="kaskada,dask,kafka")
    p.add_argument("--sizes", default="2000000:100000",
                   help="EVENTS:ENTITIES,... for the Kaskada side-by-side")
    p.add_argument("--memory-budget", default="1GiB")
    p.add_argument("--kafka-events", type=int, default=500_000)
    p.add_argument("--dask-partitions", type=int, default=4)
    p.add_argument("--work", help="keep histories here (default: a temporary directory)")
    p.add_argument("--record", action="store_true", help="append to BENCHMARKS.md")
    args = p.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="replay-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    steps = args.steps.split(",")
    try:
        if "kernels" in steps:
            step_kernels(args, results)
        if "kaskada" in steps:
            step_kaskada(args, work, results)
        if "dask" in steps:
            step_dask(args, work, results)
        if "kafka" in steps:
            step_kafka(args, work, results)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    rows = table(results)
    print("\n".join(rows))
    if args.record:
        record(rows, sys.argv[1:])


if __name__ == "__main__":
    main()
