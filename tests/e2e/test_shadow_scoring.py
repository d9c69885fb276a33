"""On the real broker: two scorers score a candidate in shadow, and every training example
carries its event-time score beside the champion's.

The candidate is a version record built with governance's own learner core and artifact
helpers, published on ``model.versions`` with status ``shadow`` by the test (as the
learner does when it cuts one). The two scorers share the consumer group, one partition
each; every example joined on ``training`` must carry the candidate's score, equal to the
bits the frozen candidate gives for the example's features, and the champion's score.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from governance import LogisticModel, TrainingExample
from governance.records import dumps
from streams.config import load_config
from streams.scorer.champion import Champion
from streams.topics import ensure_topics
from tests.e2e.test_slice import _stream
from tests.streams.test_shadows import cut
from tests.support import free_port, json_values, produce, read_topic, wait_until

pytestmark = pytest.mark.kafka


def test_two_scorers_shadow_score_a_candidate_into_every_training_example(
    kafka_bootstrap: str, topic_config: Path, worker_factory
) -> None:
    config = load_config(topic_config)
    ensure_topics(config)
    candidate = cut(3)
    assert candidate.feature_set == config.features.identity
    frozen = LogisticModel.from_artifact(candidate.artifact)
    champion = Champion.bootstrap(config.model.spec, config.features.identity)
    records = _stream(config, count=300, seed=21)
    valid = [r for r in records if r.kind == "event" and r.valid]
    labels = [r for r in records if r.kind == "label"]
    assert len(valid) > 200 and len(labels) > 100

    workers = [worker_factory(topic_config, free_port()) for _ in range(2)]
    produce(kafka_bootstrap, config.topics.model_versions,
            [(candidate.version, dumps(candidate))])
    wait_until(lambda: all(w.metric("streambed_shadow_versions") == 1 for w in workers), 60,
               "both scorers to load the candidate in shadow")
    wait_until(lambda: [w.metric("streambed_assigned_partitions") for w in workers] == [1, 1],
               60, "one partition each")

    produce(kafka_bootstrap, config.topics.events, [(r.key, r.value) for r in valid])
    scored = json_values(read_topic(kafka_bootstrap, config.topics.scored, len(valid)))
    assert len(scored) == len(valid)
    assert all("shadow_scores" not in s and s["model_version"] == champion.version
               for s in scored), "only the champion is served"
    produce(kafka_bootstrap, config.topics.labels, [(r.key, r.value) for r in labels])
    examples = [TrainingExample.model_validate(e) for e in json_values(
        read_topic(kafka_bootstrap, config.topics.training, len(labels)))]

    assert sorted(e.event_id for e in examples) == sorted(
        json_values([r])[0]["event_id"] for r in labels)
    for ex in examples:
        assert ex.model_version == champion.version and ex.score == 0.5
        assert ex.shadow_scores == {candidate.version: frozen.score(ex.features)[0]}, \
            ex.event_id
    assert len({ex.shadow_scores[candidate.version] for ex in examples}) > 10, \
        "a trained candidate, not a constant"
    made = [w.metric("streambed_shadow_scores_total") for w in workers]
    assert all(n > 0 for n in made) and sum(made) == len(valid), made
