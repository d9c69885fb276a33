"""Every version and audit record stays well under the broker's message limit, at the
largest configured groups (100 per attribute, the config's maximum, and an intersection of
two such attributes) and the largest evidence (the default final look, 16,000 examples).

Without the bound (governance.sizes) the audit record of this judgement is about 2.6 MB;
with it, about 26 KB."""

from __future__ import annotations

import random

from governance import LearnerCore, ModelSpec, PromotionConfig, TrainingExample
from governance.records import AuditRecord, dumps
from governance.sizes import MAX_SAMPLE_SIZES, RECORD_BUDGET_BYTES
from monitors.config import MonitorsConfig
from streams.config import Topics
from streams.learner.snapshots import LearnerState

GROUPS = {f"attr{k}": [f"group{i:03d}" for i in range(100)] for k in range(3)}
N = PromotionConfig().max_examples_per_judgement


def test_records_stay_bounded_at_100_groups_per_attribute_and_the_largest_evidence() -> None:
    MonitorsConfig(sensitive_attributes=GROUPS, intersections=[["attr0", "attr1"]])  # valid
    core = LearnerCore(spec=ModelSpec(), feature_set="fs", sensitive_attributes=GROUPS,
                       intersections=[["attr0", "attr1"]],
                       promotion=PromotionConfig(examples_per_version=1, max_shadows=1,
                                                 first_look_examples=N))
    rng = random.Random(7)
    outputs = core.start(now_ms=0)
    for i in range(N + 1):
        x = rng.gauss(0, 1)
        outputs += core.learn(i, TrainingExample(
            event_id=f"e{i}", entity_id="u", features={"x": x},
            label=int(rng.random() < 0.1 + 0.1 * (x > 0)), score=0.5, decision=1,
            model_version=core.champion or "", feature_set="fs",
            groups={a: rng.choice(g) for a, g in GROUPS.items()}, event_ts=i, label_ts=i,
            shadow_scores={s: min(1.0, max(0.0, 0.3 + 0.1 * x)) for s in core.shadows()}),
            now_ms=i)
    verdict = next(o for o in outputs if isinstance(o, AuditRecord) and o.evaluation)
    assert verdict.evaluation is not None and verdict.evaluation.examples == N
    assert {g.attribute for g in verdict.gates} >= {*GROUPS, "attr0×attr1"}
    assert all(len(g.sample_sizes) <= MAX_SAMPLE_SIZES + 1 for g in verdict.gates)
    quality = verdict.evaluation.group_quality     # reported per group, largest groups only
    assert set(quality) >= {*GROUPS, "attr0×attr1"}
    assert all(0 < len(q) <= MAX_SAMPLE_SIZES for q in quality.values())
    largest = max(len(dumps(o)) for o in outputs)
    assert largest < RECORD_BUDGET_BYTES / 4, largest          # ~26 KB measured
    assert Topics().max_message_bytes >= 4 * RECORD_BUDGET_BYTES
    snapshot = len(LearnerState(core.snapshot(), 0).encode())   # as the shell sends it
    assert snapshot < Topics().max_message_bytes / 4, snapshot
