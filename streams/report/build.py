"""``streambed report``: one self-contained HTML file about a config over history.

Sections: impact per group over time (the parity ratio against the 0.8 line, sample
sizes on every point), performance, drift per feature, model versions and decisions on
the time axis (what the config's gates would have decided in the backtest; with
``--from-kafka`` also what the learner decided, from ``model.versions``/``model.audit``),
and dead letters by reason. Figures are inline SVG, there are no scripts and nothing is
fetched: the file works offline and can be archived with the decision it supports.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd

from governance.records import AuditRecord, ModelVersionRecord
from monitors.drift_history import drift_by_period
from streams.backtest.history import ConfigBacktest, dlq_counts
from streams.config import Config


@dataclass
class ReportData:
    """Everything the report shows, as plain frames (see :func:`render`)."""

    config: Config
    source: str
    period_ms: int
    #: The tidy evaluation (:mod:`governance.metric_frame`).
    metrics: pd.DataFrame
    #: ``period, feature, psi, ks, n, status, reference_events``.
    drift: pd.DataFrame
    #: ``period, reason, count``.
    dlq: pd.DataFrame
    #: The backtest's decisions (``time, version, sequence, decision, by, reason``).
    backtest_decisions: pd.DataFrame | None = None
    #: The learner's decisions read from ``model.audit``, same columns.
    production_decisions: pd.DataFrame | None = None
    production_versions: list[ModelVersionRecord] = field(default_factory=list)
    label_outcomes: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Each judged candidate's gate verdicts (:func:`gates_frame`): backtest, production.
    backtest_gates: pd.DataFrame | None = None
    production_gates: pd.DataFrame | None = None


def decisions_frame(audit: list[AuditRecord]) -> pd.DataFrame:
    """One row per audit record: when, which version, what was decided, by whom, why."""
    rows = [{"time": pd.Timestamp(a.time, unit="ms", tz="UTC"), "version": a.version,
             "sequence": a.version.rsplit("-v", 1)[-1], "decision": a.decision.value,
             "by": a.by, "reason": a.reason} for a in audit]
    return pd.DataFrame(rows, columns=["time", "version", "sequence", "decision", "by",
                                       "reason"])


#: Columns of :func:`gates_frame`.
GATE_COLUMNS = ["time", "version", "sequence", "decision", "gate", "outcome", "value",
                "lower", "upper", "threshold", "champion_value", "confidence", "look"]


def gates_frame(audit: list[AuditRecord]) -> pd.DataFrame:
    """One row per gate verdict of each decision that judged a candidate: the estimate,
    its interval (NaN in records written before gates had intervals), the bound and the
    champion's value."""
    def number(value: float | int | None) -> float:
        return float("nan") if value is None else float(value)

    rows = [{"time": pd.Timestamp(a.time, unit="ms", tz="UTC"), "version": a.version,
             "sequence": a.version.rsplit("-v", 1)[-1], "decision": a.decision.value,
             "gate": g.gate + (f"[{g.attribute}]" if g.attribute else ""),
             "outcome": g.outcome.value, "value": number(g.value), "lower": number(g.lower),
             "upper": number(g.upper), "threshold": number(g.threshold),
             "champion_value": number(g.champion_value), "confidence": number(g.confidence),
             "look": number(g.look)}
            for a in audit for g in a.gates]
    return pd.DataFrame(rows, columns=GATE_COLUMNS)


def drift_frame(run: ConfigBacktest, period_ms: int) -> pd.DataFrame:
    """PSI/KS per watched feature per period, over the replayed features in time order."""
    config = run.config
    frame = run.features.sort_values("ts", kind="stable")
    watched = config.monitors.drift.features or config.features.names
    ts = frame["ts"].to_numpy(dtype="int64")
    out = drift_by_period(frame, watched, ts - ts % period_ms, config.monitors.drift)
    out.insert(0, "period", pd.to_datetime(out.pop("period_ms"), unit="ms", utc=True))
    return out


