"""What the scorer does with a batch of events or labels, apart from Kafka.

The Faust shell (:mod:`streams.scorer.app`) hands each batch here; the tables are
:class:`~streams.scorer.tables.StateTable` objects (over plain dicts in tests). Every input
record ends in exactly one outcome, decided here and made final by the shell once the
batch's sends are accepted (:class:`~streams.scorer.batch.BatchResult`):

- events (:mod:`.events`): ``scored`` (the record goes to ``scored``), ``rejected`` /
  ``late`` (a dead letter with its reason), or ``duplicate`` (a redelivery whose record is
  history);
- labels (:mod:`.labels`): ``joined`` (an example goes to ``training``), ``duplicate``,
  ``expired``, ``invalid`` (a dead letter), or held until its event comes (then
  ``joined``) or its time runs out (``unmatched``, :mod:`.expiry`).

After a crash the same event or label may come again; a scored event keeps its pending
entry (features, and once joined its label) for the label TTL, so the scored record and
the example are sent again identical rather than lost between two writes that landed
apart.

:class:`Processor` puts the parts together over one set of tables; each result carries
every count the batch made (table values that did not decode included) and the tables'
changelog writes, in :attr:`BatchResult.writes`.

Python's cyclic garbage collector does not run while a batch is processed
(:func:`collecting_between_batches`): a batch makes tens of thousands of tracked objects
(the decoded states of the entities it touches, its records), all freed by reference
counting when it ends, and a collection in the middle walked every one of them (a full
collection nearly every batch, 30-130 ms each). Between batches the collector runs as
usual, over what outlives a batch (little, once start-up's objects are frozen), and
collects any cycle a batch made.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from features.engine import FeatureEngine
from streams.config import Config
from streams.scorer.batch import BatchResult, InRecord
from streams.scorer.champion import Champion
from streams.scorer.entities import Entities
from streams.scorer.events import EventPath
from streams.scorer.expiry import Expiry
from streams.scorer.labels import LabelJoin
from streams.scorer.positions import Positions, partition_key
from streams.scorer.tables import Tables

__all__ = ["Processor", "Tables", "collecting_between_batches", "partition_key"]


@contextmanager
def collecting_between_batches() -> Iterator[None]:
    """No cyclic-GC collection inside the block (see the module docstring); the
    collector's state is restored after it.

    >>> with collecting_between_batches():
    ...     gc.isenabled()
    False
    >>> gc.isenabled()
    True
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Processor:
    """Validates, featurises, scores and joins labels, a batch at a time."""

    def __init__(self, config: Config, tables: Tables, champion: Champion) -> None:
        self.config = config
        self.tables = tables
        self.feature_set = config.features.identity
        self.positions = Positions(tables)
        engine = FeatureEngine(config.features, config.event.allowed_lateness_ms)
        self.entities = Entities(tables, engine, config.state.entity_cache)
        self.expiry = Expiry(config, tables, self.positions)
        self.joins = LabelJoin(config, tables, self.positions, self.expiry.held_index)
        self.events = EventPath(config, tables, self.positions, self.entities, self.joins,
                                self.expiry, champion)

    @property
    def champion(self) -> Champion:
        """The model that scores the next events batch (swapped between batches)."""
        return self.events.champion

    @champion.setter
    def champion(self, champion: Champion) -> None:
        self.events.champion = champion

    @property
    def shadows(self) -> tuple[Champion, ...]:
        """The versions in shadow that score the next events batch beside the champion."""
        return self.events.shadows

    @shadows.setter
    def shadows(self, shadows: tuple[Champion, ...]) -> None:
        self.events.shadows = shadows

    def process_events(self, records: list[InRecord], now_ms: int) -> BatchResult:
        with collecting_between_batches():
            return self._done(self.events.process_events(records, now_ms))

    def process_labels(self, records: list[InRecord], now_ms: int) -> BatchResult:
        with collecting_between_batches():
            return self._done(self.joins.process_labels(records, now_ms))

    def expire(self, partitions: list[int]) -> BatchResult:
        """Forget scored events and held labels past their label TTL (on a timer)."""
        with collecting_between_batches():
            return self._done(self.expiry.expire(partitions))

    def _done(self, res: BatchResult) -> BatchResult:
        res.writes = self.tables.flush()
        res.decode_errors += self.tables.take_decode_errors()
        return res

    def next_offset(self, partition: int, *, labels: bool = False) -> int:
        return self.positions.next_offset(partition, labels=labels)

    def missing_before(self, partition: int, offset: int, *, labels: bool = False,
                       due: int | None = None) -> int | None:
        """See :meth:`streams.scorer.positions.Positions.missing_before`."""
        return self.positions.missing_before(partition, offset, labels=labels, due=due)

    def entity_features(self, entity_id: str) -> dict[str, Any] | None:
        """The entity's features as of its latest event, for ``GET /features/{entity}``."""
        entry = self.entities.latest(entity_id)
        if entry is None or entry.latest is None:
            return None
        return {"entity_id": entity_id, "features": entry.latest,
                "as_of": entry.latest_ts_ms, "feature_set": self.feature_set,
                "model_version": self.champion.version}

    def forget_cache(self) -> None:
        """Partitions moved: live states may be stale; the expiry index is rebuilt."""
        self.entities.forget()
        self.expiry.forget()
