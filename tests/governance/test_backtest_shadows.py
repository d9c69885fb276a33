"""The backtest plays the scorers' shadow scoring: each event is scored at its time by
every version then in shadow, so the backtest's candidates are judged as the learner
judges them live (on shadow evidence only)."""

from __future__ import annotations

import pandas as pd

from governance import ModelSpec, PromotionConfig
from governance.backtest import backtest
from tests.governance.training_streams import GROUPS, stream


def test_backtest_candidates_are_judged_on_their_shadow_scores() -> None:
    rows = [{"event_id": f"e{i}", "entity_id": f"u{i % 7}", "ts": 1_000 * i, **f,
             "group": g["group"], "label": y}
            for i, (f, y, g) in enumerate(stream(1500))]
    events = pd.DataFrame(rows).drop(columns="label")
    labels = pd.DataFrame({"event_id": [r["event_id"] for r in rows],
                           "label": [r["label"] for r in rows],
                           "label_ts": [r["ts"] + 500 for r in rows]})
    run = backtest(events, labels, spec=ModelSpec(), feature_set="fs",
                   promotion=PromotionConfig(examples_per_version=300, first_look_examples=300,
                                             max_examples_per_judgement=2400),
                   features=["x1", "x2", "x3"], label_ttl_ms=10_000,
                   sensitive_attributes=GROUPS)
    judged = [v for v in run.versions if v.evaluation is not None]
    assert judged, [v.status.value for v in run.versions]
    v1 = judged[0]
    assert v1.evaluation.look == 1 and v1.evaluation.examples == 300  # type: ignore[union-attr]
    # its evidence starts after its cut: it never judged an event it had learned
    assert v1.evaluation.from_offset > v1.training.to_offset  # type: ignore[union-attr,operator]
