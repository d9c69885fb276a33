"""Wire records of the governed lifecycle, as pydantic models (JSON Schema comes from here).

- ``training`` (one partition): :class:`TrainingExample`, one per joined label.
- ``model.versions`` (compacted, keyed by ``version``): :class:`ModelVersionRecord`, the
  latest record of a version is its current status.
- ``model.audit`` (append-only): :class:`AuditRecord`, one per decision.

Times are integer epoch milliseconds in UTC. Statistics that are undefined (too few
examples, one class only) are ``null``, never NaN, so every record is strict JSON.

>>> sorted(json_schemas())
['audit', 'command_answer', 'model_command', 'model_version', 'training_example']
>>> VersionStatus.HELD.value, Decision.PROMOTE.value
('held', 'promote')
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from governance.artifact import LogisticArtifact
from governance.config import ModelSpec

EpochMs = Annotated[StrictInt, Field(description="epoch milliseconds, UTC")]
#: A feature value: a number, a text (first/last of a string field), or null.
FeatureValue = int | float | str | None
#: Who decided, when it was not a person.
POLICY = "policy"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Source(_Record):
    """Where a record came from: its topic, partition and offset."""

    topic: str
    partition: int
    offset: int


class TrainingExample(_Record):
    """One labelled prediction on ``training``: what the model saw, said, and what happened."""

    event_id: str = Field(min_length=1)
    entity_id: str = Field(min_length=1)
    features: dict[str, FeatureValue] = Field(
        description="Feature values exactly as scored (null when undefined)")
    label: Literal[0, 1]
    score: float = Field(ge=0, le=1, description="The serving model's probability")
    decision: Literal[0, 1]
    model_version: str = Field(description="The version that scored the event")
    feature_set: str
    groups: dict[str, str] = Field(
        default_factory=dict,
        description="Sensitive attribute -> its bounded group (configured, other, unknown)")
    event_ts: EpochMs = Field(description="Event time, epoch ms UTC")
    label_ts: EpochMs = Field(description="When the outcome became known, epoch ms UTC")
    scored_at: EpochMs | None = Field(default=None, description="When it was scored")
    event_source: Source | None = None
    label_source: Source | None = None
    shadow_scores: dict[str, float] = Field(
        default_factory=dict,
        description="Every candidate in shadow when the event was scored: version -> its "
                    "probability at event time (never served). Empty in examples written "
                    "before shadow scoring, which are still read.")


class VersionStatus(StrEnum):
    """Where a version stands. Only the ``champion`` serves."""

    CANDIDATE = "candidate"      # cut, awaiting a decision (manual mode) or evaluation
    SHADOW = "shadow"            # cut, scored in shadow by every scorer until its verdict
    CHAMPION = "champion"        # serving
    HELD = "held"                # a gate failed or held; a person may still promote it
    RETIRED = "retired"          # was champion, replaced by a promotion
    ROLLED_BACK = "rolled_back"  # was champion, removed by a rollback


class Decision(StrEnum):
    """What an audit record decided."""

    BOOTSTRAP = "bootstrap"          # the untrained v0 becomes the first champion
    PROMOTE = "promote"              # a candidate became champion (policy or person)
    HOLD = "hold"                    # gated: a gate failed or held
    AWAIT_REVIEW = "await_review"    # manual mode: gates recorded, a person decides
    REFUSE = "refuse"                # a person's promotion refused: gates fail, no override
    ROLLBACK = "rollback"            # a person rolled the champion back
    POLICY_CHANGED = "policy_changed"  # the promotion policy differs from the one on record
    PAUSE = "pause"                  # drift in the training examples: promotion by policy paused
    RESUME = "resume"                # the pause lifted (by policy after clean windows, or a person)
    PIN_BASELINE = "pin_baseline"    # a person pinned a version's reference as the baseline


class GateOutcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    HOLD = "hold"                    # too little data to judge: never passes


class PerformanceStats(_Record):
    """One model's performance on the evaluation window."""

    roc_auc: float | None
    log_loss: float | None
    examples: int
    positives: int
    negatives: int


