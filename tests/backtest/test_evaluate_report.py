"""``streambed evaluate`` and ``streambed report`` on simulated history, the report rendered
by a real headless Chromium (Debian's package; ``make system-deps`` installs it)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from governance.metric_frame import COLUMNS
from streams.backtest import evaluate, load_history
from streams.backtest.cli import read_metrics
from streams.config import load_config
from tests.backtest.tracking import cli_env
from tests.support import REPO, Ran, streambed

QUICKSTART = REPO / "examples" / "quickstart.yaml"
CARDS = REPO / "tests" / "backtest" / "cards_small.yaml"


def cli(*args: str) -> Ran:
    """``streambed ARGS`` in this process (one import of the offline stack, not one a
    call); the shipped example's test below runs the command lines as fresh processes."""
    return streambed(*args, cwd=REPO, env=cli_env())


def simulate(config: Path, out: Path, *extra: str) -> Path:
    done = cli("simulate", "--config", str(config), "--count", "2500", "--out", str(out),
               "--malformed-ratio", "0.02", *extra)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate(QUICKSTART, tmp_path_factory.mktemp("quickstart"), "--disparity-at",
                    "0.5", "--drift-at", "0.6")


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Today's config: fewer features and a slower learning rate than the candidate."""
    raw = yaml.safe_load(QUICKSTART.read_text())
    raw["features"] = [f for f in raw["features"] if not f["name"].startswith("credit")]
    raw["monitors"]["drift"]["features"] = [
        f for f in raw["monitors"]["drift"]["features"] if not f.startswith("credit")]
    raw["model"]["learning_rate"] = 0.01
    path = tmp_path_factory.mktemp("baseline") / "current.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_evaluate_prints_a_table_per_period_beside_the_baseline(
        history: Path, baseline: Path, tmp_path: Path) -> None:
    out = tmp_path / "metrics.csv"
    done = cli("evaluate", "--config", str(QUICKSTART), "--baseline", str(baseline),
               "--events", str(history / "events.jsonl"), "--labels",
               str(history / "labels.jsonl"), "--period", "6h", "--bootstrap", "30",
               "--no-progress", "--out", str(out))
    assert done.returncode == 0, done.stderr
    print(done.stdout[:4000])
    text = done.stdout
    assert "the learner would have decided: v0 bootstrap" in text
    assert text.count("== period") >= 3
    header = next(line for line in text.splitlines() if line.lstrip().startswith("attribute"))
    assert header.split() == ["attribute", "group", "metric", "candidate", "n_candidate",
                              "baseline", "n_baseline", "delta"]
    for metric in ("roc_auc", "log_loss", "calibration_error", "true_positive_rate",
                   "false_positive_rate", "demographic_parity_ratio",
                   "equalized_odds_difference"):
        assert metric in text
    assert re.search(r"roc_auc 0\.\d{3} \[0\.\d{3}, 0\.\d{3}\]", text)
    frame = read_metrics(str(out))
    assert list(frame.columns) == COLUMNS
    assert set(frame["model"]) == {"candidate", "baseline"}
    assert set(frame["attribute"]) == {"all", "group", "age_band"}
    # the two configs really differ: their AUCs are not all equal
    auc = frame[frame["metric"] == "roc_auc"].pivot(index="period", columns="model",
                                                    values="value")
    assert (auc["candidate"] != auc["baseline"]).any()


def test_python_api_gives_the_same_frame_as_the_cli(history: Path, tmp_path: Path) -> None:
    config = load_config(QUICKSTART)
    hist = load_history(config, events=history / "events.jsonl",
                        labels=history / "labels.jsonl")
    frame = evaluate(config, hist, period="6h", bootstrap=20)
    out = tmp_path / "m.parquet"
    done = cli("evaluate", "--config", str(QUICKSTART), "--events",
               str(history / "events.jsonl"), "--labels", str(history / "labels.jsonl"),
               "--period", "6h", "--bootstrap", "20", "--no-progress", "--out", str(out))
    assert done.returncode == 0, done.stderr
    pd.testing.assert_frame_equal(frame, read_metrics(str(out)), check_dtype=False)


def test_evaluate_works_on_a_second_different_config(tmp_path: Path) -> None:
    cards = simulate(CARDS, tmp_path / "cards")
    config = load_config(CARDS)
    frame = evaluate(config, load_history(config, events=cards / "events.jsonl",
                                          labels=cards / "labels.jsonl"), bootstrap=0)
    assert set(frame["attribute"]) == {"all", "region", "channel"}
    rates = frame[(frame["attribute"] == "region") & (frame["metric"] == "selection_rate")]
    assert set(rates["group"]) == {"A", "B", "C"} and rates["value"].notna().all()
    assert frame.loc[frame["metric"] == "roc_auc", "value"].between(0.55, 1).all()


