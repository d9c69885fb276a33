"""A worker starts without the offline stack: pandas, pyarrow, MLflow and Dask cost
seconds of interpreter start-up (a restart's downtime) and the scorer uses none of them;
nor River (and SciPy through it): a scorer scores with the artifact's numbers
(governance.ScoringModel), and River's package imports took over half of its start-up."""

from __future__ import annotations

import subprocess
import sys

OFFLINE = ("pandas", "pyarrow", "mlflow", "dask", "river", "scipy")


def _imported_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint(','.join(m for m in {OFFLINE!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=120)
    return [m for m in out.stdout.strip().split(",") if m]


def test_the_worker_command_line_and_the_scorer_app_import_no_offline_module():
    assert _imported_after("from streams.cli import build_parser\n"
                           "build_parser('worker')"
                           ) == []
    assert _imported_after("import streams.scorer.app") == []


def test_building_the_scorer_app_imports_neither_river_nor_the_offline_stack(tmp_path):
    """River comes later, on a thread once the tables are recovered (the performance
    monitor's ADWIN needs it at the first label), not on the path to the first score."""
    assert _imported_after(
        "from pathlib import Path\n"
        "from streams.config import load_config\n"
        "from streams.scorer.app import create_app\n"
        "create_app(load_config('examples/quickstart.yaml'), web_port=6199, "
        f"data_dir=Path({str(tmp_path)!r}))") == []


def test_the_full_command_line_still_has_every_command():
    from streams.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"worker", "replay", "features", "evaluate", "report", "model"} <= set(commands)
    assert "replay" not in build_parser("worker")._subparsers._group_actions[0].choices  # type: ignore[union-attr]


def test_features_still_names_its_offline_functions():
    import features

    assert callable(features.compute_features) and callable(features.late_mask)


#: Commands that use no pandas when they run: their parser must not import it either
#: (`streambed model` imported it through streams.mlflow_export → streams.experiments,
#: ~1-2 s of every `streambed model ...` on a loaded machine).
PANDAS_FREE_COMMANDS = ("kafka", "worker", "learner", "simulate", "schemas", "model")


def test_the_command_line_of_a_command_without_frames_imports_no_pandas():
    probe = ("import sys\nfrom streams.cli import build_parser\n"
             f"for command in {PANDAS_FREE_COMMANDS!r}:\n"
             "    build_parser(command)\n"
             "    assert 'pandas' not in sys.modules, command\n"
             "build_parser('model').parse_args(['model', 'export', 'v1', '--to', 'mlflow', "
             "'--config', 'c.yaml'])\n"
             "print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
