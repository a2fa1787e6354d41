"""The per-column drift tests and the multiple-testing correction.

- numeric: the batch is binned on the reference edges with the rule the profile used (bins
  ``[e_j, e_j+1)``, the last one closed, plus a tail below the first and above the last edge).
  Kolmogorov-Smirnov statistic = max |F_ref - F_cur| over the edges (both CDFs are known exactly
  there, and on both sides of an edge holding repeated reference values, so a 0/1 flag or a small
  integer can drift), p-value from the limiting Kolmogorov distribution with ``sqrt(n m / (n + m))``;
  effect = Wasserstein-1 distance / reference std, with both CDFs linear inside the bins and the
  tails beyond the reference range integrated from the actual values (a constant reference: the
  share of values off the constant). PSI is reported for information.
- categorical: chi-square on the 2 x K table of reference vs current counts; categories the
  reference does not name (and its ``__other__`` bucket) are pooled into one cell, sparse cells
  (expected count < 5) are merged into it; effect = Jensen-Shannon distance (base 2).
- missing rate: pooled two-proportion z-test; effect = absolute change of the rate.
- every p-value of the batch goes into one Holm (or Benjamini-Hochberg) correction
  (:func:`adjust_p_values`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy import special
from scipy.spatial.distance import jensenshannon

from mlops_ops.core.drift.batch import _category_counts, _numeric_chunks
from mlops_ops.core.drift.profile import _TIE, OTHER, CategoricalProfile, NumericProfile, _bin_counts
from mlops_ops.core.jsonsafe import json_safe

_PSI_EPS = 1e-4  # floor of a bin share in PSI (a reference tail bin is empty by construction)
CORRECTIONS = ("holm", "bh")
_MIN_EXPECTED = 5.0  # chi-square cells with a smaller expected count are pooled


@dataclass
class MissingDrift:
    """The missing-rate test of one column (pooled two-proportion z-test).

    ``tested`` is False when there is nothing to test (both rates 0 or both 1, or an empty side);
    then ``p_value`` is 1 and the test is left out of the multiple-testing family.
    """

    reference_rate: float
    current_rate: float
    statistic: float | None
    p_value: float
    p_adjusted: float
    effect: float
    effect_threshold: float
    drifted: bool
    tested: bool

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> MissingDrift:
        return cls(**doc)


@dataclass
class ColumnDrift:
    """The drift tests of one column.

    ``test`` is ``"ks"`` (numeric) or ``"chi2"`` (categorical); ``statistic`` is the KS distance or
    the chi-square value, ``effect`` the Wasserstein distance / reference std or the Jensen-Shannon
    distance, compared with ``effect_threshold``. ``tested`` is False when the distribution test
    could not run (no current or no reference values); then statistic and effect are None and
    p is 1. ``distribution_drifted`` is the verdict of the distribution test, ``missing.drifted``
    the one of the missing-rate test, ``drifted`` either. ``rows`` counts the non-missing current
    values. ``histogram`` holds the shares for a plot: numeric ``edges``, ``reference`` and
    ``current`` bin shares and the current ``below``/``above`` tail shares; categorical
    ``categories`` with ``reference`` and ``current`` shares (unnamed categories under ``__other__``).
    """

    name: str
    kind: str
    test: str
    statistic: float | None
    p_value: float
    p_adjusted: float
    effect: float | None
    effect_threshold: float
    drifted: bool
    distribution_drifted: bool
    tested: bool
    psi: float | None
    unseen_share: float | None
    wasserstein: float | None
    missing: MissingDrift
    rows: int
    histogram: dict[str, Any]
    note: str | None = None

    @property
    def ratio(self) -> float:
        """Effect relative to its threshold (the larger of the two tests): how far past the line."""
        ratios = [0.0]
        if self.effect is not None:
            ratios.append(self.effect / self.effect_threshold if self.effect_threshold > 0 else math.inf)
        if self.missing.tested:
            m = self.missing
            ratios.append(m.effect / m.effect_threshold if m.effect_threshold > 0 else math.inf)
        return max(ratios)

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = json_safe(asdict(self))
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ColumnDrift:
        doc = dict(doc)
        doc["missing"] = MissingDrift.from_dict(doc["missing"])
        return cls(**doc)


# --------------------------------------------------------------------------- statistics


def _psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two share vectors, shares floored at a small epsilon."""
    r = np.maximum(reference, _PSI_EPS)
    c = np.maximum(current, _PSI_EPS)
    return float(np.sum((c - r) * np.log(c / r)))


