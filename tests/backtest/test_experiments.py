"""Experiments on record: evaluate and report runs in a real MLflow store (SQLite, as
MLflow's default), and ``model export --to mlflow`` loaded back in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from governance.records import ModelVersionRecord, VersionStatus, dumps
from streams.backtest import load_history, run_backtest
from streams.config import load_config
from streams.experiments import config_sha256, history_sha256, model_config_hash
from streams.learner.environment import current_environment
from streams.scorer.champion import Champion
from streams.topics import ensure_topics
from tests.support import REPO, Ran, produce_to, streambed

QUICKSTART = REPO / "examples" / "quickstart.yaml"


def run_cli(*args: str, cwd: Path, env: dict[str, str]) -> Ran:
    """``streambed ARGS`` in this process (the import of MLflow, River and SciPy once, not
    once a call), in ``cwd`` with ``env`` as its whole environment."""
    return streambed(*args, cwd=cwd, env=env)


def without_tracking_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PYTHONPATH"] = str(REPO)
    return env


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("history")
    done = run_cli("simulate", "--config", str(QUICKSTART), "--count", "2500", "--out",
                   str(out), "--malformed-ratio", "0.02", cwd=REPO, env=without_tracking_env())
    assert done.returncode == 0, done.stderr
    return out


def only_run(uri: str, command: str) -> object:
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("streambed")
    assert experiment is not None, "no 'streambed' experiment"
    runs = client.search_runs([experiment.experiment_id],
                              filter_string=f"tags.`streambed.command` = '{command}'")
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return runs[0]


def artifact_paths(uri: str, run_id: str, path: str | None = None) -> set[str]:
    return {a.path for a in MlflowClient(tracking_uri=uri).list_artifacts(run_id, path)}


def download(uri: str, run_id: str, path: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    return Path(MlflowClient(tracking_uri=uri).download_artifacts(run_id, path, str(dest)))


def test_evaluate_records_a_run_in_the_default_local_store(history: Path, tmp_path: Path
                                                           ) -> None:
    """No --tracking-uri, no MLFLOW_TRACKING_URI: MLflow's SQLite store in the working
    directory, artifacts beside it; the run has its parameters, metrics and artifacts."""
    events, labels = history / "events.jsonl", history / "labels.jsonl"
    done = run_cli("evaluate", "--config", str(QUICKSTART), "--events", str(events),
                   "--labels", str(labels), "--bootstrap", "20", "--period", "6h",
                   "--no-progress", cwd=tmp_path, env=without_tracking_env())
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "mlflow.db").is_file() and (tmp_path / "mlruns").is_dir()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = only_run(uri, "evaluate")
    assert run.info.run_id in done.stdout
    params = run.data.params
    config = load_config(QUICKSTART)
    hist = load_history(config, events=events, labels=labels)
    assert params["candidate.config.sha256"] == config_sha256(config)
    assert params["candidate.feature_set"] == config.features.identity
    assert params["candidate.model_config_hash"] == model_config_hash(config)
    assert params["candidate.model.learning_rate"] == str(config.model.learning_rate)
    assert params["data.sha256"] == history_sha256(hist.records, hist.labels)
    assert params["data.records"] == "2500"
    assert params["data.first_event"].startswith("2026-") and params["data.last_event"] > \
        params["data.first_event"]
    assert params["option.bootstrap"] == "20" and params["option.order"] == "arrival"
    for name in ("python", "river", "pandas", "numpy", "pyarrow", "mlflow-skinny",
                 "streambed", "dependencies_sha256"):
        assert params[f"version.{name}"] not in ("", "not installed"), name
    # the run's dependency digest is the one the learner writes on every version it cuts
    assert params["version.dependencies_sha256"] == \
        current_environment().dependencies_sha256
    metrics = run.data.metrics
    auc, low, high = (metrics[f"candidate/roc_auc{s}"] for s in ("", "/ci_low", "/ci_high"))
    assert 0 <= low <= auc <= high <= 1
    assert metrics["candidate/group/demographic_parity_ratio/n"] > 0
    assert "candidate/group/A/selection_rate/ci_high" in metrics
    # one step per period, each at its period's start
    client = MlflowClient(tracking_uri=uri)
    steps = client.get_metric_history(run.info.run_id, "candidate/events")
    frame = pd.read_csv(download(uri, run.info.run_id, "evaluation.csv", tmp_path))
    periods = sorted(set(frame["period"]))
    assert [s.step for s in sorted(steps, key=lambda s: s.step)] == list(range(len(periods)))
    assert sum(s.value for s in steps) == int(
        frame.loc[frame["metric"] == "events", "value"].sum())
    assert artifact_paths(uri, run.info.run_id) == {"config", "evaluate.txt",
                                                    "evaluation.csv"}
    text = download(uri, run.info.run_id, "evaluate.txt", tmp_path).read_text()
    assert "== period" in text and "roc_auc" in text
    stored = json.loads(download(uri, run.info.run_id, "config/candidate.json",
                                 tmp_path).read_text())
    assert stored["features"] == config.model_dump(mode="json")["features"]
    assert "security" not in stored and "broker" not in stored


def test_report_records_its_html_with_mlflow_tracking_uri(history: Path, tmp_path: Path
                                                          ) -> None:
    store = tmp_path / "store"
    store.mkdir()
    uri = f"sqlite:///{store / 'tracking.db'}"
    env = {**without_tracking_env(), "MLFLOW_TRACKING_URI": uri}
    page = tmp_path / "out" / "report.html"
    done = run_cli("report", "--config", str(QUICKSTART), "--events",
                   str(history / "events.jsonl"), "--labels", str(history / "labels.jsonl"),
                   "--bootstrap", "0", "--no-progress", "--out", str(page),
                   cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()
    run = only_run(uri, "report")
    assert artifact_paths(uri, run.info.run_id) == {"config", "evaluation.csv", "report.html"}
    assert run.data.params["candidate.feature_set"] == load_config(
        QUICKSTART).features.identity
    assert "candidate/roc_auc" in run.data.metrics
    stored = download(uri, run.info.run_id, "report.html", tmp_path / "dl")
    assert stored.read_bytes() == page.read_bytes()
    assert list((store / "mlruns").rglob("report.html"))  # artifacts beside the database


def test_tracking_uri_option_wins_and_a_bad_store_is_one_clear_line(history: Path,
                                                                     tmp_path: Path) -> None:
    args = ["evaluate", "--config", str(QUICKSTART), "--events", str(history / "events.jsonl"),
            "--labels", str(history / "labels.jsonl"), "--bootstrap", "0", "--no-progress"]
    uri = f"sqlite:///{tmp_path / 'option.db'}"
    env = {**without_tracking_env(), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'env.db'}"}
    done = run_cli(*args, "--tracking-uri", uri, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert only_run(uri, "evaluate") and not (tmp_path / "env.db").exists()
    (tmp_path / "a_file").write_text("not a directory")
    bad_uri = f"sqlite:///{tmp_path / 'a_file' / 'x.db'}"
    bad = run_cli(*args, "--tracking-uri", bad_uri, cwd=tmp_path, env=env)
    assert bad.returncode == 1 and f"MLflow at {bad_uri}" in bad.stderr
    assert "Traceback" not in bad.stderr
    off = run_cli(*args, "--no-mlflow", cwd=tmp_path, env=env)
    assert off.returncode == 0 and "MLflow run" not in off.stdout


# -- model export ------------------------------------------------------------------------

#: argv: the features' Parquet file, then (model URI, output Parquet file) pairs. One fresh
#: process loads and scores them all (one import of MLflow and pandas, not one a model).
SCORE_IN_A_FRESH_PROCESS = """
import sys
import mlflow.pyfunc, pandas as pd
features = pd.read_parquet(sys.argv[1])
for ref, out in zip(sys.argv[2::2], sys.argv[3::2], strict=True):
    mlflow.pyfunc.load_model(ref).predict(features).to_parquet(out)
