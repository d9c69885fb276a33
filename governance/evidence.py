"""The evidence a candidate is judged on: the same events, scored by both models at event time.

A candidate in shadow scores every event beside the champion without serving it. Once an
event's label arrives (later, on ``training``), the example is one paired observation: the
label, the champion's frozen score and the candidate's frozen score of the same event, and
the event's group under each sensitive attribute (intersections included, as attributes of
their own). Nothing the candidate learned from, nothing scored with hindsight.

The learner collects the evidence (:mod:`governance.learner`); the gates judge it
(:mod:`governance.gates`). Arrays, not records: the statistics resample them thousands of
times.

>>> import numpy as np
>>> ev = PairedEvidence(labels=np.array([1, 0], dtype=np.int8),
...                     champion_scores=np.array([.7, .4]), candidate_scores=np.array([.8, .3]),
...                     groups={"group": np.array(["A", "B"], dtype=object)},
...                     champion_threshold=.5, candidate_threshold=.5,
...                     favourable="below_threshold", seed=7)
>>> len(ev), ev.favourable_decisions(ev.candidate_scores, ev.candidate_threshold).tolist()
(2, [False, True])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

Favourable = Literal["below_threshold", "above_threshold"]


@dataclass(frozen=True)
class PairedEvidence:
    """One candidate against the champion on the examples both scored at event time.

    Every array has one entry per example, in training-log order.
    """

    #: The outcome, 0 or 1 (int8).
    labels: np.ndarray
    #: The champion's probability for the event, as served (float64).
    champion_scores: np.ndarray
    #: The candidate's probability for the same event, scored in shadow (float64).
    candidate_scores: np.ndarray
    #: Sensitive attribute (or intersection, ``a×b``) -> the event's bounded group (object).
    groups: Mapping[str, np.ndarray]
    #: Each model's decision threshold: decision 1 when score >= threshold.
    champion_threshold: float
    candidate_threshold: float
    #: Which decision a person wants (``monitors.favourable_outcome``).
    favourable: Favourable
    #: Seeds every resampling, so a rebuild replays the decision bit for bit (derive it
    #: from the candidate's version and the evidence's offsets).
    seed: int

    def __post_init__(self) -> None:
        n = len(self.labels)
        arrays = {"champion_scores": self.champion_scores,
                  "candidate_scores": self.candidate_scores, **self.groups}
        for name, values in arrays.items():
            if len(values) != n:
                raise ValueError(f"evidence: {name} has {len(values)} entries, labels {n}")

    def __len__(self) -> int:
        return len(self.labels)

    def favourable_decisions(self, scores: np.ndarray, threshold: float) -> np.ndarray:
        """True where the decision from ``scores`` is the outcome a person wants."""
        positive = scores >= threshold
        return ~positive if self.favourable == "below_threshold" else positive
