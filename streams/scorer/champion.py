"""The models a scorer scores with: the champion it serves, and the candidates in shadow.

A scorer never learns. It scores with the champion the learner (or a person) promoted on
``model.versions``; until there is one it serves version 0, the untrained model of the
configured spec (every score 0.5), under the same id the learner gives it. A new champion
replaces the object between batches, so every scored record names the version that
scored it. Scores come from :class:`governance.LogisticModel`, exactly as the learner
computes them (same inputs, same order, same bits).

:class:`VersionBoard` keeps the latest record of every version read from the compacted
``model.versions`` topic and says which one is the champion. A record that is not a valid
version (bad JSON, wrong shape, an artifact whose SHA-256 does not match) is refused and
counted; nothing on the topic is ever unpickled or executed.

Candidates in shadow (status ``shadow``, of the scorer's own feature set, at most
``model.promotion.max_shadows``, newest first) score every accepted event at event time
beside the champion, without being served: their scores travel with the pending
prediction into the training example (``shadow_scores``), where the learner judges them
on the same events as the champion. A shadow whose status changes (its verdict) is no
longer scored from the next batch on. :class:`ModelFollower` keeps both up to date.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from governance import (
    ArtifactError,
    LogisticModel,
    ModelSpec,
    ModelVersionRecord,
    VersionStatus,
    artifact_sha256,
    version_id,
)


class Champion:
    """A model version that scores feature vectors; immutable once serving."""

    def __init__(self, model: LogisticModel, version: str) -> None:
        self.model = model
        self.version = version
        self.threshold = model.spec.threshold

    @classmethod
    def bootstrap(cls, spec: ModelSpec, feature_set: str) -> Champion:
        """Version 0: the untrained model, the first champion of every lineage."""
        return cls(LogisticModel(spec), version_id(feature_set, spec, 0))

    @classmethod
    def of(cls, record: ModelVersionRecord) -> Champion:
        return cls(LogisticModel.from_artifact(record.artifact), record.version)

    def score_one(self, features: Mapping[str, Any]) -> float:
        score, _ = self.model.score(features)
        if not 0.0 <= score <= 1.0:  # NaN fails both comparisons too
            raise ValueError(f"the model gave {score!r}, not a probability")
        return score

    def score_many(self, rows: Sequence[Mapping[str, Any]]) -> list[float]:
        """Every row's score at once, each bit-equal to :meth:`score_one`'s
        (:meth:`LogisticModel.score_batch`); raises if any is not a probability."""
        scores = self.model.score_batch(rows)
        if not all(0.0 <= s <= 1.0 for s in scores):
            raise ValueError("the model gave a score that is not a probability")
        return scores

    def decision(self, score: float) -> int:
        return int(score >= self.threshold)


class VersionRefused(ValueError):
    """A record on ``model.versions`` that is not a valid, intact version."""


def read_version(raw: bytes) -> ModelVersionRecord:
    """Decode and check one ``model.versions`` record (plain JSON, never code)."""
    try:
        record = ModelVersionRecord.model_validate_json(raw)
    except (ValidationError, ValueError) as exc:
        raise VersionRefused(f"not a model version record: {str(exc).splitlines()[0]}") \
            from None
    if artifact_sha256(record.artifact.model_dump(mode="json")) != record.artifact_sha256:
        raise VersionRefused(f"{record.version}: the artifact does not match its SHA-256")
    return record


class VersionBoard:
    """The latest record of each version seen, and the champion among them."""

    def __init__(self, feature_set: str, spec: ModelSpec) -> None:
        self.feature_set = feature_set
        self.spec = spec
        self.records: dict[str, ModelVersionRecord] = {}
        self.refused = 0

    def add(self, raw: bytes | None) -> bool:
        """Take one record; False when refused (or a tombstone)."""
        if raw is None:
            return False
        try:
            record = read_version(raw)
        except VersionRefused:
            self.refused += 1
            raise
        self.records[record.version] = record
        return True

    def champion_record(self) -> ModelVersionRecord | None:
        """The serving champion: the most recent version whose status is champion."""
        champions = [r for r in self.records.values() if r.status is VersionStatus.CHAMPION]
        if not champions:
            return None
        return max(champions, key=lambda r: (r.status_changed_at, r.sequence))

    def shadow_records(self, limit: int) -> list[ModelVersionRecord]:
        """The versions in shadow of this feature set, newest cut first, at most ``limit``."""
        shadows = [r for r in self.records.values()
                   if r.status is VersionStatus.SHADOW and r.feature_set == self.feature_set]
        shadows.sort(key=lambda r: (r.created_at, r.sequence), reverse=True)
        return shadows[:limit]

    def bootstrap_version(self) -> str:
        return version_id(self.feature_set, self.spec, 0)

    def champion(self) -> Champion:
        record = self.champion_record()
        if record is None:
            return Champion.bootstrap(self.spec, self.feature_set)
        return self.model(record)

    @staticmethod
    def model(record: ModelVersionRecord) -> Champion:
        """The version's model, ready to score; VersionRefused if its artifact is unusable."""
        try:
            return Champion.of(record)
        except ArtifactError as exc:
            raise VersionRefused(f"{record.version}: {exc}") from None


class ModelFollower:
    """Takes ``model.versions`` batches (:class:`~streams.scorer.gaps.VersionFollower`) and
    puts the models to work: ``adopt`` is called with each new champion and
    ``adopt_shadows`` with each new set of shadows (both score from the next batch on);
    :attr:`loaded` is set once the topic was read to its end."""

    def __init__(self, board: VersionBoard, serving: Callable[[], str],
                 adopt: Callable[[Champion], None], refused: Callable[[str], None],
                 adopt_shadows: Callable[[tuple[Champion, ...]], None] = lambda s: None,
                 max_shadows: int = 0) -> None:
        self.board = board
        #: The version serving now.
        self.serving = serving
        self.adopt = adopt
        #: Called with the reason, per record refused, champion that cannot serve or shadow
        #: that cannot score (once per change of the shadows).
        self.refused = refused
        self.adopt_shadows = adopt_shadows
        self.max_shadows = max_shadows
        self.loaded = asyncio.Event()
        self._shadows: dict[tuple[str, str], Champion] = {}
        self._wanted: list[tuple[str, str]] = []

    def take(self, batch: list[bytes | None], caught_up: bool) -> None:
        for raw in batch:
            try:
                self.board.add(raw)
            except VersionRefused as exc:
                self.refused(f"refused a record: {exc}")
        record = self.board.champion_record()
        wanted = record.version if record else self.board.bootstrap_version()
        try:
            if wanted != self.serving():
                self.adopt(self.board.champion())
        except VersionRefused as exc:
            self.refused(f"cannot serve the champion: {exc}")
        self._follow_shadows()
        if caught_up:
            self.loaded.set()

    def _follow_shadows(self) -> None:
        records = self.board.shadow_records(self.max_shadows)
        wanted = [(r.version, r.artifact_sha256) for r in records]
        if wanted == self._wanted:
            return
        loaded: dict[tuple[str, str], Champion] = {}
        for key, record in zip(wanted, records, strict=True):
            model = self._shadows.get(key)
            if model is None:
                try:
                    model = self.board.model(record)
                except VersionRefused as exc:
                    self.refused(f"cannot score in shadow: {exc}")
                    continue
            loaded[key] = model
        self._wanted, self._shadows = wanted, loaded
        self.adopt_shadows(tuple(loaded.values()))
