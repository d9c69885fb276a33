"""The expiry index: entries taken oldest first (ties in the order pushed), as a sorted list
per partition would give them, and nothing per entry for the cyclic GC to walk."""

from __future__ import annotations

import gc
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.scorer.expiry import ExpiryIndex
from tests.support import max_examples

times = st.integers(min_value=0, max_value=50)
partitions = st.integers(min_value=0, max_value=2)
operations = st.lists(st.one_of(
    st.tuples(st.just("push"), partitions, times),
    st.tuples(st.just("extend"), partitions, st.lists(times, max_size=6)),
    st.tuples(st.just("due"), partitions, times),
    st.tuples(st.just("pop_oldest"), st.just(0), st.just(0)),
    st.tuples(st.just("oldest"), partitions, st.just(0)),
), max_size=60)


@settings(max_examples=max_examples(300), deadline=None)
@given(operations)
def test_entries_come_out_as_from_a_sorted_list(ops: list[tuple[str, int, Any]]) -> None:
    index = ExpiryIndex()
    model: dict[int, list[tuple[int, int, bytes]]] = {}  # partition -> (time, seq, key)
    seq = 0

    def add(partition: int, ts: int) -> bytes:
        nonlocal seq
        key = b"k%d" % seq
        model.setdefault(partition, []).append((ts, seq, key))
        model[partition].sort()
        seq += 1
        return key

    for op, partition, arg in ops:
        if op == "push":
            index.push(partition, arg, add(partition, arg))
        elif op == "extend":
            index.extend(partition, [(ts, add(partition, ts)) for ts in arg])
        elif op == "due":
            entries = model.get(partition, [])
            want = [(ts, key) for ts, _, key in entries if ts < arg]
            model[partition] = [e for e in entries if e[0] >= arg]
            assert list(index.due(partition, up_to_ms=arg)) == want
        elif op == "oldest":
            entries = model.get(partition)
            assert index.oldest(partition) == ((entries[0][0], entries[0][2]) if entries
                                               else None)
        else:
            firsts = [(entries[0][0], p) for p, entries in model.items() if entries]
            if not firsts:
                assert index.pop_oldest() is None
                continue
            _, p = min(firsts)
            ts, _, key = model[p].pop(0)
            assert index.pop_oldest() == (p, ts, key)
        assert len(index) == sum(len(entries) for entries in model.values())


def references_walked(root: object) -> int:
    """The references a full collection follows from the tracked objects reachable from
    ``root`` (untracked containers hold nothing it visits)."""
    seen: set[int] = set()
    todo, followed = [root], 0
    while todo:
        o = todo.pop()
        if id(o) in seen or not gc.is_tracked(o):
            continue
        seen.add(id(o))
        referents = [r for r in gc.get_referents(o) if not isinstance(r, type)]
        followed += len(referents)
        todo.extend(referents)
    return followed


def test_a_collection_follows_as_many_references_for_a_hundred_thousand_entries() -> None:
    small, large = ExpiryIndex(), ExpiryIndex()
    for index, n in ((small, 10), (large, 100_000)):
        for i in range(n):
            index.push(i % 4, 1_000_000 + i, b"e-%d" % i)
        index.push(0, 5, b"late")  # one out of time order (an insertion, not an append)
        list(index.due(1, up_to_ms=1_000_000 + n // 2))  # some taken from the front
    gc.collect()  # what a collection would untrack, untracked
    assert len(large) > 80_000
    assert references_walked(large) == references_walked(small)
