"""The report's figures, drawn with matplotlib as inline SVG (no scripts, no network).

Each function takes tidy frames and returns one ``<svg>`` element as text. Times are
UTC; the x axis is event time.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence

import matplotlib

matplotlib.use("svg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import pandas as pd

matplotlib.rcParams.update({
    "svg.fonttype": "none",      # text stays text: smaller, selectable
    "svg.hashsalt": "streambed",  # stable element ids: the same data gives the same file
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
})

#: Line styles per model: the candidate solid, the baseline dashed.
STYLE = {"candidate": "-", "baseline": "--"}
DECISION_COLOURS = {"bootstrap": "#777777", "promote": "#2a9d3a", "hold": "#d62728",
                    "await_review": "#ff7f0e", "refuse": "#8c2d04", "rollback": "#9467bd"}


def _svg(fig: plt.Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    return re.sub(r"^.*?(<svg)", r"\1", text, count=1, flags=re.S)


def _times(values: Sequence[object]) -> list[object]:
    return [pd.Timestamp(v).tz_convert("UTC").tz_localize(None).to_pydatetime()
            for v in values]


def _time_axis(ax: plt.Axes) -> None:
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=7))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))
    for label in ax.get_xticklabels():
        label.set_rotation(20)
        label.set_horizontalalignment("right")


def impact_figure(metrics: pd.DataFrame, attribute: str, parity_min: float) -> str:
    """Selection rate per group (95% band) and the parity ratio (the ``parity_min`` line),
    each point labelled with its sample size."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5.2), sharex=True,
                                      height_ratios=[3, 2])
    part = metrics[metrics["attribute"] == attribute]
    rates = part[part["metric"] == "selection_rate"]
    for (model, group), g in rates.groupby(["model", "group"], sort=False):
        g = g.sort_values("period")
        x = _times(g["period"])
        line, = top.plot(x, g["value"], STYLE.get(model, ":"), marker="o", ms=3,
                         label=f"{group} ({model})")
        top.fill_between(x, g["ci_low"], g["ci_high"], alpha=0.12, color=line.get_color())
        if model == "candidate":
            for xi, yi, n in zip(x, g["value"], g["n"], strict=True):
                if pd.notna(yi):
                    top.annotate(f"n={n}", (xi, yi), fontsize=6, alpha=0.6,
                                 xytext=(2, 3), textcoords="offset points")
    top.set_ylabel("selection rate")
    top.set_title(f"{attribute}: selection rate per group, parity ratio")
    top.legend(fontsize=7, ncol=4, loc="best")
    parity = part[part["metric"] == "demographic_parity_ratio"]
    for model, g in parity.groupby("model", sort=False):
        g = g.sort_values("period")
        x = _times(g["period"])
        bottom.errorbar(x, g["value"], yerr=[(g["value"] - g["ci_low"]).clip(lower=0),
                                             (g["ci_high"] - g["value"]).clip(lower=0)],
                        fmt=STYLE.get(model, ":") + "o", ms=3, capsize=2, label=model)
        for xi, yi, n in zip(x, g["value"], g["n"], strict=True):
            if pd.notna(yi):
                bottom.annotate(f"n={n}", (xi, yi), fontsize=6, alpha=0.7,
                                xytext=(2, -9), textcoords="offset points")
    bottom.axhline(parity_min, color="#d62728", lw=1, ls=":",
                   label=f"{parity_min} (four-fifths rule)")
    bottom.set_ylim(0, 1.05)
    bottom.set_ylabel("parity ratio")
    bottom.legend(fontsize=7, loc="lower left")
    _time_axis(bottom)
    return _svg(fig)


