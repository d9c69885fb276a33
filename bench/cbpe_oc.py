"""Operating characteristics of CBPE (docs/monitoring.md, "Performance before labels").

1. The simulator (the quickstart's stream through the feature engine): the quickstart
   model learns on the first ``--train`` examples, then is frozen and scores windows of
   ``--window`` events; ``--windows`` windows before the simulator's drift and as many
   after. Per window: the 95% interval of the AUC estimated on the raw scores, and on
   scores calibrated on the previous window's labels (what a scorer's labelled window
   holds), each against the AUC the labels realise; and the reliability flag (calibrator
   fitted on the previous window, judged on this one). Printed: coverage before the drift,
   raw and calibrated, and the flags.
2. The flag's false-flag rate: ``--flag-windows`` windows of ``--labels`` labelled examples
   from a stable model, calibrated and overconfident (logit twice the truth's), with its
   95% Wilson upper bound.

Run: ``make cbpe-oc`` or ``.venv/bin/python bench/cbpe_oc.py [--seeds 2 3 4 --flag-windows
300]`` (the defaults; ~10 min on 2 loaded cores).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from featured_stream import featured_events, learned_model  # noqa: E402

from features.spec import FeatureSet  # noqa: E402
from monitors.calibration import bootstrap_probabilities, fit_logistic, logit  # noqa: E402
from monitors.cbpe import estimate_performance, reliability_check  # noqa: E402
from monitors.intervals import wilson  # noqa: E402
from monitors.performance import roc_auc  # noqa: E402
from streams.config import load_config  # noqa: E402
from streams.devtools.simulate import SimulationOptions  # noqa: E402

QUICKSTART = REPO / "examples" / "quickstart.yaml"


def simulator(seed: int, train: int, window: int, windows: int) -> dict[str, int]:
    config = load_config(QUICKSTART)
    spec = FeatureSet.model_validate(
        {"features": yaml.safe_load(QUICKSTART.read_text())["features"]})
    count = train + 2 * windows * window
    options = SimulationOptions(count=count, seed=seed, entities=300, mean_gap_ms=20_000,
                                label_delay_ms=600_000,
                                drift_at=(train + windows * window) / count)
    rows, labels = featured_events(config, spec, options)
    model = learned_model(config, rows[:train], labels)
    perf = config.monitors.performance
    tally = {"windows": 0, "raw_covered": 0, "calibrated_covered": 0, "flagged": 0,
             "after_drift_missed": 0, "after_drift_missed_unflagged": 0}
    previous: tuple[list[float], list[int], list[int]] | None = None
    for w in range(2 * windows):
        part = rows[train + w * window: train + (w + 1) * window]
        scores = list(model.score_batch([f for _, f in part]))
        y = [labels[e] for e, _ in part]
        decisions = [int(s >= model.spec.threshold) for s in scores]
        realised = roc_auc(scores, y)
        raw = estimate_performance(scores, decisions, simulations=perf.estimate_simulations,
                                   level=perf.estimate_level, seed=w).roc_auc
        line = (f"seed {seed} window {w} {'after' if w >= windows else 'before'} drift: "
                f"realised {realised:.3f}, raw [{raw.lower:.3f}, {raw.upper:.3f}]")
        if previous is not None:
            ps, py, pd = previous
            calibrated = estimate_performance(
                scores, decisions, simulations=perf.estimate_simulations,
                level=perf.estimate_level, seed=w,
                probabilities=fit_logistic(ps, py).apply(scores),
                probability_draws=bootstrap_probabilities(ps, py, scores, seed=w)).roc_auc
            check = reliability_check(ps + scores, pd + decisions, py + y,
                                      false_flag_rate=perf.calibration_alpha,
                                      max_error=perf.max_calibration_error,
                                      min_labels=perf.calibration_min_labels,
                                      simulations=perf.estimate_simulations,
                                      level=perf.estimate_level, seed=w)
            covered = calibrated.covers(realised)
            line += (f", calibrated [{calibrated.lower:.3f}, {calibrated.upper:.3f}] "
                     f"covered {covered}, reliable {check.reliable}")
            if w < windows:
                tally["windows"] += 1
                tally["raw_covered"] += raw.covers(realised)
                tally["calibrated_covered"] += covered
                tally["flagged"] += not check.reliable
            elif not covered:
                tally["after_drift_missed"] += 1
                tally["after_drift_missed_unflagged"] += check.reliable
        print(line, flush=True)
        previous = (scores, y, decisions)
    return tally


def flag_rate(windows: int, labels: int) -> None:
    for kind in ("calibrated", "overconfident"):
        rng = np.random.default_rng(21)
        flagged = 0
        for w in range(windows):
            s = rng.beta(2, 5, size=labels)
            truth = s if kind == "calibrated" else 1.0 / (1.0 + np.exp(-0.5 * logit(s)))
            flagged += not reliability_check(s, s >= 0.5, rng.random(labels) < truth,
                                             seed=w).reliable
        _, upper = wilson(flagged, windows)
        print(f"flag rate, {kind} model: {flagged} of {windows} windows of {labels} labels "
              f"({flagged / windows:.1%}, 95% upper bound {upper:.1%})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[2, 3, 4])
    parser.add_argument("--train", type=int, default=4000)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--windows", type=int, default=6)
    parser.add_argument("--flag-windows", type=int, default=300)
    parser.add_argument("--labels", type=int, default=1000)
    args = parser.parse_args()
    for seed in args.seeds:
        print(simulator(seed, args.train, args.window, args.windows), flush=True)
    if args.flag_windows:
        flag_rate(args.flag_windows, args.labels)


if __name__ == "__main__":
    main()
