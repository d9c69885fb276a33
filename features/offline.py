"""Offline replay: every feature for every event of a history, vectorised.

:func:`compute_features` gives, for each event, exactly what the online engine returns
when the same events are applied in the same order (``order="arrival"``), or in
event-time order (``order="event-time"``, a stable sort by time). Entities whose
arrival order is their event-time order (all of them, for ``event-time``) are computed
column by column with numpy (:mod:`features.columns`); the rows of the other entities go
through :class:`~features.engine.FeatureEngine` itself, so results stay exact.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from features.columns import Layout, feature_column
from features.engine import FeatureEngine
from features.plan import FeaturePlan, plans_of
from features.predicates import mask
from features.spec import FeatureSet, Where
from features.state import EntityState
from features.timeconv import to_epoch_ms
from features.watermark import late_mask

Order = Literal["arrival", "event-time"]


def _feature_values(events: pd.DataFrame, plan: FeaturePlan) -> tuple[np.ndarray, Any]:
    """(is the value not null, the values as the columns module wants them)."""
    if plan.field is None:
        return np.ones(len(events), dtype=bool), None
    if plan.field not in events.columns:
        return np.zeros(len(events), dtype=bool), np.full(len(events), np.nan)
    column = events[plan.field]
    present = column.notna().to_numpy()
    reads = plan.agg_type.reads
    if reads == "key":
        return present, pd.factorize(column)[0]
    if reads == "number" or pd.api.types.is_numeric_dtype(column):
        try:
            return present, column.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            raise ValueError(
                f"feature {plan.name!r}: column {plan.field!r} does not hold numbers"
            ) from None
    return present, column.to_numpy(dtype=object)


def _fields(plans: list[FeaturePlan]) -> list[str]:
    names = {p.field for p in plans if p.field} | {w.field for p in plans for w in p.filters}
    return sorted(names)


def _by_entity(entity: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows grouped by entity in arrival order, and the entities whose time goes back."""
    order = np.argsort(entity, kind="stable")
    e, t = entity[order], ts[order]
    back = (e[1:] == e[:-1]) & (t[1:] < t[:-1])
    return order, np.unique(e[1:][back])


def compute_features(
    events: pd.DataFrame,
    feature_set: FeatureSet,
    *,
    entity_col: str = "entity_id",
    ts_col: str = "ts",
    order: Order = "arrival",
    allowed_lateness_ms: int | None = None,
    partition_col: str | None = None,
) -> pd.DataFrame:
    """Features for every event of ``events`` (rows in arrival order), as of each event.

    Returns one column per feature, in feature-set order, indexed like ``events``:
    int64 for count/count_distinct, float64 (NaN for null) otherwise, object for
    first/last of a non-numeric field. With ``allowed_lateness_ms`` (arrival order
    only), events the watermark of their partition (``partition_col``; default: their
    entity) rejects as late are left out of the state and of the result, as the worker
    sends them to the DLQ; without it every event is applied.
    """
    if order not in ("arrival", "event-time"):
        raise ValueError(f"order must be 'arrival' or 'event-time', not {order!r}")
    for col in (entity_col, ts_col):
        if col not in events.columns:
            raise ValueError(f"events have no column {col!r}")
    ts_all = to_epoch_ms(events[ts_col], ts_col).to_numpy()
    entity_all = pd.factorize(events[entity_col])[0]
    process = np.arange(len(events))
    if order == "event-time":
        process = np.argsort(ts_all, kind="stable")
    elif allowed_lateness_ms is not None:
        partition = entity_all if partition_col is None else events[partition_col].to_numpy()
        process = np.flatnonzero(~late_mask(ts_all, partition, allowed_lateness_ms))
    ts, entity = ts_all[process], entity_all[process]

    plans = plans_of(feature_set)
    rows, late_entities = _by_entity(entity, ts)
    in_order = ~np.isin(entity, late_entities)
    rows = rows[in_order[rows]]
    layout = Layout(ts[rows], entity[rows])

    masks: dict[tuple[Where, ...], np.ndarray] = {}
    columns: dict[str, np.ndarray] = {}
    for plan in plans:
        if plan.filters not in masks:
            masks[plan.filters] = mask(plan.filters, events)
        present, values = _feature_values(events, plan)
        source = process[rows]
        marked = (masks[plan.filters] & present)[source]
        sorted_values = None if values is None else values[source]
        column = feature_column(layout, plan, marked, sorted_values)
        out = np.empty(len(process), dtype=column.dtype)
        out[rows] = column
        columns[plan.name] = out

    if len(late_entities):
        source = np.where(in_order, -1, process)
        _replay_online(events, feature_set, source, ts, entity, columns, allowed_lateness_ms)
    index = events.index[process]
    result = pd.DataFrame(columns, index=index)
    if order == "event-time":
        result = result.iloc[np.argsort(process, kind="stable")]
    for plan in plans:
        if plan.agg_type.integer_valued:
            result[plan.name] = result[plan.name].astype(np.int64)
    return result