class GroupRates(_Record):
    """One group's counts and rates for one model (rates null below the minimum)."""

    examples: int
    selected: int
    positives: int
    negatives: int
    true_positives: int
    false_positives: int
    selection_rate: float | None
    true_positive_rate: float | None
    false_positive_rate: float | None


class ImpactStats(_Record):
    """One model's impact on the groups of one sensitive attribute."""

    groups: dict[str, GroupRates]
    demographic_parity_ratio: float | None
    equalized_odds_difference: float | None


class GateVerdict(_Record):
    """One gate: its outcome, the estimate judged, its interval, the bound, the sample
    behind it and the look it was made at."""

    gate: str = Field(description="e.g. roc_auc, log_loss, demographic_parity_ratio")
    attribute: str | None = Field(default=None, description="For impact gates")
    outcome: GateOutcome
    value: float | None = Field(description="The candidate's estimate")
    threshold: float | None = Field(description="The bound the value was held to")
    champion_value: float | None = None
    lower: float | None = Field(default=None, description="Lower end of the interval")
    upper: float | None = Field(default=None, description="Upper end of the interval")
    confidence: float | None = Field(default=None, description="The interval's nominal "
                                     "coverage at this look, after multiplicity corrections")
    method: str | None = Field(default=None, description="How the interval was computed")
    look: int | None = Field(default=None, description="Which look at this candidate (1-based)")
    max_looks: int | None = None
    final: bool = Field(default=False, description="The last look: hold is no longer possible")
    sample_sizes: dict[str, int] = Field(default_factory=dict)
    detail: str


class Look(_Record):
    """One look at a candidate in shadow: how much evidence, and what the gates said."""

    look: int = Field(ge=1)
    examples: int = Field(ge=0, description="Paired examples judged at this look")
    to_offset: int | None = Field(description="The last training offset of the evidence")
    outcome: GateOutcome
    failing: list[str] = Field(default_factory=list,
                               description="Gates that did not pass (at most 8 named)")


class GroupQualityStats(_Record):
    """One group's ranking and calibration for both models on the paired evidence:
    reported for people, not gated (null where a group lacks two of each class)."""

    examples: int
    positives: int
    candidate_roc_auc: float | None
    champion_roc_auc: float | None
    candidate_calibration_error: float | None = Field(
        description="Expected calibration error over ten equal-width score bins")
    champion_calibration_error: float | None


class Evaluation(_Record):
    """A candidate against the champion on the events both scored at event time (the
    candidate in shadow, after its cut; labels that came later). Records written before
    shadow judging carry the prequential fields instead (still read, never written)."""

    candidate: str
    champion: str | None = Field(description="The comparator: the champion when judged")
    examples: int = Field(description="Paired examples: events both models scored")
    from_offset: int | None
    to_offset: int | None
    seed: int | None = Field(default=None, description="Seeds every resampling: derived from "
                             "the candidate's version and the evidence's offsets")
    look: int | None = Field(default=None, description="The look these gates were made at")
    final: bool = Field(default=False, description="The last look: a verdict, never hold")
    looks: list[Look] = Field(default_factory=list, description="Every look so far")
    gates: list[GateVerdict]
    outcome: GateOutcome = Field(description="fail if any gate fails, else hold if any "
                                             "holds, else pass")
    group_quality: dict[str, dict[str, GroupQualityStats]] = Field(
        default_factory=dict,
        description="Attribute -> group -> AUC and calibration error of both models (the "
                    "largest groups of each attribute; not gated)")
    # Legacy (prequential evaluation, before issue 14): read, never written.
    champion_scores_served: int | None = None
    champion_scores_recomputed: int | None = None
    candidate_performance: PerformanceStats | None = None
    champion_performance: PerformanceStats | None = None
    candidate_impact: dict[str, ImpactStats] | None = None
    champion_impact: dict[str, ImpactStats] | None = None

    def failing(self) -> list[str]:
        """Names of the gates that did not pass, e.g. ``demographic_parity_ratio[group]``."""
        return [g.gate + (f"[{g.attribute}]" if g.attribute else "")
                for g in self.gates if g.outcome is not GateOutcome.PASS]

    def not_passed(self) -> str:
        """The gates that failed and those still holding, named apart:
        ``fail: roc_auc; hold: equalized_odds_difference[group]``."""
        parts = []
        for outcome in (GateOutcome.FAIL, GateOutcome.HOLD):
            names = [g.gate + (f"[{g.attribute}]" if g.attribute else "")
                     for g in self.gates if g.outcome is outcome]
            if names:
                parts.append(f"{outcome.value}: {', '.join(names)}")
        return "; ".join(parts)


