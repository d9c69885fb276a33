"""streambed features: one definition, computed online (per event) and offline (replay).

Pure: no I/O, no clocks, no globals. See ``docs/features.md`` for the semantics.
"""

from features.codec import StateDecodeError
from features.engine import FeatureEngine, LateEventError
from features.offline import compute_features
from features.spec import Feature, FeatureSet, Where, Window, parse_duration_ms
from features.state import EntityState
from features.timeconv import to_epoch_ms
from features.training import training_set
from features.watermark import Watermark, late_mask

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
