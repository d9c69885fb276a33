"""Experiments on record: ``streambed evaluate`` and ``streambed report`` as MLflow runs.

Every backtest leaves a run that says which config, which data and which code produced
which numbers, so two backtests can be compared a week later:

- parameters: each config's name, its SHA-256 (:func:`config_sha256`), its feature-set
  identity, its model config hash and model settings; the history's source, event-time
  range, record counts and SHA-256 (:func:`history_sha256`); the command's options; the
  versions of streambed, Python, River, pandas, numpy, pyarrow and MLflow, and a SHA-256
  of every installed distribution (:func:`environment`);
- metrics: every number of the tidy evaluation frame (:mod:`governance.metric_frame`)
  with its 95% interval and sample size, one MLflow step per period (the step's
  timestamp is the period's start), named ``model/attribute/group/metric`` plus
  ``/ci_low``, ``/ci_high`` and ``/n`` (:func:`metric_key`);
- artifacts: each config as normalised JSON (no credentials), the evaluate table as
  text, the tidy frame as CSV and, for ``report``, the HTML report.

Where: ``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else a SQLite store
``mlflow.db`` in the working directory (MLflow's own default), with artifacts in
``mlruns/`` beside the database. ``--no-mlflow`` records nothing.

>>> metric_key("candidate", "group", "A", "selection_rate")
'candidate/group/A/selection_rate'
>>> metric_key("candidate", "all", "all", "roc_auc")
'candidate/roc_auc'
>>> metric_key("baseline", "region", "N=A?", "true_positive_rate")
'baseline/region/N_A_/true_positive_rate'
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import platform
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from governance.config import ModelSpec, sha256_hex
from streams.config import Config
from streams.learner.environment import dependency_set

if TYPE_CHECKING:  # imported where a frame is handled: `streambed model`'s parser imports
    import pandas as pd  # this module (through mlflow_export) and has no use for pandas

#: The experiment runs go to unless ``--experiment`` says otherwise.
DEFAULT_EXPERIMENT = "streambed"
#: MLflow's default store, in the working directory.
DEFAULT_DB = "mlflow.db"
#: Packages whose versions are run parameters of their own.
VERSIONED = ("streambed", "river", "pandas", "numpy", "pyarrow", "pydantic", "mlflow-skinny")
#: MLflow accepts at most this many metrics, and this many params, per batch call.
METRICS_PER_BATCH = 1000
PARAMS_PER_BATCH = 100
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. :]")


class TrackingError(RuntimeError):
    """MLflow could not record the run; the message says what to do."""


def add_tracking_arguments(p: argparse.ArgumentParser) -> None:
    """``--tracking-uri``, ``--experiment``, ``--no-mlflow`` (evaluate and report)."""
    p.add_argument("--tracking-uri",
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                        "sqlite:///mlflow.db in the working directory)")
    p.add_argument("--experiment", default=DEFAULT_EXPERIMENT,
                   help=f"MLflow experiment of the run (default {DEFAULT_EXPERIMENT!r})")
    p.add_argument("--no-mlflow", action="store_true", help="record no MLflow run")


def tracking_uri(given: str | None = None) -> str:
    """The tracking URI: the option, else ``MLFLOW_TRACKING_URI``, else the local store.

    >>> tracking_uri("http://mlflow:5000")
    'http://mlflow:5000'
    >>> tracking_uri(None).endswith("/mlflow.db") or "MLFLOW_TRACKING_URI" in os.environ
    True
    """
    if given:
        return given
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{Path.cwd() / DEFAULT_DB}"


def artifact_root(uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: ``mlruns/`` beside a SQLite database
    (MLflow's own default is ``./mlruns`` under whatever the working directory is);
    None for other stores (a server chooses).

    >>> artifact_root("sqlite:////data/ml/mlflow.db")
    'file:///data/ml/mlruns'
    >>> artifact_root("http://mlflow:5000") is None
    True
    """
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(uri.removeprefix("sqlite:///"))
    if not db.is_absolute():
        db = Path.cwd() / db
    return (db.parent / "mlruns").as_uri()


def metric_key(model: str, attribute: str, group: str, metric: str) -> str:
    """The MLflow name of one number of the tidy frame (characters MLflow refuses become
    ``_``)."""
    parts = [model] if attribute == "all" and group == "all" else (
        [model, attribute] if group == "all" else [model, attribute, group])
    return "/".join(_UNSAFE.sub("_", str(p)) for p in [*parts, metric])


