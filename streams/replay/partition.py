"""One partition of the history, replayed: the unit of bounded-memory and distributed replay.

An entity's features depend on its own events only, once the lateness rule (a property of
a Kafka partition's arrival order, shared by many entities) has been applied. So the
accepted history can be cut by entity (:func:`entity_bucket`), each part replayed on its
own with the same vectorised kernels (:func:`replay_partition`), and the parts' rows are
exactly the rows of one replay of everything: nothing about an entity is split between
parts, so no state has to be carried from one part to another.

What each part receives is what :mod:`streams.replay.accepted` yields: validated events,
late ones already taken out (their partition watermarks were carried from batch to batch
in arrival order), with ``_partition`` (Kafka partition) and ``_seq`` (arrival position
in the whole history) columns.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from features import compute_features
from streams.config import Config

Order = Literal["arrival", "event-time"]

#: The pandas dtype of an attribute column in the output, by declared type (nullable).
OUTPUT_DTYPES = {"float": "float64", "int": "Int64", "bool": "boolean", "str": "str"}


def entity_bucket(entity: pd.Series | np.ndarray, buckets: int, salt: int = 0) -> np.ndarray:
    """The part (``0 .. buckets-1``) each entity id falls in: a hash of its text, the same
    on every machine and in every run (pandas' ``hash_array``: SipHash with a fixed key;
    ``salt`` > 0 picks another key, to cut one part again independently of the first cut).

    >>> entity_bucket(np.array(["u1", "u2", "u1"], dtype=object), 4).tolist()[0] == \\
    ...     entity_bucket(np.array(["u1"], dtype=object), 4).tolist()[0]
    True
    >>> sorted(set(entity_bucket(np.array([f"u{i}" for i in range(100)], dtype=object),
    ...                          3).tolist()))
    [0, 1, 2]
    """
    if buckets < 1:
        raise ValueError("at least one bucket")
    if buckets == 1:
        return np.zeros(len(entity), dtype=np.int64)
    key = {} if salt == 0 else {"hash_key": f"streambed{salt:07d}"[-16:]}
    hashed = pd.util.hash_array(np.asarray(entity, dtype=object), categorize=True, **key)
    return (hashed % np.uint64(buckets)).astype(np.int64)


def as_datetime(ms: pd.Series) -> pd.Series:
    """Epoch milliseconds as UTC datetimes (millisecond unit, never assumed ns)."""
    return pd.to_datetime(ms, unit="ms", utc=True).dt.as_unit("ms")


def replay_partition(config: Config, events: pd.DataFrame, *, order: Order = "arrival",
                     attributes: list[str] | None = None) -> pd.DataFrame:
    """The output rows of one partition of the accepted history, in arrival order.

    ``events``: every accepted, non-late event of the partition's entities, in arrival
    order (``_seq`` ascending), with ``event_id, entity_id, ts, group``, the attributes and
    ``_partition``. Returns ``event_id, entity_id, ts, event_time, group``, the
    ``attributes`` named (their declared, nullable types), every feature, and ``_seq``.
    Replaying all partitions and concatenating gives the rows one replay of the whole
    history gives (compare them ordered by ``_seq``).
    """
    lateness = config.event.allowed_lateness_ms if order == "arrival" else None
    features = compute_features(events, config.features, order=order,
                                allowed_lateness_ms=lateness, partition_col="_partition")
    return output_rows(config, events, features, attributes)


def output_rows(config: Config, events: pd.DataFrame, features: pd.DataFrame,
                attributes: list[str] | None) -> pd.DataFrame:
    """The output rows of ``events`` whose ``features`` were computed (indexed alike):
    ``event_id, entity_id, ts, event_time, group``, the attributes named (declared,
    nullable types), every feature, and ``_seq``."""
    kept = [] if attributes is None else attributes
    frame = events.loc[features.index, ["event_id", "entity_id", "ts", "group", *kept,
                                        "_seq"]]
    frame.insert(3, "event_time", as_datetime(frame["ts"]))
    for name in kept:  # declared types, nullable: null stays null, never 0
        frame[name] = frame[name].astype(OUTPUT_DTYPES[config.event.attributes[name].type])
    return frame.join(features).reset_index(drop=True)
