"""Performance before labels arrive: confidence-based performance estimation (CBPE).

The method is NannyML's "Confidence-based Performance Estimation" (NannyML documentation, "How it
works: Performance Estimation, CBPE"), written here from its description:

1. **Calibrate.** On the *reference* (the training holdout: the model's positive-class
   probabilities and the true labels), fit a map from the model's probability to the observed
   frequency of the positive class, with scikit-learn's ``IsotonicRegression``. **Rule:** the
   model's probabilities are used as they are only when the reference shows them calibrated: the
   map does not lower the Brier score out of sample (cross-fitted over :data:`CALIBRATION_FOLDS`
   folds), *and* CBPE from the raw probabilities reproduces the reference's own realised ROC AUC
   and accuracy within 2 standard errors. Otherwise the map is applied (:func:`needs_calibration`).
2. **Expect.** On an unlabelled batch, a calibrated probability ``p_i`` is the chance that row
   ``i`` is positive. Every metric of a binary classifier is a function of the confusion counts
   (or, for ROC AUC, of the pairs of rows), so its expected value follows from the ``p_i``: the
   expected true positives are ``sum p_i`` over the rows predicted positive, the expected false
   positives ``sum (1 - p_i)`` over them, and so on; the expected ROC AUC is the expected number of
   (positive, negative) pairs the model orders correctly (ties: one half) over the expected number
   of such pairs, with the model's *raw* probabilities doing the ordering
   (:func:`expected_metric`). The ratio metrics (precision, recall, F1, AUC) use the ratio of the
   expected counts, as CBPE does.
3. **Interval** (the sampling error of the realised metric): ``resamples`` times, the reference is
   resampled with replacement and the isotonic map refitted on it (:func:`isotonic_map`, the same
   estimator as scikit-learn's, ten times faster) (the map's own uncertainty; also
   when the point estimate uses the probabilities as they are, since "already calibrated" is only
   known to the reference's precision), the batch's calibrated probabilities recomputed, and a label drawn for every row from them (``y_i ~ Bernoulli(p_i)``); the realised
   metric of each draw is computed exactly as the labelled metric is. The interval is the
   ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of those realised metrics: where the
   batch's realised metric will fall once its labels arrive, if the assumptions hold
   (a parametric bootstrap of the labels, conditional on the batch's rows).

**Assumptions and limits.** The estimate holds under *covariate shift* (``P(x)`` moves,
``P(y | x)`` stays). It cannot see *concept shift* (``P(y | x)`` moves: the model's confidence is
unchanged while it becomes wrong), nor *label shift* (``P(y)`` moves with ``P(x | y)`` fixed, which
changes ``P(y | x)``), and it is only as good as the calibration: a reference too small or unlike
the batch (regions of ``x`` the holdout never saw) gives a biased map. It is a leading indicator
until the labels arrive, not a verdict. ``docs/estimation.md`` gives the measured error and
coverage.

Pure logic: numpy, scipy and scikit-learn, no Airflow, no MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import rankdata

from mlops_ops.config import CLASSIFICATION_METRICS, METRIC_DIRECTIONS
from mlops_ops.errors import MlopsError

#: Metrics CBPE can estimate: every metric of a binary classifier the pipeline can monitor.
ESTIMABLE_METRICS = CLASSIFICATION_METRICS
#: Metrics the monitoring report estimates beside the pipeline's own (when estimable).
DEFAULT_METRICS = ("roc_auc", "accuracy", "f1")
#: Folds of the cross-fitted calibration check (:func:`needs_calibration`).
CALIBRATION_FOLDS = 5
#: The fewest reference rows, and of each class, to fit a calibration map on.
MIN_REFERENCE_ROWS = 50
MIN_REFERENCE_CLASS_ROWS = 10
#: Most rows of a reference document (a seeded sample beyond: the document stays small).
MAX_REFERENCE_ROWS = 50_000
#: The caveat every estimate carries.
CAVEAT = (
    "Estimated from the model's own calibrated confidence (CBPE), before labels arrive. It assumes "
    "P(y|x) is unchanged since training: it cannot see concept shift or label shift, and is only as "
    "good as the calibration on the training holdout. A leading indicator, not a verdict: the "
    "realised metric replaces it when the labels arrive."
)
_EPS = 1e-15  # probabilities are clipped to [eps, 1 - eps], as in core.metrics


class EstimationError(MlopsError, ValueError):
    """The performance cannot be estimated: a metric CBPE does not cover, a reference too small or
    with one class, or probabilities that are not probabilities. The message names the fix."""


# -- the reference ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EstimationReference:
    """What estimation needs from training: the holdout's raw positive-class probabilities and
    labels, and the metrics realised on it.

    :param proba: shape ``(n,)``, the model's positive-class probability per holdout row, in [0, 1].
    :param positive: shape ``(n,)``, bool, True where the holdout row's label is the positive class.
    :param positive_label: the positive class, as text (the model's second class).
    :param metrics: the holdout's realised metrics (``metric -> value``), as training logged them.
    :param sampled_from: holdout rows before a seeded sample capped the document (None: all rows).
    """

    proba: np.ndarray
    positive: np.ndarray
    positive_label: str
    metrics: dict[str, float]
    sampled_from: int | None = None

    @classmethod
    def from_holdout(
        cls,
        y_true: Sequence[Any] | np.ndarray,
        scores: Mapping[str, Any],
        metrics: Mapping[str, float],
        *,
        max_rows: int = MAX_REFERENCE_ROWS,
        seed: int = 0,
    ) -> EstimationReference:
        """The reference of a binary classifier from its holdout scores (``core.metrics.score_model``).

        :param y_true: shape ``(n,)``, the holdout's labels.
        :param scores: ``proba`` (positive-class probability) and ``classes`` (the model's classes).
        :param metrics: the holdout's realised metrics.
        :param max_rows: a larger holdout is sampled down to this many rows (seeded by ``seed``).
        :raises EstimationError: no probabilities, or not two classes.
        """
        from mlops_ops.core.metrics import positive_label

        if scores.get("proba") is None:
            raise EstimationError("the model has no predict_proba: CBPE needs probabilities")
        classes = scores.get("classes")
        if classes is None or len(classes) != 2:
            raise EstimationError(f"CBPE needs a binary classifier; the model's classes are {classes!r}")
        y = np.asarray(y_true)
        positive = y == positive_label(y, scores)
        proba = np.asarray(scores["proba"], dtype="float64")
        sampled_from = None
        if len(y) > max_rows:
            keep = np.sort(np.random.default_rng(seed).choice(len(y), size=max_rows, replace=False))
            proba, positive, sampled_from = proba[keep], positive[keep], len(y)
        return cls(
            proba=proba,
            positive=positive.astype(bool),
            positive_label=str(classes[1]),
            metrics={k: float(v) for k, v in metrics.items()},
            sampled_from=sampled_from,
        )

    def to_dict(self) -> dict[str, Any]:
        """The stored document (``artifacts.ESTIMATION_REFERENCE_ARTIFACT``)."""
        return {
            "method": "cbpe",
            "positive_label": self.positive_label,
            "rows": len(self.proba),
            "sampled_from": self.sampled_from,
            "metrics": dict(self.metrics),
            "proba": [float(p) for p in self.proba],
            "positive": [int(b) for b in self.positive],
        }

    @classmethod
    def from_dict(cls, doc: Any, *, where: str = "the estimation reference") -> EstimationReference:
        """Read a stored document back.

        :raises EstimationError: not the document :meth:`to_dict` writes (naming ``where``).
        """
        try:
            proba = np.asarray(doc["proba"], dtype="float64")
            positive = np.asarray(doc["positive"], dtype="int64").astype(bool)
            label = str(doc["positive_label"])
            metrics = {str(k): float(v) for k, v in (doc.get("metrics") or {}).items() if v is not None}
        except (KeyError, TypeError, ValueError) as err:
            raise EstimationError(
                f"{where} is not a CBPE reference ({type(err).__name__}: {err}); retrain the model version"
            ) from None
        if proba.ndim != 1 or proba.shape != positive.shape:
            raise EstimationError(f"{where}: 'proba' and 'positive' must be lists of one length; retrain")
        sampled = doc.get("sampled_from")
        return cls(proba, positive, label, metrics, None if sampled is None else int(sampled))


def reference_document(
    task: str, y_true: Any, scores: Mapping[str, Any] | None, metrics: Mapping[str, float], *, seed: int = 0
) -> dict[str, Any] | None:
    """The stored CBPE reference of a freshly trained model, or None when CBPE does not apply
    (regression, not two classes, no ``predict_proba``): training writes it when there is one.

    :param task: ``classification`` or ``regression``.
    :param y_true: shape ``(n,)``, the holdout's labels.
    :param scores: ``core.metrics.score_model``'s output on the holdout.
    :param metrics: the holdout's realised metrics.
    """
    if task != "classification" or not scores or scores.get("proba") is None:
        return None
    classes = scores.get("classes")
    if classes is None or len(classes) != 2:
        return None
    return EstimationReference.from_holdout(y_true, scores, metrics, seed=seed).to_dict()


# -- calibration -------------------------------------------------------------------------------


def _check_probabilities(proba: np.ndarray, where: str) -> np.ndarray:
    p = np.asarray(proba, dtype="float64")
    if p.ndim != 1:
        raise EstimationError(
            f"{where}: expected one positive-class probability per row, got shape {p.shape}"
        )
    bad = ~np.isfinite(p) | (p < 0) | (p > 1)
    if bad.any():
        raise EstimationError(
            f"{where}: {int(bad.sum())} value(s) are not probabilities in [0, 1] (first: {p[bad][0]!r}); "
            "CBPE needs the model's predict_proba output"
        )
    return p


def _check_reference(proba: np.ndarray, positive: np.ndarray) -> None:
    n_pos = int(np.sum(positive))
    n_neg = len(positive) - n_pos
    if len(positive) < MIN_REFERENCE_ROWS or min(n_pos, n_neg) < MIN_REFERENCE_CLASS_ROWS:
        raise EstimationError(
            f"the reference has {len(positive)} row(s) ({n_pos} positive, {n_neg} negative); calibration "
            f"needs at least {MIN_REFERENCE_ROWS}, and {MIN_REFERENCE_CLASS_ROWS} of each class: "
            "train on more data or raise model.holdout_fraction"
        )


def _isotonic(proba: np.ndarray, positive: np.ndarray) -> Any:
    from sklearn.isotonic import IsotonicRegression

    return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
        proba, positive.astype("float64")
    )


def isotonic_map(proba: np.ndarray, positive: np.ndarray, weights: np.ndarray | None = None) -> Any:
    """The isotonic calibration map of :func:`_isotonic`, fitted in a tenth of its time.

    The same estimator as ``IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip")``: tied
    probabilities are pooled (weighted mean label), the pool-adjacent-violators fit is
    ``scipy.optimize.isotonic_regression``, and the map interpolates linearly between the pooled
    points and is constant beyond them. Used for the hundreds of refits behind an interval.

    :param proba: shape ``(n,)``, reference probabilities.
    :param positive: shape ``(n,)``, bool labels.
    :param weights: shape ``(n,)``, row weights (bootstrap counts); None: ones.
    :returns: a function ``scores (m,) -> calibrated (m,)``.
    """
    from scipy.optimize import isotonic_regression

    w = np.ones(len(proba)) if weights is None else np.asarray(weights, dtype="float64")
    keep = w > 0
    x, inverse = np.unique(np.asarray(proba, dtype="float64")[keep], return_inverse=True)
    total = np.bincount(inverse, weights=w[keep])
    mean = np.bincount(inverse, weights=w[keep] * np.asarray(positive, dtype="float64")[keep]) / total
    fitted = isotonic_regression(mean, weights=total).x
    return lambda score: np.interp(np.asarray(score, dtype="float64"), x, fitted)


def needs_calibration(
    proba: np.ndarray,
    positive: np.ndarray,
    *,
    folds: int = CALIBRATION_FOLDS,
    seed: int = 0,
    draws: int = 200,
) -> tuple[bool, dict[str, float]]:
    """The calibration rule of :mod:`this module <mlops_ops.core.estimation>`: whether to apply the
    isotonic map, decided on the reference alone.

    The probabilities are used as they are only when both checks pass:

    * **Brier**: the cross-fitted isotonic Brier score (``folds`` folds) is not lower than the raw
      one (the map does not help out of sample);
    * **self-consistency**: CBPE from the raw probabilities reproduces the reference's own realised
      ROC AUC and accuracy (predicted positive: probability above 0.5) within 2 standard errors of
      the realised metric (simulated from ``draws`` label draws). The Brier check alone is too weak:
      a model can pass it while its spread of probabilities overstates its AUC.

    :param proba: shape ``(n,)``, raw positive-class probabilities of the reference.
    :param positive: shape ``(n,)``, bool labels of the reference.
    :returns: ``(calibrate, figures)``; figures: ``brier_raw``, ``brier_cross_fitted`` and, per
        checked metric, ``<metric>_raw_estimate``, ``<metric>_realised``, ``<metric>_se``.
    """
    p = np.asarray(proba, dtype="float64")
    y = np.asarray(positive, dtype=bool)
    rng = np.random.default_rng(seed)
    fold = rng.permutation(len(p)) % folds
    fitted = np.empty_like(p)
    for k in range(folds):
        test = fold == k
        fitted[test] = _isotonic(p[~test], y[~test]).predict(p[test])
    figures = {
        "brier_raw": float(np.mean((p - y) ** 2)),
        "brier_cross_fitted": float(np.mean((fitted - y) ** 2)),
    }
    calibrate = figures["brier_cross_fitted"] < figures["brier_raw"]
    predicted = p > 0.5  # a binary predict_proba's argmax
    labels = rng.random((draws, len(p))) < p
    for metric in ("roc_auc", "accuracy"):
        estimate = expected_metric(metric, p, predicted, p)
        realised = float(realised_metrics(metric, p, predicted, y)[0])
        se = float(np.nanstd(realised_metrics(metric, p, predicted, labels), ddof=1))
        figures.update(
            {f"{metric}_raw_estimate": estimate, f"{metric}_realised": realised, f"{metric}_se": se}
        )
        if not abs(estimate - realised) <= 2 * se:
            calibrate = True
    return calibrate, figures


# -- expected and realised metrics ------------------------------------------------------------


def _ratio(num: Any, den: Any, empty: float) -> Any:
    num, den = np.asarray(num, dtype="float64"), np.asarray(den, dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, empty)


def _from_counts(metric: str, tp: Any, fp: Any, fn: Any, tn: Any) -> Any:
    """A confusion-count metric, with ``core.metrics``' conventions (zero_division=0)."""
    n = tp + fp + fn + tn
    if metric == "accuracy":
        return _ratio(tp + tn, n, math.nan)
    if metric == "precision":
        return _ratio(tp, tp + fp, 0.0)
    if metric == "recall":
        return _ratio(tp, tp + fn, 0.0)
    if metric == "f1":
        return _ratio(2 * tp, 2 * tp + fp + fn, 0.0)
    tpr, tnr = _ratio(tp, tp + fn, math.nan), _ratio(tn, tn + fp, math.nan)  # balanced accuracy
    return np.where(np.isnan(tpr), tnr, np.where(np.isnan(tnr), tpr, (tpr + tnr) / 2))


def check_metric(metric: str) -> None:
    """:raises EstimationError: ``metric`` is not one CBPE estimates (regression metrics, unknown names)."""
    if metric not in ESTIMABLE_METRICS:
        kind = "a regression metric" if metric in METRIC_DIRECTIONS else "not a known metric"
        raise EstimationError(
            f"{metric!r} cannot be estimated without labels ({kind}); CBPE estimates {list(ESTIMABLE_METRICS)} "
            "of a binary classifier"
        )


def expected_metric(metric: str, score: np.ndarray, predicted: np.ndarray, calibrated: np.ndarray) -> float:
    """The CBPE point estimate of ``metric`` on a batch (see the module's step 2).

    :param score: shape ``(n,)``, the model's raw positive-class probability (orders the rows).
    :param predicted: shape ``(n,)``, bool, True where the model predicts the positive class.
    :param calibrated: shape ``(n,)``, the calibrated probability that each row is positive.
    :returns: the expected metric; NaN when undefined (an empty batch, no expected positives).
    :raises EstimationError: ``metric`` is not estimable.
    """
    check_metric(metric)
    p = np.asarray(calibrated, dtype="float64")
    q = 1.0 - p
    if len(p) == 0:
        return math.nan
    if metric == "roc_auc":
        return _expected_auc(np.asarray(score, dtype="float64"), p)
    if metric in ("log_loss", "brier"):
        s = np.clip(np.asarray(score, dtype="float64"), _EPS, 1 - _EPS)
        if metric == "log_loss":
            return float(np.mean(-(p * np.log(s) + q * np.log1p(-s))))
        return float(np.mean(p * (1 - s) ** 2 + q * s**2))
    pred = np.asarray(predicted, dtype=bool)
    tp, fp = float(p[pred].sum()), float(q[pred].sum())
    fn, tn = float(p[~pred].sum()), float(q[~pred].sum())
    return float(_from_counts(metric, tp, fp, fn, tn))


def _expected_auc(score: np.ndarray, p: np.ndarray) -> float:
    """E[correctly ordered (positive, negative) pairs] / E[(positive, negative) pairs], rows distinct."""
    q = 1.0 - p
    order = np.argsort(score, kind="mergesort")
    s, ps, qs = score[order], p[order], q[order]
    _, start, counts = np.unique(s, return_index=True, return_counts=True)
    group_p = np.add.reduceat(ps, start)
    group_q = np.add.reduceat(qs, start)
    group_pq = np.add.reduceat(ps * qs, start)
    q_below = np.concatenate(([0.0], np.cumsum(group_q)[:-1]))
    # pairs across groups count 1, pairs of distinct rows within a tied group count one half
    correct = float(np.sum(group_p * q_below) + 0.5 * np.sum(group_p * group_q - group_pq))
    pairs = float(p.sum() * q.sum() - np.sum(p * q))
    return correct / pairs if pairs > 0 else math.nan


def realised_metrics(metric: str, score: np.ndarray, predicted: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The realised ``metric`` for each row of a label matrix, vectorised over the rows.

    :param score: shape ``(n,)``, raw positive-class probabilities.
    :param predicted: shape ``(n,)``, bool predictions of the positive class.
    :param labels: shape ``(b, n)`` (or ``(n,)``), bool, True where the row is positive.
    :returns: shape ``(b,)``: the metric per label vector, as ``core.metrics.compute_metrics``
        computes it (AUC: the Mann-Whitney statistic, ties one half; NaN with one class).
    :raises EstimationError: ``metric`` is not estimable.
    """
    check_metric(metric)
    y = np.atleast_2d(np.asarray(labels, dtype="float64"))
    n = y.shape[1]
    s = np.asarray(score, dtype="float64")
    if metric == "roc_auc":
        ranks = rankdata(s)  # average ranks: ties count one half
        n_pos = y.sum(axis=1)
        n_neg = n - n_pos
        return np.asarray(_ratio(y @ ranks - n_pos * (n_pos + 1) / 2, n_pos * n_neg, math.nan))
    if metric in ("log_loss", "brier"):
        c = np.clip(s, _EPS, 1 - _EPS)
        one, zero = (-np.log(c), -np.log1p(-c)) if metric == "log_loss" else ((1 - c) ** 2, c**2)
        return np.asarray((y @ one + (1 - y) @ zero) / n)
    pred = np.asarray(predicted, dtype="float64")
    tp = y @ pred
    fp = pred.sum() - tp
    fn = y.sum(axis=1) - tp
    tn = n - tp - fp - fn
    return np.asarray(_from_counts(metric, tp, fp, fn, tn))


# -- the estimate --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PerformanceEstimate:
    """One metric estimated on one batch.

    :param metric: the metric's name.
    :param estimate: the CBPE point estimate (NaN when undefined on the batch).
    :param lower: lower bound of the interval of the realised metric (None when undefined).
    :param upper: upper bound.
    :param level: the interval's nominal coverage (0.95).
    :param standard_error: the standard deviation of the simulated realised metric.
    :param rows: rows of the batch.
    :param reference: the metric realised on the reference (the training holdout), or None.
    :param calibrated: True when the isotonic map was applied, False when the model's probabilities
        were used as they are.
    """

    metric: str
    estimate: float
    lower: float | None
    upper: float | None
    level: float
    standard_error: float | None
    rows: int
    reference: float | None
    calibrated: bool

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        if not math.isfinite(self.estimate):
            doc["estimate"] = None
        return doc


def estimate_performance(
    reference: EstimationReference,
    score: np.ndarray,
    predicted: np.ndarray,
    *,
    metrics: Iterable[str] = DEFAULT_METRICS,
    level: float = 0.95,
    resamples: int = 400,
    seed: int = 0,
    calibrate: bool | None = None,
) -> dict[str, PerformanceEstimate]:
    """CBPE estimates of ``metrics`` on a batch, each with the interval of its realised value.

    Method, calibration rule and interval: the module's docstring (source: NannyML documentation,
    "Confidence-based Performance Estimation").

    :param reference: the training holdout's probabilities and labels.
    :param score: shape ``(n,)``, the model's raw positive-class probability on the batch's rows.
    :param predicted: shape ``(n,)``, bool, True where the model predicts the positive class (its
        own threshold, as ``predict`` applies it).
    :param metrics: metric names, each in :data:`ESTIMABLE_METRICS`.
    :param level: nominal coverage of the interval, in (0, 1).
    :param resamples: simulated label draws (and calibration refits) behind the interval.
    :param seed: seed of the draws; the same inputs and seed give the same result.
    :param calibrate: force (True) or skip (False) the isotonic map; None applies the rule
        (:func:`needs_calibration`).
    :returns: ``metric -> PerformanceEstimate``, in the order given.
    :raises EstimationError: a metric CBPE does not cover, a reference too small or with one class,
        values that are not probabilities, shapes that differ, a level outside (0, 1).
    """
    names = list(dict.fromkeys(metrics))
    for name in names:
        check_metric(name)
    if not 0 < level < 1:
        raise EstimationError(f"level must be in (0, 1), got {level!r}")
    s = _check_probabilities(score, "the batch's scores")
    pred = np.asarray(predicted, dtype=bool)
    if pred.shape != s.shape:
        raise EstimationError(f"predicted has shape {pred.shape}, scores {s.shape}: one per row each")
    ref_p = _check_probabilities(reference.proba, "the reference's probabilities")
    ref_y = np.asarray(reference.positive, dtype=bool)
    _check_reference(ref_p, ref_y)
    rng = np.random.default_rng(seed)
    if calibrate is None:
        calibrate = needs_calibration(ref_p, ref_y, seed=seed)[0]
    calibrated = _isotonic(ref_p, ref_y).predict(s) if calibrate else s
    # the simulated batches: (resamples, n) calibrated probabilities, each from a map refitted on a
    # resample of the reference (also when the point estimate uses the probabilities as they are:
    # "calibrated" is itself only known to the reference's precision), then labels drawn from them
    draws = np.empty((resamples, len(s)))
    for b in range(resamples):
        w = np.bincount(rng.integers(0, len(ref_p), size=len(ref_p)), minlength=len(ref_p)).astype("float64")
        if not (ref_y & (w > 0)).any() or (ref_y | (w == 0)).all():
            w = np.ones(len(ref_p))  # a one-class resample fits no map; practically never
        draws[b] = isotonic_map(ref_p, ref_y, w)(s)
    labels = rng.random((resamples, len(s))) < draws
    out: dict[str, PerformanceEstimate] = {}
    alpha = (1 - level) / 2
    for name in names:
        point = expected_metric(name, s, pred, calibrated)
        simulated = realised_metrics(name, s, pred, labels)
        simulated = simulated[np.isfinite(simulated)]
        ok = len(simulated) >= max(10, resamples // 2) and math.isfinite(point)
        lower, upper = np.quantile(simulated, [alpha, 1 - alpha]) if ok else (None, None)
        out[name] = PerformanceEstimate(
            metric=name,
            estimate=point,
            lower=None if lower is None else float(lower),
            upper=None if upper is None else float(upper),
            level=level,
            standard_error=float(np.std(simulated, ddof=1)) if ok else None,
            rows=len(s),
            reference=reference.metrics.get(name),
            calibrated=bool(calibrate),
        )
    return out


def describe_estimate(report: Mapping[str, Any]) -> list[str]:
    """Lines for a reader (the demo) from an estimate report (``EstimatePerformanceOperator``'s).

    ``["estimated before labels: AUC 0.812 [0.781, 0.840] on 300 rows (v2; holdout 0.834)", ...]``;
    a skipped or unestimable report gives one line saying why.
    """
    names = {"roc_auc": "AUC", "accuracy": "accuracy", "f1": "F1", "log_loss": "log loss", "brier": "Brier"}

    def fmt(value: Any) -> str:
        return "n/a" if value is None or not math.isfinite(float(value)) else f"{float(value):.3f}"

    if report.get("estimate") is None:
        why = report.get("reason") or "; ".join(report.get("reasons") or []) or "no estimate"
        return [f"estimated before labels: none ({why})"]
    metric = str(report.get("metric"))
    line = (
        f"estimated before labels: {names.get(metric, metric)} {fmt(report['estimate'])} "
        f"[{fmt(report.get('lower'))}, {fmt(report.get('upper'))}] on {report.get('rows')} rows "
        f"(v{report.get('champion_version')}; holdout {fmt(report.get('reference'))})"
    )
    lines = [line]
    if report.get("realised") is not None:
        lines.append(
            f"realised on this batch's labels: {names.get(metric, metric)} {fmt(report['realised'])}"
        )
    return lines


__all__ = [
    "CAVEAT",
    "DEFAULT_METRICS",
    "ESTIMABLE_METRICS",
    "EstimationError",
    "EstimationReference",
    "PerformanceEstimate",
    "check_metric",
    "describe_estimate",
    "estimate_performance",
    "expected_metric",
    "isotonic_map",
    "needs_calibration",
    "realised_metrics",
    "reference_document",
]
