"""Monitoring decisions: prediction drift, the champion's live performance, and the retrain policy.

Pure logic, no Airflow: the operators in ``mlops_ops.operators.monitor`` (one module per check)
read the batch and the champion through hooks, call these functions and act on what they return.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops_ops.config import METRIC_DIRECTIONS
from mlops_ops.core.jsonsafe import json_safe

PREDICTION_COLUMN = "prediction"


# -- prediction drift --------------------------------------------------------------------------


def prediction_values(model: Any, frame: pd.DataFrame, task: str) -> np.ndarray:
    """What the model outputs for each row: the positive-class probability, or the predicted value.

    Probabilities rather than labels: a classifier's labels can stay put while its confidence
    moves, and the probability is what a threshold downstream acts on.
    """
    if task == "classification" and hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(frame))
        return proba[:, -1] if proba.ndim == 2 else proba
    return np.asarray(model.predict(frame), dtype="float64")


def prediction_frame(model: Any, frame: pd.DataFrame, task: str) -> pd.DataFrame:
    return pd.DataFrame({PREDICTION_COLUMN: prediction_values(model, frame, task).astype("float64")})


def build_prediction_profile(model: Any, frame: pd.DataFrame, task: str) -> Any:
    """Reference profile of the model's own outputs on its training snapshot."""
    from mlops_ops.core.drift import build_reference_profile

    return build_reference_profile(prediction_frame(model, frame, task), numeric=[PREDICTION_COLUMN])


# -- performance -------------------------------------------------------------------------------


@dataclass
class PerformanceCheck:
    """The champion's metric on a labelled batch against the value recorded at its promotion."""

    status: str  # "ok" | "degraded" | "insufficient_data" | "unlabelled" | "no_baseline"
    metric: str
    value: float | None
    baseline: float | None
    tolerance: float
    floor: float | None
    rows: int
    min_rows: int
    reasons: list[str] = field(default_factory=list)
    #: where the labels came from: ``batch`` (the batch's target column) or ``outcomes`` (joined outcomes)
    source: str = "batch"
    #: the value's bootstrap interval (judged on outcomes), None for a batch
    lower: float | None = None
    upper: float | None = None
    level: float | None = None

    @property
    def degraded(self) -> bool:
        return self.status == "degraded"

    @property
    def drop(self) -> float | None:
        """How much worse than at promotion, in the metric's better direction (positive = worse)."""
        if self.value is None or self.baseline is None:
            return None
        worse = self.baseline - self.value if METRIC_DIRECTIONS[self.metric] else self.value - self.baseline
        return float(worse)

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["degraded"] = self.degraded
        doc["drop"] = self.drop
        out: dict[str, Any] = json_safe(doc)
        return out


def check_performance(
    *,
    metric: str,
    value: float | None,
    baseline: float | None,
    rows: int,
    tolerance: float,
    floor: float | None,
    min_rows: int,
    interval: tuple[float, float, float] | None = None,
    source: str = "batch",
) -> PerformanceCheck:
    """Degraded when the metric dropped by more than ``tolerance`` or fell past ``floor``.

    :param interval: ``(lower, upper, level)``, the value's confidence interval (judged on joined
        outcomes). Then the rule is applied to the interval's **better** end (the upper bound when
        higher is better): degraded only when even that end dropped by more than ``tolerance`` or
        is past ``floor``, i.e. on evidence at one-sided level ``(1 - level) / 2`` that the metric
        is past the line, so a small, noisy window does not request a retrain.
    :param source: ``batch`` or ``outcomes``, recorded in the check.
    """
    check = PerformanceCheck("ok", metric, value, baseline, tolerance, floor, rows, min_rows, source=source)
    if interval is not None:
        check.lower, check.upper, check.level = interval
    higher = METRIC_DIRECTIONS[metric]
    if rows < min_rows:
        check.status = "insufficient_data"
        check.reasons.append(f"{rows} labelled row(s) < min_rows={min_rows}: performance not judged")
        return check
    if value is None or not math.isfinite(value):
        check.status = "insufficient_data"
        check.reasons.append(f"{metric} could not be computed on this batch (e.g. one class only)")
        return check
    judged, said = value, f"{metric} = {value:.4f}"
    if interval is not None:
        lower, upper, level = interval
        judged = upper if higher else lower
        said = (
            f"{metric} = {value:.4f} ({level:.0%} interval [{lower:.4f}, {upper:.4f}], "
            f"its better end {judged:.4f} judged)"
        )
    if floor is not None and (judged < floor if higher else judged > floor):
        check.status = "degraded"
        check.reasons.append(
            f"{said} is past the floor {floor:.4f} ({'higher' if higher else 'lower'} is better)"
        )
    if baseline is None or not math.isfinite(baseline):
        if check.status == "ok":
            check.status = "no_baseline"
            check.reasons.append(f"no {metric} recorded at the champion's promotion: only the floor applies")
        return check
    drop = baseline - judged if higher else judged - baseline
    if drop > tolerance + 1e-12:
        check.status = "degraded"
        check.reasons.append(
            f"{said} vs {baseline:.4f} at promotion: {drop:.4f} worse, tolerance {tolerance:.4f}"
        )
    elif check.status == "ok":
        check.reasons.append(
            f"{said} vs {baseline:.4f} at promotion ({drop:+.4f} worse), within tolerance {tolerance:.4f}"
        )
    return check


