"""Operating characteristics of the promotion gates: how often they decide wrongly.

``make gates-oc`` (a benchmark, not a timed test). Worlds with known truth, candidates
learned by River, judged through the pure core exactly as the learner judges them:

- A world is the simulator's (streams/devtools/simulate.py): three numeric attributes whose
  z-scores carry the true weights ``+-TRUE_WEIGHT``, the outcome logistic in them; events
  every 30 s on average, each label an exponential delay (mean 1 h) later. Two groups, A
  (70%) and B (30%), alike by construction. Worlds: the simulator's base rate (about 43%)
  and 10% (the intercept moved).
- A lineage is a :class:`~governance.artifact.LogisticModel` (the learner's challenger,
  default :class:`~governance.config.ModelSpec`) learning the training log in label order,
  cut after ``TRAIN_EXAMPLES`` examples. Three lineages: ``clean`` (sees the attributes),
  ``noisy`` (sees them with measurement noise, tuned so its true AUC is about 0.03 lower),
  ``biased`` (sees them and the group, learned from a log where some of B's outcomes were
  recorded as adverse, tuned so its true parity ratio on the favourable outcome is 0.7).
- Candidates, each with its own champion and its own evidence: ``better`` (clean
  candidate, noisy champion), ``worse`` (the reverse), ``unfair`` (biased candidate, clean
  champion). The evidence is fresh events after the cut, scored by both frozen models at
  event time, in the order their labels arrive; the candidate is judged at each look of
  the policy (:func:`governance.gates.look_at`) until a verdict that is not ``hold``.
- Truth (true AUC, parity ratio, TPR/FPR gaps) is measured on a large held-out sample.

Each wrong-decision rate is printed with its exact 95% upper bound (Clopper-Pearson).
Usage: ``python bench/gates_oc.py [--candidates 200] [--jobs 2] [--seed 14]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing import Pool

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from governance.artifact import LogisticModel
from governance.config import ModelSpec, PromotionConfig
from governance.evidence import PairedEvidence
from governance.gates import judge
from governance.intervals import binomial_upper
from governance.quality import roc_auc
from governance.records import GateOutcome
from streams.devtools.simulate import TRUE_INTERCEPT, TRUE_WEIGHT

FEATURES = ("f0", "f1", "f2")
WEIGHTS = np.array([TRUE_WEIGHT, -TRUE_WEIGHT, TRUE_WEIGHT])
SHARE_B = 0.3
MEAN_GAP_MS = 30_000
LABEL_DELAY_MS = 3_600_000
#: Examples each lineage learns before its cut (four of the quickstart's versions).
TRAIN_EXAMPLES = 2000
HOLDOUT = 100_000
AUC_GAP = 0.03
UNFAIR_RATIO = 0.7
#: SGD with a constant step leaves the biased lineage's group weight noisy: a candidate
#: counts as unfair at 0.7 when its true ratio is within this of it (redrawn otherwise).
UNFAIR_TOLERANCE = 0.05
UNFAIR_TRIES = 50
IMPACT_GATES = ("demographic_parity_ratio", "equalized_odds_difference")


@dataclass(frozen=True)
class World:
    name: str
    intercept: float            # truth = sigmoid(w . z - intercept)
    noise: float = 0.0          # the noisy lineage's measurement noise (sd)
    bias: float = 0.0           # the biased lineage: share of B's 0 outcomes logged as 1
    #: The labels within which at least 80% of fair, non-inferior candidates must be
    #: promoted (5,000 at the quickstart's rates, the issue's target).
    stated_labels: int = 5000

    def draw(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """n events in event-time order, with their outcomes and label arrival times."""
        z = rng.normal(size=(n, len(FEATURES)))
        truth = 1 / (1 + np.exp(-(z @ WEIGHTS - self.intercept)))
        event_ts = np.cumsum(rng.exponential(MEAN_GAP_MS, n))
        return {"z": z, "b": rng.random(n) < SHARE_B, "y": (rng.random(n) < truth),
                "event_ts": event_ts,
                "label_ts": event_ts + rng.exponential(LABEL_DELAY_MS, n) + 1}

    def inputs(self, lineage: str, events: dict[str, np.ndarray],
               rng: np.random.Generator) -> np.ndarray:
        """What a lineage's model sees of each event (columns in sorted name order)."""
        z = events["z"]
        if lineage == "noisy":
            return z + rng.normal(scale=self.noise, size=z.shape)
        if lineage == "biased":
            return np.column_stack([z, events["b"].astype(np.float64)])
        return z


