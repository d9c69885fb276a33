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

Drift compares live traffic with the champion's reference, read from its version record
(:func:`drift_references`): its ``drift_reference``, or its parent's when it has none or
was cut from fewer than ``monitors.drift.reference.min_examples`` examples
(:func:`monitors.sketch.reference_at_cut`), and the ``drift_baseline`` a person pinned.
The follower hands them over at start and whenever the champion or its references change;
a stored reference that does not decode is refused and counted like a refused record, and
drift stays on what it had (the first events, until a reference is set).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from governance import (
    ArtifactError,
    LogisticModel,
    ModelSpec,
    ModelVersionRecord,
    ScoringModel,
    VersionStatus,
    artifact_sha256,
    version_id,
)
from monitors.sketch import DriftReference, reference_at_cut


class Champion:
    """A model version that scores feature vectors; immutable once serving. The scorer's
    models are :class:`governance.ScoringModel` (the artifact's numbers, no River: a
    scorer restarts without River's seconds of imports); a :class:`LogisticModel` scores
    the same bits."""

    def __init__(self, model: ScoringModel | LogisticModel, version: str) -> None:
        self.model = model
        self.version = version
        self.threshold = model.spec.threshold

    @classmethod
    def bootstrap(cls, spec: ModelSpec, feature_set: str) -> Champion:
        """Version 0: the untrained model, the first champion of every lineage."""
        return cls(ScoringModel(spec), version_id(feature_set, spec, 0))

    @classmethod
    def of(cls, record: ModelVersionRecord) -> Champion:
        return cls(ScoringModel.from_artifact(record.artifact), record.version)

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


def evaluation_roc_auc(record: ModelVersionRecord | None) -> float | None:
    """The version's own ROC AUC when it was judged: its ``roc_auc`` gate's value (the
    candidate's estimate), or in records before shadow judging its evaluation window's."""
    evaluation = record.evaluation if record is not None else None
    if evaluation is None:
        return None
    for gate in evaluation.gates:
        if gate.gate == "roc_auc" and gate.attribute is None and gate.value is not None:
            return gate.value
    performance = evaluation.candidate_performance
    return performance.roc_auc if performance is not None else None


@dataclass(frozen=True)
class DriftReferences:
    """What the champion's record says drift compares with, and where it came from."""

    #: The champion (the bootstrap version when none is on record).
    champion: str
    reference: DriftReference | None = None
    #: The version whose record held ``reference``: the champion or its parent.
    reference_from: str | None = None
    baseline: DriftReference | None = None
    evaluation_roc_auc: float | None = None
    #: Why a stored reference could not be used (each counted as a refused record).
    refused: tuple[str, ...] = ()

    @property
    def reference_sha256(self) -> str | None:
        return None if self.reference is None else _sha256(self.reference)

    @property
    def baseline_sha256(self) -> str | None:
        return None if self.baseline is None else _sha256(self.baseline)

    def key(self) -> tuple[Any, ...]:
        """Equal keys: nothing for the monitors to change."""
        return (self.champion, self.reference_from, self.reference_sha256,
                self.baseline_sha256, self.evaluation_roc_auc)


def _sha256(reference: DriftReference) -> str:
    """The identity of a reference: SHA-256 of its compact encoding."""
    return hashlib.sha256(reference.encode()).hexdigest()


def _decode(data: dict[str, Any] | None, what: str,
            refused: list[str]) -> DriftReference | None:
    if data is None:
        return None
    try:
        return DriftReference.from_json(data)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        refused.append(f"{what} does not decode: {exc}")
        return None


def drift_references(board: VersionBoard, min_examples: int) -> DriftReferences:
    """The champion's drift references as its record (and its parent's) hold them."""
    record = board.champion_record()
    if record is None:
        return DriftReferences(board.bootstrap_version())
    refused: list[str] = []
    own = _decode(record.drift_reference, f"{record.version}: drift_reference", refused)
    parent_record = board.records.get(record.parent) if record.parent else None
    parent = None
    if parent_record is not None and (own is None or own.examples < min_examples):
        parent = _decode(parent_record.drift_reference,
                         f"{parent_record.version} (parent of {record.version}): "
                         "drift_reference", refused)
    reference, source = own, record.version if own is not None else None
    if parent is not None and parent_record is not None:
        reference = parent if own is None else reference_at_cut(own, parent, min_examples)
        if reference is parent:
            source = parent_record.version
    baseline = _decode(record.drift_baseline, f"{record.version}: drift_baseline", refused)
    return DriftReferences(record.version, reference, source, baseline,
                           evaluation_roc_auc(record), tuple(refused))


class ModelFollower:
    """Takes ``model.versions`` batches (:class:`~streams.scorer.gaps.VersionFollower`) and
    puts the models to work: ``adopt`` is called with each new champion and
    ``adopt_shadows`` with each new set of shadows (both score from the next batch on);
    :attr:`loaded` is set once the topic was read to its end."""

    def __init__(self, board: VersionBoard, serving: Callable[[], str],
                 adopt: Callable[[Champion], None], refused: Callable[[str], None],
                 adopt_shadows: Callable[[tuple[Champion, ...]], None] = lambda s: None,
                 max_shadows: int = 0,
                 adopt_references: Callable[[DriftReferences], None] = lambda r: None,
                 reference_min_examples: int = 500) -> None:
        self.board = board
        #: The version serving now.
        self.serving = serving
        self.adopt = adopt
        #: Called with the reason, per record refused, champion that cannot serve or shadow
        #: that cannot score (once per change of the shadows).
        self.refused = refused
        self.adopt_shadows = adopt_shadows
        self.max_shadows = max_shadows
        #: Called with the champion's drift references once the topic was read to its
        #: end, then whenever they change (another champion, a baseline pinned).
        self.adopt_references = adopt_references
        self.reference_min_examples = reference_min_examples
        self._references: tuple[Any, ...] | None = None
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
        if self.loaded.is_set():
            self._follow_references()

    def _follow_references(self) -> None:
        references = drift_references(self.board, self.reference_min_examples)
        if references.key() == self._references:
            return
        self._references = references.key()
        for why in references.refused:
            self.refused(f"drift reference refused: {why}")
        self.adopt_references(references)

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
