"""Live performance: each model version's metric on its joined outcomes, per day and overall.

Input: a frame of joined outcomes (the columns of :data:`mlops_ops.core.outcomes.JOINED_OUTCOME_SCHEMA`;
one row per prediction and model that scored it, ``label`` and ``prediction`` as text,
``probability`` the positive class's). Output: one :class:`LiveMetric` per (``model_version``,
day of ``predicted_at`` in UTC) and one per ``model_version`` over the whole frame (``day`` None),
each with the metric on those rows and a **percentile bootstrap interval** (Efron & Tibshirani,
An Introduction to the Bootstrap, 1993, ch. 13): the rows are resampled with replacement, the
metric computed on each resample with the gate's kernels (:func:`mlops_ops.core.metrics.metric_kernel`,
the code the gate's paired bootstrap uses), and the ``(1 - level) / 2`` and ``(1 + level) / 2``
quantiles taken.

What the interval means: treating the rows as independent draws from the traffic the version
answered (on that day, or over the window), it covers the metric of that traffic, the value an
unlimited number of such outcomes would give, with probability about ``level``
(``tests/unit/test_live_performance.py`` measures the coverage). It is about the outcomes that
arrived: if late outcomes are not missing at random (e.g. churners report sooner), the interval
is about the ones that did.

Too few rows (fewer than ``min_rows``), one class only (for AUC), or a sample where more than 1%
of the resamples are degenerate: no interval (``lower``/``upper`` None), and ``reason`` says why;
``value`` is still given when it is defined.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlops_ops.core.bootstrap import bootstrap_interval
from mlops_ops.core.metrics import PROBABILITY_METRICS, GateError, metric_kernel, undefined_reason

#: Fewest rows of a (version, day) group before an interval is given.
MIN_ROWS = 30
#: Default two-sided level of the intervals.
DEFAULT_LEVEL = 0.95


@dataclass(frozen=True)
class LiveMetric:
    """One version's metric on its joined outcomes of one day (``day`` ``YYYY-MM-DD``, UTC) or of
    the whole window (``day`` None). ``lower``/``upper``: the percentile bootstrap interval at
    ``level`` (None, with ``reason``, when there is none)."""

    model_version: str
    day: str | None
    metric: str
    rows: int
    value: float | None
    lower: float | None
    upper: float | None
    level: float
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _classes(frame: pd.DataFrame) -> np.ndarray | None:
    """The two classes of a binary classifier from its labels and predictions (:func:`binary_classes`)."""
    return binary_classes(pd.concat([frame["label"], frame["prediction"]]))


def binary_classes(values: Any) -> np.ndarray | None:
    """The two classes among ``values`` (labels and predictions as text), None when there are not
    exactly two. In scikit-learn's order (``classes_``, whose second class the ``probability`` is
    of): numbers as numbers (``"2"`` before ``"10"``), other text as text (``"1"``/``"True"``/
    ``"yes"`` second).

    :param values: a sequence or Series of class texts (missing ones ignored).
    :returns: an array of the two class texts, the positive one second.
    """
    seen = pd.Series(values).dropna().astype(str).unique()
    if len(seen) != 2:
        return None
    numbers = pd.to_numeric(pd.Series(seen), errors="coerce")
    if numbers.notna().all():
        return seen[np.argsort(numbers.to_numpy("float64"), kind="stable")]
    return np.sort(seen)


def _scores(rows: pd.DataFrame, task: str, classes: np.ndarray | None) -> tuple[np.ndarray, dict[str, Any]]:
    """``(y_true, scores)`` in the form :func:`metric_kernel` takes."""
    if task == "regression":
        y = pd.to_numeric(rows["label"], errors="coerce").to_numpy("float64")
        pred = pd.to_numeric(rows["prediction"], errors="coerce").to_numpy("float64")
        return y, {"pred": pred}
    scores: dict[str, Any] = {"pred": rows["prediction"].astype(str).to_numpy()}
    if classes is not None:
        scores["classes"] = classes
    proba = rows["probability"]
    if len(rows) and proba.notna().all():
        scores["proba"] = proba.to_numpy("float64")
    return rows["label"].astype(str).to_numpy(), scores


def metric_with_interval(
    rows: pd.DataFrame,
    *,
    metric: str,
    task: str,
    model_version: str,
    day: str | None,
    level: float = DEFAULT_LEVEL,
    resamples: int = 1000,
    seed: int = 0,
    min_rows: int = MIN_ROWS,
    classes: np.ndarray | None = None,
) -> LiveMetric:
    """The metric and its interval on one group of joined outcomes (see the module docstring)."""
    n = len(rows)

    def result(value: float | None, reason: str | None, lower: Any = None, upper: Any = None) -> LiveMetric:
        return LiveMetric(model_version, day, metric, n, value, lower, upper, level, reason)

    if n == 0:
        return result(None, "no joined outcomes")
    y, scores = _scores(rows, task, classes)
    if task == "regression" and not (np.isfinite(y).all() and np.isfinite(scores["pred"]).all()):
        return result(None, "labels or predictions that are not numbers")
    if task == "classification" and metric in PROBABILITY_METRICS and "proba" not in scores:
        return result(None, f"{metric} needs the positive class's probability and some rows have none")
    try:
        kernel = metric_kernel(metric, task, y, scores)
    except GateError as err:
        return result(None, str(err))
    why = undefined_reason(metric, task, y)
    value = float(kernel(np.ones((1, n)))[0])
    if why is not None or not math.isfinite(value):
        return result(None, why or f"{metric} is not finite on these rows")
    if n < min_rows:
        return result(value, f"{n} row(s) < {min_rows}: no interval")
    try:
        interval = bootstrap_interval(kernel, n, resamples=resamples, confidence=level, seed=seed)
    except GateError as err:
        return result(value, str(err))
    return result(value, None, interval.lower, interval.upper)


def live_performance(
    frame: pd.DataFrame,
    *,
    metric: str,
    task: str,
    level: float = DEFAULT_LEVEL,
    resamples: int = 1000,
    seed: int = 0,
    min_rows: int = MIN_ROWS,
    versions: list[str] | None = None,
) -> list[LiveMetric]:
    """The metric per model version and day (of ``predicted_at``, UTC), then per version over the
    whole frame (``day`` None), each with a percentile bootstrap interval at ``level``.

    :param frame: joined outcomes (:data:`~mlops_ops.core.outcomes.JOINED_OUTCOME_SCHEMA` columns).
    :param metric: a metric of :data:`mlops_ops.config.METRIC_DIRECTIONS` that applies to ``task``.
    :param task: ``classification`` or ``regression``.
    :param versions: only these versions (all when None).
    :returns: for each version (sorted numerically where they are numbers), its days in order,
        then its whole-window entry; an empty list for an empty frame.
    :raises ValueError: a frame without the contract's columns.
    """
    needed = {"model_version", "predicted_at", "prediction", "probability", "label"}
    missing = needed - set(frame.columns)
    if missing:
        raise ValueError(
            f"joined outcomes lack the column(s) {sorted(missing)}; expected core.outcomes' contract"
        )
    frame = frame[frame["label"].notna()]
    if versions is not None:
        frame = frame[frame["model_version"].astype(str).isin([str(v) for v in versions])]
    if frame.empty:
        return []
    classes = _classes(frame) if task == "classification" else None
    days = pd.to_datetime(frame["predicted_at"], utc=True).dt.strftime("%Y-%m-%d")
    version_col = frame["model_version"].astype(str)
    out: list[LiveMetric] = []
    common: dict[str, Any] = {
        "metric": metric,
        "task": task,
        "level": level,
        "resamples": resamples,
        "min_rows": min_rows,
    }
    for i, version in enumerate(
        sorted(version_col.unique(), key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v))
    ):
        rows = frame[version_col == version]
        by_day = days[version_col == version]
        for j, day in enumerate(sorted(by_day.unique())):
            out.append(
                metric_with_interval(
                    rows[by_day == day],
                    model_version=version,
                    day=day,
                    seed=seed + 1009 * i + j,
                    classes=classes,
                    **common,
                )  # fmt: skip
            )
        out.append(
            metric_with_interval(
                rows, model_version=version, day=None, seed=seed + 1009 * i + 1000, classes=classes, **common
            )
        )
    return out


def better_bound(entry: LiveMetric, higher_is_better: bool) -> float | None:
    """The interval's end on the metric's better side (the upper bound when higher is better)."""
    return entry.upper if higher_is_better else entry.lower