class DriftFlag(_Record):
    """One drift statistic that flagged a window of training examples."""

    statistic: str = Field(description="'feature NAME', 'score' or 'impact ATTRIBUTE=GROUP'; "
                                       "prefixed 'baseline ' when tested against the baseline")
    value: float = Field(description="Chi-square statistic of the window")
    threshold: float = Field(description="Its threshold at the per-statistic level "
                                         "(dispersion-corrected)")
    p_value: float
    events: int = Field(description="Examples in the window for this statistic")


class DriftFinding(_Record):
    """What the learner's drift watch saw when it paused or resumed promotion (and, for a
    baseline pinned, which references it compares with)."""

    reference_version: str | None = Field(description="The version whose stored reference "
                                          "the examples were compared with (the champion)")
    baseline_version: str | None = Field(default=None, description="The version whose "
                                         "reference a person pinned as the baseline")
    window_examples: int = Field(description="Disjoint windows of this many training examples")
    windows: int = Field(description="Windows judged since the watch began (champion change)")
    clean_windows: int = Field(description="Clean windows in a row at this decision")
    resume_after: int = Field(description="Clean windows in a row that lift a pause by policy")
    family_false_alarm_rate: float = Field(description="Probability that a window without "
                                           "drift flags any statistic (family-wise)")
    level: float = Field(description="Each statistic's level (Šidák)")
    statistics: int = Field(description="Statistics watched (the family)")
    min_effect_psi: float = Field(description="A window is flagged only with this PSI or more")
    flags: list[DriftFlag] = Field(default_factory=list,
                                   description="The statistics that flagged (at most 16)")
    drifted: str | None = Field(default=None, description="What drifted, in words "
                                "('feature amount_last drifted, score drifted'); null when clean")


class Environment(_Record):
    """Where a version was cut or a decision made: what a rebuild must match."""

    package_version: str = Field(description="streambed's version")
    python_version: str
    platform: str
    river_version: str
    dependencies_sha256: str = Field(description="SHA-256 of the sorted name==version list "
                                                 "of every installed distribution")


class TrainingRange(_Record):
    """The examples a version learned: offsets [from, to] of ``training``, in order."""

    topic: str | None = None
    partition: int = 0
    from_offset: int | None = Field(description="First offset learned (null: none)")
    to_offset: int | None = Field(description="Last offset learned (null: none)")


class ModelVersionRecord(_Record):
    """One version on ``model.versions`` (compacted by ``version``; latest = current)."""

    record_format: Literal[1] = 1
    version: str
    lineage: str = Field(description="feature_set-config_hash[:8]: versions that share one "
                                     "learning history")
    sequence: int = Field(ge=0, description="0 is the untrained bootstrap version")
    parent: str | None = Field(description="The version this one continued learning from")
    status: VersionStatus
    created_at: EpochMs
    status_changed_at: EpochMs
    feature_set: str
    model: ModelSpec
    model_config_hash: str
    river_version: str
    training: TrainingRange
    examples_learned: int = Field(ge=0)
    artifact_sha256: str
    artifact: LogisticArtifact
    evaluation: Evaluation | None = None
    policy: dict[str, Any] | None = Field(
        default=None, description="The promotion policy it was cut or decided under (every "
                                  "gate setting, sensitive attributes, intersections, "
                                  "favourable outcome); null only in records before issue 14")
    policy_sha256: str | None = None
    environment: Environment | None = None
    drift_reference: dict[str, Any] | None = Field(
        default=None, description="What this version learned from, for drift: "
        "monitors.sketch.DriftReference.to_json() ({format: streambed-drift-reference, "
        "version: 1, examples, features, score, impact}), its own or, cut from too few "
        "examples, its parent's; fixed size (monitors.sketch.max_encoded_bytes). Scorers "
        "compare live traffic with the champion's. Null in records before issue 15")
    drift_baseline: dict[str, Any] | None = Field(
        default=None, description="A reference pinned by a person (same shape), compared "
                                  "beside drift_reference so slow drift is not absorbed")