def config_sha256(config: Config) -> str:
    """SHA-256 of the normalised config, without what does not change a result (the
    broker's address and credentials)."""
    return sha256_hex(config_document(config))


def config_document(config: Config) -> dict[str, Any]:
    """The config as plain data, as hashed and stored with the run (no credentials)."""
    return config.model_dump(mode="json", exclude={"broker", "security"})


def model_config_hash(config: Config) -> str:
    """The model config hash every version of this config carries."""
    return ModelSpec.model_validate(config.model, from_attributes=True).config_hash


def history_sha256(records: Iterable[Any], labels: pd.DataFrame | None) -> str:
    """SHA-256 over every raw record's bytes, in order, and the labels (event id, label,
    time), in order: the same input gives the same digest, from a file or from Kafka."""
    digest = hashlib.sha256()
    for rec in records:
        digest.update(len(rec.value).to_bytes(8, "big"))
        digest.update(rec.value)
    if labels is not None and len(labels):
        columns = [c for c in ("event_id", "label", "label_ts") if c in labels.columns]
        digest.update(labels[columns].to_csv(index=False).encode())
    return digest.hexdigest()


def environment() -> dict[str, str]:
    """The versions a result depends on, and a SHA-256 of every installed distribution
    (``name==version`` sorted), so a changed dependency shows even where unnamed."""
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    # The same digest as the learner's records, so a run and a version compare directly.
    versions["dependencies_sha256"] = hashlib.sha256(
        "\n".join(dependency_set()).encode()).hexdigest()
    return versions


@dataclass
class RunInputs:
    """What a backtest was made of, as the run records it."""

    command: str                         # evaluate | report
    configs: Mapping[str, Config]        # candidate (and baseline) by model name
    history_source: str
    history_digest: str
    received: int
    labels: int
    first_event_ms: int | None
    last_event_ms: int | None
    options: Mapping[str, Any]


def params_of(inputs: RunInputs) -> dict[str, str]:
    """Every parameter of the run, as MLflow stores them (text)."""
    params: dict[str, Any] = {"command": inputs.command}
    for name, config in inputs.configs.items():
        params[f"{name}.config.name"] = config.name
        params[f"{name}.config.sha256"] = config_sha256(config)
        params[f"{name}.feature_set"] = config.features.identity
        params[f"{name}.features"] = ",".join(config.features.names)
        params[f"{name}.model_config_hash"] = model_config_hash(config)
        for key, value in config.model.model_dump(mode="json").items():
            if isinstance(value, dict):
                params.update({f"{name}.model.{key}.{k}": v for k, v in value.items()})
            else:
                params[f"{name}.model.{key}"] = value
        params[f"{name}.sensitive_attributes"] = ",".join(config.monitors.sensitive_attributes)
    params.update({
        "data.source": inputs.history_source, "data.sha256": inputs.history_digest,
        "data.records": inputs.received, "data.labels": inputs.labels,
        "data.first_event": _iso(inputs.first_event_ms),
        "data.last_event": _iso(inputs.last_event_ms),
    })
    params.update({f"option.{k}": v for k, v in inputs.options.items()})
    params.update({f"version.{k}": v for k, v in environment().items()})
    return {k: str(v)[:6000] for k, v in params.items()}


def _iso(ms: int | None) -> str:
    import pandas as pd

    return "-" if ms is None else pd.Timestamp(ms, unit="ms", tz="UTC").isoformat()


def metrics_of_frame(frame: pd.DataFrame) -> list[tuple[str, float, int, int]]:
    """``(key, value, timestamp_ms, step)`` for every finite number of a tidy frame: the
    value, its interval's ends and its sample size; step = the period's index."""
    import pandas as pd

    periods = sorted(set(frame["period"]))
    step_of = {p: i for i, p in enumerate(periods)}
    out = []
    for row in frame.itertuples(index=False):
        key = metric_key(row.model, row.attribute, row.group, row.metric)
        ts_ms = int(pd.Timestamp(row.period).timestamp() * 1000)
        step = step_of[row.period]
        for suffix, value in (("", row.value), ("/ci_low", row.ci_low),
                              ("/ci_high", row.ci_high), ("/n", row.n)):
            if value is not None and not pd.isna(value) and math.isfinite(float(value)):
                out.append((key + suffix, float(value), ts_ms, step))
    return out