def performance_figure(metrics: pd.DataFrame) -> str:
    """ROC AUC (Hanley-McNeil band) and calibration error per period, per model."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3))
    for ax, metric, title in ((left, "roc_auc", "ROC AUC"),
                              (right, "calibration_error", "calibration error (ECE)")):
        part = metrics[(metrics["metric"] == metric) & (metrics["attribute"] == "all")]
        for model, g in part.groupby("model", sort=False):
            g = g.sort_values("period")
            x = _times(g["period"])
            line, = ax.plot(x, g["value"], STYLE.get(model, ":"), marker="o", ms=3,
                            label=model)
            ax.fill_between(x, g["ci_low"], g["ci_high"], alpha=0.15,
                            color=line.get_color())
        ax.set_title(title)
        ax.legend(fontsize=7)
        _time_axis(ax)
    return _svg(fig)


def drift_figure(drift: pd.DataFrame, warn: float, alert: float) -> str:
    """PSI per feature per period, with the warn and alert levels."""
    fig, ax = plt.subplots(figsize=(9, 3.4))
    for feature, g in drift.groupby("feature", sort=False):
        ax.plot(_times(g["period"]), g["psi"], marker="o", ms=3, label=feature)
    ax.axhline(warn, color="#ff7f0e", lw=1, ls=":", label=f"warn {warn}")
    ax.axhline(alert, color="#d62728", lw=1, ls=":", label=f"alert {alert}")
    ax.set_ylabel("PSI vs the reference")
    ax.set_title("feature drift per period")
    ax.legend(fontsize=7, ncol=3)
    _time_axis(ax)
    return _svg(fig)


def decisions_figure(decisions: pd.DataFrame, title: str) -> str:
    """Model versions and decisions on the time axis (``time``, ``version``,
    ``decision``, ``sequence``)."""
    kinds = list(dict.fromkeys(decisions["decision"]))
    fig, ax = plt.subplots(figsize=(9, 0.6 + 0.45 * max(len(kinds), 2)))
    for i, kind in enumerate(kinds):
        g = decisions[decisions["decision"] == kind]
        x = _times(g["time"])
        ax.scatter(x, [i] * len(g), color=DECISION_COLOURS.get(kind, "#1f77b4"), s=28,
                   zorder=3)
        for xi, seq in zip(x, g["sequence"], strict=True):
            ax.annotate(f"v{seq}", (xi, i), fontsize=7, xytext=(0, 6),
                        textcoords="offset points", ha="center")
    champions = decisions[decisions["decision"].isin(["promote", "bootstrap", "rollback"])]
    for xi in _times(champions["time"]):
        ax.axvline(xi, color="#2a9d3a", lw=0.6, alpha=0.4)
    ax.set_yticks(range(len(kinds)), kinds)
    ax.set_ylim(-0.6, len(kinds) - 0.2)
    ax.set_title(title)
    _time_axis(ax)
    return _svg(fig)


OUTCOME_COLOURS = {"pass": "#2a9d3a", "fail": "#d62728", "hold": "#ff7f0e"}


def gates_figure(gates: pd.DataFrame, title: str) -> str:
    """One candidate's gates, one row each (``gate, outcome, value, lower, upper,
    threshold, champion_value``): the estimate and its interval, the champion's value and
    the bound. Each row has its own scale (AUC, log loss and ratios differ)."""
    rows = gates.reset_index(drop=True)
    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 0.5 + 0.8 * len(rows)),
                             squeeze=False)
    fig.subplots_adjust(hspace=0.9)
    for ax, row in zip(axes[:, 0], rows.itertuples(index=False), strict=True):
        colour = OUTCOME_COLOURS.get(row.outcome, "#1f77b4")
        known = [v for v in (row.value, row.lower, row.upper, row.threshold,
                             row.champion_value) if pd.notna(v)]
        if pd.notna(row.lower) and pd.notna(row.upper):
            ax.plot([row.lower, row.upper], [0, 0], color=colour, lw=3, alpha=0.55,
                    solid_capstyle="butt")
        if pd.notna(row.value):
            ax.plot([row.value], [0], "o", color=colour, ms=6, label="candidate")
        if pd.notna(row.champion_value):
            ax.plot([row.champion_value], [0], "D", color="#444444", ms=5,
                    markerfacecolor="none", label="champion")
        if pd.notna(row.threshold):
            ax.axvline(row.threshold, color="#d62728", lw=1.2, ymin=0.15, ymax=0.85)
        if known:
            low, high = min(known), max(known)
            pad = max((high - low) * 0.15, 0.01)
            ax.set_xlim(low - pad, high + pad)
        ax.set_yticks([0], [f"{row.gate}: {row.outcome}"])
        ax.set_ylim(-1, 1)
        ax.tick_params(axis="x", labelsize=7)
        ax.spines["left"].set_visible(False)
    axes[0, 0].set_title(title)
    return _svg(fig)


def dlq_figure(counts: pd.DataFrame) -> str:
    """Rejected records per period, stacked by reason."""
    table = counts.pivot_table(index="period", columns="reason", values="count",
                               aggfunc="sum", fill_value=0).sort_index()
    fig, ax = plt.subplots(figsize=(9, 3))
    x = _times(table.index)
    width = (x[1] - x[0]) * 0.8 if len(x) > 1 else pd.Timedelta(hours=1).to_pytimedelta()
    bottom = [0] * len(x)
    for reason in table.columns:
        ax.bar(x, table[reason], width=width, bottom=bottom, label=reason, align="edge")
        bottom = [b + v for b, v in zip(bottom, table[reason], strict=True)]
    ax.set_ylabel("records")
    ax.set_title("dead letters per period, by reason")
    ax.legend(fontsize=7, ncol=4)
    _time_axis(ax)
    return _svg(fig)
