"""The learner's drift watch: pauses on drift with its reason, at a stated family-wise
false-pause rate, and lifts by policy or by a person."""

from __future__ import annotations

import numpy as np
import pytest

from monitors import MonitorsConfig
from monitors.drift_watch import DriftWatch, reference_from_examples
from monitors.intervals import wilson
from monitors.sketch import DriftReference

CONFIG = MonitorsConfig(
    sensitive_attributes={"group": ["A", "B"]},
    drift={"min_window_events": 50, "resume_after": 2},
)
FEATURES = ("x", "y", "z")


def draw(rng: np.random.Generator, n: int, shift: float = 0.0,
         b_favourable: float = 0.6) -> list[tuple[dict, float, int, dict]]:
    rows = []
    for _ in range(n):
        group = "A" if rng.random() < 0.6 else "B"
        features = {f: float(rng.normal(shift if f == "x" else 0.0)) for f in FEATURES}
        score = float(1 / (1 + np.exp(-features["y"])))
        favourable_p = 0.6 if group == "A" else b_favourable
        decision = 0 if rng.random() < favourable_p else 1  # favourable: decision 0
        rows.append((features, score, decision, {"group": group}))
    return rows


def reference(rng: np.random.Generator) -> DriftReference:
    """As the learner stores it: the last 2,000 examples at the cut (of 2,500 read)."""
    rows = draw(rng, 2500)
    return reference_from_examples(CONFIG, [r[0] for r in rows], [r[1] for r in rows],
                                   [r[2] for r in rows], [r[3] for r in rows])


def feed(watch: DriftWatch, rows: list) -> list:
    states = []
    for features, score, decision, groups in rows:
        state = watch.observe(features, score, decision, groups)
        if state is not None:
            states.append(state)
    return states


def test_every_statistic_is_watched_and_the_level_is_family_wise() -> None:
    ref = reference(np.random.default_rng(0))
    assert ref.examples == 2000 and ref.impact["group=A"].size + ref.impact["group=B"].size == 2000
    watch = DriftWatch(CONFIG, ref, window_examples=300)
    assert watch.statistics == ["feature x", "feature y", "feature z", "score",
                                "impact group=A", "impact group=B"]
    assert watch.level == 1 - 0.99 ** (1 / 6)


def test_stationary_examples_pause_in_at_most_the_stated_share_of_windows() -> None:
    """Measured over 400 windows (25 watches of 20 windows, each with its own
    reference): a window with no drift pauses with probability <= 1%."""
    rng = np.random.default_rng(1)
    flagged = judged = 0
    for _ in range(25):
        watch = DriftWatch(CONFIG, reference(rng), window_examples=250)
        states = feed(watch, draw(rng, 250 * 20))
        verdicts = states[4:]  # the dispersion is known from the 4th window on
        flagged += sum(1 for s in verdicts if s.clean_windows == 0)
        judged += len(verdicts)
    low, _ = wilson(flagged, judged, z=3.29)
    assert judged >= 400 and low <= 0.01, f"{flagged} of {judged} windows paused"


def test_a_feature_shift_pauses_with_its_reason_and_policy_resumes() -> None:
    rng = np.random.default_rng(2)
    watch = DriftWatch(CONFIG, reference(rng), window_examples=300)
    feed(watch, draw(rng, 300 * 5))
    assert not watch.state.paused
    states = feed(watch, draw(rng, 300, shift=1.0))
    assert states[-1].paused and "feature x drifted" in (states[-1].reason or "")
    flag = next(f for f in states[-1].flags if f.statistic == "feature x")
    assert flag.value > flag.threshold and flag.events == 300
    states = feed(watch, draw(rng, 300 * 2))
    assert [s.paused for s in states] == [True, False]  # resume_after = 2 clean windows


def test_a_group_losing_the_favourable_outcome_pauses() -> None:
    rng = np.random.default_rng(3)
    watch = DriftWatch(CONFIG, reference(rng), window_examples=400)
    feed(watch, draw(rng, 400 * 12))  # a two-bin statistic: the F threshold needs pairs
    states = feed(watch, draw(rng, 400, b_favourable=0.3))
    assert states[-1].paused and states[-1].reason == "impact group=B drifted"


def test_a_person_resumes() -> None:
    rng = np.random.default_rng(4)
    watch = DriftWatch(CONFIG, reference(rng), window_examples=300)
    feed(watch, draw(rng, 300 * 5))
    feed(watch, draw(rng, 300, shift=1.0))
    assert watch.state.paused
    assert not watch.resume().paused and watch.state.reason is None


def test_a_pause_carries_to_a_new_watch_and_untested_windows_do_not_lift_it() -> None:
    """A new reference (another champion) starts a new watch: its first windows cannot be
    tested (the dispersion needs three pairs), and must not count as clean."""
    rng = np.random.default_rng(5)
    old = DriftWatch(CONFIG, reference(rng), window_examples=300)
    feed(old, draw(rng, 300 * 5))
    feed(old, draw(rng, 300, shift=1.0))
    assert old.state.paused
    new = DriftWatch(CONFIG, reference(rng), window_examples=300)
    assert new.carry(old.state).paused and new.state.reason == old.state.reason
    states = feed(new, draw(rng, 300 * 3))
    assert [s.clean_windows for s in states] == [0, 0, 0] and new.state.paused
    states = feed(new, draw(rng, 300 * 2))          # tested (4th window on) and clean
    assert [s.paused for s in states] == [True, False]


def test_the_windows_and_the_state_survive_to_data_and_from_data() -> None:
    rng = np.random.default_rng(6)
    ref, baseline = reference(rng), reference(rng)
    watch = DriftWatch(CONFIG, ref, window_examples=300, baseline=baseline)
    assert watch.statistics[:1] == ["feature x"] and "baseline feature x" in watch.statistics
    feed(watch, draw(rng, 300 * 5 + 120))
    again = DriftWatch.from_data(CONFIG, ref, watch.to_data(), baseline=baseline)
    rows = draw(rng, 300 * 3, shift=1.0)
    assert [s.to_dict() for s in feed(again, rows)] == [s.to_dict() for s in feed(watch, rows)]
    with pytest.raises(ValueError, match="not this reference's"):
        DriftWatch.from_data(CONFIG, ref, watch.to_data())   # without the baseline


def test_a_feature_null_in_every_reference_example_does_not_break_the_watch() -> None:
    """A configured feature the examples never carry (all null) sketches as nulls only:
    the watch bins it (one bin for any value) and the other statistics are judged as
    before. It gives no verdict of its own: windows of one bin have no dispersion to
    estimate (monitors.drift.dispersion needs a degree of freedom per pair)."""
    rng = np.random.default_rng(7)
    rows = draw(rng, 2500)
    ref = reference_from_examples(CONFIG, [{**r[0], "gone": None} for r in rows],
                                  [r[1] for r in rows], [r[2] for r in rows],
                                  [r[3] for r in rows])
    assert ref.features["gone"].quantiles == () and ref.features["gone"].nulls == 2000
    watch = DriftWatch(CONFIG, ref, window_examples=300)
    states = feed(watch, [({**f, "gone": None}, s, d, g) for f, s, d, g in draw(rng, 1500)])
    assert not any(s.paused for s in states)
    states = feed(watch, [({**f, "gone": None}, s, d, g)
                          for f, s, d, g in draw(rng, 300, shift=1.0)])
    assert states[-1].paused and states[-1].reason == "feature x drifted"