def _missing_test(ref_missing: int, ref_total: int, cur_missing: int, cur_total: int) -> MissingDrift:
    """Pooled two-proportion z-test of the missing rates; not tested when there is nothing to compare."""
    ref_rate = ref_missing / ref_total if ref_total else 0.0
    cur_rate = cur_missing / cur_total if cur_total else 0.0
    effect = abs(cur_rate - ref_rate)
    pooled = (ref_missing + cur_missing) / (ref_total + cur_total) if ref_total + cur_total else 0.0
    if not ref_total or not cur_total or pooled * (1 - pooled) <= 0:
        return MissingDrift(ref_rate, cur_rate, None, 1.0, 1.0, effect, 0.0, False, False)
    se = math.sqrt(pooled * (1 - pooled) * (1 / ref_total + 1 / cur_total))
    z = (cur_rate - ref_rate) / se
    p_value = float(special.erfc(abs(z) / math.sqrt(2)))
    return MissingDrift(ref_rate, cur_rate, z, p_value, p_value, effect, 0.0, False, True)


def _untested(
    name: str, kind: str, missing: MissingDrift, rows: int, histogram: dict[str, Any], note: str
) -> ColumnDrift:
    return ColumnDrift(
        name=name,
        kind=kind,
        test="ks" if kind == "numeric" else "chi2",
        statistic=None,
        p_value=1.0,
        p_adjusted=1.0,
        effect=None,
        effect_threshold=0.0,
        drifted=False,
        distribution_drifted=False,
        tested=False,
        psi=None,
        unseen_share=None,
        wasserstein=None,
        missing=missing,
        rows=rows,
        histogram=histogram,
        note=note,
    )


def _tracked_edges(p: NumericProfile) -> np.ndarray:
    """Edges whose reference point mass is checked on its own (repeated values; a constant column)."""
    k = len(p.edges) - 1
    tracked = np.zeros(k + 1, dtype=bool)
    if p.edge_counts is not None and len(p.edge_counts) == k + 1:
        tracked = np.asarray(p.edge_counts, dtype=np.int64) >= _TIE
    if k == 0:
        tracked[0] = True
    return tracked