class AuditRecord(_Record):
    """One decision on ``model.audit``: who decided what, why, and the numbers."""

    record_format: Literal[1] = 1
    audit_id: str = Field(description="lineage:sequence, unique and ordered per lineage")
    time: EpochMs
    version: str = Field(description="The version the decision is about")
    decision: Decision
    by: str = Field(description=f"'{POLICY}' or the person named by --by")
    override: bool = Field(default=False, description="Promoted although gates did not pass")
    reason: str
    previous_champion: str | None
    champion: str | None = Field(description="The champion after this decision")
    gates: list[GateVerdict] = Field(default_factory=list)
    evaluation: Evaluation | None = None
    request_id: str | None = Field(default=None, description="The person's request this "
                                   "answers (promote/rollback), as sent by the CLI")
    policy: dict[str, Any] | None = Field(default=None, description="The promotion policy "
                                          "this decision was made under (see the version)")
    policy_sha256: str | None = None
    environment: Environment | None = None
    training_offset: int | None = Field(
        default=None, description="The learner had read training up to (excluding) this "
                                  "offset when it decided: where a replay applies it")
    catch_up_to: int | None = Field(
        default=None, description="bootstrap: the training log's end offset when the lineage "
                                  "began; none of its versions is cut before it learned that far")
    drift: DriftFinding | None = Field(
        default=None, description="pause, resume, pin_baseline: the drift watch's statistics, "
                                  "thresholds, window sizes and family-wise false-alarm rate")


class ModelCommand(_Record):
    """A person's request to the learner, on ``model.commands``; answered by an audit
    record carrying the same ``request_id`` (or refused with the reason)."""

    record_format: Literal[1] = 1
    request_id: str = Field(min_length=8, description="Chosen by the CLI; echoed in the answer")
    action: Literal["promote", "rollback", "resume", "pin_baseline"]
    version: str | None = Field(default=None, description="promote: the version; rollback: "
                                "the version to put back (null: the previous champion); "
                                "pin_baseline: the version whose drift reference becomes the "
                                "baseline (null: the champion); resume: unused")
    by: str = Field(min_length=1, description="The person deciding")
    reason: str = Field(min_length=1)
    override: bool = Field(default=False, description="promote although gates do not pass")
    sent_at: EpochMs


class CommandAnswer(_Record):
    """The learner's answer to a command it could not carry out (unknown version, ...);
    a command it carried out (or refused on the gates) is answered by its audit record."""

    record_format: Literal[1] = 1
    request_id: str
    ok: Literal[False] = False
    error: str
    time: EpochMs


WIRE_MODELS: dict[str, type[BaseModel]] = {
    "training_example": TrainingExample,
    "model_version": ModelVersionRecord,
    "audit": AuditRecord,
    "model_command": ModelCommand,
    "command_answer": CommandAnswer,
}


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of each governance wire record."""
    return {name: model.model_json_schema() for name, model in WIRE_MODELS.items()}


def dumps(record: BaseModel) -> bytes:
    """Compact strict-JSON bytes of a record."""
    return json.dumps(record.model_dump(mode="json"), separators=(",", ":"),
                      allow_nan=False).encode()
