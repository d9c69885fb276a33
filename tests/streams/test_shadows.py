"""Candidates in shadow: which versions a scorer scores beside the champion, and how their
event-time scores travel from the event to its training example.

No Kafka: the board and follower take ``model.versions`` records built by governance's own
learner core; the processor runs over dict tables.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from governance import (
    LearnerCore,
    LogisticModel,
    ModelVersionRecord,
    PromotionConfig,
    TrainingExample,
    VersionStatus,
    artifact_sha256,
)
from governance.records import dumps
from streams.scorer.champion import Champion, ModelFollower, VersionBoard
from streams.scorer.state import PENDING_FORMAT_VERSION, Pending, decode, encode
from tests.streams.test_processor import CONFIG, NOW_MS, event, label, make, rec, scored, sent

FS = CONFIG.features.identity
SPEC = CONFIG.model.spec


def trained(seed: int, n: int = 300) -> LogisticModel:
    """A model of the quickstart spec that learned something (its scores are not 0.5)."""
    model = LogisticModel(SPEC)
    for i in range(n):
        amount = float((i * 37 + seed) % 100)
        model.learn({"amount_sum_1h": amount, "apps_lifetime": i % 5}, int(amount > 50))
    return model


def cut(sequence: int, status: VersionStatus = VersionStatus.SHADOW, *,
        feature_set: str = FS, created_at: int | None = None) -> ModelVersionRecord:
    """A version record as the learner writes it, with the status given."""
    core = LearnerCore(spec=SPEC, promotion=PromotionConfig(
        examples_per_version=20, min_group_examples=1, min_label_examples=1),
        feature_set=feature_set)
    record = next(r for r in core.start(now_ms=0) if isinstance(r, ModelVersionRecord))
    artifact = type(record.artifact).model_validate(trained(sequence).to_artifact())
    return record.model_copy(update={
        "version": f"{feature_set}-v{sequence}", "sequence": sequence, "status": status,
        "artifact": artifact,
        "artifact_sha256": artifact_sha256(artifact.model_dump(mode="json")),
        "created_at": created_at if created_at is not None else sequence,
        "status_changed_at": sequence})


def raw(record: ModelVersionRecord) -> bytes:
    return dumps(record)


# -- which versions are in shadow ---------------------------------------------------------


def test_the_board_shadows_its_own_feature_sets_shadow_versions_newest_first() -> None:
    board = VersionBoard(FS, SPEC)
    for record in (cut(1), cut(2, VersionStatus.HELD), cut(3), cut(4, feature_set="other"),
                   cut(5), cut(6, VersionStatus.CANDIDATE), cut(7, VersionStatus.CHAMPION)):
        board.add(raw(record))
    assert [r.version for r in board.shadow_records(2)] == [f"{FS}-v5", f"{FS}-v3"]
    assert [r.version for r in board.shadow_records(8)] == [f"{FS}-v5", f"{FS}-v3", f"{FS}-v1"]
    assert board.shadow_records(0) == []


class Serving:
    """What the follower drives: the processor's champion and shadows, and the counts."""

    def __init__(self) -> None:
        self.champion = Champion.bootstrap(SPEC, FS)
        self.shadows: tuple[Champion, ...] = ()
        self.adoptions = 0
        self.refused: list[str] = []

    def adopt_shadows(self, shadows: tuple[Champion, ...]) -> None:
        self.shadows = shadows
        self.adoptions += 1

    def follower(self, max_shadows: int = 2) -> ModelFollower:
        board = VersionBoard(FS, SPEC)
        return ModelFollower(board, lambda: self.champion.version,
                             lambda c: setattr(self, "champion", c), self.refused.append,
                             self.adopt_shadows, max_shadows)


def test_a_shadow_is_loaded_and_stops_being_scored_once_its_verdict_is_recorded() -> None:
    s = Serving()
    follower = s.follower()
    follower.take([raw(cut(1))], caught_up=True)
    assert [m.version for m in s.shadows] == [f"{FS}-v1"]
    features = {"amount_sum_1h": 80.0, "apps_lifetime": 2}
    assert s.shadows[0].score_one(features) == trained(1).score(features)[0]
    follower.take([], caught_up=True)
    assert s.adoptions == 1, "the same shadows are not loaded again"
    follower.take([raw(cut(1, VersionStatus.HELD))], caught_up=True)
    assert s.shadows == () and s.adoptions == 2
    follower.take([raw(cut(2)), raw(cut(1, VersionStatus.CHAMPION))], caught_up=True)
    assert s.champion.version == f"{FS}-v1", "promoted: it serves, no longer in shadow"
    assert [m.version for m in s.shadows] == [f"{FS}-v2"]


def test_at_most_max_shadows_the_newest_and_a_forged_one_is_refused_and_counted() -> None:
    s = Serving()
    follower = s.follower(max_shadows=2)
    forged = json.loads(raw(cut(9)))
    forged["artifact"]["intercept"] += 1.0  # its SHA-256 no longer matches
    follower.take([raw(cut(1)), raw(cut(2)), raw(cut(3)), json.dumps(forged).encode()],
                  caught_up=True)
    assert [m.version for m in s.shadows] == [f"{FS}-v3", f"{FS}-v2"]
    assert len(s.refused) == 1 and "SHA-256" in s.refused[0]
    assert follower.board.refused == 1