def report_data(run: ConfigBacktest, metrics: pd.DataFrame, period_ms: int, source: str,
                *, backtest: bool = True, production_audit: list[AuditRecord] | None = None,
                production_versions: list[ModelVersionRecord] | None = None,
                label_outcomes: dict[str, dict[str, int]] | None = None) -> ReportData:
    return ReportData(
        config=run.config, source=source, period_ms=period_ms, metrics=metrics,
        drift=drift_frame(run, period_ms), dlq=dlq_counts(run.rejections, period_ms),
        backtest_decisions=decisions_frame(run.run.audit) if backtest else None,
        production_decisions=decisions_frame(production_audit) if production_audit else None,
        production_versions=list(production_versions or []),
        label_outcomes=label_outcomes or {},
        backtest_gates=gates_frame(run.run.audit) if backtest else None,
        production_gates=gates_frame(production_audit) if production_audit else None)


CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto;
       max-width: 1000px; color: #222; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px;
     border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.meta { color: #555; } svg { max-width: 100%; height: auto; }
table { border-collapse: collapse; font-size: 12px; margin: 8px 0; }
td, th { border: 1px solid #ddd; padding: 2px 6px; text-align: right; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; }
.bad { color: #b00020; font-weight: 600; } .note { color: #555; font-size: 12px; }
"""


def _table(frame: pd.DataFrame, bad: pd.Series | None = None) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for i, (_, row) in enumerate(frame.iterrows()):
        cls = ' class="bad"' if bad is not None and bool(bad.iloc[i]) else ""
        cells = "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row)
        rows.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _fmt(value: object) -> str:
    if isinstance(value, pd.Timestamp):
        return f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, float):
        return "-" if value != value else f"{value:.3f}"
    return str(value)


def _parity_table(metrics: pd.DataFrame, attribute: str, bound: float) -> str:
    part = metrics[(metrics["attribute"] == attribute)
                   & (metrics["metric"] == "selection_rate")
                   & (metrics["model"] == metrics["model"].iloc[0])]
    sizes = part.pivot_table(index="period", columns="group", values="n",
                             aggfunc="first", sort=False)
    sizes.columns = [f"n {g}" for g in sizes.columns]
    parity = metrics[(metrics["attribute"] == attribute)
                     & (metrics["metric"] == "demographic_parity_ratio")]
    ratio = parity.pivot_table(index="period", columns="model", values="value",
                               aggfunc="first", sort=False)
    ratio.columns = [f"parity ({m})" for m in ratio.columns]
    table = ratio.join(sizes).reset_index()
    below = (ratio < bound).any(axis=1).reset_index(drop=True)
    return _table(table, below)


#: How many of the last judged candidates get a figure of their gates.
GATE_FIGURES = 3


def _gate_figures(gates: pd.DataFrame | None) -> list[str]:
    """The last judged candidates' gates: each estimate with its interval against the
    bound and the champion's value."""
    from streams.report import plots

    if gates is None or gates.empty:
        return []
    out = [f'<p class="note">The last {GATE_FIGURES} judged candidates, gate by gate: the '
           f"candidate's estimate (dot) with its interval (bar, where the record has one), "
           f"the champion's value on the same examples (diamond) and the bound the gate "
           f"holds it to (red tick). Colour: the gate's outcome.</p>"]
    decisions = gates.drop_duplicates(["time", "version"]).tail(GATE_FIGURES)
    for time_, version in zip(decisions["time"], decisions["version"], strict=True):
        part = gates[(gates["time"] == time_) & (gates["version"] == version)]
        title = (f"v{part['sequence'].iloc[0]} {part['decision'].iloc[0]} at "
                 f"{time_:%Y-%m-%d %H:%M} UTC")
        out.append(plots.gates_figure(part, title))
    return out


def render(data: ReportData) -> str:
    """The report as one HTML document (inline SVG, inline CSS, no scripts)."""
    from streams.report import plots

    config, metrics = data.config, data.metrics
    bound = config.model.promotion.parity_ratio_min
    models = ", ".join(dict.fromkeys(metrics["model"])) if len(metrics) else "none"
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>streambed report: {html.escape(config.name)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>streambed report: {html.escape(config.name)}</h1>",
        f'<p class="meta">history: {html.escape(data.source)}; feature set '
        f"{config.features.identity}; period {data.period_ms // 60_000} min; models: "
        f"{html.escape(models)}; generated {generated}.</p>",
    ]
    for name, counts in data.label_outcomes.items():
        text = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
        parts.append(f'<p class="meta">labels ({html.escape(name)}): {html.escape(text)}</p>')
    parts.append("<h2>Impact per group over time</h2>")
    parts.append(f'<p class="note">Selection rate per group with its 95% Wilson band, and '
                 f"the demographic parity ratio (lowest / highest selection rate) with its "
                 f"bootstrap interval; the dotted line is {bound}. Rows below it are "
                 f"marked. Rates are null for groups under "
                 f"{config.model.promotion.min_group_examples} examples, as the gates see "
                 f"them.</p>")
    for attribute in config.monitors.sensitive_attributes:
        if (metrics["attribute"] == attribute).any():
            parts.append(f"<h3>{html.escape(attribute)}</h3>")
            parts.append(plots.impact_figure(metrics, attribute, bound))
            parts.append(_parity_table(metrics, attribute, bound))
    if (metrics["metric"] == "roc_auc").any():
        parts.append("<h2>Performance</h2>")
        parts.append(plots.performance_figure(metrics))
    parts.append("<h2>Drift per feature over time</h2>")
    drift_cfg = config.monitors.drift
    if data.drift["psi"].notna().any():
        parts.append(f'<p class="note">PSI of each period against the reference (the first '
                     f"{drift_cfg.reference.events} events after "
                     f"{drift_cfg.reference.warmup_events} warm-up events, or the reference "
                     f"file).</p>")
        parts.append(plots.drift_figure(data.drift, drift_cfg.psi_warn, drift_cfg.psi_alert))
    else:
        parts.append('<p class="note">Too little history for a drift reference.</p>')
    parts.append("<h2>Model versions and decisions</h2>")
    for title, frame, gates in (("backtest: what this config's gates would have decided",
                                 data.backtest_decisions, data.backtest_gates),
                                ("production: the learner's decisions (model.audit)",
                                 data.production_decisions, data.production_gates)):
        if frame is None or frame.empty:
            continue
        parts.append(f"<h3>{html.escape(title)}</h3>")
        parts.append(plots.decisions_figure(frame, title))
        parts.append(_table(frame.drop(columns="sequence"), frame["decision"] == "hold"))
        parts += _gate_figures(gates)
    if data.production_versions:
        versions = pd.DataFrame([{"version": v.version, "status": v.status.value,
                                  "created": pd.Timestamp(v.created_at, unit="ms", tz="UTC"),
                                  "examples": v.examples_learned,
                                  "outcome": v.evaluation.outcome.value if v.evaluation
                                  else "-"} for v in data.production_versions])
        parts.append("<h3>production: model.versions</h3>" + _table(versions))
    if data.backtest_decisions is None and data.production_decisions is None:
        parts.append('<p class="note">No decisions: the model.versions and model.audit '
                     "topics were not read (use --from-kafka), and the evaluation was "
                     "read from a file.</p>")
    parts.append("<h2>Dead letters over time</h2>")
    if data.dlq.empty:
        parts.append('<p class="note">No record was rejected.</p>')
    else:
        parts.append(plots.dlq_figure(data.dlq))
        totals = data.dlq.groupby("reason")["count"].sum().reset_index()
        parts.append(_table(totals))
    parts.append("</body></html>")
    return "\n".join(parts)
