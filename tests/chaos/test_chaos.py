"""The chaos suite, small: hostile payloads of every kind, a scorer and a learner killed
with SIGKILL mid-stream; nothing lost, one outcome per event, parity with replay, and
exactly-once learning (``make chaos`` runs the full suite, with a broker outage)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.suite import SMALL, run

pytestmark = pytest.mark.kafka


def test_chaos_small_keeps_every_invariant(tmp_path: Path) -> None:
    figures = run(SMALL, tmp_path)
    print(figures.table())
    assert figures.values["lost"] == 0
