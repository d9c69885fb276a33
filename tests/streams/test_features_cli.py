"""``streambed features list|show`` and the config errors a data scientist meets first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from streams.cli import main
from streams.config import ConfigError, load_config
from streams.features_cli import config_hash
from tests.support import REPO

QUICKSTART = REPO / "examples" / "quickstart.yaml"
CARDS = REPO / "examples" / "cards.yaml"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_list_shows_every_feature_with_window_aggregation_filter_and_identities(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = load_config(CARDS)
    code, out, _ = run(capsys, "features", "list", "--config", str(CARDS))
    assert code == 0
    lines = out.splitlines()
    assert config.features.identity in lines[0] and config_hash(config) in lines[0]
    assert lines[1].split() == ["NAME", "AGG", "FIELD", "WINDOW", "FILTER"]
    assert len(lines) == 2 + len(config.features.features)
    by_name = {line.split()[0]: line for line in lines[2:]}
    assert by_name["amount_max_7d"].split()[1:] == ["max", "amount", "hopping", "7d", "every",
                                                   "1d", "-"]
    assert by_name["gambling_24h"].endswith('merchant_code == "7995"')
    assert by_name["wires_7d"].endswith('merchant_code == "4829" and amount >= 100')


def test_show_gives_the_window_it_covers_and_the_definition_hashed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "features", "show", "--config", str(QUICKSTART),
                       "amount_max_6h")
    assert code == 0
    assert "covers (ceil(t / 1h) * 1h - 6h, t]" in out
    assert '"size": 21600000' in out and "amount (float)" in out
    assert "apps_1h" not in out


def test_show_json_is_the_same_information_for_tools(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "features", "show", "--json", "--config", str(CARDS))
    info = json.loads(out)
    config = load_config(CARDS)
    assert code == 0 and info["feature_set"] == config.features.identity
    assert [f["name"] for f in info["features"]] == config.features.names
    assert info["features"][0]["window"] == {"kind": "sliding", "size_ms": 3_600_000,
                                             "hop_ms": None}


def test_an_unknown_feature_name_suggests_the_closest(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "features", "show", "--config", str(QUICKSTART), "amount_max")
    assert code == 2
    assert "did you mean 'amount_max_6h'?" in err


def test_config_hash_ignores_formatting_and_broker_but_not_definitions(tmp_path: Path) -> None:
    raw = yaml.safe_load(QUICKSTART.read_text())
    base = config_hash(load_config(QUICKSTART))
    raw["broker"] = "kafka://10.0.0.1:9092"
    raw["features"][1]["window"]["size"] = "60m"  # the same hour, spelt differently
    assert config_hash(load_config(write(tmp_path, raw))) == base
    raw["model"]["threshold"] = 0.6
    assert config_hash(load_config(write(tmp_path, raw))) != base


@pytest.mark.parametrize(
    ("mutate", "line"),
    [
        (lambda r: r["features"][3]["window"].update(size="soon"),
         "  features[3] (amount_mean_day).window.size: not a duration: 'soon'"),
        (lambda r: r["features"][2].update(field="amout"),
         "  features[2] (amount_sum_1h).field: amount_sum_1h reads unknown field 'amout' "
         "(did you mean 'amount'?)"),
        (lambda r: r["features"][0].update(agg="cnt"),
         "(did you mean 'count'?)"),
        (lambda r: r["features"][4]["window"].update(kind="hoping"),
         "  features[4] (amount_max_6h).window.kind: Input should be"),
        (lambda r: r["features"][2].update(feild="amount"),
         "  features[2] (amount_sum_1h).feild: unknown key (did you mean 'field'?)"),
        (lambda r: r["event"]["attributes"]["amount"].update(typ="float"),
         "  event.attributes.amount.typ: unknown key (did you mean 'type'?)"),
        (lambda r: r["features"][9]["where"].update(value=7),
         "  features[9] (web_apps_1d).where: channel is declared str: write the value as "
         "text, e.g. \"7\""),
        (lambda r: r["features"].append({"name": "big", "agg": "count",
                                         "where": {"field": "amount", "op": "gt",
                                                   "value": "100"}}),
         "  features[11] (big).where: amount is declared float: write the value as a number"),
    ],
)
def test_config_errors_name_the_feature_and_suggest_close_names(
    tmp_path: Path, mutate, line: str
) -> None:
    raw = yaml.safe_load(QUICKSTART.read_text())
    mutate(raw)
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, raw))
    assert line in str(info.value), str(info.value)
    assert "function-after" not in str(info.value)


def test_every_bad_feature_is_reported_at_once(tmp_path: Path) -> None:
    raw = yaml.safe_load(QUICKSTART.read_text())
    raw["features"][2]["field"] = "amout"
    raw["features"][6]["field"] = "incme"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, raw))
    message = str(info.value)
    assert "features[2] (amount_sum_1h).field" in message
    assert "features[6] (income_last).field" in message and "'income'" in message


def test_the_cli_prints_config_errors_and_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    raw = yaml.safe_load(QUICKSTART.read_text())
    raw["features"][2]["field"] = "amout"
    code, _, err = run(capsys, "features", "list", "--config", str(write(tmp_path, raw)))
    assert code == 2
    assert "features[2] (amount_sum_1h).field" in err and "did you mean 'amount'?" in err
