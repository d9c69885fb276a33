"""The chaos suite, small, on the RocksDB store: hostile payloads of every kind, a scorer
killed with SIGKILL and, having lost its disk, killed again while it recovers its tables
from their changelogs, a learner killed; nothing lost, one outcome per event, parity with
replay, and exactly-once learning (``make chaos`` runs the full suite, with more kills, a
broker outage and the broker killed during a scorer's recovery)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.suite import SMALL, run

pytestmark = pytest.mark.kafka


def test_chaos_small_keeps_every_invariant(tmp_path: Path) -> None:
    figures = run(SMALL, tmp_path)
    print(figures.table())
    assert figures.values["lost"] == 0
