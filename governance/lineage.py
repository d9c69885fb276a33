"""What makes a version's identity and its training history: one rule for learner and rebuild.

- :func:`lineage_of` and :func:`version_id`: versions of one feature set learned by one
  model config share a lineage; a version id is the lineage and a sequence number.
- :func:`learnable`: which training examples a lineage learns (its own feature set's).
- :class:`RecentIds`: a repeated example (a scorer's at-least-once re-send) is learned once.

:mod:`governance.learner` and :mod:`governance.rebuild` both apply these, so a rebuilt
version learns exactly the examples the live one learned.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from governance.config import ModelSpec
from governance.records import TrainingExample


def lineage_of(feature_set: str, spec: ModelSpec) -> str:
    """Versions of one feature set learned by one model config share a lineage.

    >>> lineage_of("0123456789ab", ModelSpec())
    '0123456789ab-316b4076'
    """
    return f"{feature_set}-{spec.config_hash[:8]}"


def version_id(feature_set: str, spec: ModelSpec, sequence: int) -> str:
    """The deterministic id of a lineage's sequence-th version (0: untrained)."""
    return f"{lineage_of(feature_set, spec)}-v{sequence}"


#: How many recent event ids the learner remembers to drop a repeated example.
DUPLICATE_WINDOW = 10_000


class RecentIds:
    """The event ids of the last ``size`` examples learned (one rule for learner and
    rebuild). Scorers append to ``training`` at least once: a scorer killed after sending
    an example but before recording it sends it again right after restarting, so a repeat
    lands within a few thousand offsets of the original, and is learned once.

    >>> ids = RecentIds(2)
    >>> [ids.check_and_add(e) for e in ("a", "b", "a", "c", "a")]
    [True, True, False, True, True]
    """

    def __init__(self, size: int = DUPLICATE_WINDOW) -> None:
        self.size = size
        self._order: deque[str] = deque()
        self._ids: set[str] = set()

    def check_and_add(self, event_id: str) -> bool:
        """True (and remembered) when the id is new; False for a repeat."""
        if event_id in self._ids:
            return False
        self._order.append(event_id)
        self._ids.add(event_id)
        if len(self._order) > self.size:
            self._ids.discard(self._order.popleft())
        return True

    def to_data(self) -> list[str]:
        return list(self._order)

    @classmethod
    def from_data(cls, data: Sequence[str], size: int = DUPLICATE_WINDOW) -> RecentIds:
        ids = cls(size)
        for event_id in data:
            ids.check_and_add(str(event_id))
        return ids


def learnable(example: TrainingExample, feature_set: str) -> bool:
    """Whether the lineage of ``feature_set`` learns this example (one rule for learner
    and rebuild): examples of another feature set are skipped, never learned."""
    return example.feature_set == feature_set