def log_run(uri: str | None, experiment: str, inputs: RunInputs, frame: pd.DataFrame,
            artifacts: Mapping[str, str | bytes | Path]) -> str:
    """Record one run; returns its id. ``artifacts``: file name in the run -> text, bytes
    or a file to copy. Raises :class:`TrackingError` with what to do."""
    try:
        import mlflow
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise TrackingError(f"MLflow is not installed ({exc}): pip install "
                            f"'streambed[mlflow]' (make venv does), or pass --no-mlflow"
                            ) from None
    uri = tracking_uri(uri)
    try:
        client = MlflowClient(tracking_uri=uri)
        exp_id = experiment_id(client, experiment, uri)
        names = ", ".join(c.name for c in inputs.configs.values())
        run = client.create_run(exp_id, run_name=f"{inputs.command} {names}",
                                tags={"streambed.command": inputs.command})
        run_id = run.info.run_id
        params = [Param(k, v) for k, v in params_of(inputs).items()]
        for i in range(0, len(params), PARAMS_PER_BATCH):
            client.log_batch(run_id, params=params[i:i + PARAMS_PER_BATCH])
        metrics = [Metric(k, v, t, s) for k, v, t, s in metrics_of_frame(frame)]
        for i in range(0, len(metrics), METRICS_PER_BATCH):
            client.log_batch(run_id, metrics=metrics[i:i + METRICS_PER_BATCH])
        client.log_batch(run_id, tags=[RunTag("streambed.feature_set", ",".join(
            c.features.identity for c in inputs.configs.values()))])
        with tempfile.TemporaryDirectory() as tmp:
            for name, content in artifacts.items():
                path = Path(tmp) / name
                path.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(content, Path):
                    path.write_bytes(content.read_bytes())
                elif isinstance(content, bytes):
                    path.write_bytes(content)
                else:
                    path.write_text(content, encoding="utf-8")
            client.log_artifacts(run_id, tmp)
        client.set_terminated(run_id)
    except (mlflow.exceptions.MlflowException, OSError) as exc:
        raise TrackingError(f"MLflow at {uri}: {getattr(exc, 'message', exc)} (pass "
                            f"--tracking-uri, set MLFLOW_TRACKING_URI, or --no-mlflow)"
                            ) from None
    return str(run_id)


def experiment_id(client: Any, name: str, uri: str) -> str:
    """The experiment's id, created (artifacts under :func:`artifact_root`) if new."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    return str(client.create_experiment(name, artifact_location=artifact_root(uri)))


def config_artifacts(configs: Mapping[str, Config]) -> dict[str, str]:
    """Each config as normalised JSON, named by its model (``config/candidate.json``)."""
    import json

    return {f"config/{name}.json": json.dumps(config_document(c), indent=2, sort_keys=True)
            for name, c in configs.items()}


def record_backtest(args: argparse.Namespace, command: str, runs: Mapping[str, Any],
                    history: Any, frame: pd.DataFrame,
                    artifacts: Mapping[str, str | bytes | Path]) -> str | None:
    """The run of ``streambed evaluate``/``report`` (None with ``--no-mlflow``): the
    configs of ``runs`` (:class:`~streams.backtest.ConfigBacktest` by model name), the
    ``history`` (:class:`~streams.backtest.History`), the tidy ``frame``."""
    if getattr(args, "no_mlflow", False):
        return None
    import pandas as pd

    configs = {name: r.config for name, r in runs.items()}
    ts = pd.concat([r.features["ts"] for r in runs.values()]) if runs else pd.Series()
    options = {k: getattr(args, k) for k in ("order", "period", "bootstrap", "seed", "since",
                                              "until", "events", "labels", "evaluation")
               if getattr(args, k, None) is not None}
    inputs = RunInputs(
        command=command, configs=configs, history_source=history.source,
        history_digest=history_sha256(history.records, history.labels),
        received=len(history.records), labels=len(history.labels),
        first_event_ms=int(ts.min()) if len(ts) else None,
        last_event_ms=int(ts.max()) if len(ts) else None, options=options)
    run_id = log_run(getattr(args, "tracking_uri", None), args.experiment, inputs, frame,
                     {**config_artifacts(configs), "evaluation.csv": frame.to_csv(index=False),
                      **artifacts})
    print(f"{command}: MLflow run {run_id} in experiment {args.experiment!r} at "
          f"{tracking_uri(getattr(args, 'tracking_uri', None))}")
    return run_id
