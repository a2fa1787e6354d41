"""Attribution drift: has the model's reliance on its input columns moved?

The **attribution profile** of a model on some rows is the mean |SHAP| of each input column
(:mod:`mlops_ops.core.explain`); its **shares** divide it by its sum, so they add up to 1 and do
not change when every contribution grows or shrinks alike. The reference profile is the one train
logs on a seeded sample of the holdout (``explain/shap_importance.json``); the batch profile is
the champion's on a seeded sample of the batch, with the same explainer and output space.

**Statistic.** ``moved = 1/2 * sum_j |share_batch_j - share_ref_j|``: the total variation distance
between the two share vectors, i.e. the share of the total attribution that moved from some
columns to others (0: the same reliance; 1: disjoint). It is the L1 distance used by feature
attribution monitoring in the cloud platforms (e.g. Vertex AI's attribution drift), here on shares.

**Interval.** Percentile bootstrap over the batch's rows (Efron & Tibshirani 1993, ch. 13):
``n_boot`` resamples of the rows with replacement, the statistic recomputed on each (vectorised).
The reference is treated as fixed: its own noise (1,000 holdout rows) is what ``delta`` absorbs.

**Verdict.** ``drift`` when the lower bound of the one-sided ``1 - alpha`` interval exceeds
``delta`` (at least ``delta`` of the attribution moved, with confidence ``1 - alpha``), so a small
batch's noise alone does not alarm; ``insufficient_data`` below ``min_rows`` rows; else
``no_drift``. The share of attribution moved is biased upwards by sampling noise (a distance is
never negative), which the lower bound and ``delta`` both guard against.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops_ops.errors import MlopsError

#: default threshold: share of the total attribution that moved
DELTA = 0.1
#: default one-sided error level of the bootstrap lower bound
ALPHA = 0.05
#: default bootstrap resamples
N_BOOT = 500
#: default smallest batch judged
MIN_ROWS = 100


class AttributionDriftError(MlopsError, ValueError):
    """The batch's attributions cannot be compared with the reference."""


def shares(mean_abs: Mapping[str, float] | np.ndarray) -> Any:
    """Mean |SHAP| divided by its sum (all zero: equal shares). Same shape/keys as given."""
    if isinstance(mean_abs, Mapping):
        values = shares(np.asarray(list(mean_abs.values()), dtype="float64"))
        return dict(zip(mean_abs, map(float, values), strict=True))
    arr = np.asarray(mean_abs, dtype="float64")
    total = arr.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(total > 0, arr / np.where(total > 0, total, 1.0), 1.0 / arr.shape[-1])
    return out


def share_moved(reference_shares: np.ndarray, batch_mean_abs: np.ndarray) -> Any:
    """``1/2 * sum |shares(batch) - reference|`` along the last axis (vectorised over resamples)."""
    return 0.5 * np.abs(shares(batch_mean_abs) - reference_shares).sum(axis=-1)


@dataclass
class AttributionDrift:
    """The verdict on a batch's attribution profile.

    :param status: ``drift``, ``no_drift`` or ``insufficient_data``.
    :param moved: share of the total attribution that moved (0..1), None below ``min_rows``.
    :param lower: bootstrap lower bound (one-sided, level ``1 - alpha``).
    :param upper: bootstrap upper bound (one-sided, level ``1 - alpha``).
    :param total_ratio: the batch's total mean |SHAP| over the reference's (reported, not judged).
    :param columns: per column: ``column``, ``reference_mean_abs``, ``batch_mean_abs``,
        ``reference_share``, ``batch_share``, ``change`` (batch - reference share), largest
        |change| first.
    """

    status: str
    moved: float | None
    lower: float | None
    upper: float | None
    delta: float
    alpha: float
    rows: int
    min_rows: int
    n_boot: int
    seed: int
    total_ratio: float | None = None
    columns: list[dict[str, Any]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "statistic": "share_of_attribution_moved",
            "moved": self.moved,
            "lower": self.lower,
            "upper": self.upper,
            "level": 1 - self.alpha,
            "delta": self.delta,
            "rows": self.rows,
            "min_rows": self.min_rows,
            "n_boot": self.n_boot,
            "seed": self.seed,
            "total_ratio": self.total_ratio,
            "columns": self.columns,
            "reasons": list(self.reasons),
        }


