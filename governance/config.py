"""Configuration of the governed lifecycle: the model that is learned and how it is promoted.

Two pydantic sections, both ``extra="forbid"`` so a typo is an error, both with a working
default for every field:

- :class:`ModelSpec`: everything that changes what the learner learns or how a version
  scores (its hash is part of every version's identity).
- :class:`PromotionConfig`: when a version is cut and what it must pass before it serves;
  the lead nests it as ``model.promotion`` in the config file::

    model:
      learning_rate: 0.05
      promotion:
        mode: gated                 # or manual: a person promotes, always
        examples_per_version: 500
        evaluation_window: 2000
        parity_ratio_min: 0.8
        equalized_odds_max: 0.1

>>> PromotionConfig().mode, PromotionConfig().parity_ratio_min
('gated', 0.8)
>>> PromotionConfig(modee="manual")
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for PromotionConfig
modee
  Extra inputs are not permitted ...
>>> len(ModelSpec().config_hash), ModelSpec().config_hash == ModelSpec(threshold=0.5).config_hash
(64, True)
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from monitors.config import DriftConfig, MonitorsConfig

#: River's LogisticRegression default, which streambed has always used for the intercept.
INTERCEPT_LEARNING_RATE = 0.01
#: River's default gradient clip for GLMs; fixed, recorded in every artifact.
CLIP_GRADIENT = 1e12


def canonical_json(value: Any) -> str:
    """The one canonical JSON text of plain data: sorted keys, no spaces, no NaN.

    Hashes (artifact SHA-256, config hash) are taken over this text, so they do not
    depend on dict order or on the JSON library's whitespace.

    >>> canonical_json({"b": 1.0, "a": [1, None]})
    '{"a":[1,null],"b":1.0}'
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False,
                      ensure_ascii=True)