def _numeric_column(name: str, p: NumericProfile, values: pd.Series | pa.ChunkedArray) -> ColumnDrift:
    """KS, Wasserstein and PSI of one numeric column against its reference bins."""
    edges = np.asarray(p.edges, dtype=np.float64)
    k = len(edges) - 1
    tracked_edges = _tracked_edges(p)
    lt_at = np.ones(k + 1, dtype=bool)
    le_at = tracked_edges.copy()
    if k >= 0:
        lt_at[k] = tracked_edges[k]
        le_at[k] = False  # x <= e_k comes from x > e_k
    c = _bin_counts(_numeric_chunks(values), edges, lt_at, le_at)
    m, n = c.n, p.n
    missing = _missing_test(p.missing, p.n + p.missing, c.missing, c.n + c.missing)
    ref_shares = [v / n for v in p.counts] if n else []
    if k < 0 or n == 0 or m == 0:
        histogram: dict[str, Any] = {
            "edges": list(p.edges),
            "reference": ref_shares,
            "current": [0.0] * len(ref_shares),
            "below": 0.0,
            "above": 0.0,
        }
        why = "no reference values" if k < 0 or n == 0 else "no current values"
        return _untested(name, "numeric", missing, m, histogram, f"{why}: distribution not tested")

    # plain Python from here: ~20 numbers per column, where numpy's per-call cost would dominate
    lt, le, bins = c.lt.tolist(), c.le.tolist(), p.counts
    below, above = lt[0], c.gt
    tracked = tracked_edges.tolist()
    eq = list(p.edge_counts) if p.edge_counts is not None and len(p.edge_counts) == k + 1 else [0] * (k + 1)
    if k == 0:
        eq[0] = n
    cum = [0] * (k + 1)  # reference values below each edge
    for j in range(1, k):
        cum[j] = cum[j - 1] + bins[j - 1]
    cum[k] = n - eq[k]
    # F_ref - F_cur just below (d_lt) and at (d_le) each edge; exact at e_j^- for j < k, at e_k,
    # and on both sides of a tracked edge (a point mass)
    d_lt = [cum[j] / n - lt[j] / m for j in range(k + 1)]
    d_le = [(cum[j] + eq[j]) / n - le[j] / m for j in range(k)] + [1.0 - le[k] / m]
    ref_cdf, gaps = [], []
    for j in range(k + 1):
        if j < k or tracked[k]:
            ref_cdf.append(cum[j] / n)
            gaps.append(d_lt[j])
        if tracked[j] or j == k:
            ref_cdf.append((cum[j] + eq[j]) / n if j < k else 1.0)
            gaps.append(d_le[j])
    distance = max(abs(g) for g in gaps)
    ref_cells = np.diff([0.0, *ref_cdf, 1.0])
    cur_cells = np.diff([0.0, *(r - g for r, g in zip(ref_cdf, gaps, strict=True)), 1.0])
    psi = _psi(ref_cells, cur_cells)
    tails = (c.below_sum + c.above_sum) / m
    note = None
    if k == 0:
        wasserstein = tails
        effect = (below + above) / m
        note = f"constant reference {edges[0]:g}: effect is the share of values different from it"
        ref_bins = [1.0]
        cur_bins = [(m - below - above) / m]
    else:
        # Wasserstein-1 = integral of |F_ref - F_cur|: linear inside each bin (after the point
        # mass at its left edge, if tracked), plus the current tails beyond the reference range
        area = 0.0
        for j in range(k):
            start = d_le[j] if tracked[j] else d_lt[j]
            end = d_lt[j + 1] if j + 1 < k or tracked[k] else d_le[k]
            width = p.edges[j + 1] - p.edges[j]
            if start * end >= 0:
                area += width * (abs(start) + abs(end)) / 2
            else:  # the CDFs cross inside the bin
                area += width * (start * start + end * end) / (2 * (abs(start) + abs(end)))
        wasserstein = area + tails
        std = p.std if p.std else p.edges[-1] - p.edges[0]
        effect = wasserstein / std
        ref_bins = [v / n for v in bins]
        cur_bins = [(lt[j + 1] - lt[j]) / m for j in range(k - 1)] + [(m - above - lt[k - 1]) / m]
    p_value = float(special.kolmogorov(math.sqrt(n * m / (n + m)) * distance))
    histogram = {
        "edges": list(p.edges),
        "reference": ref_bins,
        "current": cur_bins,
        "below": below / m,
        "above": above / m,
    }
    if k > 0 and any(tracked):
        at = [j for j in range(k + 1) if tracked[j]]
        histogram["points"] = {
            "values": [p.edges[j] for j in at],
            "reference": [eq[j] / n for j in at],
            "current": [(le[j] - lt[j]) / m for j in at],
        }
    return ColumnDrift(
        name=name,
        kind="numeric",
        test="ks",
        statistic=distance,
        p_value=min(1.0, max(0.0, p_value)),
        p_adjusted=p_value,
        effect=float(effect),
        effect_threshold=0.0,
        drifted=False,
        distribution_drifted=False,
        tested=True,
        psi=psi,
        unseen_share=None,
        wasserstein=float(wasserstein),
        missing=missing,
        rows=m,
        histogram=histogram,
        note=note,
    )


def _chi_square(ref: np.ndarray, cur: np.ndarray) -> tuple[float, int]:
    """Chi-square of a 2 x K table whose last cell is the pooled "other" cell; returns (stat, dof).

    Cells with an expected count below 5 in either row go into the pooled cell; while the pooled
    cell itself is sparse, the smallest remaining cell joins it.
    """
    n, m = float(ref.sum()), float(cur.sum())
    total = n + m
    small = min(n, m) / total
    col = ref + cur
    named = [j for j in range(len(col) - 1) if col[j] > 0]
    pool_ref, pool_cur = float(ref[-1]), float(cur[-1])
    cells = []
    for j in named:
        if col[j] * small < _MIN_EXPECTED:
            pool_ref += ref[j]
            pool_cur += cur[j]
        else:
            cells.append(j)
    cells.sort(key=lambda j: col[j])
    while cells and 0 < (pool_ref + pool_cur) * small < _MIN_EXPECTED:
        j = cells.pop(0)
        pool_ref += ref[j]
        pool_cur += cur[j]
    table_ref = [float(ref[j]) for j in cells]
    table_cur = [float(cur[j]) for j in cells]
    if pool_ref + pool_cur > 0:
        table_ref.append(pool_ref)
        table_cur.append(pool_cur)
    if len(table_ref) < 2:
        return 0.0, 0
    r = np.asarray(table_ref)
    q = np.asarray(table_cur)
    both = r + q
    exp_r = both * n / total
    exp_q = both * m / total
    stat = float(np.sum((r - exp_r) ** 2 / exp_r) + np.sum((q - exp_q) ** 2 / exp_q))
    return stat, len(table_ref) - 1


