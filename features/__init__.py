"""streambed features: one definition, computed online (per event) and offline (replay).

Pure: no I/O, no clocks, no globals. See ``docs/features.md`` for the semantics.
"""

from typing import Any

from features.codec import StateDecodeError
from features.engine import FeatureEngine, LateEventError
from features.spec import Feature, FeatureSet, Where, Window, parse_duration_ms
from features.state import EntityState
from features.watermark import Watermark

#: The offline side needs pandas; imported when first named, so that the online engine
#: (a scorer) starts without it.
_OFFLINE = {"compute_features": "features.offline", "training_set": "features.training",
            "to_epoch_ms": "features.timeconv", "late_mask": "features.watermark"}


def __getattr__(name: str) -> Any:
    if name in _OFFLINE:
        import importlib

        return getattr(importlib.import_module(_OFFLINE[name]), name)
    raise AttributeError(f"module 'features' has no attribute {name!r}")


__all__ = [
    "EntityState",
    "Feature",
    "FeatureEngine",
    "FeatureSet",
    "LateEventError",
    "StateDecodeError",
    "Watermark",
    "Where",
    "Window",
    "compute_features",
    "late_mask",
    "parse_duration_ms",
    "to_epoch_ms",
    "training_set",
]
