"""LearnerCore throughput: µs per training example, cuts and gate evaluations included.

Simulates N training examples with the quickstart's 11 features and sensitive attributes
(group, age_band), each scored by the current champion as the scorer would, and times only
``LearnerCore.learn`` over them with the default promotion config (a version every 500
examples, judged on the last 2000). Scoring, decoding and producing (the scorer's and the
shell's work) are not timed. Also reports the
snapshot's size and the time to take and restore it.

    .venv/bin/python bench/learner_bench.py [--count 20000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from governance import (  # noqa: E402
    LearnerCore,
    LogisticModel,
    ModelVersionRecord,
    PromotionConfig,
    TrainingExample,
)
from streams.config import load_config  # noqa: E402


def stream(count: int, names: list[str], attributes: dict[str, list[str]],
           seed: int = 7) -> list[tuple[dict[str, float | None], int, dict[str, str]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        features: dict[str, float | None] = {n: rng.gauss(0, 1) * (1 + j)
                                             for j, n in enumerate(names)}
        if rng.random() < 0.05:
            features[names[-1]] = None
        logit = 0.8 * (features[names[0]] or 0) - 0.5 * (features[names[1]] or 0)
        out.append((features, int(rng.random() < 1 / (1 + math.exp(-logit))),
                    {a: rng.choice(g) for a, g in attributes.items()}))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    args = parser.parse_args()

    config = load_config(REPO / "examples" / "quickstart.yaml")
    spec = config.model.spec
    promotion = PromotionConfig()
    feature_set = config.features.identity
    attributes = config.monitors.sensitive_attributes
    data = stream(args.count, config.features.names, attributes)

    core = LearnerCore(spec=spec, promotion=promotion, feature_set=feature_set,
                       sensitive_attributes=attributes)
    outputs = core.start(now_ms=0)
    serving = LogisticModel(spec)
    took = cut_s = 0.0
    for offset, (features, label, groups) in enumerate(data):
        # The scorer's part (not timed): score with the champion, as the scorer would.
        score, decision = serving.score(features)
        example = TrainingExample(
            event_id=f"e{offset}", entity_id=f"u{offset % 1000}", features=features,
            label=label, score=score, decision=decision, model_version=core.champion or "",
            feature_set=feature_set, groups=groups, event_ts=offset * 100,
            label_ts=offset * 100 + 50)
        began = time.perf_counter()
        out = core.learn(offset, example, now_ms=example.label_ts)
        spent = time.perf_counter() - began
        took += spent
        if out:
            cut_s += spent
        for record in out:
            if isinstance(record, ModelVersionRecord) and record.version == core.champion:
                serving = LogisticModel.from_artifact(record.artifact)
        outputs += out
    cuts = core.sequence

    began = time.perf_counter()
    text = json.dumps(core.snapshot(), allow_nan=False)
    snap_s = time.perf_counter() - began
    began = time.perf_counter()
    LearnerCore.restore(json.loads(text), spec=spec, promotion=promotion,
                        feature_set=feature_set, sensitive_attributes=attributes)
    restore_s = time.perf_counter() - began

    print(f"learner: {args.count} examples, {len(config.features.names)} features, "
          f"{cuts} versions cut and judged, {len(outputs)} records out")
    print(f"  {took / args.count * 1e6:.1f} µs/example "
          f"({args.count / took:,.0f} examples/s, {took:.2f} s)")
    plain = (took - cut_s) / (args.count - cuts) * 1e6
    print(f"  of which: {plain:.1f} µs per example without a cut, "
          f"{cut_s / max(cuts, 1) * 1e3:.1f} ms per cut (artifact, evaluation, gates)")
    snap = json.loads(text)
    print("  snapshot parts (KiB):", {k: len(json.dumps(v)) // 1024 for k, v in snap.items()
                                      if len(json.dumps(v)) > 1024})
    print(f"  snapshot: {len(text) / 1024:.0f} KiB JSON "
          f"({len(gzip.compress(text.encode())) / 1024:.0f} KiB gzipped), "
          f"take {snap_s * 1e3:.0f} ms, "
          f"restore {restore_s * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
