"""The governed model lifecycle: a pure core (no Kafka, no clock, no I/O).

- :mod:`governance.config`: :class:`ModelSpec` (what is learned) and
  :class:`PromotionConfig` (``model.promotion``: when versions are cut, the gates).
- :mod:`governance.artifact`: the model as plain JSON data and back (:class:`LogisticModel`).
- :mod:`governance.records`: wire records (``training``, ``model.versions``, ``model.audit``).
- :mod:`governance.evaluation`: point statistics (AUC, log loss, group rates) for records.
- :mod:`governance.gates`: candidate vs champion, judged on intervals (gates on evidence).
- :mod:`governance.learner`: :class:`LearnerCore`, the state machine the learner shell drives.
- :mod:`governance.lineage`: version ids, which examples a lineage learns, repeats dropped.
- :mod:`governance.shadow`: a candidate's shadow evidence (what it scored at event time).
- :mod:`governance.sizes`: what a record may carry, so every record stays bounded.
- :mod:`governance.rebuild`: relearn a version from the training log and verify it, and
  replay a lineage's decisions against the audit log.

See docs/governance.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Only the config is imported eagerly: streams.config nests PromotionConfig, and every CLI
# command reads the config, so `import governance.config` must not pay for importing
# River (about a second). Everything else loads on first use (PEP 562).
from governance.config import ModelSpec, PromotionConfig, PromotionPolicy, canonical_json

if TYPE_CHECKING:  # the lazy names, for type checkers and editors
    from governance.artifact import (
        RIVER_VERSION,
        ArtifactError,
        LogisticArtifact,
        LogisticModel,
        ScoringModel,
        artifact_sha256,
        read_artifact,
    )
    from governance.evaluation import impact, performance
    from governance.gates import Judgement, judge, look_at, overall
    from governance.learner import (
        GovernanceError,
        LearnerCore,
        Output,
        learnable,
        lineage_of,
        version_id,
    )
    from governance.rebuild import (
        DecisionReplay,
        Verification,
        rebuild,
        replay_decisions,
        verify,
    )
    from governance.records import (
        POLICY,
        AuditRecord,
        CommandAnswer,
        Decision,
        Environment,
        Evaluation,
        GateOutcome,
        GateVerdict,
        ModelCommand,
        ModelVersionRecord,
        Source,
        TrainingExample,
        TrainingRange,
        VersionStatus,
        json_schemas,
    )

_LAZY = {
    "governance.artifact": ["RIVER_VERSION", "ArtifactError", "LogisticArtifact",
                            "LogisticModel", "ScoringModel", "artifact_sha256",
                            "read_artifact"],
    "governance.evaluation": ["impact", "performance"],
    "governance.gates": ["Judgement", "judge", "look_at", "overall"],
    "governance.learner": ["GovernanceError", "LearnerCore", "Output", "learnable",
                           "lineage_of", "version_id"],
    "governance.rebuild": ["DecisionReplay", "Verification", "rebuild", "replay_decisions",
                           "verify"],
    "governance.records": ["POLICY", "AuditRecord", "Decision", "Environment", "Evaluation",
                           "GateOutcome",
                           "GateVerdict", "ModelVersionRecord", "Source", "TrainingExample",
                           "TrainingRange", "VersionStatus", "json_schemas", "ModelCommand",
                           "CommandAnswer"],
}
_MODULE_OF = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'governance' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "POLICY",
    "RIVER_VERSION",
    "ArtifactError",
    "AuditRecord",
    "CommandAnswer",
    "Decision",
    "DecisionReplay",
    "Environment",
    "Evaluation",
    "GateOutcome",
    "GateVerdict",
    "GovernanceError",
    "Judgement",
    "LearnerCore",
    "LogisticArtifact",
    "LogisticModel",
    "ModelCommand",
    "ModelSpec",
    "ModelVersionRecord",
    "Output",
    "PromotionConfig",
    "PromotionPolicy",
    "ScoringModel",
    "Source",
    "TrainingExample",
    "TrainingRange",
    "Verification",
    "VersionStatus",
    "artifact_sha256",
    "canonical_json",
    "impact",
    "json_schemas",
    "judge",
    "learnable",
    "lineage_of",
    "look_at",
    "overall",
    "performance",
    "read_artifact",
    "rebuild",
    "replay_decisions",
    "verify",
    "version_id",
]
