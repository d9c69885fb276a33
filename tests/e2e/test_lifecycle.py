"""The governed lifecycle on the real broker: scorers, one learner, versions, gates, people.

- Two scorers and one learner make one version sequence; every scored record names a
  version the learner published; a promotion reaches both scorers.
- The learner is killed (SIGKILL) mid-stream and restarted: it resumes from its snapshot,
  learns every example exactly once, and ``streambed model rebuild --verify`` rebuilds the
  latest version bit for bit.
- A disparity injected by the simulator makes a candidate fail the parity gate: it is held,
  and the audit record names the failing gate.
- In manual mode: a promotion that fails the gates is refused, an override is recorded as
  such, and a rollback puts the previous champion back; a restarted scorer scores with the
  champion, not a blank model.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.config import load_config
from streams.devtools.simulate import SimulationOptions, Simulator
from streams.topics import ensure_topics, read_all
from tests.support import REPO, free_port, json_values, produce_to, read_topic, wait_until

pytestmark = pytest.mark.kafka


def _configure(path: Path, **promotion: Any) -> Path:
    raw = yaml.safe_load(path.read_text())
    raw["model"]["promotion"] = {"examples_per_version": 150, "evaluation_window": 300,
                                 "min_group_examples": 15, "min_label_examples": 15,
                                 **promotion}
    path.write_text(yaml.safe_dump(raw))
    return path


def _records(config: Any, count: int, seed: int, **opts: Any) -> list[tuple[str, str, bytes]]:
    sim = SimulationOptions(count=count, seed=seed, entities=300, label_delay_ms=60_000,
                            mean_gap_ms=5_000, **opts)
    topics = {"event": config.topics.events, "label": config.topics.labels}
    return [(topics[r.kind], r.key, r.value) for r in Simulator(config, sim).records()]


def _model(config_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams.cli", "model", *args,
                           "--config", str(config_path)], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


def _audit(config: Any) -> list[dict[str, Any]]:
    return [json.loads(v) for _, _, v, _ in read_all(config, config.topics.model_audit)]


def _versions(config: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for _, _, v, _ in read_all(config, config.topics.model_versions):
        record = json.loads(v)
        out[record["version"]] = record
    return out


def test_two_scorers_one_learner_one_version_sequence_and_exactly_once_learning(
    kafka_bootstrap: str, topic_config: Path, worker_factory
) -> None:
    path = _configure(topic_config)
    config = load_config(path)
    ensure_topics(config)
    one = worker_factory(path, free_port())
    two = worker_factory(path, free_port())
    learner = worker_factory(path, free_port(), role="learner")
    # Half-way, the simulator makes group B look riskier than its outcomes say.
    records = _records(config, 1800, seed=31, disparity_at=0.5)
    first, second = records[: len(records) // 2], records[len(records) // 2:]
    produce_to(kafka_bootstrap, first)
    wait_until(lambda: learner.metric("streambed_learner_examples_total", outcome="learned")
               >= 300, 120, "the learner to learn from the first half")

    learner.kill()  # mid-stream: the rest arrives while it is down
    produce_to(kafka_bootstrap, second)
    learner = worker_factory(path, free_port(), role="learner")
    labels = sum(1 for topic, _, _ in records if topic == config.topics.labels)
    examples = read_topic(kafka_bootstrap, config.topics.training, labels, 180)
    distinct = {json.loads(r.value)["event_id"] for r in examples}
    assert len(distinct) == labels, "every label joined once (or repeated, never lost)"
    wait_until(lambda: learner.metric("streambed_learner_next_offset") >= len(examples), 120,
               "the restarted learner to reach the end of the training log")

    versions = _versions(config)
    assert len(versions) >= 1 + len(distinct) // 150, sorted(versions)
    lineages = {v["lineage"] for v in versions.values()}
    assert len(lineages) == 1, "one version sequence"
    sequences = sorted(v["sequence"] for v in versions.values())
    assert sequences == list(range(len(sequences))), "no version cut twice or skipped"
    audits = _audit(config)
    ids = [a["audit_id"] for a in audits]
    learned_total = max(v["examples_learned"] for v in versions.values())
    assert learned_total == len(distinct) // 150 * 150, "every example learned exactly once"
    assert {a["decision"] for a in audits} >= {"bootstrap", "hold"}
    held_on_parity = [a for a in audits if a["decision"] == "hold" and any(
        g["gate"] == "demographic_parity_ratio" and g["attribute"] == "group"
        and g["outcome"] == "fail" for g in a["gates"])]
    assert held_on_parity, "a candidate that learned the disparity is held, the gate named"
    assert "demographic_parity_ratio[group]" in held_on_parity[-1]["reason"]
    assert len(set(ids)) >= len(versions) - 1

    latest = max(versions.values(), key=lambda v: v["sequence"])["version"]
    rebuilt = _model(path, "rebuild", latest, "--verify")
    assert rebuilt.returncode == 0 and "rebuilt identically" in rebuilt.stdout, \
        rebuilt.stdout + rebuilt.stderr

    scored = json_values(read_topic(kafka_bootstrap, config.topics.scored,
                                    sum(1 for t, _, _ in records if t == config.topics.events)))
    assert {s["model_version"] for s in scored} <= set(versions), "only published versions"
    promoted = _model(path, "promote", latest, "--by", "Ada Lovelace", "--reason",
                      "reviewed the held gates", "--override")
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    champion = _versions(config)[latest]
    assert champion["status"] == "champion"
    for scorer in (one, two):
        wait_until(lambda s=scorer: s.metric("streambed_model_info",
                                             model_version=champion["version"],
                                             feature_set=config.features.identity) == 1.0,
                   60, "the champion to reach every scorer")
    listing = _model(path, "list")
    assert listing.returncode == 0 and champion["version"] in listing.stdout


def test_a_disparity_holds_the_candidate_and_people_promote_override_and_roll_back(
    kafka_bootstrap: str, topic_config: Path, worker_factory
) -> None:
    path = _configure(topic_config, mode="manual")
    config = load_config(path)
    ensure_topics(config)
    scorer = worker_factory(path, free_port())
    learner = worker_factory(path, free_port(), role="learner")
    produce_to(kafka_bootstrap, _records(config, 700, seed=41))
    wait_until(lambda: len([v for v in _versions(config).values() if v["sequence"] >= 1]) >= 2,
               120, "two candidate versions")
    candidates = sorted((v for v in _versions(config).values() if v["sequence"] >= 1),
                        key=lambda v: v["sequence"])
    assert all(v["status"] == "candidate" for v in candidates), "manual: awaiting a person"
    fair = candidates[-1]["version"]

    ok = _model(path, "promote", fair, "--by", "Ada Lovelace", "--reason", "reviewed")
    if ok.returncode != 0:  # the gates did not pass: refused, then overridden on the record
        assert "refused" in ok.stdout + ok.stderr, ok.stdout + ok.stderr
        ok = _model(path, "promote", fair, "--by", "Ada Lovelace", "--reason", "reviewed",
                    "--override")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    wait_until(lambda: scorer.metric("streambed_model_info", model_version=fair,
                                     feature_set=config.features.identity) == 1.0,
               60, "the promoted version to serve")

    # Group B now looks riskier than it is: the next candidates learn to select it less.
    produce_to(kafka_bootstrap, _records(config, 1500, seed=43, disparity_at=0.0))
    wait_until(lambda: any(
        g["gate"] == "demographic_parity_ratio" and g["outcome"] == "fail"
        for v in _versions(config).values() if v["sequence"] > candidates[-1]["sequence"]
        for g in (v.get("evaluation") or {}).get("gates", [])), 180,
        "a candidate that fails the parity gate")
    unfair = next(v for v in sorted(_versions(config).values(), key=lambda v: v["sequence"])
                  if any(g["gate"] == "demographic_parity_ratio" and g["outcome"] == "fail"
                         for g in (v.get("evaluation") or {}).get("gates", [])))
    refused = _model(path, "promote", unfair["version"], "--by", "Ada Lovelace",
                     "--reason", "looks better on AUC")
    assert refused.returncode == 1 and "demographic_parity_ratio" in refused.stdout + \
        refused.stderr, refused.stdout + refused.stderr
    audit = _audit(config)
    refusal = [a for a in audit if a["decision"] == "refuse" and a["version"] == unfair["version"]]
    assert refusal and any(g["gate"] == "demographic_parity_ratio" and g["outcome"] == "fail"
                           for g in refusal[-1]["gates"])
    assert refusal[-1]["by"] == "Ada Lovelace"

    forced = _model(path, "promote", unfair["version"], "--by", "Grace Hopper", "--reason",
                    "incident 42: accepted risk", "--override")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert any(a["override"] and a["version"] == unfair["version"] for a in _audit(config))
    back = _model(path, "rollback", "--by", "Grace Hopper", "--reason", "parity incident")
    assert back.returncode == 0, back.stdout + back.stderr
    wait_until(lambda: scorer.metric("streambed_model_info", model_version=fair,
                                     feature_set=config.features.identity) == 1.0,
               60, "the rolled-back champion to serve again")

    scorer.kill()
    restarted = worker_factory(path, free_port())
    wait_until(lambda: restarted.metric("streambed_model_info", model_version=fair,
                                        feature_set=config.features.identity) == 1.0,
               60, "a restarted scorer to load the champion, not a blank model")
    decisions = [a["decision"] for a in _audit(config)]
    assert {"bootstrap", "promote", "refuse", "rollback"} <= set(decisions)
    assert learner.metric("streambed_model_decisions_total", decision="rollback") == 1
