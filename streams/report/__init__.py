"""``streambed report``: one self-contained HTML file (see :mod:`streams.report.build`)."""

from streams.report.build import ReportData, render, report_data

__all__ = ["ReportData", "render", "report_data"]