def names(lineage: str) -> list[str]:
    return [*FEATURES, "is_b"] if lineage == "biased" else list(FEATURES)


def learn(world: World, lineage: str, rng: np.random.Generator) -> LogisticModel:
    """A lineage learned by River on a fresh training log (label order), cut at the end."""
    events = world.draw(rng, TRAIN_EXAMPLES)
    x = world.inputs(lineage, events, rng)
    y = events["y"].copy()
    if lineage == "biased":
        y |= events["b"] & (rng.random(len(y)) < world.bias)
    model = LogisticModel(ModelSpec())
    cols = names(lineage)
    for i in np.argsort(events["label_ts"], kind="stable"):
        model.learn_x(dict(zip(cols, x[i].tolist(), strict=True)), int(y[i]))
    return model


def scores(model: LogisticModel, x: np.ndarray, cols: Sequence[str]) -> np.ndarray:
    """The frozen model's probabilities for many inputs, as River computes them one by one
    (StandardScaler then the logistic; checked against River in :func:`check_scores`)."""
    art = model.to_artifact()
    scaler, w = art["scaler"], art["weights"]
    raw = np.full(len(x), art["intercept"])
    for k, name in enumerate(cols):
        var = scaler["variances"].get(name, 0.0)
        if var and name in w:
            raw = raw + w[name] * ((x[:, k] - scaler["means"][name]) / var ** 0.5)
    p = 1 / (1 + np.exp(-np.clip(raw, -30, 30)))
    return np.where(raw < -30, 0.0, np.where(raw > 30, 1.0, p))


def check_scores(model: LogisticModel, x: np.ndarray, cols: Sequence[str]) -> None:
    fast = scores(model, x[:50], cols)
    slow = [model.predict_x(dict(zip(cols, r.tolist(), strict=True))) for r in x[:50]]
    worst = float(np.max(np.abs(fast - np.array(slow))))
    if worst > 1e-9:
        raise AssertionError(f"vectorised scores differ from River's by {worst}")


# ------------------------------------------------------------------------ truth

def truth(world: World, lineage: str, model: LogisticModel, holdout: dict[str, np.ndarray],
          rng: np.random.Generator) -> dict[str, float]:
    s = scores(model, world.inputs(lineage, holdout, rng), names(lineage))
    fav = s < ModelSpec().threshold
    y, b = holdout["y"], holdout["b"]
    rate = [fav[g].mean() for g in (~b, b)]
    tpr = [fav[g & y].mean() for g in (~b, b)]
    fpr = [fav[g & ~y].mean() for g in (~b, b)]
    return {"auc": float(roc_auc(s, y.astype(np.int8))),
            "parity": float(min(rate) / max(rate)) if max(rate) > 0 else float("nan"),
            "eod": float(max(abs(tpr[0] - tpr[1]), abs(fpr[0] - fpr[1])))}


# ------------------------------------------------------------------------ one candidate

KINDS = {"better": ("clean", "noisy"), "worse": ("noisy", "clean"),
         "unfair": ("biased", "clean")}


