"""When a candidate is looked at, and the error each look may spend.

A candidate in shadow collects paired examples one by one; the gates look at it only at a
fixed, geometric schedule of sample sizes, decided before any data is seen::

    n_k = ceil(first_look_examples * look_growth ** (k - 1)),  k = 1, 2, ...

while ``n_k`` is below ``max_examples_per_judgement``; the last look (``final``) is at
``max_examples_per_judgement`` itself. A geometric schedule covers a wide range of sample
sizes with few looks (1,000 to 16,000 in five with the defaults), and few looks cost little
error.

The error budget is split evenly over the looks (Bonferroni over looks, the linear alpha
spending function ``alpha * k / K`` of Lan and DeMets, 1983, with equally weighted looks):
whatever the correlation between looks, the probability that a false statement is accepted
at *any* look is at most the sum of the per-look levels, which is the budget (union bound).
Exact Pocock or O'Brien-Fleming boundaries would be a little less conservative but need the
looks' joint normal law, which the impact statistics (min/max over groups, ratios) do not
have exactly; the union bound needs nothing.

>>> schedule(first=1000, growth=2.0, maximum=16000)
[1000, 2000, 4000, 8000, 16000]
>>> schedule(first=1000, growth=2.0, maximum=10000)
[1000, 2000, 4000, 8000, 10000]
>>> look_number(4000, [1000, 2000, 4000, 8000, 16000]), look_number(4001, [1000, 2000, 4000, 8000])
(3, None)
>>> round(per_look_level(0.05, looks=5), 4)
0.01
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def schedule(*, first: int, growth: float, maximum: int) -> list[int]:
    """The sample sizes at which the gates look, ascending, the last one ``maximum``."""
    if first < 1 or growth <= 1 or maximum < 1:
        raise ValueError("look schedule: first >= 1, growth > 1 and maximum >= 1 required")
    sizes: list[int] = []
    k = 0
    while True:
        n = math.ceil(first * growth ** k)
        if n >= maximum:
            break
        sizes.append(n)
        k += 1
    return [*sizes, maximum]


def look_number(examples: int, sizes: Sequence[int]) -> int | None:
    """The 1-based look due at exactly ``examples`` paired examples, else None."""
    for k, n in enumerate(sizes, start=1):
        if n == examples:
            return k
        if n > examples:
            return None
    return None


def per_look_level(budget: float, *, looks: int) -> float:
    """The error one look may spend so that all ``looks`` together spend at most
    ``budget`` (union bound)."""
    if not 0 < budget < 1 or looks < 1:
        raise ValueError("an error budget in (0, 1) and at least one look are required")
    return budget / looks
