"""Records stay bounded: what a gate verdict may carry, whatever the number of groups.

A version or audit record is one Kafka message, and the broker refuses a message over its
``message.max.bytes`` (``topics.max_message_bytes``, 1 MiB by default). What grows with
the config is the gates: one per attribute and intersection, each with sample sizes per
group (up to 100 groups per attribute, 10,000 in an intersection of two). So every verdict
a record carries is cut to a fixed size here, before it is recorded:

- ``sample_sizes``: the :data:`MAX_SAMPLE_SIZES` smallest entries (the groups that hold a
  gate are the small ones), plus one entry ``"(N more, smallest M)"`` counting the rest;
- ``detail`` and ``method``: at most :data:`MAX_TEXT_CHARS` characters;
- per-group quality (reported, not gated): the :data:`MAX_SAMPLE_SIZES` largest groups of
  each attribute (:func:`bounded_quality`).

A verdict is then at most about 2 KB, and a record at most about 2 KB per gate: with 4
attributes of 100 groups and one intersection, well under 100 KB
(``tests/governance/test_record_sizes.py`` measures the largest configuration).
:data:`RECORD_BUDGET_BYTES` is the bound the tests hold every record to: a quarter of the
broker's default limit.

>>> from governance.records import GateVerdict, GroupQualityStats
>>> v = GateVerdict(gate="g", outcome="hold", value=None, threshold=None, detail="x" * 900,
...                 sample_sizes={f"G{i}": i for i in range(100, 0, -1)})
>>> (b,) = bounded_gates([v])
>>> len(b.sample_sizes), b.sample_sizes["G1"], b.sample_sizes["(84 more, smallest 17)"]
(17, 1, 17)
>>> len(b.detail)
400
"""

from __future__ import annotations

from collections.abc import Sequence

from governance.records import GateVerdict, GroupQualityStats

MAX_SAMPLE_SIZES = 16
MAX_TEXT_CHARS = 400
#: Every version and audit record stays under this (a quarter of Kafka's default 1 MiB).
RECORD_BUDGET_BYTES = 262_144


def _short(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_TEXT_CHARS:
        return text
    return text[:MAX_TEXT_CHARS - 1] + "…"


def bounded_gate(verdict: GateVerdict) -> GateVerdict:
    """One verdict cut to a fixed size (see the module docstring)."""
    sizes = verdict.sample_sizes
    if len(sizes) > MAX_SAMPLE_SIZES:
        ranked = sorted(sizes.items(), key=lambda kv: (kv[1], kv[0]))
        kept, rest = ranked[:MAX_SAMPLE_SIZES], ranked[MAX_SAMPLE_SIZES:]
        sizes = dict(kept)
        sizes[f"({len(rest)} more, smallest {rest[0][1]})"] = rest[0][1]
    detail, method = _short(verdict.detail), _short(verdict.method)
    if sizes is verdict.sample_sizes and detail == verdict.detail and method == verdict.method:
        return verdict
    return verdict.model_copy(update={"sample_sizes": sizes, "detail": detail,
                                      "method": method})


def bounded_gates(verdicts: Sequence[GateVerdict]) -> list[GateVerdict]:
    return [bounded_gate(v) for v in verdicts]


def bounded_quality(quality: dict[str, dict[str, GroupQualityStats]]
                    ) -> dict[str, dict[str, GroupQualityStats]]:
    """Each attribute's :data:`MAX_SAMPLE_SIZES` largest groups (ties by name).

    >>> q = {"a": {f"G{i}": GroupQualityStats(examples=i, positives=0, candidate_roc_auc=None,
    ...      champion_roc_auc=None, candidate_calibration_error=None,
    ...      champion_calibration_error=None) for i in range(40)}}
    >>> sorted(bounded_quality(q)["a"], key=lambda g: int(g[1:]))[0]
    'G24'
    """
    out = {}
    for attribute, groups in quality.items():
        ranked = sorted(groups.items(), key=lambda kv: (-kv[1].examples, kv[0]))
        out[attribute] = dict(ranked[:MAX_SAMPLE_SIZES])
    return out