def _categorical_column(name: str, p: CategoricalProfile, values: pd.Series | pa.ChunkedArray) -> ColumnDrift:
    """Chi-square, Jensen-Shannon distance, unseen share and PSI of one categorical column."""
    names = [c for c in p.counts if c != OTHER]
    ref = np.asarray([p.counts[c] for c in names] + [p.counts.get(OTHER, 0)], dtype=np.float64)
    named, other, cur_missing = _category_counts(values, names)
    cur = np.concatenate([named, [other]]).astype(np.float64)
    m = int(cur.sum())
    n = int(ref.sum())
    missing = _missing_test(p.missing, p.n + p.missing, cur_missing, m + cur_missing)
    keep = (ref > 0) | (cur > 0)
    labels = [*names, OTHER]
    histogram: dict[str, Any] = {
        "categories": [label for label, k in zip(labels, keep, strict=True) if k],
        "reference": [float(v) for v in (ref[keep] / n if n else ref[keep] * 0)],
        "current": [float(v) for v in (cur[keep] / m if m else cur[keep] * 0)],
    }
    if n == 0 or m == 0:
        why = "no reference values" if n == 0 else "no current values"
        return _untested(name, "categorical", missing, m, histogram, f"{why}: distribution not tested")
    stat, dof = _chi_square(ref, cur)
    p_value = float(special.chdtrc(dof, stat)) if dof > 0 else 1.0
    note = None if dof > 0 else "a single category cell after merging sparse cells: nothing to compare"
    effect = float(jensenshannon(ref / n, cur / m, base=2))
    return ColumnDrift(
        name=name,
        kind="categorical",
        test="chi2",
        statistic=stat,
        p_value=min(1.0, max(0.0, p_value)),
        p_adjusted=p_value,
        effect=effect if math.isfinite(effect) else 0.0,
        effect_threshold=0.0,
        drifted=False,
        distribution_drifted=False,
        tested=True,
        psi=_psi(ref / n, cur / m),
        unseen_share=other / m,
        wasserstein=None,
        missing=missing,
        rows=m,
        histogram=histogram,
        note=note,
    )


def adjust_p_values(p_values: Sequence[float], method: str = "holm") -> list[float]:
    """Holm (step-down, family-wise error) or Benjamini-Hochberg (false discovery rate) adjustment.

    Adjusted p-values in the input order, as R's ``p.adjust``. BH is
    :func:`scipy.stats.false_discovery_control` (Benjamini & Hochberg 1995); Holm (Holm 1979),
    which scipy lacks, is computed here.

    :raises ValueError: ``method`` is not one of :data:`CORRECTIONS`, or a p-value is not in [0, 1].
    """
    if method not in CORRECTIONS:
        raise ValueError(f"correction must be one of {list(CORRECTIONS)}, got {method!r}")
    p = np.asarray(p_values, dtype=np.float64)
    size = len(p)
    if size == 0:
        return []
    if not np.all((p >= 0.0) & (p <= 1.0)):  # also NaN
        raise ValueError(f"p-values must lie in [0, 1], got {[float(v) for v in p if not 0.0 <= v <= 1.0]}")
    if method == "bh":
        from scipy.stats import false_discovery_control

        return [float(v) for v in np.atleast_1d(false_discovery_control(p, method="bh"))]
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate(np.minimum(1.0, (size - np.arange(size)) * p[order]))
    out = np.empty(size)
    out[order] = adjusted
    return [float(v) for v in out]


# --------------------------------------------------------------------------- verdict
