"""The supervisor (streams/supervise.py): what it restarts, what ends it, and how little it
imports before its first child starts (a restart's downtime begins there)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.supervise import SUPERVISED_ENV, USAGE_EXIT, supervise
from tests.support import REPO


@pytest.fixture(autouse=True)
def _signal_handlers_restored() -> Iterator[None]:
    """supervise() takes SIGTERM and SIGINT to forward them; give them back to pytest."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def _child(tmp_path: Path, statuses: list[int]) -> list[str]:
    """A child that exits with ``statuses[n]`` on its n-th start (0 past the list), and
    leaves one mark a start in a file: ``s`` when it saw itself supervised, else ``-``."""
    starts = tmp_path / "starts"
    code = (f"import os, pathlib, sys\np = pathlib.Path({str(starts)!r})\n"
            "marks = p.read_text() if p.exists() else ''\n"
            f"p.write_text(marks + ('s' if os.environ.get({SUPERVISED_ENV!r}) == '1' "
            "else '-'))\n"
            f"sys.exit(({statuses!r} + [0] * 9)[len(marks)])")
    return [sys.executable, "-c", code]


def _starts(tmp_path: Path) -> int:
    """How many children started, each of them supervised."""
    marks = (tmp_path / "starts").read_text()
    assert set(marks) == {"s"}, marks
    return len(marks)


def test_a_first_child_with_a_bad_config_ends_the_supervisor_with_its_status(tmp_path):
    said: list[str] = []
    assert supervise(_child(tmp_path, [USAGE_EXIT, 0]), "worker", say=said.append,
                     max_restarts=3) == 2
    assert _starts(tmp_path) == 1 and said == []


def test_a_failed_child_is_restarted_after_the_backoff_and_a_clean_exit_ends_it(tmp_path):
    said: list[str] = []
    assert supervise(_child(tmp_path, [1, 0]), "worker", say=said.append,
                     max_restarts=3) == 0
    assert _starts(tmp_path) == 2
    assert said == ["worker: the worker exited with status 1; restarting in 1 s"]


def test_a_later_child_with_a_bad_config_is_restarted_as_any_failure(tmp_path):
    """Only the first start stands for the supervisor's own check of the config: later,
    a config file caught mid-edit must not end a worker that ran."""
    said: list[str] = []
    assert supervise(_child(tmp_path, [70, USAGE_EXIT, 0]), "worker", say=said.append,
                     max_restarts=3) == 0
    assert _starts(tmp_path) == 3
    assert [s.split(";")[0] for s in said] == ["worker: the worker exited with status 70",
                                               "worker: the worker exited with status 2"]


def test_max_restarts_bounds_the_restarts(tmp_path):
    assert supervise(_child(tmp_path, [1, 3, 0]), "learner", say=lambda _: None,
                     max_restarts=1) == 3
    assert _starts(tmp_path) == 2


#: What the supervisor must not import before its child starts: the child needs them, the
#: supervisor does not (about 1-2 s of a restart on this machine before they were left out).
HEAVY = ("pydantic", "numpy", "yaml", "streams.config", "features", "governance",
         "monitors", "prometheus_client", "faust", "aiohttp", "kafka", "pandas", "river")


@pytest.mark.parametrize("command", ["worker", "learner"])
def test_the_supervisor_starts_its_child_before_importing_what_the_child_needs(command):
    """``streambed worker`` as a supervisor, up to the moment it would start the child:
    the config is the child's to read (it is not even looked at here)."""
    probe = (
        "import sys\nimport streams.supervise as s\n"
        "def supervise(argv, name):\n"
        f"    print(sorted(m for m in {HEAVY!r} if m in sys.modules), argv[1:], name)\n"
        "    return 0\n"
        "s.supervise = supervise\n"
        "from streams.cli import main\n"
        f"sys.argv = ['streambed', {command!r}, '--config', 'absent.yaml']\n"
        "sys.exit(main())")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=REPO, timeout=120,
                         env={k: v for k, v in os.environ.items()
                              if k != SUPERVISED_ENV})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (f"[] ['-m', 'streams.cli', '{command}', '--config', "
                                  f"'absent.yaml'] {command}")


def test_a_bad_config_ends_the_supervised_worker_with_status_2_naming_the_file(tmp_path):
    """Through the real supervisor and its child: one error line, status 2, no restart."""
    proc = subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker", "--config",
         str(tmp_path / "absent.yaml"), "--broker", "kafka://127.0.0.1:1"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
        env={k: v for k, v in os.environ.items() if k != SUPERVISED_ENV})
    assert proc.returncode == 2, proc.stderr
    assert "absent.yaml" in proc.stderr and "not found" in proc.stderr
    assert "restarting" not in proc.stdout + proc.stderr