def run_candidate(task: tuple[World, str, int, int, PromotionConfig]) -> dict[str, object]:
    """Learn a champion and a candidate, collect evidence, judge at every look."""
    world, kind, index, seed, policy = task
    rng = np.random.default_rng([seed, index, list(KINDS).index(kind)])
    cand_lineage, champ_lineage = KINDS[kind]
    holdout = world.draw(rng, HOLDOUT)
    for _ in range(UNFAIR_TRIES):
        candidate = learn(world, cand_lineage, rng)
        t_cand = truth(world, cand_lineage, candidate, holdout, rng)
        if kind != "unfair" or abs(t_cand["parity"] - UNFAIR_RATIO) <= UNFAIR_TOLERANCE:
            break
    else:
        raise RuntimeError(f"no biased candidate near parity {UNFAIR_RATIO} in "
                           f"{UNFAIR_TRIES} tries: recalibrate")
    champion = learn(world, champ_lineage, rng)
    t_champ = truth(world, champ_lineage, champion, holdout, rng)
    sizes = policy.look_sizes()
    events = world.draw(rng, sizes[-1])
    x_cand = world.inputs(cand_lineage, events, rng)
    x_champ = world.inputs(champ_lineage, events, rng)
    if index == 0:
        check_scores(candidate, x_cand, names(cand_lineage))
    order = np.argsort(events["label_ts"], kind="stable")      # the training log's order
    s_cand = scores(candidate, x_cand, names(cand_lineage))[order]
    s_champ = scores(champion, x_champ, names(champ_lineage))[order]
    labels = events["y"][order].astype(np.int8)
    groups = np.where(events["b"][order], "B", "A").astype(object)
    verdict, look_n, impact_harm, inconclusive = "hold", None, False, False
    for look, n in enumerate(sizes, start=1):
        ev = PairedEvidence(labels=labels[:n], champion_scores=s_champ[:n],
                            candidate_scores=s_cand[:n], groups={"group": groups[:n]},
                            champion_threshold=0.5, candidate_threshold=0.5,
                            favourable="below_threshold", seed=seed)
        j = judge(ev, policy, look=look)
        if j.outcome is GateOutcome.HOLD:
            continue
        verdict, look_n = j.outcome.value, n
        failed = [g for g in j.gates if g.outcome is GateOutcome.FAIL]
        impact_harm = any(g.gate in IMPACT_GATES and "inconclusive" not in g.detail
                          for g in failed)
        inconclusive = bool(failed) and all("inconclusive" in g.detail for g in failed)
        break
    return {"world": world.name, "kind": kind, "verdict": verdict, "labels": look_n,
            "impact_harm": impact_harm, "inconclusive": inconclusive,
            "auc_gap": t_cand["auc"] - t_champ["auc"], "parity": t_cand["parity"],
            "eod": t_cand["eod"]}


# ------------------------------------------------------------------------ calibration

def calibrate(world: World, seed: int) -> World:
    """Tune the noisy lineage to AUC_GAP below clean, the biased one to UNFAIR_RATIO
    (by bisection on River-learned models, five per step)."""
    rng = np.random.default_rng([seed, 999])
    holdout = world.draw(rng, HOLDOUT)

    def mean_truth(w: World, lineage: str, key: str) -> float:
        return float(np.mean([truth(w, lineage, learn(w, lineage, rng), holdout, rng)[key]
                              for _ in range(5)]))

    # The noisy lineage: from the best linear scores with and without the noise (what
    # each lineage tends to as it learns), without River, so the bisection is not noisy.
    y = holdout["y"].astype(np.int8)
    best = holdout["z"] @ WEIGHTS
    clean_auc = roc_auc(best, y)
    eps = rng.normal(size=holdout["z"].shape) @ WEIGHTS
    lo, hi = 0.0, 3.0
    for _ in range(30):
        mid = (lo + hi) / 2
        gap = clean_auc - roc_auc(best + mid * eps, y)
        lo, hi = (mid, hi) if gap < AUC_GAP else (lo, mid)
    noise = (lo + hi) / 2
    lo, hi = 0.0, 1.0
    for _ in range(10):
        mid = (lo + hi) / 2
        ratio = mean_truth(World(world.name, world.intercept, bias=mid), "biased", "parity")
        lo, hi = (mid, hi) if ratio > UNFAIR_RATIO else (lo, mid)
    return World(world.name, world.intercept, noise=noise, bias=(lo + hi) / 2,
                 stated_labels=world.stated_labels)


def intercept_for(base_rate: float) -> float:
    """The intercept that gives the world this share of positive outcomes."""
    z = np.random.default_rng(0).normal(size=(400_000, len(FEATURES))) @ WEIGHTS
    lo, hi = -10.0, 10.0
    for _ in range(50):
        mid = (lo + hi) / 2
        rate = float(np.mean(1 / (1 + np.exp(-(z - mid)))))
        lo, hi = (mid, hi) if rate > base_rate else (lo, mid)
    return (lo + hi) / 2


# ------------------------------------------------------------------------ report

def rate_row(label: str, wrong: int, total: int) -> str:
    upper = binomial_upper(wrong, total, 0.05) if total else float("nan")
    flag = "ok" if upper <= 0.05 else "ABOVE 5%"
    return (f"  {label:<58} {wrong:>4}/{total:<4} = {wrong / max(total, 1):6.2%}   "
            f"95% upper {upper:6.2%}  {flag}")


