"""The ``streambed`` command line: every command of :data:`COMMANDS`.

Every command validates its config first and exits with status 2 and the dotted path of
each bad field when the config is wrong, before connecting to anything. A supervised
command (``worker``, ``learner``) validates it in its child: the supervisor imports no
more than it needs to start that child (this module, argparse, :mod:`streams.supervise`:
no pydantic, NumPy or config), and stops with the child's status 2
(:data:`streams.supervise.USAGE_EXIT`).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.config import Config


def _config(args: argparse.Namespace) -> Config:
    from streams.config import load_config

    overrides = {"broker": getattr(args, "broker", None)}
    return load_config(args.config, **overrides)


def _kafka(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from streams.config import load_config
    from streams.devtools.kafka_local import (
        BrokerError,
        BrokerOptions,
        resolve_classpath,
        start,
        status,
        stop,
    )

    try:
        opts = BrokerOptions(port=args.port, controller_port=args.controller_port,
                             data_dir=args.data_dir, sasl=args.sasl)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"])) or "ports"
        message = first["msg"].removeprefix("Value error, ")
        raise BrokerError(f"kafka: {where}: {message}") from None
    if args.action == "fetch":
        print(f"kafka: broker jars in {resolve_classpath(opts)}")
    elif args.action == "start":
        # The ACLs name the config's topics; without --config, the default topic names and
        # every application prefix "streambed-". The config's own credentials are not
        # needed (nor yet known: the first start generates the passwords).
        config = load_config(args.config, security={}) if args.config else None
        start(opts)
        if opts.sasl:
            from streams.config import Topics
            from streams.devtools.kafka_acls import grant_acls
            from streams.topics import scorer_app_id

            grant_acls(opts, config.topics if config else Topics(),
                       scorer_app_id(config) if config else "streambed-")
    elif args.action == "stop":
        stop(opts)
    else:
        st = status(opts)
        print(f"kafka: {st.detail}")
        return 0 if st.reachable else 1
    return 0


def _worker(args: argparse.Namespace) -> int:
    from streams.supervise import child_argv, exit_when_crashed, is_supervised, supervise

    if not args.no_supervise and not is_supervised():
        return supervise(child_argv(), "worker")  # the child validates the config
    config = _config(args)  # before the heavy imports: a bad config fails at once
    import faust

    from streams.scorer.app import create_app
    from streams.scorer.stale_state import discard_stale_databases
    from streams.topics import end_offsets, ensure_topics

    ensure_topics(config)
    data_dir = Path(args.data_dir or f"var/worker-{args.web_port}")
    app = create_app(config, web_port=args.web_port, web_host=args.web_host,
                     data_dir=data_dir)
    # Databases older than their changelogs (faust #158) go before Faust opens them.
    discard_stale_databases(app.tables.values(), functools.partial(end_offsets, config))
    print(f"worker: feature set {config.features.identity}; metrics on "
          f"http://127.0.0.1:{args.web_port}/metrics", flush=True)
    worker = faust.Worker(app, loglevel=args.loglevel, quiet=True, redirect_stdouts=False)
    # Faust's terminal spinner sets the root logger to DEBUG so that every debug record
    # spins it: a sixth of the worker's time went to formatting unseen debug records.
    worker.spinner = None
    quiet_startup_noise()
    exit_when_crashed(app)
    worker.execute_from_commandline()
    return 0


class _StartupNoise(logging.Filter):
    """aiokafka logs ``GroupCoordinatorNotAvailableError`` at ERROR while a fresh broker
    elects the coordinator of a new consumer group: routine on every first start, retried
    within a second. Logged at INFO instead, so ERROR means trouble."""

    def filter(self, record: logging.LogRecord) -> bool:
        noise = "GroupCoordinatorNotAvailable" in record.getMessage()
        if record.levelno >= logging.ERROR and noise:
            record.levelno, record.levelname = logging.INFO, "INFO"
            return logging.getLogger(record.name).isEnabledFor(logging.INFO)
        return True


def quiet_startup_noise() -> None:
    for name in ("aiokafka.consumer.group_coordinator", "aiokafka.consumer", "aiokafka"):
        logging.getLogger(name).addFilter(_StartupNoise())


def _learner(args: argparse.Namespace) -> int:
    from streams.supervise import child_argv, is_supervised, supervise

    if not args.no_supervise and not is_supervised():
        return supervise(child_argv(), "learner")  # the child validates the config
    config = _config(args)
    import signal
    import threading

    from prometheus_client import CollectorRegistry, disable_created_metrics

    from monitors.metrics import Metrics, add_standard_collectors
    from monitors.monitoring import Monitoring
    from streams.learner.runner import Learner
    from streams.learner.web import serve
    from streams.topics import ensure_topics

    logging.basicConfig(level=args.loglevel.upper(),
                        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s")
    quiet_startup_noise()
    ensure_topics(config)
    disable_created_metrics()
    registry = CollectorRegistry()
    add_standard_collectors(registry)
    metrics = Metrics(registry)
    # The learner watches labels, not feature drift (each scorer does): no drift features.
    label_monitors = config.monitors.model_copy(
        update={"drift": config.monitors.drift.model_copy(update={"features": None})})
    monitoring = Monitoring(label_monitors, [], metrics)
    learner = Learner(config, metrics, monitoring)
    server = serve(registry, learner.readiness, args.web_host, args.web_port)
    print(f"learner: feature set {config.features.identity}; metrics on "
          f"http://{args.web_host}:{args.web_port}/metrics", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        learner.run(stop)
    finally:
        server.shutdown()
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from streams.devtools.simulate import SimulationOptions, Simulator
    from streams.devtools.sinks import FileSink, KafkaSink, Pacer

    config = _config(args)
    opts = SimulationOptions(
        count=args.count, seed=args.seed, entities=args.entities,
        malformed_ratio=args.malformed_ratio, drift_at=args.drift_at,
        disparity_at=args.disparity_at, disparity_group=args.disparity_group,
        disorder_ms=int(args.disorder_seconds * 1000), label_ratio=args.label_ratio,
    )
    sink = FileSink(Path(args.out)) if args.out else KafkaSink(config)
    counts = {"events": 0, "malformed": 0, "labels": 0}
    pacer = Pacer(args.rate)
    with sink:
        for i, rec in enumerate(Simulator(config, opts).records()):
            sink.write(rec)
            if rec.kind == "label":
                counts["labels"] += 1
            else:
                counts["events" if rec.valid else "malformed"] += 1
            if rec.kind == "event":
                pacer.tick()
            if args.progress and i and i % args.progress == 0:
                print(f"simulate: {counts}", flush=True)
    print("simulate: " + " ".join(f"{k}={v}" for k, v in counts.items()), flush=True)
    return 0


def _schemas(args: argparse.Namespace) -> int:
    from streams.records import json_schemas

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    schemas = json_schemas(_config(args).event if args.config else None)
    for name, schema in schemas.items():
        (out / f"{name}.schema.json").write_text(json.dumps(schema, indent=2) + "\n")
    from streams.scorer.http_api import openapi

    (out / "openapi.json").write_text(json.dumps(openapi(), indent=2) + "\n")
    print(f"schemas: wrote {len(schemas)} JSON Schemas and openapi.json to {out}")
    return 0


def _add_kafka_parser(sub: Any, config_of: Any) -> None:
    k = sub.add_parser("kafka", help="a real local Kafka broker (KRaft) for dev and tests")
    k.add_argument("action", choices=["start", "stop", "status", "fetch"],
                   help="fetch: resolve the broker's jars with Maven, start nothing")
    k.add_argument("--port", type=int, default=9092, help="client port (default 9092)")
    k.add_argument("--controller-port", type=int, default=None,
                   help="KRaft controller port (default: --port + 1000, so 10092)")
    k.add_argument("--data-dir", type=Path, default=Path("var/kafka"))
    k.add_argument("--sasl", action="store_true",
                   help="start: require SASL logins (PLAIN or SCRAM) and enforce ACLs (users "
                        "admin, streambed, analyst; passwords in DATA_DIR/credentials.json)")
    k.add_argument("--config", help="start --sasl: grant the ACLs for this config's topics "
                                    "(default: the default topic names)")
    k.set_defaults(func=_kafka)


def _add_worker_parser(sub: Any, config_of: Any) -> None:
    w = sub.add_parser("worker", help="run the stream processor (a Faust worker)")
    w.add_argument("--config", required=True)
    w.add_argument("--broker", help="override the config's broker URL (kafka://HOST:PORT)")
    w.add_argument("--web-port", type=int, default=6066)
    w.add_argument("--data-dir", help="this worker's own data directory")
    w.add_argument("--web-host", default="127.0.0.1",
                   help="address of /metrics, /ready, /features (0.0.0.0 in a container)")
    w.add_argument("--loglevel", default="warning")
    w.add_argument("--no-supervise", action="store_true",
                   help="run the Faust worker in this process, without restarts")
    w.set_defaults(func=_worker)


def _add_learner_parser(sub: Any, config_of: Any) -> None:
    lr = sub.add_parser("learner", help="the learner: training log -> versions -> gates")
    lr.add_argument("--config", required=True)
    lr.add_argument("--broker", help="override the config's broker URL (kafka://HOST:PORT)")
    lr.add_argument("--web-port", type=int, default=6067)
    lr.add_argument("--web-host", default="127.0.0.1")
    lr.add_argument("--loglevel", default="warning")
    lr.add_argument("--no-supervise", action="store_true",
                    help="run the learner in this process, without restarts")
    lr.set_defaults(func=_learner)


def _add_simulate_parser(sub: Any, config_of: Any) -> None:
    s = sub.add_parser("simulate", help="synthetic events and delayed labels")
    s.add_argument("--config", required=True)
    s.add_argument("--broker")
    s.add_argument("--count", type=int, default=1000)
    s.add_argument("--rate", type=float, default=0.0, help="events per second (0: unthrottled)")
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--entities", type=int, default=200)
    s.add_argument("--out", help="write events.jsonl and labels.jsonl here instead of Kafka")
    s.add_argument("--malformed-ratio", type=float, default=0.0)
    s.add_argument("--label-ratio", type=float, default=1.0)
    s.add_argument("--disorder-seconds", type=float, default=0.0)
    s.add_argument("--drift-at", type=float, help="inject feature drift from this fraction on")
    s.add_argument("--disparity-at", type=float, help="inject a group disparity from here on")
    s.add_argument("--disparity-group", default="B")
    s.add_argument("--progress", type=int, default=0, help="print counts every N records")
    s.set_defaults(func=_simulate)


def _add_schemas_parser(sub: Any, config_of: Any) -> None:
    sc = sub.add_parser("schemas", help="write the JSON Schemas of the wire records")
    sc.add_argument("--out", default="schemas")
    sc.add_argument("--config", help="also write the schema of this config's events")
    sc.set_defaults(func=_schemas)


#: Every command, in the order of ``--help``, with what adds its parser: a function of this
#: module, or ``"module:function"`` imported only when needed. A command line that names
#: a command builds that command's parser alone, so a worker (and its supervised child)
#: does not import the replay, backtest and report modules (pandas, MLflow, Dask: seconds
#: of start-up it has no use for), and replay does not import the model and evaluate
#: modules (River and SciPy: seconds of start-up and ~100 MB).
COMMANDS: dict[str, Callable[[Any, Any], None] | str] = {
    "kafka": _add_kafka_parser,
    "worker": _add_worker_parser,
    "learner": _add_learner_parser,
    "simulate": _add_simulate_parser,
    "schemas": _add_schemas_parser,
    "model": "streams.learner.commands:add_model_parser",
    "replay": "streams.replay.cli:add_replay_parser",
    "features": "streams.features_cli:add_features_parser",
    "evaluate": "streams.backtest.cli:add_evaluate_parser",
    "report": "streams.report.cli:add_report_parser",
}


def _parser_adder(where: Callable[[Any, Any], None] | str) -> Callable[[Any, Any], None]:
    if callable(where):
        return where
    module, _, function = where.partition(":")
    return getattr(importlib.import_module(module), function)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line; ``command`` (the one given, if it is one of :data:`COMMANDS`)
    builds that command alone and imports no other command's module."""
    p = argparse.ArgumentParser(prog="streambed", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for name in [command] if command in COMMANDS else COMMANDS:
        _parser_adder(COMMANDS[name])(sub, _config)
    return p


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    args = build_parser(next((a for a in given if not a.startswith("-")), None)).parse_args(
        argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        status = _exit_status(exc)
        if status is None:
            raise
        print(f"streambed: {exc}", file=sys.stderr)
        return status


def _exit_status(exc: Exception) -> int | None:
    """2 for a :class:`streams.config.ConfigError`, 1 for a ``RuntimeError`` (BrokerError
    and friends: one clear line, no traceback), None for anything else (a traceback).
    A ConfigError exists only once streams.config is imported, which this module does
    not do before a command needs it (the supervisor never does)."""
    config = sys.modules.get("streams.config")
    if config is not None and isinstance(exc, config.ConfigError):
        return 2
    return 1 if isinstance(exc, RuntimeError) else None


if __name__ == "__main__":
    sys.exit(main())