def sha256_hex(value: Any) -> str:
    """SHA-256 (hex) of :func:`canonical_json` of ``value``."""
    return hashlib.sha256(canonical_json(value).encode("ascii")).hexdigest()


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Section):
    """The learned model: StandardScaler | LogisticRegression(SGD(learning_rate), l2).

    ``streams.config.ModelConfig`` (the config file's ``model`` section) inherits every
    field from here, so each is configurable under the same name and default;
    ``config.model.spec`` is the spec alone.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, from_attributes=True)

    kind: Literal["logistic_regression"] = "logistic_regression"
    #: SGD step size for the weights (constant schedule).
    learning_rate: float = Field(default=0.05, gt=0, le=10)
    l2: float = Field(default=0.0, ge=0)
    #: Step size for the intercept (River's default; constant schedule).
    intercept_learning_rate: float = Field(default=INTERCEPT_LEARNING_RATE, ge=0, le=10)
    #: Score at or above which the decision is positive (1).
    threshold: float = Field(default=0.5, ge=0, le=1)
    #: Feature values that are null are fed to the model as this value.
    fill_null: float = 0.0
    #: A text-valued feature (first/last of a string field) is one-hot encoded into this
    #: many hashed indicator inputs (``name[k]`` = 1 for ``k = crc32(value) mod buckets``):
    #: bounded whatever the field holds, and the same on every scorer and the learner.
    text_buckets: int = Field(default=16, ge=1, le=1024)

    @property
    def config_hash(self) -> str:
        """SHA-256 of the normalised spec: same hash, same learning, same scoring."""
        return sha256_hex({**self.model_dump(mode="json"), "clip_gradient": CLIP_GRADIENT,
                           "loss": "log", "scaler": "standard", "optimizer": "sgd"})

    def to_x(self, features: Mapping[str, float | int | bool | str | None]
             ) -> dict[str, float]:
        """The model's input for one example: floats, nulls filled, in sorted name order.

        The order is fixed because River sums ``w·x`` in the order of ``x``: a producer that
        reorders its JSON object must not change the last bit of a score. A text value
        becomes one hashed indicator (see ``text_buckets``).

        >>> ModelSpec(fill_null=-1.0).to_x({"b": None, "a": 2})
        {'a': 2.0, 'b': -1.0}
        >>> ModelSpec(text_buckets=8).to_x({"country": "US", "n": 1})
        {'country[0]': 1.0, 'n': 1.0}
        """
        fill, x = self.fill_null, {}
        for k, v in features.items():
            if isinstance(v, str):
                x[f"{k}[{zlib.crc32(v.encode()) % self.text_buckets}]"] = 1.0
            else:
                x[k] = fill if v is None else float(v)
        return {k: x[k] for k in sorted(x)}


class PromotionConfig(_Section):
    """When versions are cut, and what a candidate must show before it serves.

    Each default is argued beside its field, and in docs/governance.md.
    """

    #: ``gated``: the policy promotes a candidate when every gate passes and holds it
    #: otherwise. ``manual``: gates are computed and recorded, a person decides. Default
    #: gated: the gates are the reviewer that never sleeps; ``manual`` is for regimes where
    #: a named person must sign off every change.
    mode: Literal["gated", "manual"] = "gated"
    #: A candidate version is cut after this many learned examples. 500: the quickstart's
    #: cadence; few enough versions to review, often enough to follow drift.
    examples_per_version: int = Field(default=500, ge=1)
    #: The gates judge candidate and champion on the last this-many training examples (the
    #: same examples for both). 2000 = four versions' worth: enough that each of a handful
    #: of groups has its 30 positives at a 10% base rate, recent enough to be today's data.
    evaluation_window: int = Field(default=2000, ge=10)
    #: Performance gate: the candidate's ROC AUC may be at most this much below the
    #: champion's. 0.01: smaller than a meaningful loss of ranking, larger than the paired
    #: noise of two near-identical models on 2000 examples.
    roc_auc_margin: float = Field(default=0.01, ge=0, le=1)
    #: Performance gate: the candidate's log loss may be at most this much above the
    #: champion's (nats). 0.02: about 5% of a typical 0.4 log loss.
    log_loss_margin: float = Field(default=0.02, ge=0)
    #: Impact gate, per sensitive attribute: lowest / highest selection rate over groups
    #: must be at least this. 0.8: the four-fifths rule (EEOC, 29 CFR 1607.4(D)), the same
    #: bound the monitors alert on.
    parity_ratio_min: float = Field(default=0.8, gt=0, le=1)
    #: Impact gate, per sensitive attribute: the largest TPR or FPR gap between groups must
    #: be at most this. 0.1: fairlearn's customary bound, the same the monitors alert on.
    equalized_odds_max: float = Field(default=0.1, gt=0, le=1)
    #: A group's rate is judged only on at least this many examples of its own denominator
    #: (decisions for the selection rate, labelled positives for TPR, negatives for FPR).
    #: 30: the usual normal-approximation floor, the same as monitors.impact.min_group_size.
    min_group_examples: int = Field(default=30, ge=1)
    #: What a group below ``min_group_examples`` does to its gate. ``hold`` (default): the
    #: gate holds, so it never passes on data too thin to see harm. ``exclude``: the group
    #: is left out (as the monitors do) and the gate judges the others (needs two).
    small_groups: Literal["hold", "exclude"] = "hold"
    #: Performance gate: positives and negatives each needed in the window for AUC and log
    #: loss to be judged; below it the gate holds. 30, as for groups.
    min_label_examples: int = Field(default=30, ge=1)
    #: The learner keeps the records (and artifacts) of the last this-many champions and
    #: of the last this-many other versions, for promote and rollback; older ones stay on
    #: model.versions. 20: weeks of history at a version a day, a snapshot well under 1 MB.
    retain_versions: int = Field(default=20, ge=1)
    #: At most this many candidates are scored in shadow at once by every scorer (newest
    #: first), beside the champion, until their verdict. 2: each shadow costs a model
    #: score per event; two let a new cut start collecting evidence while the previous
    #: one is still being judged.
    max_shadows: int = Field(default=2, ge=0, le=8)
    # --- Gates on evidence (docs/governance.md, "Gates on evidence"; governance/gates.py).
    #: The most a gate may let through, over all looks at one candidate, when the truth
    #: violates it (performance worse than the margin, parity below its bound, a TPR or
    #: FPR gap above its bound, impact worse than the champion's by ``impact_margin``).
    #: Promotion needs every gate to pass, so a candidate that violates any one of them is
    #: promoted with at most this probability. 0.05: the conventional level of a
    #: non-inferiority trial; the simulation (make gates-oc) shows the realised rates.
    false_promotion_rate: float = Field(default=0.05, gt=0, lt=0.5)
    #: The most that a candidate meeting every bound may fail, over all looks and all
    #: statistics at once (Bonferroni over them: ~12 statistics can each fail a fair
    #: candidate). 0.05: one fair candidate in twenty at worst, and far fewer when the
    #: truth is not on the bound.
    false_failure_rate: float = Field(default=0.05, gt=0, lt=0.5)
    #: Impact gates also compare with the champion: for each pair of groups the
    #: candidate's gap may exceed the champion's by at most this (TPR/FPR: absolute rate;
    #: parity: the ratio may fall by at most this fraction). 0.05: half the equalized-odds
    #: bound, so a candidate cannot spend the whole allowance the champion left unused.
    impact_margin: float = Field(default=0.1, gt=0, lt=1)
    #: The first look at a candidate is at this many paired examples; later looks at
    #: ``look_growth`` times the previous, up to ``max_examples_per_judgement`` (the final
    #: look). 1000 paired examples: at a 40% base rate each of two 70/30 groups then has
    #: its 30 favourable and unfavourable decisions and 30 positives many times over.
    first_look_examples: int = Field(default=1000, ge=10)
    #: Each look at ``look_growth`` times the sample of the previous one. 2: looks at
    #: 1000, 2000, 4000, 8000, 16000: five looks cover a sixteen-fold range, so the
    #: error budget is split only five ways.
    look_growth: float = Field(default=2.0, gt=1, le=16)
    #: The final look: a candidate not shown to pass by then fails as inconclusive (named
    #: so in its verdict). 16000: what the equalized-odds gate needs at a 10% base rate
    #: with a 30% group (docs/governance.md gives the labels a verdict needs by group size).
    max_examples_per_judgement: int = Field(default=16000, ge=10)
    #: What drift in the training examples does to automatic promotion (the learner's
    #: drift watch, ``monitors.drift``; docs/governance.md, "Drift pauses automatic
    #: promotion"). ``pause``: while the examples drift from the champion's reference (or
    #: the pinned baseline), a candidate whose gates pass awaits a person instead of being
    #: promoted; the learner keeps learning, cutting and judging. ``continue``: promote on
    #: the gates alone, drift or not. Default pause: where people may be discriminated
    #: against, retraining automatically on a population that moved is not obviously the
    #: answer, and a person should look first.
    on_drift: Literal["pause", "continue"] = "pause"

    def look_sizes(self) -> list[int]:
        """The paired-example counts at which a candidate is judged (the last is final).

        >>> PromotionConfig().look_sizes()
        [1000, 2000, 4000, 8000, 16000]
        """
        from governance.sequential import schedule

        return schedule(first=self.first_look_examples, growth=self.look_growth,
                        maximum=self.max_examples_per_judgement)


class PromotionPolicy(_Section):
    """Everything that decides whether a candidate serves: the gates' settings, which
    groups they judge and which decision a person wants. On record (with its hash) in every
    version and audit record; a change is an audit record of its own (``policy_changed``)
    before any decision under it.

    >>> a = PromotionPolicy(promotion=PromotionConfig(), sensitive_attributes={"g": ["A"]})
    >>> b = a.model_copy(update={"favourable_outcome": "above_threshold"})
    >>> len(a.sha256), a.sha256 == b.sha256
    (64, False)
    >>> a.attributes()
    {'g': ['A']}
    """

    promotion: PromotionConfig = PromotionConfig()
    #: Sensitive attribute -> its bounded groups (``monitors.sensitive_attributes``).
    sensitive_attributes: dict[str, list[str]] = Field(default_factory=dict)
    #: Intersections judged as attributes of their own (``monitors.intersections``).
    intersections: list[list[str]] = Field(default_factory=list)
    #: ``monitors.favourable_outcome``: which side of the threshold a person wants.
    favourable_outcome: Literal["below_threshold", "above_threshold"] = "below_threshold"
    #: ``monitors.drift``: the settings of the drift watch that pauses automatic promotion
    #: (:attr:`monitors.config.DriftConfig.NOT_PAUSING` are left off the record).
    drift: DriftConfig = DriftConfig()

    def on_record(self) -> dict[str, Any]:
        """The policy as plain data, as every record carries it."""
        return self.model_dump(mode="json", exclude={"drift": DriftConfig.NOT_PAUSING})

    def monitors(self) -> MonitorsConfig:
        """The monitors' view of this policy (groups, favourable outcome, drift), for the
        drift reference and watch."""
        return MonitorsConfig(sensitive_attributes=self.attributes(),
                              intersections=[list(m) for m in self.intersections],
                              favourable_outcome=self.favourable_outcome,
                              drift=self.drift)

    @property
    def sha256(self) -> str:
        """SHA-256 of :meth:`on_record` (canonical JSON): same hash, same policy."""
        return sha256_hex(self.on_record())

    def attributes(self) -> dict[str, list[str]]:
        """The configured attributes only (intersections are derived, see
        :func:`governance.shadow.group_row`)."""
        return {a: list(g) for a, g in self.sensitive_attributes.items()}


def changed_settings(before: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """Dotted names of the policy settings that differ, e.g. ``promotion.parity_ratio_min``
    (what a ``policy_changed`` audit record names).

    >>> changed_settings({"promotion": {"a": 1, "b": 2}, "x": [1]},
    ...                  {"promotion": {"a": 1, "b": 3}, "x": [2]})
    ['promotion.b', 'x']
    """
    out = []
    for key in sorted(set(before) | set(now)):
        b, n = before.get(key), now.get(key)
        if isinstance(b, Mapping) and isinstance(n, Mapping):
            out += [f"{key}.{k}" for k in changed_settings(b, n)]
        elif b != n:
            out.append(key)
    return out
