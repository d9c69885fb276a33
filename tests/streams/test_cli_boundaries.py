"""The command line's boundaries (issue 16's shell split): the per-command modules take
the config loader from ``streams.cli`` as an argument instead of importing it (no import
circle), and the learner has no ``--data-dir`` (it keeps no local state)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from streams.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
COMMAND_MODULES = ["streams/backtest/cli.py", "streams/features_cli.py",
                   "streams/replay/cli.py", "streams/report/cli.py"]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_a_command_module_does_not_import_the_command_line(module: str) -> None:
    assert "streams.cli" not in _imports(ROOT / module)


def test_the_learner_takes_no_data_directory(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser("learner")
    assert parser.parse_args(["learner", "--config", "c.yaml"]).command == "learner"
    with pytest.raises(SystemExit):
        parser.parse_args(["learner", "--config", "c.yaml", "--data-dir", "/tmp/x"])
    assert "--data-dir" in capsys.readouterr().err
