"""Synthetic training logs for the learner tests: a scorer that follows the champion.

``stream(...)`` yields feature dicts, labels and groups from a fixed seed: the label
depends on ``x1`` and ``x2``; with ``disparity`` group B's ``x1`` is shifted down, so any
model that learns ``x1`` selects group B far less often (the harm the gates must catch).
:class:`Scorer` plays the scorer's part: it scores each event with the current champion
(rebuilt from its artifact, as the real scorer does), and with every version in shadow
(without serving it), and turns it into a TrainingExample carrying the shadow scores.
``shadows=False`` plays a scorer from before shadow scoring (no shadow_scores).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

from governance import (
    LearnerCore,
    LogisticModel,
    ModelVersionRecord,
    Output,
    TrainingExample,
    VersionStatus,
)

FEATURE_SET = "fs0123456789"
GROUPS = {"group": ["A", "B", "C"]}


def stream(n: int, seed: int = 1, disparity: float = 0.0,
           nulls: bool = False, shift: tuple[int, int, float] | None = None,
           ) -> Iterator[tuple[dict[str, float | None], int, dict[str, str]]]:
    """``shift``: (from, until, amount): ``x3`` (which the label does not depend on) is
    moved by ``amount`` for the events in [from, until): a covariate drift."""
    rng = random.Random(seed)
    for i in range(n):
        group = "ABC"[i % 3]
        x1 = rng.gauss(0, 1) - (disparity if group == "B" else 0.0)
        x2 = rng.gauss(0, 1)
        x3 = rng.uniform(0, 10)
        if shift is not None and shift[0] <= i < shift[1]:
            x3 += shift[2]
        label = int(rng.random() < 1 / (1 + math.exp(-(2 * x1 - x2))))
        features: dict[str, float | None] = {"x1": x1, "x2": x2, "x3": x3}
        if nulls and rng.random() < 0.1:
            features["x3"] = None
        yield features, label, {"group": group}


class Scorer:
    """Scores with the current champion and every shadow; follows model.versions records."""

    def __init__(self, core: LearnerCore, shadows: bool = True) -> None:
        self.core = core
        self.version: str | None = None
        self.model: LogisticModel | None = None
        self.shadows: dict[str, LogisticModel] = {}
        self.shadowing = shadows

    def follow(self, outputs: list[Output]) -> None:
        for r in outputs:
            if not isinstance(r, ModelVersionRecord):
                continue
            if r.status is VersionStatus.CHAMPION:
                self.version = r.version
                self.model = LogisticModel.from_artifact(r.artifact)
            if r.status is VersionStatus.SHADOW and self.shadowing:
                if r.version not in self.shadows:
                    self.shadows[r.version] = LogisticModel.from_artifact(r.artifact)
            else:
                self.shadows.pop(r.version, None)

    def example(self, i: int, features: dict[str, float | None], label: int,
                groups: dict[str, str]) -> TrainingExample:
        assert self.model is not None and self.version is not None
        score, decision = self.model.score(features)
        return TrainingExample(
            event_id=f"e{i}", entity_id=f"u{i % 97}", features=features, label=label,
            score=score, decision=decision, model_version=self.version,
            feature_set=FEATURE_SET, groups=groups, event_ts=1_000 * i,
            label_ts=1_000 * i + 500,
            shadow_scores={v: m.score(features)[0] for v, m in self.shadows.items()})


def run(core: LearnerCore, n: int, seed: int = 1, disparity: float = 0.0,
        start: int = 0, shadows: bool = True, shift: tuple[int, int, float] | None = None,
        ) -> tuple[list[Output], list[tuple[int, TrainingExample]]]:
    """Drive a learner over n examples (offset = index), as scorer + learner would; the
    label of each event comes at once (the scorer scores event i with the versions
    published up to example i - 1)."""
    scorer = Scorer(core, shadows)
    outputs = core.start(now_ms=0)
    scorer.follow(outputs)
    if scorer.version is None:  # restarted learner: the champion is already known
        scorer.follow([core.version(core.champion or "")])
        scorer.follow([core.version(v) for v in core.shadows()])
    log: list[tuple[int, TrainingExample]] = []
    for i, (features, label, groups) in enumerate(stream(n, seed, disparity, shift=shift)):
        if i < start:
            continue
        example = scorer.example(i, features, label, groups)
        log.append((i, example))
        out = core.learn(i, example, now_ms=1_000 * i + 500)
        scorer.follow(out)
        outputs += out
    return outputs, log
