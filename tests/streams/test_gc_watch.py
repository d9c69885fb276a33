"""The worker's own GC pauses: real collections are timed and reach its registry."""

from __future__ import annotations

import gc

from prometheus_client import CollectorRegistry, generate_latest

from streams.scorer.gc_watch import GcPauseCollector, GcPauses


def test_a_full_collection_is_counted_timed_and_exported() -> None:
    pauses = GcPauses()
    registry = CollectorRegistry()
    registry.register(GcPauseCollector(pauses))
    gc.callbacks.append(pauses.callback)
    try:
        gc.collect()
    finally:
        gc.callbacks.remove(pauses.callback)
    assert pauses.count[2] == 1
    assert 0.0 < pauses.longest[2] == pauses.total[2]
    assert pauses.longest_cpu[2] <= pauses.longest[2] + 1e-3  # one thread: CPU <= wall
    text = generate_latest(registry).decode()
    assert 'streambed_gc_pauses_total{generation="2"} 1.0' in text
    assert f'streambed_gc_pause_max_seconds{{generation="2"}} {pauses.longest[2]!r}' in text


def test_serving_keeps_start_ups_longest_apart() -> None:
    pauses = GcPauses()
    gc.callbacks.append(pauses.callback)
    try:
        gc.collect()
        first = pauses.longest[2]
        pauses.serving()
        assert pauses.longest[2] == 0.0 and pauses.startup_longest[2] == first
        gc.collect()
    finally:
        gc.callbacks.remove(pauses.callback)
    assert pauses.count[2] == 2 and pauses.longest[2] > 0.0
    assert pauses.startup_longest[2] == first


def test_a_full_collection_counts_the_objects_it_walks_and_not_the_frozen() -> None:
    pauses = GcPauses()
    registry = CollectorRegistry()
    registry.register(GcPauseCollector(pauses))
    gc.collect()
    gc.freeze()
    gc.callbacks.append(pauses.callback)
    try:
        kept = [[i] for i in range(10_000)]  # 10,001 tracked objects made after the freeze
        gc.collect()
        walked = pauses.walked_max
        text = generate_latest(registry).decode()
        pauses.serving()
        gc.freeze()  # kept joins the permanent generation: no longer walked
        gc.collect()
    finally:
        gc.callbacks.remove(pauses.callback)
        gc.unfreeze()
    assert len(kept) == 10_000 and walked >= 10_001
    assert f'streambed_gc_walked_objects_max{{generation="2"}} {float(walked)!r}' in text
    assert pauses.walked_max < walked - 10_000
