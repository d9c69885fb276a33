"""Rebuild a version from the training log, and verify it is the version that was published.

A version is "the examples at offsets [from, to] of ``training``, learned in order by this
model config and River version". :func:`rebuild` relearns exactly that, with the same
rule for skipping examples as the learner (:func:`governance.learner.learnable`);
:func:`verify` compares the result with the record: same artifact SHA-256 (hence the same
weights, scaler statistics and optimizer state, bit for bit) and the same example count.
This is ``streambed model rebuild VERSION --verify``: the CLI reads the record from
``model.versions``, the examples from ``training``, and prints the :class:`Verification`.

>>> from governance.config import ModelSpec
>>> from governance.records import TrainingExample
>>> ex = lambda i: TrainingExample(event_id=f"e{i}", entity_id="u", features={"x": 1.0},
...     label=1, score=0.5, decision=1, model_version="v0", feature_set="fs", event_ts=0,
...     label_ts=0)
>>> model, learned = rebuild([(0, ex(0)), (1, ex(1)), (2, ex(2))], spec=ModelSpec(),
...                          feature_set="fs", from_offset=0, to_offset=1)
>>> learned, model.iterations
(2, 2)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from governance.artifact import RIVER_VERSION, LogisticModel, artifact_sha256
from governance.config import ModelSpec
from governance.learner import RecentIds, learnable
from governance.records import ModelVersionRecord, TrainingExample


def rebuild(examples: Iterable[tuple[int, TrainingExample]], *, spec: ModelSpec,
            feature_set: str, from_offset: int | None,
            to_offset: int | None) -> tuple[LogisticModel, int]:
    """Learn the examples at offsets [from, to] from scratch, in the order given (which
    must be offset order); return the model and how many examples it learned. Examples
    past ``to_offset`` are not read further (the iterable can be an open consumer)."""
    model = LogisticModel(spec)
    learned = 0
    if from_offset is None or to_offset is None:
        return model, learned
    previous = -1
    recent = RecentIds()
    for offset, example in examples:
        if offset <= previous:
            raise ValueError(f"training examples out of order: {offset} after {previous}")
        previous = offset
        if offset > to_offset:
            break
        if offset < from_offset or not learnable(example, feature_set):
            continue
        if not recent.check_and_add(example.event_id):
            continue  # a scorer's at-least-once repeat, skipped exactly as the learner did
        model.learn(example.features, example.label)
        learned += 1
    return model, learned


@dataclass(frozen=True)
class Verification:
    """The outcome of ``rebuild --verify``."""

    version: str
    ok: bool
    expected_sha256: str
    actual_sha256: str
    expected_examples: int
    actual_examples: int
    recorded_river_version: str
    river_version: str

    def describe(self) -> str:
        if self.ok:
            return (f"{self.version}: rebuilt identically from {self.actual_examples} "
                    f"examples (artifact sha256 {self.actual_sha256})")
        lines = [f"{self.version}: rebuild DIFFERS"]
        if self.expected_examples != self.actual_examples:
            lines.append(f"  examples learned: recorded {self.expected_examples}, "
                         f"relearned {self.actual_examples} (is the training log complete?)")
        lines.append(f"  artifact sha256: recorded {self.expected_sha256}, "
                     f"rebuilt {self.actual_sha256}")
        if self.recorded_river_version != self.river_version:
            lines.append(f"  River {self.recorded_river_version} made it, this is River "
                         f"{self.river_version}")
        return "\n".join(lines)


def verify(record: ModelVersionRecord,
           examples: Iterable[tuple[int, TrainingExample]]) -> Verification:
    """Rebuild the record's version from the examples and compare it with the record."""
    model, learned = rebuild(examples, spec=record.model, feature_set=record.feature_set,
                             from_offset=record.training.from_offset,
                             to_offset=record.training.to_offset)
    sha = artifact_sha256(model.to_artifact())
    return Verification(
        version=record.version,
        ok=sha == record.artifact_sha256 and learned == record.examples_learned,
        expected_sha256=record.artifact_sha256, actual_sha256=sha,
        expected_examples=record.examples_learned, actual_examples=learned,
        recorded_river_version=record.river_version, river_version=RIVER_VERSION)
