"""Permutation importance of the challenger: it explains, it does not gate."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mlops_ops.config import METRIC_DIRECTIONS
from mlops_ops.core.metrics import (
    PROBABILITY_METRICS,
    GateError,
    metric_value,
    undefined_reason,
)


def importance_scorer(metric: str, task: str) -> Callable[[Any, Any, Any], float]:
    """A scikit-learn scorer for ``metric``, sign-adjusted so that greater is better."""
    sign = 1.0 if METRIC_DIRECTIONS[metric] else -1.0

    def score(estimator: Any, x: Any, y: Any) -> float:
        scores: dict[str, Any] = {}
        if metric in PROBABILITY_METRICS:
            proba = np.asarray(estimator.predict_proba(x))
            scores["proba"] = proba[:, 1] if proba.ndim == 2 else proba
            scores["classes"] = np.asarray(getattr(estimator, "classes_", [0, 1]))
        else:
            scores["pred"] = np.asarray(estimator.predict(x))
            if task == "classification" and hasattr(estimator, "classes_"):
                scores["classes"] = np.asarray(estimator.classes_)
        return sign * metric_value(metric, task, np.asarray(y), scores)

    return score


def permutation_importance_report(
    model: Any,
    x: Any,
    y: Any,
    *,
    task: str,
    metric: str,
    seed: int = 0,
    n_repeats: int = 5,
    max_rows: int = 5000,
) -> dict[str, Any]:
    """Permutation importance of each raw input column of ``model`` on the holdout.

    ``importance`` of a column is the drop in ``metric`` (sign-adjusted: a loss that grows is a
    drop) when that column is shuffled, averaged over ``n_repeats`` shuffles; near zero or
    negative means the model does not rely on it. The holdout is subsampled (seeded) to
    ``max_rows`` rows to bound the time. Features are sorted by importance, largest first.
    """
    from sklearn.inspection import permutation_importance

    y_arr = np.asarray(y)
    n = len(y_arr)
    if metric in PROBABILITY_METRICS and not hasattr(model, "predict_proba"):
        raise GateError(f"{metric} needs predict_proba, which the model does not have")
    if n > max_rows:
        pick = np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))
        x, y_arr = x.iloc[pick], y_arr[pick]
    reason = undefined_reason(metric, task, y_arr)
    if reason:
        raise GateError(f"permutation importance by {metric} is undefined on this holdout: {reason}")
    scorer = importance_scorer(metric, task)
    baseline = scorer(model, x, y_arr)
    result = permutation_importance(
        model, x, y_arr, scoring=scorer, n_repeats=n_repeats, random_state=seed, n_jobs=1
    )
    features: list[dict[str, Any]] = [
        {"feature": str(col), "importance": float(mean), "std": float(std)}
        for col, mean, std in zip(x.columns, result.importances_mean, result.importances_std, strict=True)
    ]
    features.sort(key=lambda f: f["importance"], reverse=True)
    return {
        "metric": metric,
        "higher_is_better": METRIC_DIRECTIONS[metric],
        "baseline": float(baseline if METRIC_DIRECTIONS[metric] else -baseline),
        "rows": int(len(y_arr)),
        "holdout_rows": int(n),
        "n_repeats": n_repeats,
        "seed": seed,
        "features": features,
    }
