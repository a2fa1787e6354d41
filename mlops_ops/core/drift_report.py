"""Kept for existing imports: the drift report's HTML view lives in :mod:`mlops_ops.core.drift.report`."""

from mlops_ops.core.drift.report import render_drift_html, shares_plot

__all__ = ["render_drift_html", "shares_plot"]
