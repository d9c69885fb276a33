"""Drift that pauses automatic promotion: the learner's watch over its training examples.

The learner feeds every training example it reads (its features as scored, the
champion's score, its decision and groups) to a :class:`DriftWatch` built from the
serving champion's stored reference (:class:`monitors.sketch.DriftReference`). Examples
are counted into disjoint windows of ``window_examples`` examples (the learner has no
wall clock worth using: its windows are counted in examples), and each complete window
is judged with the drift test of the scorers (:func:`monitors.drift.drift_verdict`,
dispersion-corrected) on every watched statistic:

- each watched feature the reference has, and the champion's score;
- impact: per sensitive attribute (and intersection) and group, the share of the
  favourable outcome among that group's examples against the reference's, by the same
  chi-square test on two bins (favourable / not), judged once the group has
  ``drift.min_window_events`` examples in the window.

FAMILY-WISE: each statistic is tested at the Šidák level for
``drift.family_false_alarm_rate`` over all of them, so a window without drift pauses
promotion with probability at most that rate (1%), whatever the number of statistics.

With a ``baseline`` (a reference a person pinned, kept beside the champion's so that
slow drift is not absorbed by successive promotions), every statistic is also tested
against it (named ``baseline feature x`` ...): the family is then twice as large and each
test's Šidák level smaller, so the family-wise rate stays as stated.

The state is ``paused`` from the first window that flags anything until either
``drift.resume_after`` clean windows in a row (resumption by policy; a window on which
no statistic could be tested yet is not clean) or a person resumes
(:meth:`DriftWatch.resume`, recorded by the lifecycle with a name and a reason). Training
examples exist only once labels arrive, so the pause lags the drift in the events by the
label delay (at most ``model.label_ttl``); the scorers' gauges see it at event time.

:meth:`DriftWatch.to_data` / :meth:`DriftWatch.from_data`: the window counts (the current
window and the complete ones the dispersion is estimated from) and the state, as plain
data, so a restarted learner judges the same windows an uninterrupted one would.
:meth:`DriftWatch.carry` starts a new watch (another champion, another baseline) in the
state of the previous one: a pause does not lift because the reference changed.

>>> import numpy as np
>>> from monitors.config import MonitorsConfig
>>> from monitors.sketch import DriftReference
>>> rng = np.random.default_rng(0)
>>> ref = DriftReference.from_columns({"x": rng.normal(size=2000).tolist()})
>>> config = MonitorsConfig(drift={"min_window_events": 50})
>>> watch = DriftWatch(config, ref, window_examples=200)
>>> for i in range(1000):                      # five clean windows
...     change = watch.observe({"x": float(rng.normal())})
>>> watch.state.paused, watch.state.windows
(False, 5)
>>> for i in range(200):                       # a 1-sd shift
...     change = watch.observe({"x": float(rng.normal(1.0))})
>>> change.paused, change.reason
(True, 'feature x drifted')
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from monitors.chisquare import family_alpha
from monitors.config import MonitorsConfig
from monitors.drift import DriftVerdict, VariableDrift
from monitors.impact import group_of
from monitors.monitoring import favourable_decision, intersection_groups, with_intersections
from monitors.sketch import (
    FAVOURABLE,
    UNFAVOURABLE,
    DriftReference,
    impact_key,
    impact_sketches,
)

SCORE = "score"
#: Prefix of the statistics tested against the pinned baseline.
BASELINE = "baseline "


def reference_from_examples(
    config: MonitorsConfig,
    features: Sequence[Mapping[str, Any]],
    scores: Sequence[float],
    decisions: Sequence[int],
    groups: Sequence[Mapping[str, str | None]],
    feature_names: Sequence[str] | None = None,
) -> DriftReference:
    """The reference a learner stores with a version it cuts: the last
    ``drift.reference.examples`` of the given examples (oldest first), their watched
    features, the scores and decisions the FROZEN version gives them (rescored by the
    caller), and the favourable outcomes of each group with at least
    ``drift.min_window_events`` examples among them. Apply
    :func:`monitors.sketch.reference_at_cut` to the result for the parent fallback.

    >>> from monitors.config import MonitorsConfig
    >>> config = MonitorsConfig(sensitive_attributes={"group": ["A", "B"]},
    ...                         drift={"min_window_events": 1})
    >>> ref = reference_from_examples(config, [{"x": 1.0}, {"x": 2.0}], [0.2, 0.7], [0, 1],
    ...                               [{"group": "A"}, {"group": "B"}])
    >>> ref.examples, sorted(ref.features), sorted(ref.impact)
    (2, ['x'], ['group=A', 'group=B'])
    """
    n = config.drift.reference.examples
    features, scores = list(features)[-n:], list(scores)[-n:]
    decisions, groups = list(decisions)[-n:], list(groups)[-n:]
    if not len(features) == len(scores) == len(decisions) == len(groups):
        raise ValueError("features, scores, decisions and groups must be one per example")
    names = list(config.drift.features or feature_names or
                 sorted({k for row in features for k in row}))
    drift = config.drift
    base = DriftReference.from_columns({name: [row.get(name) for row in features]
                                        for name in names},
                                       scores, ks_bins=drift.ks_bins,
                                       max_categories=drift.max_categories)
    favourable = favourable_decision(config)
    configured = intersection_groups(config)
    extended = [with_intersections(g, config.intersections) for g in groups]
    labelled = {attribute: [group_of(g.get(attribute), members) for g in extended]
                for attribute, members in configured.items()}
    impact = impact_sketches(labelled, [int(d) == favourable for d in decisions])
    # Only groups with ``min_window_events`` examples in the reference are watched: a
    # rarer group's share is too noisy to judge, and this bounds the sketch (at most
    # examples / min_window_events groups per attribute, whatever an intersection holds).
    impact = {k: v for k, v in impact.items() if v.size >= drift.min_window_events}
    return DriftReference(base.examples, base.features, base.score, impact)


@dataclass(frozen=True)
class Flag:
    """One statistic that flagged a window."""

    statistic: str  # "feature x", "score", "impact group=B"
    value: float
    threshold: float
    p_value: float
    events: int


@dataclass(frozen=True)
class DriftState:
    """Whether automatic promotion is paused, why, and the numbers behind it."""

    paused: bool
    #: Human-readable: what drifted ("feature amount_last drifted, score drifted").
    reason: str | None
    #: The statistics that flagged the window that paused (or the last window judged).
    flags: tuple[Flag, ...]
    #: Complete windows judged so far, and clean ones in a row since the last flag.
    windows: int
    clean_windows: int
    #: The family-wise false-alarm rate per window and the per-statistic level.
    family_false_alarm_rate: float
    level: float
    statistics: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftState:
        """The inverse of :meth:`to_dict` (ValueError if it is not one)."""
        try:
            flags = tuple(Flag(**f) for f in data["flags"])
            return cls(bool(data["paused"]), data["reason"], flags, int(data["windows"]),
                       int(data["clean_windows"]), float(data["family_false_alarm_rate"]),
                       float(data["level"]), int(data["statistics"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a drift watch state: {exc!r}") from None


class DriftWatch:
    """Training examples against the champion's reference; paused or clean."""

    def __init__(self, config: MonitorsConfig, reference: DriftReference, *,
                 window_examples: int = 500,
                 baseline: DriftReference | None = None) -> None:
        if window_examples < config.drift.min_window_events:
            raise ValueError(f"window_examples ({window_examples}) is below "
                             f"monitors.drift.min_window_events ({config.drift.min_window_events})")
        self.config = config
        # Windows counted in examples: the example count is the monitors' clock here.
        self._drift_config = config.drift.model_copy(
            update={"window_seconds": float(window_examples)})
        self._favourable = favourable_decision(config)
        self._groups = intersection_groups(config)
        self._monitors: dict[str, VariableDrift] = {}
        #: Statistic name -> (what it observes, the monitor): "feature x", "score" or
        #: "impact attribute=group".
        self._observes: dict[str, str] = {}
        for prefix, ref in (("", reference), (BASELINE, baseline)):
            if ref is None:
                continue
            watched = config.drift.features or list(ref.features)
            for name in watched:
                if name in ref.features:
                    self._add(prefix, f"feature {name}", ref.features[name])
            if ref.score is not None:
                self._add(prefix, SCORE, ref.score)
            for key, sketch in ref.impact.items():
                self._add(prefix, f"impact {key}", sketch)
        self.level = family_alpha(config.drift.family_false_alarm_rate,
                                  max(1, len(self._monitors)))
        self.window_examples = window_examples
        self._examples = 0
        self._judged = 0
        self.state = DriftState(False, None, (), 0, 0, config.drift.family_false_alarm_rate,
                                self.level, len(self._monitors))

    def _add(self, prefix: str, what: str, sketch: Any) -> None:
        monitor = VariableDrift(self._drift_config)
        monitor.set_sketch(sketch)
        self._monitors[prefix + what] = monitor
        self._observes[prefix + what] = what

    @property
    def statistics(self) -> list[str]:
        """The watched statistics (the family the false-alarm rate is over)."""
        return list(self._monitors)

    def observe(self, features: Mapping[str, Any], score: float | None = None,
                decision: int | None = None,
                groups: Mapping[str, str | None] | None = None) -> DriftState | None:
        """Count one training example; returns the new state when it completed a window."""
        now = float(self._examples)
        values: dict[str, Any] = {}
        if score is not None:
            values[SCORE] = score
        if decision is not None and groups is not None:
            outcome = FAVOURABLE if int(decision) == self._favourable else UNFAVOURABLE
            extended = with_intersections(groups, self.config.intersections)
            for attribute, configured in self._groups.items():
                group = group_of(extended.get(attribute), configured)
                values[f"impact {impact_key(attribute, group)}"] = outcome
        for name, monitor in self._monitors.items():
            what = self._observes[name]
            if what.startswith("feature "):
                monitor.observe(features.get(what[len("feature "):]), now)
            elif what in values:
                monitor.observe(values[what], now)
        self._examples += 1
        if self._examples % self.window_examples:
            return None
        return self._judge(float(self._examples))

    def _judge(self, now: float) -> DriftState:
        flags = []
        tested = False
        for name, monitor in self._monitors.items():
            verdict: DriftVerdict = monitor.verdict(now, self.level)
            tested = tested or verdict.statistic == verdict.statistic  # not NaN
            if verdict.detected:
                flags.append(Flag(name, verdict.statistic, verdict.threshold, verdict.p_value,
                                  verdict.events))
        self._judged += 1
        previous = self.state
        # A window on which no statistic could be tested (too few examples, the
        # dispersion not known yet) is not clean: it must not lift a pause.
        clean = 0 if flags else previous.clean_windows + int(tested)
        if flags:
            paused = True
            reason = ", ".join(f"{f.statistic} drifted" for f in flags)
            shown = tuple(flags)
        else:
            paused = previous.paused and clean < self.config.drift.resume_after
            reason = previous.reason if paused else None
            shown = previous.flags if paused else ()
        self.state = DriftState(paused, reason, shown, self._judged, clean,
                                self.config.drift.family_false_alarm_rate, self.level,
                                len(self._monitors))
        return self.state

    def resume(self) -> DriftState:
        """A person resumed automatic promotion: clean from now on, until the next flag."""
        self.state = DriftState(False, None, (), self.state.windows, 0,
                                self.config.drift.family_false_alarm_rate, self.level,
                                len(self._monitors))
        return self.state

    def carry(self, previous: DriftState) -> DriftState:
        """Continue a previous watch's pause (same reason and flags; clean windows count
        afresh against this watch's reference)."""
        self.state = DriftState(previous.paused, previous.reason, previous.flags, 0, 0,
                                self.config.drift.family_false_alarm_rate, self.level,
                                len(self._monitors))
        return self.state

    def to_data(self) -> dict[str, Any]:
        """The window counts and the state as plain JSON-able data (see :meth:`from_data`).

        Counts are kept per fine bin for the current window and the complete ones the
        dispersion needs (``dispersion_windows + 1``), each as a list of integers."""
        monitors = {}
        for name, monitor in self._monitors.items():
            t = monitor.tumbling
            if t is None:
                continue
            monitors[name] = {"id": t._id, "counts": _ints(t._counts),
                              "history": [_ints(h) for h in t.history],
                              "dropped": t.dropped}
        return {"examples": self._examples, "judged": self._judged,
                "window_examples": self.window_examples,
                "state": self.state.to_dict(), "monitors": monitors}

    @classmethod
    def from_data(cls, config: MonitorsConfig, reference: DriftReference,
                  data: Mapping[str, Any], *,
                  baseline: DriftReference | None = None) -> DriftWatch:
        """The watch :meth:`to_data` described, over the same references; ValueError if the
        data does not fit them (another reference, or not a watch's data)."""
        try:
            watch = cls(config, reference, window_examples=int(data["window_examples"]),
                        baseline=baseline)
            if set(data["monitors"]) != set(watch._monitors):
                raise ValueError("its statistics are not this reference's")
            for name, saved in data["monitors"].items():
                t = watch._monitors[name].tumbling
                assert t is not None
                counts = np.asarray(saved["counts"], dtype=np.float64)
                if len(counts) != t.width:
                    raise ValueError(f"{name}: {len(counts)} bins, the reference has {t.width}")
                t._id, t._counts = saved["id"], counts
                t.history = deque((np.asarray(h, dtype=np.float64) for h in saved["history"]),
                                  maxlen=t.history.maxlen)
                t.dropped = int(saved["dropped"])
            watch._examples, watch._judged = int(data["examples"]), int(data["judged"])
            watch.state = DriftState.from_dict(data["state"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a drift watch's data: {exc!r}") from None
        return watch


def _ints(counts: Any) -> list[int]:
    return [int(c) for c in counts]
