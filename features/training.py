"""Point-in-time training sets: features as of each labelled event, then its label.

Features are computed over the whole event history (labelled or not) as of each event's
own time, with :func:`~features.offline.compute_features`; labels are joined afterwards by
``event_id``, so a label can never leak into a feature. The first label of an event wins.
"""

from __future__ import annotations

import pandas as pd

from features.offline import Order, compute_features
from features.spec import FeatureSet


def training_set(
    events: pd.DataFrame,
    labels: pd.DataFrame,
    feature_set: FeatureSet,
    *,
    event_id_col: str = "event_id",
    entity_col: str = "entity_id",
    ts_col: str = "ts",
    group_col: str = "group",
    label_col: str = "label",
    order: Order = "arrival",
    allowed_lateness_ms: int | None = None,
    partition_col: str | None = None,
) -> pd.DataFrame:
    """One row per labelled event: ``event_id, entity_id, ts, group``, every feature, ``label``.

    ``group`` is included when ``events`` has ``group_col``. Rows keep the order of
    ``events``; events the lateness rule rejects (see ``compute_features``) are absent.
    """
    for col in (event_id_col, label_col):
        if col not in labels.columns:
            raise ValueError(f"labels have no column {col!r}")
    if event_id_col not in events.columns:
        raise ValueError(f"events have no column {event_id_col!r}")
    events = events.reset_index(drop=True)
    features = compute_features(
        events,
        feature_set,
        entity_col=entity_col,
        ts_col=ts_col,
        order=order,
        allowed_lateness_ms=allowed_lateness_ms,
        partition_col=partition_col,
    )
    keys = [c for c in (event_id_col, entity_col, ts_col, group_col) if c in events.columns]
    rows = events.loc[features.index, keys].join(features)
    first_labels = labels.drop_duplicates(event_id_col, keep="first").set_index(event_id_col)
    label = rows[event_id_col].map(first_labels[label_col])
    labelled = rows[event_id_col].isin(first_labels.index).to_numpy()
    out = rows.assign(**{label_col: label})[labelled]
    return out.reset_index(drop=True)