def test_bad_input_is_one_clear_line(tmp_path: Path, history: Path) -> None:
    (tmp_path / "l.jsonl").write_text('{"event_id": "e7-0", "label": 1}\n')
    done = cli("evaluate", "--config", str(QUICKSTART), "--events",
               str(history / "events.jsonl"), "--labels", str(tmp_path / "l.jsonl"))
    assert done.returncode == 1
    assert "no time column" in done.stderr and "Traceback" not in done.stderr


def render_in_chromium(page: Path, screenshot: Path) -> list[str]:
    """Screenshot the page in headless Chromium; return the page's console messages."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium not found: `make system-deps` installs Debian's chromium",
                    pytrace=False)
    done = subprocess.run(
        [chromium, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
         f"--screenshot={screenshot}", "--window-size=1280,2000",
         "--enable-logging=stderr", "--v=0", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120)
    assert screenshot.exists(), done.stderr[-2000:]
    return [line for line in done.stderr.splitlines()
            if ":CONSOLE" in line or "Uncaught" in line]


def test_console_errors_are_caught(tmp_path: Path) -> None:
    """The check below is not vacuous: a page that logs and throws is seen."""
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>console.error('x'); nope();</script></body></html>")
    messages = render_in_chromium(page, tmp_path / "bad.png")
    assert any("Uncaught ReferenceError" in m for m in messages), messages


def test_report_is_one_offline_file_that_renders_without_console_errors(
        history: Path, baseline: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    done = cli("report", "--config", str(QUICKSTART), "--baseline", str(baseline),
               "--events", str(history / "events.jsonl"), "--labels",
               str(history / "labels.jsonl"), "--bootstrap", "30", "--no-progress",
               "--out", str(page))
    assert done.returncode == 0, done.stderr
    html = page.read_text()
    assert "<script" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert html.count("<svg") >= 6
    for heading in ("Impact per group over time", "Drift per feature over time",
                    "Model versions and decisions", "Dead letters over time"):
        assert heading in html
    assert "four-fifths" in html and "n=" in html  # the 0.8 line and sample sizes
    assert "malformed_json" in html and "hold" in html
    assert "judged candidates, gate by gate" in html and "roc_auc: " in html
    screenshot = tmp_path / "report.png"
    messages = render_in_chromium(page, screenshot)
    print(f"report screenshot: {screenshot}")
    assert messages == []
    assert screenshot.stat().st_size > 50_000


def test_report_from_an_evaluation_file_needs_no_labels(history: Path, tmp_path: Path
                                                        ) -> None:
    metrics = tmp_path / "m.csv"
    assert cli("evaluate", "--config", str(QUICKSTART), "--events",
               str(history / "events.jsonl"), "--labels", str(history / "labels.jsonl"),
               "--bootstrap", "0", "--no-progress", "--out", str(metrics)).returncode == 0
    page = tmp_path / "r.html"
    done = cli("report", "--config", str(QUICKSTART), "--events",
               str(history / "events.jsonl"), "--evaluation", str(metrics),
               "--no-progress", "--out", str(page))
    assert done.returncode == 0, done.stderr
    assert "Impact per group over time" in page.read_text()


def test_evaluate_and_report_on_the_shipped_cards_example_from_csv(tmp_path: Path) -> None:
    """examples/cards.yaml with its CSV history (text codes, an "NA" region): the second,
    different config the data scientist's guide uses."""
    import subprocess

    history = tmp_path / "cards"
    subprocess.run([sys.executable, str(REPO / "examples" / "cards_history.py"), "--out",
                    str(history), "--count", "1500"], check=True, cwd=REPO, timeout=120)
    common = ["--config", str(REPO / "examples" / "cards.yaml"), "--events",
              str(history / "events.csv"), "--labels", str(history / "labels.csv")]
    evaluated = subprocess.run([sys.executable, "-m", "streams.cli", "evaluate", *common],
                               capture_output=True, text=True, cwd=REPO, timeout=300,
                               env=cli_env())
    assert evaluated.returncode == 0, evaluated.stderr
    assert "demographic_parity_ratio" in evaluated.stdout and "NA" in evaluated.stdout
    out = tmp_path / "cards.html"
    reported = subprocess.run([sys.executable, "-m", "streams.cli", "report", *common,
                               "--out", str(out)], capture_output=True, text=True, cwd=REPO,
                              timeout=300, env=cli_env())
    assert reported.returncode == 0, reported.stderr
    assert out.stat().st_size > 10_000 and b"<svg" in out.read_bytes()
