"""The operating characteristics of ``make gates-oc``, at lower counts with fixed seeds:
River-learned candidates in the simulator's world, judged at every look by the pure core."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from governance.config import PromotionConfig

BENCH = Path(__file__).resolve().parents[2] / "bench" / "gates_oc.py"
CANDIDATES = 12


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gates_oc", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["gates_oc"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def outcomes() -> dict[str, list[dict[str, object]]]:
    oc = load_bench()
    world = oc.calibrate(oc.World("simulator", oc.TRUE_INTERCEPT), seed=3)
    policy = PromotionConfig()
    return {kind: [oc.run_candidate((world, kind, i, 3, policy)) for i in range(CANDIDATES)]
            for kind in oc.KINDS}


def test_the_simulated_candidates_have_the_truth_they_claim(outcomes) -> None:
    mean = lambda kind, key: sum(r[key] for r in outcomes[kind]) / CANDIDATES  # noqa: E731
    assert 0.02 < mean("better", "auc_gap") < 0.04
    assert -0.04 < mean("worse", "auc_gap") < -0.02
    assert all(abs(r["parity"] - 0.7) <= 0.05 for r in outcomes["unfair"])
    assert all(r["parity"] > 0.95 for r in outcomes["better"] + outcomes["worse"])


def test_no_unfair_or_worse_candidate_is_promoted(outcomes) -> None:
    assert [r["verdict"] for r in outcomes["unfair"]].count("pass") == 0
    assert [r["verdict"] for r in outcomes["worse"]].count("pass") == 0


def test_no_fair_candidate_fails_an_impact_gate(outcomes) -> None:
    assert not any(r["impact_harm"] for r in outcomes["better"] + outcomes["worse"])


def test_better_candidates_are_promoted_within_5000_labels(outcomes) -> None:
    promoted = [r for r in outcomes["better"]
                if r["verdict"] == "pass" and r["labels"] <= 5000]
    assert len(promoted) >= 0.8 * CANDIDATES
