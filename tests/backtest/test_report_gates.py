"""The report's figure of a candidate's gates: intervals against the bound and the
champion's value, from audit records with intervals and from older ones without."""

from __future__ import annotations

import re

from governance.records import AuditRecord, Decision, GateOutcome, GateVerdict
from streams.report.build import _gate_figures, gates_frame
from streams.report.plots import gates_figure


def verdict(gate: str, outcome: str, value: float, threshold: float, champion: float,
            interval: tuple[float, float] | None, attribute: str | None = None
            ) -> GateVerdict:
    low, high = interval if interval else (None, None)
    return GateVerdict(gate=gate, attribute=attribute, outcome=GateOutcome(outcome),
                       value=value, threshold=threshold, champion_value=champion,
                       lower=low, upper=high, detail="")


def audit(sequence: int, gates: list[GateVerdict], time_ms: int) -> AuditRecord:
    return AuditRecord(audit_id=f"l:{sequence}", time=time_ms, version=f"fs-abc-v{sequence}",
                       decision=Decision.HOLD, by="policy", reason="gates", gates=gates,
                       previous_champion="fs-abc-v1", champion="fs-abc-v1")


WITH = [verdict("roc_auc", "pass", 0.81, 0.77, 0.78, (0.79, 0.83)),
        verdict("demographic_parity_ratio", "hold", 0.84, 0.8, 0.9, (0.72, 0.95), "group")]
WITHOUT = [verdict("roc_auc", "pass", 0.81, 0.77, 0.78, None),
           verdict("demographic_parity_ratio", "hold", 0.84, 0.8, 0.9, None, "group")]


def bars(svg: str) -> int:
    """Interval bars: the only lines drawn 3 points wide."""
    return svg.count("stroke-width: 3")


def test_gates_frame_keeps_intervals_and_reads_records_without_them() -> None:
    frame = gates_frame([audit(2, WITH, 1_000), audit(3, WITHOUT, 2_000)])
    assert list(frame["gate"]) == ["roc_auc", "demographic_parity_ratio[group]"] * 2
    assert frame["lower"].tolist()[:2] == [0.79, 0.72]
    assert frame["upper"].iloc[2:].isna().all() and frame["value"].notna().all()
    assert frame["champion_value"].tolist() == [0.78, 0.9] * 2


def test_figure_draws_the_interval_when_the_record_has_one() -> None:
    frame = gates_frame([audit(2, WITH, 1_000), audit(3, WITHOUT, 2_000)])
    with_bars = gates_figure(frame[frame["sequence"] == "2"], "v2")
    without = gates_figure(frame[frame["sequence"] == "3"], "v3")
    assert with_bars.startswith("<svg") and without.startswith("<svg")
    for text in ("roc_auc: pass", "demographic_parity_ratio[group]: hold"):
        assert text in with_bars and text in without
    assert (bars(with_bars), bars(without)) == (2, 0)  # one interval bar per gate


def test_report_shows_the_last_judged_candidates_only() -> None:
    records = [audit(s, WITH, 1_000 * s) for s in range(2, 7)]
    figures = _gate_figures(gates_frame(records))
    assert len(figures) == 1 + 3 and "interval" in figures[0]
    assert [re.search(r"v(\d) hold", f).group(1) for f in figures[1:]] == ["4", "5", "6"]
    assert _gate_figures(gates_frame([])) == []
