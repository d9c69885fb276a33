"""The simulator's stream through the feature engine, and a model learned on it then frozen.

What the operating-characteristics benchmarks (bench/cbpe_oc.py, bench/drift_oc.py
``--score-trend``) score: each event's features as the engine computes them online (state
per entity, in the order the simulator emits), keyed by event id, with the labels the
simulator draws for them.
"""

from __future__ import annotations

import json

from features.engine import FeatureEngine
from features.spec import FeatureSet
from governance import LogisticModel
from streams.config import Config
from streams.devtools.simulate import SimulationOptions, Simulator

#: (event id, features as the engine computed them at that event)
Row = tuple[str, dict[str, object]]


def featured_events(config: Config, features: FeatureSet,
                    options: SimulationOptions) -> tuple[list[Row], dict[str, int]]:
    """Every simulated event's features, in emission order, and the labels by event id."""
    event = config.event
    attributes = [n for n in event.attributes if n != event.group_field]
    engine = FeatureEngine(features, event.allowed_lateness_ms)
    states: dict[object, object] = {}
    rows: list[Row] = []
    labels: dict[str, int] = {}
    for record in Simulator(config, options).records():
        data = json.loads(record.value)
        if record.kind == "label":
            labels[data["event_id"]] = int(data["label"])
            continue
        state = states.setdefault(data[event.entity_field], engine.new_state())
        rows.append((data[event.id_field], engine.apply(
            state, int(data[event.time_field]), {n: data.get(n) for n in attributes})))
    return rows, labels


def learned_model(config: Config, rows: list[Row], labels: dict[str, int]) -> LogisticModel:
    """The config's model after learning ``rows`` in order, each with its label."""
    model = LogisticModel(config.model.spec)
    for event_id, features in rows:
        model.learn_x(model.spec.to_x(features), labels[event_id])
    return model
