"""Drift: the reference profile of the training data, and the test of a new batch against it.

**Reference profile.** A compact summary of the training data, logged with every model, so
monitoring compares new data against the champion's own training data without re-reading it.
Numeric columns keep reference-quantile bin edges with the counts (the binned CDF), the number of
reference values equal to each edge (point masses: flags and small integers), moments and the
missing rate; categorical columns keep category counts with an "other" bucket. A profile is a few
KB per column and round-trips through JSON (format version 1; ``edge_counts`` is optional, so
profiles written before it existed still load and are tested on their bins alone).

**Drift test** (:func:`detect_drift`), per column and then per dataset:

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
- every p-value of the batch goes into one Holm (or Benjamini-Hochberg) correction (a test with
  nothing to compare, e.g. missing rates both 0, is left out); a test flags drift only when its
  adjusted p < alpha AND its effect >= its threshold. The dataset drifts when a
  critical column drifts or, by ``rule``, when any column drifts (default: the correction already
  holds the family-wise error rate), when the drifted share reaches ``drift_share``, or when the
  drifted columns carry ``importance_share`` of the model's permutation importance; below
  ``min_rows`` rows the answer is ``insufficient_data``.

The batch is read one column at a time (Parquet: ``ParquetFile.read(columns=[name])``) and binned
in cache-sized blocks, so memory stays near one column whatever the width of the table.

The package holds one idea per module: :mod:`~mlops_ops.core.drift.profile` (the reference
profile), :mod:`~mlops_ops.core.drift.batch` (reading the batch),
:mod:`~mlops_ops.core.drift.statistics` (the per-column tests and the correction),
:mod:`~mlops_ops.core.drift.verdict` (thresholds, rules, :func:`detect_drift`) and
:mod:`~mlops_ops.core.drift.report` (the HTML page). The names below are the public API.
"""

from mlops_ops.core.drift.profile import (
    OTHER,
    PROFILE_VERSION,
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    build_reference_profile,
)
from mlops_ops.core.drift.statistics import CORRECTIONS, ColumnDrift, MissingDrift, adjust_p_values
from mlops_ops.core.drift.verdict import (
    DEFAULT_CONFIG,
    RULES,
    STATUSES,
    DriftConfig,
    DriftReport,
    detect_drift,
)

__all__ = [
    "CORRECTIONS",
    "DEFAULT_CONFIG",
    "OTHER",
    "PROFILE_VERSION",
    "RULES",
    "STATUSES",
    "CategoricalProfile",
    "ColumnDrift",
    "DriftConfig",
    "DriftReport",
    "MissingDrift",
    "NumericProfile",
    "ReferenceProfile",
    "adjust_p_values",
    "build_reference_profile",
    "detect_drift",
]
