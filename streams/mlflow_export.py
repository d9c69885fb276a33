"""``streambed model export VERSION --to mlflow``: a version into the MLflow Model Registry.

The version is read from ``model.versions`` as ``streambed model show`` reads it. It is
registered as a pyfunc (:mod:`streams.mlflow_pyfunc`: the scorer's scoring, from the
version's plain-data artifact; nothing pickled) under the registered model
``streambed-<config name>`` (``--name`` to choose), with its lineage as model-version
tags (``streambed.version``, ``streambed.lineage``, ``streambed.parent``,
``streambed.training.*``, ``streambed.artifact_sha256``, ...).

The alias ``champion`` follows the serving champion whenever a version is exported: set
on the export of the champion, removed when it points at a version that no longer serves.
Exporting a version already in the registry registers nothing new; its tags and the alias
are brought up to date.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from governance.records import ModelVersionRecord, VersionStatus
from streams.config import Config
from streams.experiments import (
    DEFAULT_EXPERIMENT,
    TrackingError,
    experiment_id,
    tracking_uri,
)

#: The registry alias that names the serving champion.
CHAMPION_ALIAS = "champion"
#: The tag holding the streambed version id on a registered model version.
VERSION_TAG = "streambed.version"
#: The model's code: loaded by MLflow at load time (models from code).
PYFUNC_CODE = Path(__file__).with_name("mlflow_pyfunc.py")
#: The pure package the pyfunc scores with, bundled with the model.
GOVERNANCE_DIR = Path(__file__).resolve().parents[1] / "governance"


def add_export_command(command: Any) -> None:
    """Register ``model export`` through ``streambed model``'s own subcommand helper."""
    e = command("export", cmd_export, "register a version in the MLflow Model Registry")
    e.add_argument("version")
    e.add_argument("--to", choices=["mlflow"], required=True, help="where to export")
    e.add_argument("--tracking-uri", help="MLflow tracking URI (default: "
                                          "$MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")
    e.add_argument("--name", help="registered model name (default streambed-<config name>)")
    e.add_argument("--experiment", default=DEFAULT_EXPERIMENT,
                   help="experiment of the run that logs the model")


def cmd_export(config: Config, args: argparse.Namespace) -> int:
    from streams.learner.commands import versions

    records = versions(config)
    record = records.get(args.version)
    if record is None:
        print(f"model: no version {args.version!r} on {config.topics.model_versions}",
              file=sys.stderr)
        return 1
    champion = next((r.version for r in records.values()
                     if r.status is VersionStatus.CHAMPION), None)
    try:
        registered = export_version(record, config, champion=champion,
                                    uri=args.tracking_uri, name=args.name,
                                    experiment=args.experiment)
    except (TrackingError, ValueError) as exc:
        print(f"model: {exc}", file=sys.stderr)
        return 1
    name, number = registered
    alias = " (alias champion)" if record.version == champion else ""
    print(f"model: exported {record.version} as {name} version {number}{alias} to "
          f"{tracking_uri(args.tracking_uri)}; load it with "
          f"mlflow.pyfunc.load_model('models:/{name}/{number}')")
    return 0


def lineage_tags(record: ModelVersionRecord) -> dict[str, str]:
    """The version's lineage as registry tags (text)."""
    tags: dict[str, Any] = {
        VERSION_TAG: record.version, "streambed.lineage": record.lineage,
        "streambed.sequence": record.sequence, "streambed.parent": record.parent or "-",
        "streambed.status": record.status.value, "streambed.created_at": record.created_at,
        "streambed.feature_set": record.feature_set,
        "streambed.model_config_hash": record.model_config_hash,
        "streambed.river_version": record.river_version,
        "streambed.training.topic": record.training.topic or "-",
        "streambed.training.partition": record.training.partition,
        "streambed.training.from_offset": record.training.from_offset,
        "streambed.training.to_offset": record.training.to_offset,
        "streambed.examples_learned": record.examples_learned,
        "streambed.artifact_sha256": record.artifact_sha256,
    }
    if record.evaluation is not None:
        tags["streambed.evaluation.outcome"] = record.evaluation.outcome.value
        tags["streambed.evaluation.champion"] = record.evaluation.champion or "-"
    return {k: "-" if v is None else str(v) for k, v in tags.items()}


def model_data(record: ModelVersionRecord, config: Config) -> dict[str, Any]:
    """What the pyfunc loads: the artifact and the feature names, in the config's order."""
    if record.feature_set != config.features.identity:
        raise ValueError(f"{record.version} was learned on feature set {record.feature_set}; "
                         f"this config's is {config.features.identity}: pass the config "
                         f"the version was learned with")
    return {"version": record.version, "feature_set": record.feature_set,
            "features": list(config.features.names),
            "artifact": record.artifact.model_dump(mode="json")}