# -- retrain policy ----------------------------------------------------------------------------


@dataclass
class RetrainDecision:
    """Whether monitoring asks for a retrain now, and why (or why not)."""

    retrain: bool
    reason: str
    triggers: list[str]
    suppressed_by_cooldown: bool = False
    last_request_at: str | None = None
    next_allowed_at: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide_retrain(
    *,
    drift: dict[str, Any] | None,
    performance: dict[str, Any] | None,
    on_drift: bool,
    on_performance: bool,
    cooldown_hours: float,
    now: dt.datetime,
    last_request_at: dt.datetime | None,
) -> RetrainDecision:
    """Apply the policy: a trigger (drift or a performance drop), then the cooldown.

    ``drift`` and ``performance`` are the monitoring tasks' results (``status`` plus details);
    ``now`` is the batch's time (the run's logical date), so backfills and replays behave as the
    live schedule would. One incident, one retrain: while a request is younger than the cooldown,
    further triggers are recorded but no new request is made.
    """
    triggers: list[str] = []
    summary: dict[str, Any] = {}
    if drift:
        summary["drift"] = {
            k: drift.get(k)
            for k in ("status", "drifted_columns", "drifted_share", "prediction_drift", "rows")
        }
        if on_drift and drift.get("status") == "drift":
            cols = drift.get("drifted_columns") or []
            triggers.append(f"data drift in {len(cols)} column(s): {', '.join(cols[:8])}")
        if on_drift and drift.get("prediction_drift"):
            triggers.append("the champion's predictions drifted")
    if performance:
        summary["performance"] = {
            k: performance.get(k) for k in ("status", "metric", "value", "baseline", "drop", "rows")
        }
        if on_performance and performance.get("status") == "degraded":
            triggers.append("performance drop: " + "; ".join(performance.get("reasons") or []))
    if not triggers:
        statuses = ", ".join(f"{k} {v.get('status')}" for k, v in summary.items()) or "nothing checked"
        return RetrainDecision(False, f"no trigger ({statuses})", [], summary=summary)
    reason = "; ".join(triggers)
    if last_request_at is not None and cooldown_hours > 0:
        next_allowed = last_request_at + dt.timedelta(hours=cooldown_hours)
        if now < next_allowed:
            return RetrainDecision(
                False,
                f"cooldown: a retrain was requested at {last_request_at.isoformat()}, next request allowed "
                f"from {next_allowed.isoformat()} ({reason})",
                triggers,
                suppressed_by_cooldown=True,
                last_request_at=last_request_at.isoformat(),
                next_allowed_at=next_allowed.isoformat(),
                summary=summary,
            )
    return RetrainDecision(
        True,
        reason,
        triggers,
        last_request_at=last_request_at.isoformat() if last_request_at else None,
        summary=summary,
    )


def short_summary(summary: dict[str, Any]) -> str:
    """One line of a ``RetrainDecision.summary``: the drift status and drifted columns (first 8),
    the performance status and metric value (4 significant digits)."""
    parts = []
    drift = summary.get("drift") or {}
    if drift:
        cols = drift.get("drifted_columns") or []
        parts.append(f"drift {drift.get('status')}: {', '.join(cols[:8]) or 'no columns'}")
    perf = summary.get("performance") or {}
    if perf:
        value = perf.get("value")
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        parts.append(f"performance {perf.get('status')}: {perf.get('metric')} {shown}")
    return "; ".join(parts)
