"""Drift pauses automatic promotion, on the real broker: the learner process reads a
training log whose examples drift, records the pause with its statistics, and
``streambed model resume --by NAME --reason TEXT`` lifts it, recorded with the person's
name and request id; ``model rebuild --verify`` replays the pause and the resume.

The training log is made in-process by the learner's own core and a scorer stand-in
(tests/governance/training_streams.py) under the test's config, so the test knows before
the learner runs that it pauses (tests/governance/test_drift_pause.py holds the same
stream): one produce, one learner, three ``streambed model`` command lines, run in this
process (tests/support.py's ``streambed``; about 30 s on an idle machine; 92 s at load
average 13 to 16).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from governance import AuditRecord, Decision, LearnerCore
from governance.records import dumps
from streams.config import load_config
from streams.topics import ensure_topics
from tests.governance.training_streams import Scorer, stream
from tests.support import audit_records, free_port, model_command, produce_to, wait_until

pytestmark = pytest.mark.kafka

#: As tests/governance/test_drift_pause.py: looks at 300 .. 2400, windows of 300.
PROMOTION = {"examples_per_version": 300, "first_look_examples": 300,
             "max_examples_per_judgement": 2400}
DRIFT = {"watch_examples": 300, "min_window_events": 50,  # every feature watched
         "reference": {"examples": 600, "min_examples": 300}}
EXAMPLES, SHIFT = 5600, (5000, 10_000, 3.0)


def _configure(path: Path) -> Path:
    raw = yaml.safe_load(path.read_text())
    raw["model"]["promotion"] = PROMOTION
    raw["monitors"]["sensitive_attributes"] = {"group": ["A", "B", "C"]}
    raw["monitors"]["drift"] = DRIFT
    path.write_text(yaml.safe_dump(raw))
    return path


def _training_log(config: Any) -> tuple[list[bytes], list[AuditRecord]]:
    """The examples a scorer following this config's learner would write, and the
    decisions the learner makes on them (its core, in-process)."""
    core = LearnerCore(spec=config.model.spec, promotion=config.model.promotion,
                       feature_set=config.features.identity,
                       sensitive_attributes=config.monitors.sensitive_attributes,
                       drift=config.monitors.drift, training_topic=config.topics.training)
    scorer = Scorer(core)
    decided = core.start(now_ms=0)
    scorer.follow(decided)
    values = []
    for i, (features, label, groups) in enumerate(stream(EXAMPLES, seed=4, shift=SHIFT)):
        example = scorer.example(i, features, label, groups).model_copy(
            update={"feature_set": config.features.identity})
        values.append(dumps(example))
        out = core.learn(i, example, now_ms=i)
        scorer.follow(out)
        decided += out
    return values, [a for a in decided if isinstance(a, AuditRecord)]




def test_the_learner_pauses_on_drift_and_a_named_person_resumes_it_on_record(
    kafka_bootstrap: str, topic_config: Path, worker_factory
) -> None:
    path = _configure(topic_config)
    config = load_config(path)
    ensure_topics(config)
    values, expected = _training_log(config)
    pauses = [a for a in expected if a.decision is Decision.PAUSE]
    assert pauses, "the stream drifts: the core pauses on it"
    learner = worker_factory(path, free_port(), role="learner")
    # Started on an empty log, as the in-process core was (a lineage that begins on a
    # long log cuts nothing before it has caught up with it).
    wait_until(lambda: learner.metric("streambed_learner_active") == 1.0, 60,
               "the learner to take the training partition")
    produce_to(kafka_bootstrap, [(config.topics.training, f"u{i % 97}", v)
                                 for i, v in enumerate(values)])
    wait_until(lambda: learner.metric("streambed_learner_next_offset") >= EXAMPLES, 120,
               "the learner to read the training log")
    wait_until(lambda: learner.metric("streambed_model_promotion_paused") == 1.0, 30,
               "the pause on the learner's /metrics")
    audit = audit_records(config)
    pause = next(a for a in audit if a["decision"] == "pause")
    assert pause["by"] == "policy" and "feature x3 drifted" in pause["reason"]
    assert pause["drift"]["window_examples"] == 300
    assert pause["drift"]["family_false_alarm_rate"] == 0.01
    assert any(f["statistic"] == "feature x3" and f["value"] > f["threshold"]
               for f in pause["drift"]["flags"])

    resumed = model_command(path, "resume", "--by", "Ada Lovelace", "--reason",
                     "the x3 shift is a known upstream change")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resume" in resumed.stdout and "Ada Lovelace" in resumed.stdout
    assert "feature x3" in resumed.stdout, "the statistics that had paused it"
    record = [a for a in audit_records(config) if a["decision"] == "resume"][-1]
    assert record["by"] == "Ada Lovelace" and record["request_id"]
    assert record["reason"].startswith("the x3 shift is a known upstream change")
    wait_until(lambda: learner.metric("streambed_model_promotion_paused") == 0.0, 30,
               "the resume on the learner's /metrics")

    champion = pause["champion"]
    rebuilt = model_command(path, "rebuild", champion, "--verify")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "every one identical to model.audit" in rebuilt.stdout, rebuilt.stdout
    listed = model_command(path, "audit")
    assert listed.returncode == 0 and "pause by policy" in listed.stdout, listed.stdout
