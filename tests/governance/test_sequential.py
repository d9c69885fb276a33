"""The look schedule and the error each look may spend."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from governance.config import PromotionConfig
from governance.sequential import look_number, per_look_level, schedule


@given(st.integers(10, 5000), st.floats(1.1, 4.0), st.integers(10, 100_000))
def test_the_schedule_rises_to_the_maximum_and_each_size_is_one_look(
        first: int, growth: float, maximum: int) -> None:
    sizes = schedule(first=first, growth=growth, maximum=maximum)
    assert sizes[-1] == maximum
    assert sizes == sorted(set(sizes))
    assert sizes[0] == min(first, maximum)
    for k, n in enumerate(sizes, start=1):
        assert look_number(n, sizes) == k
        assert look_number(n + 1, sizes) is None or n + 1 in sizes


@given(st.floats(0.001, 0.2), st.integers(1, 50))
def test_the_looks_together_spend_the_budget(budget: float, looks: int) -> None:
    assert per_look_level(budget, looks=looks) * looks == pytest.approx(budget)


def test_the_default_policy_looks_five_times_from_1000_to_16000() -> None:
    assert PromotionConfig().look_sizes() == [1000, 2000, 4000, 8000, 16000]
    assert PromotionConfig(max_examples_per_judgement=500).look_sizes() == [500]


def test_a_schedule_that_cannot_grow_is_refused() -> None:
    with pytest.raises(ValueError, match="growth > 1"):
        schedule(first=100, growth=1.0, maximum=1000)
