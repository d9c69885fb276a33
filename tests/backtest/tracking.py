"""Where the backtest tests' CLI runs record to: a SQLite MLflow store in a temporary
directory of this test process (never the repository's working directory)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

#: One store per test process (tests of a module run in one process, one at a time).
STORE = Path(tempfile.mkdtemp(prefix="streambed-mlflow-"))


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a ``streambed`` subprocess, recording to :data:`STORE`."""
    return {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{STORE / 'mlflow.db'}", **extra}
