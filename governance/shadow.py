"""Shadow evidence: what one candidate scored at event time, kept until its verdict.

A candidate cut by the learner is published with status ``shadow``; every scorer scores
each event with it beside the champion, without serving it, and the training example of
that event carries the candidate's score in ``shadow_scores``. :class:`ShadowEvidence`
keeps, for one candidate, one row per such example (in training-log order): its offset,
label, the event's groups (each sensitive attribute and each intersection), the
candidate's score, and the score of every *other* model that scored the same event at
event time (the serving champion, other shadows).

The comparator is whoever is champion when the candidate is judged: the paired evidence
(:meth:`ShadowEvidence.paired`) keeps the rows that model also scored at event time
(served, or scored in shadow before it was promoted). While the champion does not change
that is every row scored while it served; when it changes mid-shadow, the evidence is the
events both scored, and nothing is rescored with hindsight. Examples without the
candidate's shadow score (written before shadow scoring, or before its cut) are never
evidence.

>>> from governance.config import PromotionPolicy
>>> policy = PromotionPolicy(sensitive_attributes={"g": ["A", "B"], "age": ["young"]},
...                          intersections=[["g", "age"]])
>>> attribute_names(policy)
['g', 'age', 'g×age']
>>> group_row({"g": "A", "age": "old"}, policy)
('A', 'other', 'A×other')
>>> ev = ShadowEvidence("v2")
>>> ev.add(10, 1, 0.8, {"v1": 0.6}, {"g": "A", "age": "young"})
>>> ev.add(11, 0, 0.3, {"v0": 0.5}, {"g": "B", "age": "young"})
>>> ev.paired_count("v1"), ev.paired_count("v0")
(1, 1)
>>> p = ev.paired("v1", policy, champion_threshold=0.5, candidate_threshold=0.5)
>>> p.labels.tolist(), p.champion_scores.tolist(), p.candidate_scores.tolist()
([1], [0.6], [0.8])
>>> p.groups["g×age"].tolist(), p.seed == evidence_seed("v2", 10, 10)
(['A×young'], True)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from governance.config import PromotionPolicy
from governance.evaluation import bounded_group
from governance.evidence import PairedEvidence
from monitors.config import INTERSECTION_JOIN


def attribute_names(policy: PromotionPolicy) -> list[str]:
    """The attributes judged: each sensitive attribute, then each intersection
    (named with ``monitors.config.INTERSECTION_JOIN``)."""
    return [*policy.sensitive_attributes,
            *(INTERSECTION_JOIN.join(m) for m in policy.intersections)]


def group_row(groups: Mapping[str, str], policy: PromotionPolicy) -> tuple[str, ...]:
    """An example's bounded group under each attribute of :func:`attribute_names`; an
    intersection's group joins its members' groups with the same symbol."""
    own = {a: bounded_group(groups.get(a), g) for a, g in policy.sensitive_attributes.items()}
    return (*own.values(),
            *(INTERSECTION_JOIN.join(own[a] for a in m) for m in policy.intersections))


def evidence_seed(version: str, from_offset: int | None, to_offset: int | None) -> int:
    """The seed of every resampling of one judgement: a function of the candidate and
    the evidence's offsets only, so a replay of the training log judges bit for bit alike.

    >>> evidence_seed("fs-1-v3", 100, 900) == evidence_seed("fs-1-v3", 100, 900)
    True
    """
    digest = hashlib.sha256(f"{version}:{from_offset}:{to_offset}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1     # a non-negative int64


class ShadowEvidence:
    """The rows of one candidate in shadow (see the module docstring)."""

    def __init__(self, candidate: str) -> None:
        self.candidate = candidate
        self.offsets: list[int] = []
        self.labels: list[int] = []
        self.scores: list[float] = []
        self.others: list[dict[str, float]] = []
        #: The example's groups as recorded; bounded and crossed under the policy in force
        #: when judged (a policy change may add an attribute or an intersection).
        self.groups: list[Mapping[str, str]] = []
        #: version -> how many rows it also scored (the paired count against it).
        self._counts: dict[str, int] = {}
        #: The looks made so far (plain data of :class:`governance.records.Look`).
        self.looks: list[dict[str, Any]] = []
        #: Restored from a snapshot: the rows to read back from the training log.
        self.expected_rows = 0
        self.from_offset: int | None = None

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def looks_done(self) -> int:
        return self.looks[-1]["look"] if self.looks else 0

    def add(self, offset: int, label: int, score: float, others: Mapping[str, float],
            groups: Mapping[str, str]) -> None:
        self.offsets.append(offset)
        self.labels.append(label)
        self.scores.append(score)
        self.others.append(dict(others))
        self.groups.append(groups)
        for version in others:
            self._counts[version] = self._counts.get(version, 0) + 1

    def paired_count(self, champion: str) -> int:
        """Rows the champion also scored at event time."""
        return self._counts.get(champion, 0)

    def paired(self, champion: str, policy: PromotionPolicy, *, champion_threshold: float,
               candidate_threshold: float) -> PairedEvidence:
        """The candidate against ``champion`` on the events both scored, seeded by
        :func:`evidence_seed` from the candidate and the evidence's first and last offset."""
        rows = [i for i, o in enumerate(self.others) if champion in o]
        names = attribute_names(policy)
        table = [group_row(self.groups[i], policy) for i in rows]
        first = self.offsets[rows[0]] if rows else None
        last = self.offsets[rows[-1]] if rows else None
        return PairedEvidence(
            labels=np.array([self.labels[i] for i in rows], dtype=np.int8),
            champion_scores=np.array([self.others[i][champion] for i in rows],
                                     dtype=np.float64),
            candidate_scores=np.array([self.scores[i] for i in rows], dtype=np.float64),
            groups={a: np.array([row[k] for row in table], dtype=object)
                    for k, a in enumerate(names)},
            champion_threshold=champion_threshold, candidate_threshold=candidate_threshold,
            favourable=policy.favourable_outcome,
            seed=evidence_seed(self.candidate, first, last))

    def offsets_paired(self, champion: str) -> tuple[int | None, int | None]:
        rows = [o for o, other in zip(self.offsets, self.others, strict=True)
                if champion in other]
        return (rows[0], rows[-1]) if rows else (None, None)

    # -- plain data (the learner's snapshot) ---------------------------------------------

    def to_data(self) -> dict[str, Any]:
        """What a snapshot keeps: the looks, and where the rows are on the training log.

        The rows themselves are not kept: at the default policy a shadow collects up to
        16,000 of them, two shadows about 2 MB of JSON, over the broker's message limit.
        They are facts of the training log, so a restored learner reads them back from it
        (:meth:`governance.learner.LearnerCore.recollect`), from ``from_offset`` on, and
        checks it found ``rows`` of them."""
        return {"candidate": self.candidate, "looks": self.looks, "rows": len(self),
                "from_offset": self.offsets[0] if self.offsets else None}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> ShadowEvidence:
        """An evidence without rows, expecting ``rows`` of them from ``from_offset`` on."""
        ev = cls(str(data["candidate"]))
        ev.looks = [dict(look) for look in data["looks"]]
        ev.expected_rows = int(data["rows"])
        ev.from_offset = data["from_offset"]
        return ev
