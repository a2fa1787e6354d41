"""The paired bootstrap: a confidence interval of ``challenger - champion`` for one metric.

Both models are scored on the same resampled holdout rows, so the interval reflects the noise of
the difference. The gate's evidence rule (:func:`mlops_ops.core.evaluation.bootstrap_rule`) turns
the interval into a verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlops_ops.config import METRIC_DIRECTIONS
from mlops_ops.core.metrics import GateError, metric_kernel, undefined_reason

#: Share of bootstrap resamples that may be degenerate (e.g. one class only, for AUC) before the
#: interval is considered unreliable and the bootstrap rule fails closed.
MAX_INVALID_RESAMPLES = 0.01


@dataclass(frozen=True)
class BootstrapResult:
    """Percentile interval of ``sign * (challenger - champion)``: positive means the challenger is better."""

    metric: str
    higher_is_better: bool
    challenger: float
    champion: float
    estimate: float
    lower: float
    upper: float
    confidence: float
    resamples: int
    valid_resamples: int
    seed: int
    rows: int
    method: str = "percentile"


def paired_bootstrap(
    metric: str,
    task: str,
    y_true: np.ndarray,
    challenger: Mapping[str, Any],
    champion: Mapping[str, Any],
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    higher_is_better: bool | None = None,
    max_cells: int = 100_000,
) -> BootstrapResult:
    """Paired bootstrap CI of the metric difference, both models scored on the same resampled rows.

    Each resample draws ``n`` row indices with replacement (seeded), and both models are scored on
    exactly those rows, so the interval reflects the noise of the difference, not of each metric.
    The interval is the percentile interval at ``confidence`` (two-sided): its lower bound is the
    ``(1 - confidence) / 2`` quantile. Work is vectorised over chunks of at most ``max_cells``
    (resamples x rows) counts. Raises :class:`GateError` when it cannot give a reliable interval.
    """
    y = np.asarray(y_true)
    n = len(y)
    if n < 2:
        raise GateError(f"the holdout has {n} row(s); a bootstrap needs at least 2")
    for who, scores in (("challenger", challenger), ("champion", champion)):
        for key in ("pred", "proba"):
            if scores.get(key) is not None and len(scores[key]) != n:
                raise GateError(f"{who} has {len(scores[key])} {key} values for {n} holdout rows")
    if task == "classification":
        cc, bc = challenger.get("classes"), champion.get("classes")
        if cc is not None and bc is not None and list(np.asarray(cc)) != list(np.asarray(bc)):
            raise GateError(f"the models' classes differ ({list(cc)} vs {list(bc)}): they cannot be compared")
    hib = METRIC_DIRECTIONS[metric] if higher_is_better is None else higher_is_better
    sign = 1.0 if hib else -1.0
    k_new = metric_kernel(metric, task, y, challenger)
    k_old = metric_kernel(metric, task, y, champion)
    ones = np.ones((1, n))
    new, old = float(k_new(ones)[0]), float(k_old(ones)[0])
    if not (math.isfinite(new) and math.isfinite(old)):
        reason = undefined_reason(metric, task, y) or "non-finite predictions"
        raise GateError(f"{metric} is not finite on the holdout ({reason})")
    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples)
    chunk = max(1, min(resamples, max_cells // n))
    for start in range(0, resamples, chunk):
        m = min(chunk, resamples - start)
        idx = rng.integers(0, n, size=(m, n))
        idx += (np.arange(m) * n)[:, None]
        w = np.bincount(idx.ravel(), minlength=m * n).reshape(m, n).astype("float64")
        diffs[start : start + m] = sign * (k_new(w) - k_old(w))
    valid = diffs[np.isfinite(diffs)]
    if len(valid) < (1 - MAX_INVALID_RESAMPLES) * resamples:
        why = {"roc_auc": "drew one class only", "r2": "drew a constant target"}.get(
            metric, "were degenerate"
        )
        raise GateError(
            f"{resamples - len(valid)} of {resamples} resamples {why}, so {metric} is undefined on "
            f"them; the holdout ({n} rows) is too small for a bootstrap of {metric}"
        )
    alpha = (1 - confidence) / 2
    lower, upper = (float(q) for q in np.quantile(valid, [alpha, 1 - alpha]))
    return BootstrapResult(
        metric=metric,
        higher_is_better=hib,
        challenger=new,
        champion=old,
        estimate=sign * (new - old),
        lower=lower,
        upper=upper,
        confidence=confidence,
        resamples=resamples,
        valid_resamples=int(len(valid)),
        seed=seed,
        rows=n,
    )


def resample_counts(rng: np.random.Generator, n: int, resamples: int) -> np.ndarray:
    """How often each of ``n`` rows is drawn in each of ``resamples`` bootstrap resamples: a
    ``(resamples, n)`` float matrix of counts, each row summing to ``n`` (the weights the
    kernels of :func:`mlops_ops.core.metrics.metric_kernel` take)."""
    drawn = rng.integers(0, n, size=(resamples, n)) + np.arange(resamples)[:, None] * n
    return np.bincount(drawn.ravel(), minlength=resamples * n).reshape(resamples, n).astype("float64")


@dataclass(frozen=True)
class Interval:
    """A percentile bootstrap interval of one metric on one sample."""

    value: float
    lower: float
    upper: float
    confidence: float
    resamples: int
    valid_resamples: int
    rows: int


def bootstrap_interval(
    kernel: Any,
    n: int,
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    max_cells: int = 200_000,
) -> Interval:
    """Percentile bootstrap interval of a metric on one sample of ``n`` rows (Efron & Tibshirani,
    An Introduction to the Bootstrap, 1993, ch. 13).

    :param kernel: ``W -> metric per row of W`` (:func:`mlops_ops.core.metrics.metric_kernel`).
    :param n: rows of the sample.
    :returns: the value on the whole sample and the ``(1 - confidence) / 2`` and
        ``(1 + confidence) / 2`` quantiles of the metric over ``resamples`` seeded resamples (two-sided).
    :raises GateError: fewer than 2 rows, a non-finite value, or more than
        :data:`MAX_INVALID_RESAMPLES` of the resamples degenerate (e.g. one class only, for AUC).
    """
    if n < 2:
        raise GateError(f"{n} row(s); a bootstrap needs at least 2")
    value = float(kernel(np.ones((1, n)))[0])
    if not math.isfinite(value):
        raise GateError("the metric is not finite on the sample")
    rng = np.random.default_rng(seed)
    values = np.empty(resamples)
    chunk = max(1, min(resamples, max_cells // n))
    for start in range(0, resamples, chunk):
        m = min(chunk, resamples - start)
        values[start : start + m] = kernel(resample_counts(rng, n, m))
    valid = values[np.isfinite(values)]
    if len(valid) < (1 - MAX_INVALID_RESAMPLES) * resamples:
        raise GateError(
            f"{resamples - len(valid)} of {resamples} resamples were degenerate (one class only, or a "
            f"constant target): {n} rows are too few for an interval"
        )
    alpha = (1 - confidence) / 2
    lower, upper = (float(q) for q in np.quantile(valid, [alpha, 1 - alpha]))
    return Interval(value, lower, upper, confidence, resamples, int(len(valid)), n)