# -- scores carried from the event to its example -----------------------------------------


def _shadows(*sequences: int) -> tuple[Champion, ...]:
    return tuple(Champion(trained(n), f"{FS}-v{n}") for n in sequences)


def test_each_shadow_scores_each_event_and_the_example_carries_the_scores() -> None:
    p = make()
    p.shadows = _shadows(1, 2)
    res = p.process_events([rec(event(i, NOW_MS + i, amount=10.0 * i), i) for i in range(4)],
                           NOW_MS)
    assert res.shadow_scores == 8
    records = scored(res)
    assert all("shadow_scores" not in r for r in records), "the scored record is the champion's"
    labels = p.process_labels([rec(label(i, NOW_MS + 10), i, topic="labels")
                               for i in range(4)], NOW_MS)
    examples = [TrainingExample.model_validate(e) for e in sent(labels, CONFIG.topics.training)]
    assert len(examples) == 4
    by_id = {r["event_id"]: r for r in records}
    for ex in examples:
        features = by_id[ex.event_id]["features"]
        assert ex.features == features and ex.score == 0.5, "the champion's score is served"
        assert ex.shadow_scores == {f"{FS}-v{n}": trained(n).score(features)[0]
                                    for n in (1, 2)}
        assert len(set(ex.shadow_scores.values())) == 2, "two different models"


def test_shadows_swapped_between_batches_score_from_the_next_batch() -> None:
    p = make()
    p.shadows = _shadows(1)
    p.process_events([rec(event(1, NOW_MS), 0)], NOW_MS)
    p.shadows = ()
    res = p.process_events([rec(event(2, NOW_MS + 1), 1)], NOW_MS)
    assert res.shadow_scores == 0
    assert list(decode(p.tables.pending.get(b"e1"), Pending).shadow_scores) == [f"{FS}-v1"]
    assert decode(p.tables.pending.get(b"e2"), Pending).shadow_scores == {}


class _Broken(Champion):
    def score_one(self, features: Any) -> float:
        if features["amount_sum_1h"] > 15:
            raise ValueError("cannot score this one")
        return 0.25

    def score_many(self, rows: Any) -> list[float]:  # the batch fails as its worst row does
        return [self.score_one(row) for row in rows]


def test_a_shadow_that_cannot_score_an_event_never_changes_its_outcome() -> None:
    p = make()
    p.shadows = (_Broken(LogisticModel(SPEC), "broken"),)
    res = p.process_events([rec(event(1, NOW_MS, amount=10.0), 0),
                            rec(event(2, NOW_MS + 1, entity="u2", amount=20.0), 1)], NOW_MS)
    assert res.events == {"scored": 2} and res.shadow_scores == 1
    assert decode(p.tables.pending.get(b"e1"), Pending).shadow_scores == {"broken": 0.25}
    assert decode(p.tables.pending.get(b"e2"), Pending).shadow_scores == {}


def test_a_pending_prediction_written_before_shadow_scoring_still_joins() -> None:
    p = make()
    p.process_events([rec(event(1, NOW_MS), 0)], NOW_MS)
    now = decode(p.tables.pending.get(b"e1"), Pending)
    assert p.tables.pending.get(b"e1")[1] == PENDING_FORMAT_VERSION
    fields = [f for f in Pending.__struct_fields__ if f != "shadow_scores"]
    old = msgspec.msgpack.encode([1, *(getattr(now, f) for f in fields[1:])])
    p.tables.pending.put(b"e1", old, 0)
    res = p.process_labels([rec(label(1, NOW_MS + 5), 0, topic="labels")], NOW_MS)
    [example] = sent(res, CONFIG.topics.training)
    assert example["shadow_scores"] == {} and res.decode_errors == {}
    assert TrainingExample.model_validate(example).score == now.score
    assert encode(decode(old, Pending))[1] == PENDING_FORMAT_VERSION, "rewritten as format 2"


_names = st.text(min_size=1, max_size=12)
_prob = st.floats(0, 1)


@given(st.dictionaries(_names, _prob, max_size=3), _prob, st.integers(0, 2**40),
       st.dictionaries(_names, st.one_of(st.none(), st.integers(-5, 5), _prob), max_size=4))
def test_pending_round_trips_its_shadow_scores_and_reads_format_1(
        shadow_scores: dict[str, float], score: float, ts_ms: int,
        features: dict[str, Any]) -> None:
    pending = Pending(entity_id="u", ts_ms=ts_ms, partition=1, offset=ts_ms % 97,
                      features=features, score=score, decision=int(score >= 0.5),
                      model_version="v", groups={"group": "A"}, scored_at=ts_ms,
                      shadow_scores=shadow_scores)
    assert decode(encode(pending), Pending) == pending
    fields = [f for f in Pending.__struct_fields__ if f != "shadow_scores"]
    old = msgspec.msgpack.encode([1, *(getattr(pending, f) for f in fields[1:])])
    assert decode(old, Pending) == msgspec.structs.replace(pending, shadow_scores={})
