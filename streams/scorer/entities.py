"""Entity states: read from the ``entities`` table, decoded for the batch that touches
them, written once per batch.

An entity touched by a batch is an :class:`EntityWork`: its live feature state, the offset
of its last event applied, its encoded entry when the batch began (to roll back to), and
the batch events applied to it. :class:`Entities` loads them and stores them, and answers
``/features``.

Between batches nothing decoded is kept: a decoded state is tens of Python objects (lists,
aggregations) that every full collection of the cyclic GC walks, and a cache of a hundred
thousand of them paused the scorer for seconds. What is kept is the encoded entry of the
entities seen most recently (``state.entity_cache`` of them), as ``bytes``: the GC does not
track bytes, and a hit saves the table lookup (one RocksDB read per partition database);
the decoding is done again per batch (:mod:`features.codec` is written to be cheap).

>>> from features.spec import FeatureSet
>>> from streams.scorer.tables import StateTable, Tables
>>> tables = Tables(*(StateTable(n, {}, f"cl-{n}") for n in ("e", "p", "h", "q")))
>>> engine = FeatureEngine(FeatureSet(features=[{"name": "n", "agg": "count"}]), 0)
>>> entities = Entities(tables, engine, cache_size=1)
>>> ent = entities.load("u1")
>>> ent.last_offset, ent.start is None
(-1, True)
>>> ent.last_offset = 7
>>> _ = engine.apply(ent.state, 1_000, {})
>>> entities.store("u1", ent, entities.encode(ent), partition=0)
>>> again = entities.load("u1")
>>> again.last_offset, engine.apply(again.state, 2_000, {})
(7, {'n': 2})
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from features.engine import EntityState, FeatureEngine
from streams.scorer.state import EntityEntry, decode, encode
from streams.scorer.tables import Tables


@dataclass(slots=True)
class EntityWork:
    """An entity touched by the current batch."""

    state: EntityState
    last_offset: int
    #: Its encoded entry when the batch began (None: new), to roll back to.
    start: bytes | None
    #: Indexes (into the batch's accepted items) of the events applied, in order.
    applied: list[int] = field(default_factory=list)
    troubled: bool = False
    #: The features as of the entity's latest event time, and that time.
    latest: dict[str, Any] | None = None
    latest_ts_ms: int | None = None

    def saw(self, ts_ms: int, values: dict[str, Any]) -> None:
        if self.latest_ts_ms is None or ts_ms >= self.latest_ts_ms:
            self.latest, self.latest_ts_ms = values, ts_ms

    def entry(self, features: bytes) -> EntityEntry:
        return EntityEntry(features=features, last_offset=self.last_offset,
                           latest=self.latest, latest_ts_ms=self.latest_ts_ms)


class Entities:
    """The ``entities`` table, with the encoded entries of the ``cache_size`` entities
    seen last kept as bytes (see the module docstring)."""

    def __init__(self, tables: Tables, engine: FeatureEngine, cache_size: int) -> None:
        self.tables = tables
        self.engine = engine
        self.cache_size = cache_size
        self._cache: OrderedDict[str, bytes] = OrderedDict()

    def _raw(self, entity_id: str) -> bytes | None:
        raw = self._cache.get(entity_id)
        if raw is not None:
            self._cache.move_to_end(entity_id)
            return raw
        return self.tables.entities.get(entity_id.encode())

    def load(self, entity_id: str) -> EntityWork:
        raw = self._raw(entity_id)
        if raw is not None:
            table = self.tables.entities
            entry = self.tables.decoded(table, entity_id.encode(), raw, EntityEntry)
            if entry is not None:
                try:
                    return EntityWork(self.engine.decode_state(entry.features),
                                      entry.last_offset, raw, latest=entry.latest,
                                      latest_ts_ms=entry.latest_ts_ms)
                except ValueError as exc:  # features.StateDecodeError is a ValueError
                    self.tables.undecodable(table.name, entity_id.encode(),
                                            f"feature state does not decode ({exc}); "
                                            "starting afresh")
        return EntityWork(self.engine.new_state(), -1, raw)

    def restore(self, ent: EntityWork) -> EntityState:
        """The entity's state as it was when the batch began."""
        if ent.start is not None:
            try:
                return self.engine.decode_state(decode(ent.start, EntityEntry).features)
            except ValueError:
                pass
        return self.engine.new_state()

    def entry_at_start(self, ent: EntityWork) -> EntityEntry | None:
        return decode(ent.start, EntityEntry) if ent.start is not None else None

    def encode(self, ent: EntityWork) -> bytes:
        return encode(ent.entry(self.engine.encode_state(ent.state)))

    def store(self, entity_id: str, ent: EntityWork, raw: bytes, partition: int) -> None:
        self.tables.entities.put(entity_id.encode(), raw, partition)
        ent.applied, ent.troubled, ent.start = [], False, raw
        self._cache[entity_id] = raw
        self._cache.move_to_end(entity_id)

    def uncache(self, entity_id: str) -> None:
        self._cache.pop(entity_id, None)

    def trim(self) -> None:
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def forget(self) -> None:
        self._cache.clear()

    def latest(self, entity_id: str) -> EntityEntry | None:
        """The entity's stored entry (for ``GET /features/{entity}``)."""
        return self.tables.read(self.tables.entities, entity_id.encode(), EntityEntry)