print(sorted(m for m in sys.modules if m.split('.')[0] in ('streams', 'features')))
"""


@pytest.mark.kafka
def test_model_export_registers_versions_that_score_exactly_as_the_scorer(
        kafka_bootstrap: str, topic_config: Path, history: Path, tmp_path: Path) -> None:
    config = load_config(topic_config)
    ensure_topics(config)
    run = run_backtest(config, load_history(config, events=history / "events.jsonl",
                                            labels=history / "labels.jsonl"))
    latest: dict[str, ModelVersionRecord] = {}
    for record in run.run.versions:
        latest[record.version] = record
    learned = sorted((r for r in latest.values() if r.sequence > 0), key=lambda r: r.sequence)
    assert len(learned) >= 2, "the history should cut at least two learned versions"
    # This small history is too short for the gates to promote on evidence (the first look
    # needs 1,000 shadow-scored labels): the newest cut serves as a person's promotion
    # would leave it, the old champion retired.
    champion = learned[-1].model_copy(update={"status": VersionStatus.CHAMPION})
    older = learned[0]
    retired = [r.model_copy(update={"status": VersionStatus.RETIRED})
               for r in latest.values() if r.status is VersionStatus.CHAMPION]
    produce_to(kafka_bootstrap, [(config.topics.model_versions, r.version, dumps(r))
                                 for r in [*run.run.versions, *retired, champion]])
    uri = f"sqlite:///{tmp_path / 'registry.db'}"
    env = {**without_tracking_env(), "MLFLOW_TRACKING_URI": uri}
    name = f"streambed-{config.name}"

    for record in (older, champion, champion):  # the second champion export adds nothing
        done = run_cli("model", "export", record.version, "--to", "mlflow", "--config",
                       str(topic_config), cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    registered = {mv.tags["streambed.version"]: mv
                  for mv in client.search_model_versions(f"name = '{name}'")}
    assert set(registered) == {older.version, champion.version}
    aliased = client.get_model_version_by_alias(name, "champion")
    assert aliased.tags["streambed.version"] == champion.version
    tags = registered[champion.version].tags
    assert tags["streambed.lineage"] == champion.lineage
    assert tags["streambed.parent"] == champion.parent
    assert tags["streambed.training.to_offset"] == str(champion.training.to_offset)
    assert tags["streambed.artifact_sha256"] == champion.artifact_sha256
    assert tags["streambed.model_config_hash"] == champion.model_config_hash

    features = run.features[config.features.names].copy()
    features.to_parquet(tmp_path / "features.parquet")
    loads = ((champion, f"models:/{name}@champion"),
             (older, f"models:/{name}/{registered[older.version].version}"))
    outs = {r.version: tmp_path / f"scores-{r.sequence}.parquet" for r, _ in loads}
    done = subprocess.run([sys.executable, "-c", SCORE_IN_A_FRESH_PROCESS,
                           str(tmp_path / "features.parquet"),
                           *(str(x) for r, ref in loads for x in (ref, outs[r.version]))],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "streams" not in done.stdout  # the pyfunc needs no shell code to score
    for record, _ in loads:
        scored = pd.read_parquet(outs[record.version])
        scorer = Champion.of(record)
        expected = [scorer.score_one({k: (None if pd.isna(v) else v) for k, v in row.items()})
                    for row in features.astype(object).to_dict("records")]
        assert scored["score"].tolist() == expected  # bit for bit: == on floats
        assert scored["decision"].tolist() == [scorer.decision(s) for s in expected]
        assert len(set(expected)) > 100


def test_exported_model_scores_text_features_and_nulls_as_the_scorer(tmp_path: Path) -> None:
    """A text feature (hashed indicators) with nulls in it, through the pyfunc's
    signature: the string column and its nulls reach the model as the scorer sees them."""
    import mlflow.pyfunc
    import yaml

    from streams.mlflow_export import export_version

    history = tmp_path / "cards"
    subprocess.run([sys.executable, str(REPO / "examples" / "cards_history.py"), "--out",
                    str(history), "--count", "1500"], check=True, cwd=REPO, timeout=300)
    raw = yaml.safe_load((REPO / "examples" / "cards.yaml").read_text())
    raw["features"].append({"name": "country_last", "agg": "last", "field": "country"})
    raw.setdefault("model", {}).setdefault("promotion", {})["examples_per_version"] = 200
    (tmp_path / "cards.yaml").write_text(yaml.safe_dump(raw))
    config = load_config(tmp_path / "cards.yaml")
    run = run_backtest(config, load_history(config, events=history / "events.csv",
                                            labels=history / "labels.csv"))
    record = [r for r in run.run.versions if r.sequence > 0][-1]
    assert any(k.startswith("country_last[") for k in record.artifact.weights)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    name, number = export_version(record, config, champion=None, uri=uri)
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == before  # left as found
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        model = mlflow.pyfunc.load_model(f"models:/{name}/{number}")
    finally:
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])
    features = run.features[config.features.names].copy()
    features.loc[features.index[:5], "country_last"] = None
    scorer = Champion.of(record)
    expected = [scorer.score_one({k: (None if pd.isna(v) else v) for k, v in row.items()})
                for row in features.astype(object).to_dict("records")]
    assert model.predict(features)["score"].tolist() == expected
    assert len(set(expected)) > 100
