"""The config file: valid examples load; every bad field fails naming its dotted path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from streams.config import ConfigError, load_config
from tests.support import REPO

QUICKSTART = REPO / "examples" / "quickstart.yaml"


def _write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _quickstart() -> dict:
    return yaml.safe_load(QUICKSTART.read_text())


def test_quickstart_loads_with_a_stable_feature_set_identity() -> None:
    a, b = load_config(QUICKSTART), load_config(QUICKSTART)
    assert a.features.identity == b.features.identity
    assert a.features.names[0] == "apps_lifetime"
    assert a.event.allowed_lateness_ms == 300_000


def test_feature_set_identity_changes_when_a_definition_changes(tmp_path: Path) -> None:
    raw = _quickstart()
    raw["features"][1]["window"]["size"] = "2h"
    assert load_config(_write(tmp_path, raw)).features.identity != \
        load_config(QUICKSTART).features.identity


@pytest.mark.parametrize(
    ("mutate", "path", "words"),
    [
        (lambda r: r["features"][1]["window"].update(size="soon"),
         "features[1] (apps_1h).window.size", "not a duration"),
        (lambda r: r["features"][4]["window"].update(hop="5h"),
         "features[4] (amount_max_6h).window", "multiple of its hop"),
        (lambda r: r["features"][0].update(agg="median"), "features[0] (apps_lifetime).agg",
         "count"),
        (lambda r: r["event"]["attributes"]["amount"].update(type="decimal"),
         "event.attributes.amount.type", "float"),
        (lambda r: r["model"].update(threshold=2), "model.threshold", "less than or equal"),
        (lambda r: r["topics"].update(partitions=0), "topics.partitions", "greater than"),
        (lambda r: r.update(brokr="x"), "brokr", "unknown key (did you mean 'broker'?)"),
        (lambda r: r["features"].append({"name": "x", "agg": "sum", "field": "nope"}),
         "features[11] (x).field", "unknown field 'nope'"),
        (lambda r: r["features"].append({"name": "y", "agg": "mean", "field": "channel"}),
         "features[11] (y).field", "needs a numeric field"),
        (lambda r: r["features"].append({"name": "apps_1h", "agg": "count"}),
         "features[11] (apps_1h).name", "duplicate feature name"),
        (lambda r: r["features"][9]["where"].update(op="contains"),
         "features[9] (web_apps_1d).where.op", "eq"),
    ],
)
def test_bad_config_fails_with_the_dotted_path_of_the_bad_field(
    tmp_path: Path, mutate, path: str, words: str
) -> None:
    raw = _quickstart()
    mutate(raw)
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, raw))
    message = str(info.value)
    assert f"  {path}" in message, message
    assert words in message, message


def test_not_yaml_and_missing_file_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("features: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")


def test_cli_exits_2_and_prints_the_path_before_connecting(tmp_path: Path) -> None:
    raw = _quickstart()
    raw["model"]["learning_rate"] = -1
    proc = subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker", "--config", str(_write(tmp_path, raw)),
         "--broker", "kafka://127.0.0.1:1"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )
    assert proc.returncode == 2
    assert "model.learning_rate" in proc.stderr