def report(world: World, results: list[dict[str, object]], policy: PromotionConfig
           ) -> list[str]:
    by = {k: [r for r in results if r["kind"] == k] for k in KINDS}
    fair = by["better"] + by["worse"]
    lines = [f"world {world.name}: base rate {world_base_rate(world):.1%}, groups A 70% / "
             f"B 30%, noisy lineage sd {world.noise:.3f}, biased lineage {world.bias:.3f}"]
    for k, rs in by.items():
        gaps = np.array([r["auc_gap"] for r in rs])
        ratios = np.array([r["parity"] for r in rs])
        lines.append(f"  truth, {k:<7}: AUC gap {gaps.mean():+.4f} "
                     f"[{np.quantile(gaps, .05):+.4f}, {np.quantile(gaps, .95):+.4f}], "
                     f"parity ratio {ratios.mean():.3f} [{np.quantile(ratios, .05):.3f}, "
                     f"{np.quantile(ratios, .95):.3f}] (mean [5%, 95%])")
    lines.append(rate_row("fair candidates failing an impact gate (harm shown)",
                          sum(bool(r["impact_harm"]) for r in fair), len(fair)))
    lines.append(rate_row(f"unfair candidates (parity {UNFAIR_RATIO}) promoted",
                          sum(r["verdict"] == "pass" for r in by["unfair"]),
                          len(by["unfair"])))
    lines.append(rate_row(f"candidates worse by {AUC_GAP} AUC promoted",
                          sum(r["verdict"] == "pass" for r in by["worse"]), len(by["worse"])))
    unfair_upper = binomial_upper(sum(r["verdict"] == "pass" for r in by["unfair"]),
                                  len(by["unfair"]), 0.05)
    lines.append(f"  unfair candidates promoted in any of 10 successive cuts: at most "
                 f"{1 - (1 - unfair_upper) ** 10:.1%} (from the per-cut upper bound; "
                 f"docs/governance.md derives a far smaller analytic bound)")
    better = by["better"]
    promoted_at = sorted(int(r["labels"]) for r in better if r["verdict"] == "pass")
    median = (promoted_at[len(better) // 2] if len(promoted_at) > len(better) // 2
              else None)
    lines.append(f"  candidates better by {AUC_GAP} AUC: median labels to promotion "
                 f"{median if median is not None else 'never (fewer than half promoted)'}")
    for n in policy.look_sizes():
        share = sum(1 for m in promoted_at if m <= n) / len(better)
        lines.append(f"    promoted within {n:>6} labels: {share:6.1%}")
    share = sum(1 for m in promoted_at if m <= world.stated_labels) / len(better)
    lines.append(f"  fair non-inferior candidates promoted within {world.stated_labels} labels: "
                 f"{share:.1%} ({'ok' if share >= 0.8 else 'BELOW'} the 80% required)")
    inconclusive = sum(bool(r["inconclusive"]) for r in better)
    lines.append(f"    inconclusive at the final look: {inconclusive}/{len(better)}")
    return lines


def world_base_rate(world: World) -> float:
    z = np.random.default_rng(1).normal(size=(200_000, len(FEATURES))) @ WEIGHTS
    return float(np.mean(1 / (1 + np.exp(-(z - world.intercept)))))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", type=int, default=200, help="per kind and world")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--worlds", default="simulator,10%")
    args = ap.parse_args(argv)
    policy = PromotionConfig()
    start = time.perf_counter()
    print(f"gates-oc: {args.candidates} candidates per kind and world, seed {args.seed}, "
          f"default policy (looks at {policy.look_sizes()}, false promotion "
          f"{policy.false_promotion_rate}, false failure {policy.false_failure_rate}); "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    worlds = []
    for name in args.worlds.split(","):
        base, stated = {"simulator": (None, 5000), "10%": (0.10, 16000)}[name]
        intercept = TRUE_INTERCEPT if base is None else intercept_for(base)
        worlds.append(calibrate(World(name, intercept, stated_labels=stated), args.seed))
    tasks = [(w, k, i, args.seed, policy) for w in worlds for k in KINDS
             for i in range(args.candidates)]
    with Pool(args.jobs) as pool:
        results = pool.map(run_candidate, tasks, chunksize=4)
    for w in worlds:
        print("\n".join(report(w, [r for r in results if r["world"] == w.name], policy)))
    print(f"took {time.perf_counter() - start:.0f} s; load average "
          f"{os.getloadavg()[0]:.2f} (a shared, loaded machine)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
