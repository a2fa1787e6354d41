"""Metrics of a model's predictions on a holdout: what the gate, training and monitoring compare.

Two implementations of one set of definitions:

- :func:`compute_metrics`, scikit-learn's metrics on the whole sample (the numbers that are
  reported and thresholded);
- :func:`metric_kernel`, the same metrics as functions of per-row resample counts, vectorised
  over many resamples at once (what the paired bootstrap and permutation importance use).

The positive class of a binary classifier is the model's second class (:func:`positive_label`);
probabilities are clipped to ``[1e-15, 1 - 1e-15]`` by both.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from mlops_ops.config import METRIC_DIRECTIONS
from mlops_ops.errors import MlopsError

#: Metrics computed from the positive-class probability rather than the predicted label.
PROBABILITY_METRICS = frozenset({"roc_auc", "log_loss", "brier"})

_LOG_EPS = 1e-15  # probabilities are clipped to [eps, 1 - eps], as in compute_metrics


class GateError(MlopsError, ValueError):
    """The gate cannot evaluate a rule on the data it was given (the rule then fails closed).

    Raised here for a metric that does not apply to the model, and by the bootstrap, the gate and
    permutation importance; defined with the metrics as the lowest layer all of them share.
    """


# -- on the whole sample ---------------------------------------------------------------------


def score_model(model: Any, x: Any, task: str) -> dict[str, np.ndarray]:
    """Predictions (and positive-class probabilities, for classifiers) of a fitted model."""
    out = {"pred": np.asarray(model.predict(x))}
    if task == "classification" and hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(x))
        out["proba"] = proba[:, 1] if proba.ndim == 2 else proba
        out["classes"] = np.asarray(getattr(model, "classes_", [0, 1]))
    return out


def positive_label(y_true: np.ndarray, scores: Mapping[str, Any]) -> Any:
    """The positive class: the model's second class, else the largest label in ``y_true``."""
    classes = scores.get("classes")
    if classes is not None and len(classes) == 2:
        return classes[1]
    return np.unique(y_true)[-1]


def compute_metrics(task: str, y_true: np.ndarray, scores: dict[str, np.ndarray]) -> dict[str, float]:
    from sklearn import metrics as m

    pred = scores["pred"]
    if task == "regression":
        y = np.asarray(y_true, dtype="float64")
        return {
            "r2": float(m.r2_score(y, pred)),
            "rmse": float(math.sqrt(m.mean_squared_error(y, pred))),
            "mae": float(m.mean_absolute_error(y, pred)),
        }
    positive = positive_label(y_true, scores)
    y_bin = (np.asarray(y_true) == positive).astype(int)
    p_bin = (np.asarray(pred) == positive).astype(int)
    out = {
        "accuracy": float(m.accuracy_score(y_bin, p_bin)),
        "balanced_accuracy": float(m.balanced_accuracy_score(y_bin, p_bin)),
        "f1": float(m.f1_score(y_bin, p_bin, zero_division=0)),
        "precision": float(m.precision_score(y_bin, p_bin, zero_division=0)),
        "recall": float(m.recall_score(y_bin, p_bin, zero_division=0)),
    }
    proba = scores.get("proba")
    if proba is not None:
        proba = np.clip(np.asarray(proba, dtype="float64"), _LOG_EPS, 1 - _LOG_EPS)
        if len(np.unique(y_bin)) == 2:
            out["roc_auc"] = float(m.roc_auc_score(y_bin, proba))
        out["log_loss"] = float(m.log_loss(y_bin, proba, labels=[0, 1]))
        out["brier"] = float(m.brier_score_loss(y_bin, proba))
    return out


def undefined_reason(metric: str, task: str, y_true: np.ndarray) -> str | None:
    """Why ``metric`` has no meaning on these labels (one class for AUC, a constant target for R²)."""
    if len(np.unique(np.asarray(y_true))) >= 2:
        return None
    if task == "classification" and metric == "roc_auc":
        return "one class only; roc_auc needs both classes"
    if task == "regression" and metric == "r2":
        return "a constant target; r2 needs variance"
    return None


# -- metrics on resample weights -------------------------------------------------------------
#
# A bootstrap resample of n rows is a vector of counts w (how often each row was drawn, summing
# to n). Every supported metric is a function of weighted sums over rows, so one (resamples x n)
# count matrix W evaluates a metric on all resamples at once: means are W @ v / n, confusion
# counts are W @ indicator, and the AUC is the Mann-Whitney statistic with weights, computed from
# cumulative sums over the rows sorted by score once. W = ones((1, n)) gives the plain value.

MetricKernel = Callable[[np.ndarray], np.ndarray]