def attribution_drift(
    reference: Mapping[str, float],
    batch: pd.DataFrame,
    *,
    delta: float = DELTA,
    alpha: float = ALPHA,
    n_boot: int = N_BOOT,
    min_rows: int = MIN_ROWS,
    seed: int = 0,
) -> AttributionDrift:
    """Compare the batch's attribution profile with the reference's.

    :param reference: the reference's mean |SHAP| per input column (``mean_abs_shap`` of
        ``explain/shap_importance.json``).
    :param batch: the batch's SHAP values, rows x input columns (``Explanation.values``), in the
        reference's explainer output space.
    :param delta: smallest share of the attribution whose move is drift (0 < delta < 1).
    :param alpha: one-sided error level of the bootstrap lower bound.
    :param n_boot: bootstrap resamples of the batch's rows.
    :param min_rows: fewer rows are ``insufficient_data``, never drift.
    :param seed: seed of the resamples.
    :raises AttributionDriftError: the batch's columns differ from the reference's, or the
        parameters are out of range.
    """
    if not 0 < delta < 1 or not 0 < alpha < 1 or n_boot < 1:
        raise AttributionDriftError(
            f"need 0 < delta < 1, 0 < alpha < 1 and n_boot >= 1; got {delta}, {alpha}, {n_boot}"
        )
    names = list(reference)
    if sorted(map(str, batch.columns)) != sorted(names):
        raise AttributionDriftError(
            f"the batch is explained on columns {sorted(map(str, batch.columns))}, the reference on "
            f"{sorted(names)}: not the same model's attributions; retrain the champion"
        )
    rows = len(batch)
    result = AttributionDrift(
        "insufficient_data", None, None, None, delta, alpha, rows, min_rows, n_boot, seed
    )
    ref_abs = np.asarray([float(reference[c]) for c in names], dtype="float64")
    ref_share = shares(ref_abs)
    absolute = np.abs(batch[names].to_numpy(dtype="float64"))
    batch_abs = absolute.mean(axis=0) if rows else np.zeros(len(names))
    batch_share = shares(batch_abs)
    result.columns = sorted(
        (
            {
                "column": c,
                "reference_mean_abs": float(ref_abs[j]),
                "batch_mean_abs": float(batch_abs[j]),
                "reference_share": float(ref_share[j]),
                "batch_share": float(batch_share[j]),
                "change": float(batch_share[j] - ref_share[j]),
            }
            for j, c in enumerate(names)
        ),
        key=lambda r: -abs(r["change"]),
    )
    if rows < min_rows:
        result.reasons.append(f"{rows} row(s) explained, fewer than min_rows={min_rows}: not judged")
        return result
    total = float(ref_abs.sum())
    result.total_ratio = float(batch_abs.sum() / total) if total > 0 else None
    result.moved = float(share_moved(ref_share, batch_abs))
    rng = np.random.default_rng(seed)
    # resample rows in chunks of resamples, so memory stays ~ 8 MB whatever the batch size
    chunk = max(1, 1_000_000 // max(1, rows * len(names)))
    stats = []
    for start in range(0, n_boot, chunk):
        idx = rng.integers(0, rows, size=(min(chunk, n_boot - start), rows))
        stats.append(share_moved(ref_share, absolute[idx].mean(axis=1)))
    boot = np.concatenate(stats)
    result.lower = float(np.quantile(boot, alpha))
    result.upper = float(np.quantile(boot, 1 - alpha))
    if result.lower > delta:
        result.status = "drift"
        top = result.columns[0]
        result.reasons.append(
            f"{result.moved:.1%} of the attribution moved (lower bound {result.lower:.1%} > delta "
            f"{delta:.1%}); most: {top['column']!r} {top['reference_share']:.1%} -> {top['batch_share']:.1%}"
        )
    else:
        result.status = "no_drift"
        result.reasons.append(
            f"{result.moved:.1%} of the attribution moved (lower bound {result.lower:.1%} <= delta {delta:.1%})"
        )
    return result


__all__ = ["AttributionDrift", "AttributionDriftError", "attribution_drift", "share_moved", "shares"]