def _replay_online(
    events: pd.DataFrame,
    feature_set: FeatureSet,
    source: np.ndarray,
    ts: np.ndarray,
    entity: np.ndarray,
    columns: dict[str, np.ndarray],
    allowed_lateness_ms: int | None,
) -> None:
    """Fill ``columns`` by running the online engine over the rows with ``source >= 0``.

    Rows are in processing order; ``source`` is a row's position in ``events`` (-1: done
    already), ``ts``/``entity`` its time and entity code.
    """
    selected = np.flatnonzero(source >= 0)
    lateness = allowed_lateness_ms
    if lateness is None:  # no rule: accept everything
        lateness = int(ts[selected].max() - ts[selected].min())
    engine = FeatureEngine(feature_set, lateness)
    for name, column in columns.items():
        if column.dtype != object:
            columns[name] = column.astype(np.float64)
    _apply_online(engine, {}, events.iloc[source[selected]], entity[selected],
                  ts[selected], columns, selected)


def _apply_online(engine: FeatureEngine, states: dict[Any, EntityState],
                  events: pd.DataFrame, entity: np.ndarray, ts: np.ndarray,
                  columns: dict[str, np.ndarray], rows: np.ndarray) -> None:
    """Apply ``events`` (in processing order) to their entities' ``states`` (new ones made
    as needed), writing each event's features at its row of ``columns`` (float64 with NaN
    for null, or object)."""
    fields = [f for f in _fields(engine.plans) if f in events.columns]
    records = events[fields].to_dict("records")
    for row, key, t, attrs in zip(rows.tolist(), entity.tolist(), ts.tolist(), records,
                                  strict=True):
        state = states.get(key)
        if state is None:
            state = states[key] = engine.new_state()
        for name, value in engine.apply(state, t, attrs).items():
            column = columns[name]
            column[row] = np.nan if value is None and column.dtype != object else value


class CarriedFeatures:
    """:func:`compute_features` over a history fed in chunks, each entity's state carried.

    For a history too long to hold at once (one entity's, say): feed it chunk by chunk,
    in processing order (arrival order, late events already out; or event-time order, a
    stable sort by time), and :meth:`chunk` gives each chunk's features, exactly those
    one :func:`compute_features` over the whole gives its rows (same dtypes). The state
    carried between chunks is the online engine's (:class:`~features.engine.FeatureEngine`:
    per feature its aggregation, per window the events still inside it), so memory is
    bounded by the windows, not by the history; the values are the online engine's,
    which the vectorised kernels equal bit for bit. Speed: the online engine's, one event
    at a time (tens of thousands per second).

    ``allowed_lateness_ms``: the rule the events were accepted under (arrival order); 0
    for event-time order (nothing goes back in time).

    >>> fs = FeatureSet(features=[{"name": "n", "agg": "count"},
    ...                           {"name": "s", "agg": "sum", "field": "x",
    ...                            "window": {"kind": "sliding", "size": "10s"}}])
    >>> events = pd.DataFrame({"entity_id": ["a"] * 4, "ts": [0, 4_000, 9_000, 12_000],
    ...                        "x": [1.0, 2.0, None, 4.0]})
    >>> carried = CarriedFeatures(fs, 0)
    >>> pd.concat([carried.chunk(events[:3]), carried.chunk(events[3:])]).equals(
    ...     compute_features(events, fs))
    True
    """

    def __init__(self, feature_set: FeatureSet, allowed_lateness_ms: int, *,
                 entity_col: str = "entity_id", ts_col: str = "ts") -> None:
        self.feature_set = feature_set
        self.engine = FeatureEngine(feature_set, allowed_lateness_ms)
        self.entity_col, self.ts_col = entity_col, ts_col
        self.states: dict[Any, EntityState] = {}
        self._dtypes: pd.Series | None = None

    def chunk(self, events: pd.DataFrame) -> pd.DataFrame:
        """The features of ``events`` (the next rows in processing order), indexed alike."""
        if self._dtypes is None:  # the dtypes the vectorised replay gives these columns
            self._dtypes = compute_features(events.iloc[:0], self.feature_set,
                                            entity_col=self.entity_col,
                                            ts_col=self.ts_col).dtypes
        n = len(events)
        columns = {name: np.empty(n, dtype=object if dtype.kind == "O" else np.float64)
                   for name, dtype in self._dtypes.items()}
        ts = to_epoch_ms(events[self.ts_col], self.ts_col).to_numpy()
        _apply_online(self.engine, self.states, events,
                      events[self.entity_col].to_numpy(dtype=object), ts, columns,
                      np.arange(n))
        result = pd.DataFrame(columns, index=events.index)
        for name, dtype in self._dtypes.items():
            if dtype.kind != "O":
                result[name] = result[name].astype(dtype)
        return result