def signature(config: Config) -> Any:
    """Input: one optional column per feature (long for counts, string for the first/last
    of a text field, double otherwise); output: ``score`` (double), ``decision`` (long)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from features.plan import plans_of

    columns = []
    for feature, plan in zip(config.features.features, plans_of(config.features),
                             strict=True):
        attribute = config.event.attributes.get(plan.field or "")
        kind = "double"
        if plan.agg_type.integer_valued:
            kind = "long"
        elif feature.agg in ("first", "last") and attribute is not None \
                and attribute.type == "str":
            kind = "string"
        columns.append(ColSpec(kind, feature.name, required=False))
    return ModelSignature(inputs=Schema(columns),
                          outputs=Schema([ColSpec("double", "score"),
                                          ColSpec("long", "decision")]))


def _requirements() -> list[str]:
    names = ("river", "pydantic", "pandas", "numpy", "mlflow-skinny")
    out = []
    for name in names:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return out


def export_version(record: ModelVersionRecord, config: Config, *, champion: str | None,
                   uri: str | None = None, name: str | None = None,
                   experiment: str = DEFAULT_EXPERIMENT) -> tuple[str, str]:
    """Register ``record`` (once) and keep the ``champion`` alias on ``champion``'s
    registered version; returns (registered model name, its version number)."""
    try:
        import mlflow
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise TrackingError(f"MLflow is not installed ({exc}): pip install "
                            f"'streambed[mlflow]' (make venv does)") from None
    uri = tracking_uri(uri)
    name = name or f"streambed-{config.name}"
    data = model_data(record, config)
    try:
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        if client.search_registered_models(f"name = '{name}'"):
            existing = _registered(client, name)
        else:
            client.create_registered_model(name, description=f"streambed config "
                                           f"{config.name!r}: versions exported from "
                                           f"{config.topics.model_versions}")
            existing = {}
        number = existing.get(record.version)
        if number is None:
            number = _log_and_register(mlflow, client, uri, experiment, name, record, data,
                                       config)
        for key, value in lineage_tags(record).items():
            client.set_model_version_tag(name, number, key, value)
        _keep_champion_alias(client, name, champion, {**existing, record.version: number})
    except (mlflow.exceptions.MlflowException, OSError) as exc:
        raise TrackingError(f"MLflow at {uri}: {getattr(exc, 'message', exc)}") from None
    return name, number


def _registered(client: Any, name: str) -> dict[str, str]:
    """streambed version -> registry version number, of what is registered already."""
    out = {}
    for mv in client.search_model_versions(f"name = '{name}'"):
        tag = mv.tags.get(VERSION_TAG)
        if tag:
            out[tag] = str(mv.version)
    return out


def _log_and_register(mlflow: Any, client: Any, uri: str, experiment: str, name: str,
                      record: ModelVersionRecord, data: Mapping[str, Any], config: Config
                      ) -> str:
    exp_id = experiment_id(client, experiment, uri)
    # log_model is MLflow's fluent API: point it at this store, and put back what the
    # caller had set (this is a library function too).
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        info = _log_model(mlflow, exp_id, record, data, config)
        # registering resolves the logged model through the fluent store too
        mv = client.create_model_version(name, info.model_uri, run_id=info.run_id,
                                         tags={VERSION_TAG: record.version})
    finally:
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])
    return str(mv.version)


def _log_model(mlflow: Any, exp_id: str, record: ModelVersionRecord,
               data: Mapping[str, Any], config: Config) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        data_file = Path(tmp) / "streambed_version.json"
        data_file.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        with mlflow.start_run(experiment_id=exp_id,
                              run_name=f"export {record.version}",
                              tags={"streambed.command": "model export"}):
            mlflow.log_params({"version": record.version, "feature_set": record.feature_set,
                               "model_config_hash": record.model_config_hash})
            info = mlflow.pyfunc.log_model(
                name="model", python_model=str(PYFUNC_CODE),
                artifacts={"streambed_version": str(data_file)},
                code_paths=[str(GOVERNANCE_DIR)], pip_requirements=_requirements(),
                signature=signature(config))
    return info


def _keep_champion_alias(client: Any, name: str, champion: str | None,
                         registered: Mapping[str, str]) -> None:
    """Point ``champion`` at the serving champion's registered version; drop it when it
    points elsewhere and the serving champion is not registered."""
    target = registered.get(champion) if champion else None
    from mlflow.exceptions import MlflowException

    try:
        current = str(client.get_model_version_by_alias(name, CHAMPION_ALIAS).version)
    except MlflowException:  # no such alias
        current = None
    if target is not None and current != target:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, target)
    elif target is None and current is not None:
        client.delete_registered_model_alias(name, CHAMPION_ALIAS)
