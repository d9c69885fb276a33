"""The scorer's view of model.versions: only valid, intact plain-data versions are served."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest

from governance import LearnerCore, LogisticModel, ModelSpec, PromotionConfig, TrainingExample
from governance.records import dumps
from streams.scorer.champion import VersionBoard, VersionRefused, read_version


class _Evil:
    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, ("touch /tmp/streambed-forged",))


def version_records() -> list[bytes]:
    """model.versions records a learner core writes: version 0, then trained cuts."""
    core = LearnerCore(spec=ModelSpec(), promotion=PromotionConfig(
        examples_per_version=20, min_group_examples=1, min_label_examples=1), feature_set="fs")
    out = [dumps(r) for r in core.start(now_ms=0) if hasattr(r, "artifact")]
    for i in range(40):
        ex = TrainingExample(event_id=f"e{i}", entity_id="u", features={"x": float(i % 5)},
                             label=int(i % 5 > 2), score=0.5, decision=1,
                             model_version=core.champion or "", feature_set="fs",
                             event_ts=i, label_ts=i)
        out += [dumps(r) for r in core.learn(i, ex, now_ms=i) if hasattr(r, "artifact")]
    return out


def test_a_forged_or_tampered_version_is_refused_and_counted_never_run() -> None:
    marker = Path("/tmp/streambed-forged")
    marker.unlink(missing_ok=True)
    board = VersionBoard("fs", ModelSpec())
    genuine = version_records()
    tampered = json.loads(genuine[-1])
    tampered["artifact"]["intercept"] += 1.0  # the SHA-256 no longer matches
    forged = [pickle.dumps(_Evil()), b"{}", json.dumps(tampered).encode(), b"\x80\x04"]
    for raw in forged:
        with pytest.raises(VersionRefused):
            board.add(raw)
    assert board.refused == len(forged) and not marker.exists()
    for raw in genuine:
        board.add(raw)
    champion = board.champion()
    assert champion.version == board.champion_record().version  # type: ignore[union-attr]
    record = board.champion_record()
    assert record is not None and record.sequence > 0, "a trained version was promoted"
    served = champion.score_one({"x": 3.0})
    assert served == LogisticModel.from_artifact(record.artifact).score({"x": 3.0})[0]
    assert served != 0.5, "the promoted version's weights, not version 0's"
    assert read_version(genuine[0]).sequence == 0