def metric_kernel(metric: str, task: str, y_true: np.ndarray, scores: Mapping[str, Any]) -> MetricKernel:
    """A function W -> metric per row of W (resample counts), for one model's holdout scores.

    Raises :class:`GateError` for a metric that does not apply or needs what the model lacks.
    """
    if metric not in METRIC_DIRECTIONS:
        raise GateError(f"unsupported metric {metric!r}; known: {sorted(METRIC_DIRECTIONS)}")
    y_raw = np.asarray(y_true)
    if task == "regression":
        if metric not in ("r2", "rmse", "mae"):
            raise GateError(f"{metric} does not apply to a regression model; use r2, rmse or mae")
        y = y_raw.astype("float64")
        err = np.asarray(scores["pred"], dtype="float64") - y
        if metric == "mae":
            absolute = np.abs(err)
            return lambda w: (w @ absolute) / w.sum(axis=1)
        squared = err**2
        if metric == "rmse":
            return lambda w: np.sqrt((w @ squared) / w.sum(axis=1))
        # R² does not change when y shifts: centring it keeps the weighted total sum of squares
        # free of cancellation for targets far from zero, and the test for a constant resample
        # relative to the target's own scale.
        yc = y - y.mean()
        yc2 = yc**2

        def r2(w: np.ndarray) -> np.ndarray:
            n = w.sum(axis=1)
            spread = w @ yc2
            total = spread - (w @ yc) ** 2 / n
            with np.errstate(divide="ignore", invalid="ignore"):
                out = 1.0 - (w @ squared) / total
            return np.where(total > 1e-12 * spread, out, np.nan)

        return r2
    if metric in ("r2", "rmse", "mae"):
        raise GateError(f"{metric} does not apply to a classification model")
    positive = positive_label(y_raw, scores)
    y_pos = y_raw == positive
    if metric in PROBABILITY_METRICS:
        if scores.get("proba") is None:
            raise GateError(f"{metric} needs predicted probabilities and the model has no predict_proba")
        p = np.clip(np.asarray(scores["proba"], dtype="float64"), _LOG_EPS, 1 - _LOG_EPS)
        if metric == "log_loss":
            loss = -np.where(y_pos, np.log(p), np.log1p(-p))
            return lambda w: (w @ loss) / w.sum(axis=1)
        if metric == "brier":
            sq = (p - y_pos) ** 2
            return lambda w: (w @ sq) / w.sum(axis=1)
        return _auc_kernel(p, y_pos)
    p_pos = np.asarray(scores["pred"]) == positive
    if metric == "accuracy":
        hit = (p_pos == y_pos).astype("float64")
        return lambda w: (w @ hit) / w.sum(axis=1)
    tp_v = (y_pos & p_pos).astype("float64")
    fp_v = (~y_pos & p_pos).astype("float64")
    fn_v = (y_pos & ~p_pos).astype("float64")
    tn_v = (~y_pos & ~p_pos).astype("float64")

    def counts(w: np.ndarray) -> tuple[np.ndarray, ...]:
        return w @ tp_v, w @ fp_v, w @ fn_v, w @ tn_v

    def ratio(num: np.ndarray, den: np.ndarray, empty: float) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, num / den, empty)

    def from_counts(w: np.ndarray) -> np.ndarray:
        tp, fp, fn, tn = counts(w)
        if metric == "precision":
            return ratio(tp, tp + fp, 0.0)  # zero_division=0, as compute_metrics
        if metric == "recall":
            return ratio(tp, tp + fn, 0.0)
        if metric == "f1":
            return ratio(2 * tp, 2 * tp + fp + fn, 0.0)
        # balanced accuracy, as scikit-learn: the mean of the recalls of the classes present
        tpr, tnr = ratio(tp, tp + fn, np.nan), ratio(tn, tn + fp, np.nan)
        return np.where(np.isnan(tpr), tnr, np.where(np.isnan(tnr), tpr, (tpr + tnr) / 2))

    return from_counts


def _auc_kernel(score: np.ndarray, positive: np.ndarray) -> MetricKernel:
    """Weighted Mann-Whitney AUC: P(score_pos > score_neg) + P(tie) / 2.

    Negatives are sorted by score once; per resample, the cumulative negative weight at each
    positive's score (found once by binary search) is the weight it outranks.
    """
    neg = np.flatnonzero(~positive)
    pos = np.flatnonzero(positive)
    neg = neg[np.argsort(score[neg], kind="mergesort")]
    sorted_neg = score[neg]
    left = np.searchsorted(sorted_neg, score[pos], side="left")
    right = np.searchsorted(sorted_neg, score[pos], side="right")
    ties = bool(np.any(left != right))

    def auc(w: np.ndarray) -> np.ndarray:
        cum = np.zeros((w.shape[0], len(neg) + 1))
        np.cumsum(w[:, neg], axis=1, out=cum[:, 1:])
        credit = cum[:, left]
        if ties:  # a tie counts one half
            credit += 0.5 * (cum[:, right] - credit)
        wp = w[:, pos]
        num = np.einsum("ij,ij->i", wp, credit)
        den = wp.sum(axis=1) * cum[:, -1]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, num / den, np.nan)

    return auc


def metric_value(metric: str, task: str, y_true: np.ndarray, scores: Mapping[str, Any]) -> float:
    """One metric on the whole sample, with the same code the bootstrap uses."""
    n = len(np.asarray(y_true))
    return float(metric_kernel(metric, task, y_true, scores)(np.ones((1, n)))[0])
