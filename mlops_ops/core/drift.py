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
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, get_args

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from scipy import special
from scipy.spatial.distance import jensenshannon

from mlops_ops.config import DriftRule
from mlops_ops.core.jsonsafe import json_safe

log = logging.getLogger(__name__)

OTHER = "__other__"
PROFILE_VERSION = 1

STATUSES = ("drift", "no_drift", "insufficient_data")
CORRECTIONS = ("holm", "bh")
#: How column verdicts make the dataset verdict: any drifted column, a share of the columns, or a
#: share of the model's permutation importance (see :class:`DriftConfig`).
RULES: tuple[str, ...] = get_args(DriftRule)

_BLOCK = 1 << 16  # values binned per pass: a block and its mask stay in the CPU cache
_SMALL = 2048  # a block this small is sorted and searched rather than compared edge by edge
_SORT_PROFILE = 1 << 17  # up to this many reference values, sort them to find quantiles and counts
_PSI_EPS = 1e-4  # floor of a bin share in PSI (a reference tail bin is empty by construction)
_MIN_EXPECTED = 5.0  # chi-square cells with a smaller expected count are pooled
_TIE = 2  # an edge holding at least this many equal reference values is a point mass


# --------------------------------------------------------------------------- reference profile


@dataclass
class NumericProfile:
    """Quantile bins of one numeric column: ``counts[j]`` values in ``[edges[j], edges[j+1])``.

    The last bin is closed. ``edge_counts[j]`` (optional, absent in older profiles) is the number
    of values equal to ``edges[j]``; a repeated edge value is a point mass the drift test checks
    on its own (a 0/1 flag has edges ``[0, 1]`` and one bin, so without it a flag could not drift).
    """

    edges: list[float]
    counts: list[int]
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    n: int
    missing: int
    edge_counts: list[int] | None = None

    @property
    def missing_rate(self) -> float:
        total = self.n + self.missing
        return self.missing / total if total else 0.0


@dataclass
class CategoricalProfile:
    counts: dict[str, int]
    n: int
    missing: int

    @property
    def missing_rate(self) -> float:
        total = self.n + self.missing
        return self.missing / total if total else 0.0


@dataclass
class ReferenceProfile:
    """Profiles by column kind; ``excluded`` names the columns left out and why (e.g. datetimes),
    ``schema`` is the model version's frozen schema (:mod:`mlops_ops.core.schema`) when known."""

    rows: int
    numeric: dict[str, NumericProfile] = field(default_factory=dict)
    categorical: dict[str, CategoricalProfile] = field(default_factory=dict)
    version: int = PROFILE_VERSION
    excluded: dict[str, str] = field(default_factory=dict)
    schema: dict[str, Any] | None = None

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "rows": self.rows,
            "numeric": {k: asdict(v) for k, v in self.numeric.items()},
            "categorical": {k: asdict(v) for k, v in self.categorical.items()},
            **({"excluded": dict(self.excluded)} if self.excluded else {}),
            **({"schema": self.schema} if self.schema is not None else {}),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ReferenceProfile:
        if doc.get("version") != PROFILE_VERSION:
            raise ValueError(
                f"unsupported reference profile version {doc.get('version')!r}; expected {PROFILE_VERSION}"
            )
        return cls(
            rows=int(doc["rows"]),
            numeric={k: NumericProfile(**v) for k, v in doc.get("numeric", {}).items()},
            categorical={k: CategoricalProfile(**v) for k, v in doc.get("categorical", {}).items()},
            excluded=dict(doc.get("excluded") or {}),
            schema=doc.get("schema"),
        )


@dataclass
class _Counts:
    """One numeric column binned on reference edges ``e_0..e_k`` (see :func:`_bin_counts`)."""

    n: int = 0  # finite values
    missing: int = 0  # NaN, +-inf and nulls
    lt: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # #(x < e_j)
    le: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # #(x <= e_j)
    gt: int = 0  # #(x > e_k)
    below_sum: float = 0.0  # sum of (e_0 - x) over x < e_0
    above_sum: float = 0.0  # sum of (x - e_k) over x > e_k


def _float32_bounds(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For float32 ``x``: ``x < e`` iff ``x < up[j]`` and ``x <= e`` iff ``x <= down[j]``, exactly."""
    return _float32_bounds_of(np.ascontiguousarray(edges, dtype=np.float64).tobytes())


@functools.lru_cache(maxsize=1024)
def _float32_bounds_of(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    edges = np.frombuffer(raw, dtype=np.float64)
    with np.errstate(over="ignore"):
        near = edges.astype(np.float32)
    wide = near.astype(np.float64)
    up = np.where(wide < edges, np.nextafter(near, np.float32(np.inf)), near)
    down = np.where(wide > edges, np.nextafter(near, np.float32(-np.inf)), near)
    up, down = up.astype(np.float32), down.astype(np.float32)
    up.flags.writeable = down.flags.writeable = False  # shared through the cache
    return up, down


def _bin_counts(
    chunks: Iterable[np.ndarray], edges: np.ndarray, lt_at: np.ndarray, le_at: np.ndarray
) -> _Counts:
    """Count finite values below/at each edge: ``lt[j]`` where ``lt_at[j]``, ``le[j]`` where ``le_at[j]``.

    One comparison pass per requested edge over cache-sized blocks (much faster than a binary
    search per value for ~20 edges); a small block is sorted and searched instead (fewer calls).
    Float32 data is compared in float32 with the edges rounded outward, so every comparison is
    exact; other data in float64. Tails beyond the outer edges are summed from the actual values.
    """
    k = len(edges) - 1
    out = _Counts(lt=np.zeros(k + 1, dtype=np.int64), le=np.zeros(k + 1, dtype=np.int64))
    lt_idx = np.flatnonzero(lt_at)
    le_idx = np.flatnonzero(le_at)
    lo = float(edges[0]) if k >= 0 else 0.0
    hi = float(edges[-1]) if k >= 0 else 0.0
    cuts: dict[bool, tuple[np.ndarray, np.ndarray, Any]] = {}
    mask = np.empty(_BLOCK, dtype=bool)
    lt_add = np.zeros(len(lt_idx), dtype=np.int64)
    le_add = np.zeros(len(le_idx), dtype=np.int64)
    for chunk in chunks:
        x = np.asarray(chunk).reshape(-1)
        if x.dtype == np.float16:
            x = x.astype(np.float32)
        single = x.dtype == np.float32
        convert = not single and x.dtype != np.float64
        if k >= 0 and single not in cuts:
            if single:
                up, down = _float32_bounds(edges)
                cuts[single] = (up[lt_idx], down[le_idx], down[k])
            else:
                cuts[single] = (edges[lt_idx], edges[le_idx], hi)
        for start in range(0, len(x), _BLOCK):
            block = x[start : start + _BLOCK]
            if convert:
                block = block.astype(np.float64)
            finite = np.isfinite(block)
            count = int(np.count_nonzero(finite))
            out.missing += len(block) - count
            if count != len(block):
                block = block[finite]
            out.n += count
            if k < 0 or count == 0:
                continue
            lt_cuts, le_cuts, hi_cut = cuts[single]
            if count <= _SMALL:
                ordered = np.sort(block)
                lt_add[:] = np.searchsorted(ordered, lt_cuts, side="left")
                le_add[:] = np.searchsorted(ordered, le_cuts, side="right")
                above = count - int(np.searchsorted(ordered, hi_cut, side="right"))
                below = int(lt_add[0]) if len(lt_idx) and lt_idx[0] == 0 else 0
                low_values = ordered[:below]
                high_values = ordered[count - above :]
            else:
                buf = mask[:count]
                low_values = block[:0]
                for i, cut in enumerate(lt_cuts):
                    np.less(block, cut, out=buf)
                    lt_add[i] = np.count_nonzero(buf)
                    if i == 0 and lt_idx[0] == 0:
                        low_values = block[buf] if lt_add[0] else block[:0]
                for i, cut in enumerate(le_cuts):
                    np.less_equal(block, cut, out=buf)
                    le_add[i] = np.count_nonzero(buf)
                np.greater(block, hi_cut, out=buf)
                above = int(np.count_nonzero(buf))
                high_values = block[buf] if above else block[:0]
            out.lt[lt_idx] += lt_add
            out.le[le_idx] += le_add
            out.gt += above
            if len(low_values):
                out.below_sum += float(np.sum(lo - low_values.astype(np.float64)))
            if len(high_values):
                out.above_sum += float(np.sum(high_values.astype(np.float64) - hi))
    if k >= 0:
        out.le[k] = out.n - out.gt
    return out


def _quantile_edges(finite: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Distinct linear-interpolation quantiles at ``0, 1/bins, ..., 1`` (as ``np.quantile``), and the
    sorted data when it was cheaper to sort it than to partition it."""
    size = len(finite)
    position = (size - 1) * np.linspace(0.0, 1.0, bins + 1)
    low = np.floor(position).astype(np.intp)
    high = np.minimum(low + 1, size - 1)
    ordered: np.ndarray | None = None
    if size <= _SORT_PROFILE:
        at = ordered = np.sort(finite)
    else:
        at = np.partition(finite, np.unique(np.concatenate([low, high])))
    weight = position - low
    a, b = at[low].astype(np.float64), at[high].astype(np.float64)
    edges = np.where(weight < 0.5, a + (b - a) * weight, b - (b - a) * (1 - weight))
    return np.unique(edges), ordered


def _numeric_profile(values: pd.Series, bins: int) -> NumericProfile:
    if isinstance(values.dtype, np.dtype) and values.dtype.kind == "f" and values.dtype.itemsize <= 4:
        x = values.to_numpy().astype(np.float32, copy=False)  # sorted and searched as float32: exact
    else:
        x = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    finite = x[np.isfinite(x)]
    missing = int(len(x) - len(finite))
    if len(finite) == 0:
        return NumericProfile([], [], None, None, None, None, 0, missing)
    edges, ordered = _quantile_edges(finite, bins)
    k = len(edges) - 1
    # the binning rule detect_drift applies to a batch (the one of np.histogram): [e_j, e_j+1),
    # the last bin closed; the counts are exact comparisons either way
    if ordered is not None:
        up, down = _float32_bounds(edges) if ordered.dtype == np.float32 else (edges, edges)
        lt = np.searchsorted(ordered, up, side="left")
        le = np.searchsorted(ordered, down, side="right")
    else:
        c = _bin_counts([finite], edges, np.ones(k + 1, dtype=bool), np.ones(k + 1, dtype=bool))
        lt, le = c.lt, c.le
    counts = [len(finite)] if k == 0 else np.diff(np.r_[lt[:k], le[k]]).tolist()
    wide = finite.astype(np.float64, copy=False)
    return NumericProfile(
        edges=[float(e) for e in edges],
        counts=[int(v) for v in counts],
        mean=float(wide.mean()),
        std=float(wide.std(ddof=1)) if len(finite) > 1 else 0.0,
        min=float(edges[0]),
        max=float(edges[-1]),
        n=int(len(finite)),
        missing=missing,
        edge_counts=[int(v) for v in le - lt],
    )


def _categorical_profile(values: pd.Series, max_categories: int) -> CategoricalProfile:
    from mlops_ops.core.schema import coerce_column

    text = coerce_column(values, "categorical", column=str(values.name)).astype("string")
    missing = int(text.isna().sum())
    counts = text.dropna().value_counts()
    top = counts.iloc[:max_categories]
    result = {str(k): int(v) for k, v in top.items()}
    rest = int(counts.iloc[max_categories:].sum())
    if rest:
        result[OTHER] = rest
    return CategoricalProfile(counts=result, n=int(counts.sum()), missing=missing)


def build_reference_profile(
    frame: pd.DataFrame,
    *,
    categorical: list[str] | tuple[str, ...] | None = None,
    numeric: list[str] | tuple[str, ...] | None = None,
    bins: int = 20,
    max_categories: int = 50,
    schema: Any = None,
) -> ReferenceProfile:
    """Profile the given columns (default: every column, kinds inferred once).

    Inferred kinds follow :func:`mlops_ops.core.schema.infer_column`: numbers and flags are
    numeric, text is categorical, and timestamps (or ISO 8601 date text) and integers beyond
    int64 are never categories: they are left out and listed in ``excluded`` with the reason.
    ``schema`` (:class:`~mlops_ops.core.schema.Schema`) is stored in the profile, and its
    excluded columns are listed. Categorical values are profiled as the schema's canonical labels.
    """
    from mlops_ops.core.schema import CATEGORICAL, infer_column

    excluded: dict[str, str] = {}
    if categorical is None and numeric is None:
        numeric, categorical = [], []
        for col in frame.columns:
            kind, why = infer_column(frame[col])
            if kind == "numeric":
                numeric.append(col)
            elif kind == CATEGORICAL:
                categorical.append(col)
            else:
                excluded[str(col)] = why or f"{kind} column: not profiled"
    elif numeric is None:
        given = set(categorical or ())
        numeric = [c for c in frame.columns if c not in given and pd.api.types.is_numeric_dtype(frame[c])]
    categorical = list(categorical or [])
    profile = ReferenceProfile(rows=int(len(frame)))
    for col in numeric:
        profile.numeric[col] = _numeric_profile(frame[col], bins)
    for col in categorical:
        profile.categorical[col] = _categorical_profile(frame[col], max_categories)
    if schema is not None:
        excluded.update({k: v for k, v in schema.excluded.items() if k not in excluded})
        profile.schema = schema.to_dict()
    profile.excluded = excluded
    return profile


# --------------------------------------------------------------------------- configuration


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _names(field_name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ValueError(f"DriftConfig.{field_name} must be a list or tuple of column names, got {value!r}")
    bad = [v for v in value if not isinstance(v, str) or not v]
    if bad:
        raise ValueError(f"DriftConfig.{field_name} must hold non-empty strings, got {bad!r}")
    if len(set(value)) != len(value):
        dupes = sorted({v for v in value if list(value).count(v) > 1})
        raise ValueError(f"DriftConfig.{field_name} names a column twice: {dupes!r}")
    return tuple(value)


def _checked_by_spec(name: str, value: Any, expected: str) -> None:
    """Validate one verdict setting with the pipeline spec's field (``monitoring.drift.<name>``)."""
    from pydantic import ValidationError

    from mlops_ops.config import DriftSpec

    try:
        DriftSpec.model_validate({name: value}, strict=True)
    except ValidationError:
        raise ValueError(f"DriftConfig.{name} must be {expected}, got {value!r}") from None


def _weights(value: Any) -> tuple[tuple[str, float], ...]:
    """``{column: weight}`` or ``(column, weight)`` pairs -> sorted pairs of finite floats."""
    try:
        pairs = list(value.items()) if isinstance(value, Mapping) else [tuple(p) for p in value]
    except TypeError:
        pairs = None
    if pairs is None or any(len(p) != 2 for p in pairs):
        raise ValueError(f"DriftConfig.importance must map column names to numbers, got {value!r}")
    bad = [(k, w) for k, w in pairs if not isinstance(k, str) or not k or not _is_number(w)]
    if bad:
        raise ValueError(
            f"DriftConfig.importance must map column names to finite numbers; bad entries: {bad[:5]!r}"
        )
    names = [k for k, _ in pairs]
    if len(set(names)) != len(names):
        twice = sorted({k for k in names if names.count(k) > 1})
        raise ValueError(f"DriftConfig.importance names a column twice: {twice!r}")
    return tuple(sorted((k, float(w)) for k, w in pairs))


@dataclass(frozen=True)
class DriftConfig:
    """Thresholds of the drift test, validated when built.

    :param alpha: significance level after the multiple-testing correction, in (0, 1).
    :param delta: numeric effect threshold: Wasserstein-1 distance / reference std (for a constant
        reference column: the share of current values different from the constant).
    :param categorical_delta: categorical effect threshold: Jensen-Shannon distance (base 2), [0, 1].
    :param missing_delta: missing-rate effect threshold: absolute change of the rate, [0, 1].
    :param correction: ``"holm"`` (family-wise error) or ``"bh"`` (Benjamini-Hochberg, false
        discovery rate), applied once over every p-value of the batch.
    :param drift_share: with ``rule="share"``: the dataset drifts when at least this share of the
        checked columns drift, in (0, 1].
    :param critical_columns: any of these drifting means the dataset drifts (under every rule).
    :param min_rows: below this many rows the status is ``insufficient_data``, never ``drift``.
    :param columns: the profile columns to check (``None``: all of them).
    :param rule: how the column verdicts make the dataset verdict (see :data:`RULES`):
        ``"any"`` (default): one drifted column is a dataset drift; the correction already holds
        the family-wise error rate at ``alpha``, so no second threshold is needed to stay calm;
        ``"share"``: at least ``drift_share`` of the checked columns drifted;
        ``"importance"``: the drifted columns carry at least ``importance_share`` of the model's
        permutation importance (``importance``).
    :param importance_share: with ``rule="importance"``, in (0, 1].
    :param importance: column -> the champion's permutation importance (the drop of its metric
        when the column is shuffled); negative values count as 0 and unnamed columns weigh 0.
        Required by ``rule="importance"``. Stored as sorted ``(column, weight)`` pairs.
    """

    alpha: float = 0.01
    delta: float = 0.1
    categorical_delta: float = 0.05
    missing_delta: float = 0.05
    correction: str = "holm"
    drift_share: float = 0.3
    critical_columns: tuple[str, ...] = ()
    min_rows: int = 100
    columns: tuple[str, ...] | None = None
    rule: str = "any"
    importance_share: float = 0.2
    importance: tuple[tuple[str, float], ...] | None = None

    def __post_init__(self) -> None:
        if not _is_number(self.alpha) or not 0 < self.alpha < 1:
            raise ValueError(f"DriftConfig.alpha must be a number in (0, 1), got {self.alpha!r}")
        if not _is_number(self.delta) or self.delta < 0:
            raise ValueError(f"DriftConfig.delta must be a finite number >= 0, got {self.delta!r}")
        for name in ("categorical_delta", "missing_delta"):
            value = getattr(self, name)
            if not _is_number(value) or not 0 <= value <= 1:
                raise ValueError(f"DriftConfig.{name} must be a number in [0, 1], got {value!r}")
        if self.correction not in CORRECTIONS:
            raise ValueError(
                f"DriftConfig.correction must be one of {list(CORRECTIONS)}, got {self.correction!r}"
            )
        # the verdict settings are validated by the pipeline spec's own fields: one definition
        _checked_by_spec("drift_share", self.drift_share, "a number in (0, 1]")
        _checked_by_spec("rule", self.rule, f"one of {list(RULES)}")
        _checked_by_spec("importance_share", self.importance_share, "a number in (0, 1]")
        if self.importance is not None:
            object.__setattr__(self, "importance", _weights(self.importance))
        elif self.rule == "importance":
            raise ValueError(
                "DriftConfig.rule 'importance' needs importance, the model's permutation importance "
                "per column (e.g. the champion's explain/permutation_importance.json)"
            )
        object.__setattr__(self, "critical_columns", _names("critical_columns", self.critical_columns))
        if not isinstance(self.min_rows, int) or isinstance(self.min_rows, bool) or self.min_rows < 1:
            raise ValueError(f"DriftConfig.min_rows must be an integer >= 1, got {self.min_rows!r}")
        if self.columns is not None:
            columns = _names("columns", self.columns)
            if not columns:
                raise ValueError("DriftConfig.columns must name at least one column, or be None for all")
            object.__setattr__(self, "columns", columns)
            outside = [c for c in self.critical_columns if c not in columns]
            if outside:
                raise ValueError(
                    f"DriftConfig.critical_columns {outside!r} are not among DriftConfig.columns {list(columns)!r}"
                )

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["critical_columns"] = list(self.critical_columns)
        doc["columns"] = None if self.columns is None else list(self.columns)
        doc["importance"] = None if self.importance is None else dict(self.importance)
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> DriftConfig:
        doc = dict(doc)
        doc["critical_columns"] = tuple(doc.get("critical_columns") or ())
        if doc.get("columns") is not None:
            doc["columns"] = tuple(doc["columns"])
        # documents written before the rule existed were judged by the share of drifted columns
        doc.setdefault("rule", "share")
        return cls(**doc)


DEFAULT_CONFIG = DriftConfig()


# --------------------------------------------------------------------------- results


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


@dataclass
class DriftReport:
    """The drift verdict on one batch: per-column tests, the dataset status and why.

    ``status`` is ``"drift"``, ``"no_drift"`` or ``"insufficient_data"``; ``rows`` is the batch size,
    ``reference_rows`` the profile's; ``drifted_share`` = drifted columns / checked columns;
    ``family_size`` is the number of p-values in the multiple-testing correction;
    ``drifted_importance_share`` = the drifted columns' share of the positive permutation importance
    (None without importance weights).
    """

    status: str
    rows: int
    reference_rows: int
    columns: list[ColumnDrift]
    drifted_columns: list[str]
    drifted_share: float
    reasons: list[str]
    config: DriftConfig
    family_size: int = 0
    drifted_importance_share: float | None = None

    @property
    def drifted(self) -> bool:
        return self.status == "drift"

    def column(self, name: str) -> ColumnDrift:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"no column {name!r} in this drift report; columns: {[c.name for c in self.columns]}")

    def summary(self) -> str:
        """One line for logs and asset events."""
        size = f"{self.rows:,} rows vs {self.reference_rows:,} reference rows"
        if self.status == "insufficient_data":
            return f"insufficient data: {size} (min_rows {self.config.min_rows:,})"
        checked = len(self.columns)
        names = ", ".join(self.drifted_columns[:5]) + (", ..." if len(self.drifted_columns) > 5 else "")
        which = f" ({names})" if names else ""
        label = "drift" if self.status == "drift" else "no drift"
        return f"{label}: {len(self.drifted_columns)} of {checked} columns drifted{which}; {size}"

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = json_safe(
            {
                "status": self.status,
                "drifted": self.drifted,
                "rows": self.rows,
                "reference_rows": self.reference_rows,
                "drifted_columns": list(self.drifted_columns),
                "drifted_share": self.drifted_share,
                "family_size": self.family_size,
                "rule": self.config.rule,
                "drifted_importance_share": self.drifted_importance_share,
                "reasons": list(self.reasons),
                "config": self.config.to_dict(),
                "columns": [c.to_dict() for c in self.columns],
            }
        )
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> DriftReport:
        if doc.get("status") not in STATUSES:
            raise ValueError(
                f"drift report status must be one of {list(STATUSES)}, got {doc.get('status')!r}"
            )
        return cls(
            status=doc["status"],
            rows=int(doc["rows"]),
            reference_rows=int(doc["reference_rows"]),
            columns=[ColumnDrift.from_dict(c) for c in doc["columns"]],
            drifted_columns=list(doc["drifted_columns"]),
            drifted_share=float(doc["drifted_share"]),
            reasons=list(doc["reasons"]),
            config=DriftConfig.from_dict(doc["config"]),
            family_size=int(doc.get("family_size", 0)),
            drifted_importance_share=doc.get("drifted_importance_share"),
        )

    def with_config(self, config: DriftConfig) -> DriftReport:
        """The verdict under other thresholds, from the stored statistics (no data is read again).

        Equal to running :func:`detect_drift` again with ``config`` on the same batch. ``columns``
        may only narrow the columns of this report (``None`` keeps all of them).
        """
        present = [c.name for c in self.columns]
        if config.columns is not None:
            unknown = [c for c in config.columns if c not in present]
            if unknown:
                raise ValueError(f"columns {unknown!r} are not in this drift report; it has {present!r}")
        keep = present if config.columns is None else [c for c in present if c in config.columns]
        columns = [replace(c, missing=replace(c.missing)) for c in self.columns if c.name in keep]
        return _judge(columns, self.rows, self.reference_rows, config)


# --------------------------------------------------------------------------- reading the batch


class _Batch:
    """Column-at-a-time access to a DataFrame, an Arrow table or a Parquet file."""

    def __init__(self, data: Any) -> None:
        self._frame: pd.DataFrame | None = None
        self._table: pa.Table | None = None
        self._file: pq.ParquetFile | None = None
        self._owned = False
        self._labels: dict[str, Any] = {}
        if isinstance(data, pd.DataFrame):
            self._frame = data
            self.rows = len(data)
            self.names = [str(c) for c in data.columns]
            self._labels = {str(c): c for c in data.columns}
        elif isinstance(data, pa.Table | pa.RecordBatch):
            self._table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
            self.rows = self._table.num_rows
            self.names = list(self._table.column_names)
        elif isinstance(data, pq.ParquetFile):
            self._file = data
        elif isinstance(data, str | os.PathLike) or hasattr(data, "read"):
            self._file = pq.ParquetFile(data)
            self._owned = True
        else:
            raise TypeError(
                "drift data must be a pandas DataFrame, a pyarrow Table, a Parquet path or a "
                f"pyarrow.parquet.ParquetFile, got {type(data).__name__}"
            )
        if self._file is not None:
            self.rows = int(self._file.metadata.num_rows)
            self.names = list(self._file.schema_arrow.names)

    def close(self) -> None:
        if self._owned and self._file is not None:
            self._file.close()

    def check(self, wanted: Sequence[str]) -> None:
        """Every wanted column is present exactly once, or a ValueError says what is there."""
        missing = [c for c in wanted if c not in self.names]
        if missing:
            shown = self.names[:50] + ([f"... {len(self.names) - 50} more"] if len(self.names) > 50 else [])
            raise ValueError(
                f"drift data is missing {len(missing)} profile column(s): {missing!r}; "
                f"columns present: {shown!r}"
            )
        twice = sorted({c for c in wanted if self.names.count(c) > 1})
        if twice:
            raise ValueError(f"drift data holds column(s) {twice!r} more than once")

    def column(self, name: str) -> pd.Series | pa.ChunkedArray:
        if self._frame is not None:
            return self._frame[self._labels[name]]
        if self._table is not None:
            return self._table.column(name)
        assert self._file is not None
        return self._file.read(columns=[name]).column(0)


def _numeric_chunks(values: pd.Series | pa.ChunkedArray) -> Iterator[np.ndarray]:
    """Numeric arrays of one column (nulls as NaN), chunk by chunk, without copying float data.

    Non-numeric data is coerced the way the profile coerced it (``pd.to_numeric``, errors -> NaN).
    """
    if isinstance(values, pd.Series):
        dtype = values.dtype
        if isinstance(dtype, np.dtype) and dtype.kind in "fiub":
            return iter([values.to_numpy()])
        if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
            return iter([values.to_numpy(dtype="float64", na_value=np.nan)])
        coerced = pd.to_numeric(values, errors="coerce")
        return iter([coerced.to_numpy(dtype="float64", na_value=np.nan)])

    def arrays() -> Iterator[np.ndarray]:
        for chunk in values.chunks:
            if pa.types.is_dictionary(chunk.type):
                chunk = chunk.dictionary_decode()
            kind = chunk.type
            if pa.types.is_null(kind):
                yield np.full(len(chunk), np.nan)
            elif pa.types.is_floating(kind):
                yield chunk.to_numpy(zero_copy_only=False)
            elif pa.types.is_integer(kind) or pa.types.is_boolean(kind) or pa.types.is_decimal(kind):
                if chunk.null_count or not pa.types.is_integer(kind):
                    yield pc.cast(chunk, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
                else:
                    yield chunk.to_numpy()
            else:
                coerced = pd.to_numeric(chunk.to_pandas(), errors="coerce")
                yield coerced.to_numpy(dtype="float64", na_value=np.nan)

    return arrays()


def _text(values: pa.Array) -> pa.Array:
    """Arrow values as ``large_string`` canonical labels, as the profile made them
    (:func:`mlops_ops.core.schema.canonical_label`: ``101``, ``101.0`` and ``Int64`` 101 are "101")."""
    from mlops_ops.core.schema import coerce_column

    kind = values.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return values.cast(pa.large_string())
    series = coerce_column(values.to_pandas(), "categorical", column="")
    return pa.array(series, type=pa.large_string(), from_pandas=True)


def _category_counts(values: pd.Series | pa.ChunkedArray, names: list[str]) -> tuple[np.ndarray, int, int]:
    """Counts of the named categories, of the other non-missing values, and of missing values.

    Values become text the way the profile made them text (pandas ``astype("string")``). Arrow data
    is counted with ``pyarrow.compute.value_counts`` (dictionary arrays on their indices) and only
    the distinct values are turned into text.
    """
    texts: list[pa.Array] = []
    tallies: list[np.ndarray] = []
    missing = 0
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()
        missing = int(np.count_nonzero(codes < 0))
        texts.append(_text(pa.array(values.cat.categories)))
        tallies.append(np.bincount(codes[codes >= 0], minlength=len(values.cat.categories)))
    else:
        if isinstance(values, pd.Series):
            from mlops_ops.core.schema import coerce_column

            labels = coerce_column(values, "categorical", column=str(values.name))
            values = pa.chunked_array([pa.array(labels, type=pa.large_string(), from_pandas=True)])
        plain = []
        for chunk in values.chunks:
            if pa.types.is_dictionary(chunk.type):
                missing += chunk.null_count
                codes = pc.drop_null(chunk.indices).to_numpy(zero_copy_only=False)
                texts.append(_text(chunk.dictionary))
                tallies.append(np.bincount(codes, minlength=len(chunk.dictionary)))
            else:
                plain.append(chunk)
        if plain:
            column = pa.chunked_array(plain)
            counted = pc.value_counts(column)
            distinct = counted.field("values")
            texts.append(_text(distinct))
            tallies.append(counted.field("counts").to_numpy(zero_copy_only=False))
    named = np.zeros(len(names), dtype=np.int64)
    if not texts:
        return named, 0, missing
    text = pa.concat_arrays(texts) if len(texts) > 1 else texts[0]
    counts = np.concatenate(tallies).astype(np.int64)
    valid = text.is_valid().to_numpy(zero_copy_only=False)
    missing += int(counts[~valid].sum())
    position = pc.index_in(text, value_set=pa.array(names, type=pa.large_string()))
    known = valid & position.is_valid().to_numpy(zero_copy_only=False)
    at = position.to_numpy(zero_copy_only=False)[known].astype(np.int64)
    named += np.bincount(at, weights=counts[known], minlength=len(names)).astype(np.int64)
    total = int(counts[valid].sum())
    return named, total - int(named.sum()), missing


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


def _g(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _column_reasons(col: ColumnDrift, config: DriftConfig) -> list[str]:
    reasons = []
    if col.distribution_drifted:
        if col.kind == "numeric":
            effect = "share of values off the constant" if col.note else "Wasserstein/std"
            text = (
                f"{col.name!r}: KS D={_g(col.statistic)} (adjusted p={col.p_adjusted:.2g} < alpha "
                f"{config.alpha:g}), {effect} {_g(col.effect)} >= delta {config.delta:g}"
            )
        else:
            text = (
                f"{col.name!r}: chi-square {_g(col.statistic)} (adjusted p={col.p_adjusted:.2g} < alpha "
                f"{config.alpha:g}), Jensen-Shannon distance {_g(col.effect)} >= categorical_delta "
                f"{config.categorical_delta:g}"
            )
            if col.unseen_share:
                text += f"; {col.unseen_share:.1%} of values in categories the reference does not name"
        reasons.append(text)
    if col.missing.drifted:
        m = col.missing
        reasons.append(
            f"{col.name!r}: missing rate {m.reference_rate:.2%} -> {m.current_rate:.2%} (z={_g(m.statistic)}, "
            f"adjusted p={m.p_adjusted:.2g} < alpha {config.alpha:g}), change {m.effect:.3g} >= "
            f"missing_delta {config.missing_delta:g}"
        )
    return reasons


def _judge(columns: list[ColumnDrift], rows: int, reference_rows: int, config: DriftConfig) -> DriftReport:
    """Thresholds, one multiple-testing correction over the batch, column and dataset verdicts."""
    names = [c.name for c in columns]
    unknown = [c for c in config.critical_columns if c not in names]
    if unknown:
        raise ValueError(f"critical columns {unknown!r} are not among the checked columns {names!r}")
    family: list[tuple[ColumnDrift | MissingDrift, float]] = []
    for col in columns:
        col.effect_threshold = config.delta if col.kind == "numeric" else config.categorical_delta
        col.missing.effect_threshold = config.missing_delta
        col.p_adjusted = 1.0
        col.missing.p_adjusted = 1.0
        if col.tested:
            family.append((col, col.p_value))
        if col.missing.tested:
            family.append((col.missing, col.missing.p_value))
    adjusted = adjust_p_values([p for _, p in family], config.correction)
    for (test, _), value in zip(family, adjusted, strict=True):
        test.p_adjusted = value
    enough = rows >= config.min_rows
    for col in columns:
        col.distribution_drifted = bool(
            enough
            and col.tested
            and col.effect is not None
            and col.p_adjusted < config.alpha
            and col.effect >= col.effect_threshold
        )
        m = col.missing
        m.drifted = bool(
            enough and m.tested and m.p_adjusted < config.alpha and m.effect >= m.effect_threshold
        )
        col.drifted = col.distribution_drifted or m.drifted
    drifted = [c.name for c in columns if c.drifted]
    share = len(drifted) / len(columns) if columns else 0.0
    critical = [c for c in config.critical_columns if c in drifted]
    importance = _importance_share(columns, drifted, config)
    reasons: list[str] = []
    if not enough:
        status = "insufficient_data"
        reasons.append(
            f"the batch has {rows:,} rows, fewer than min_rows {config.min_rows:,}: drift is not judged"
        )
    else:
        met, rule_reason = _dataset_rule(columns, drifted, share, importance, config)
        status = "drift" if critical or met else "no_drift"
        if drifted:
            reasons.append(rule_reason)
            if critical:
                reasons.append(f"critical column(s) drifted: {', '.join(critical)}")
            elif config.critical_columns:
                reasons.append("no critical column drifted")
            for col in columns:
                reasons.extend(_column_reasons(col, config))
        else:
            reasons.append(f"none of {len(columns)} columns drifted")
        quiet = [
            c.name
            for c in columns
            if not c.drifted
            and (
                (c.tested and c.p_adjusted < config.alpha)
                or (c.missing.tested and c.missing.p_adjusted < config.alpha)
            )
        ]
        if quiet:
            reasons.append(
                f"{len(quiet)} column(s) differ significantly but by less than the effect threshold: "
                + ", ".join(quiet[:10])
                + (", ..." if len(quiet) > 10 else "")
            )
    return DriftReport(
        status=status,
        rows=int(rows),
        reference_rows=int(reference_rows),
        columns=columns,
        drifted_columns=drifted,
        drifted_share=share,
        reasons=reasons,
        config=config,
        family_size=len(family),
        drifted_importance_share=importance,
    )


def _importance_share(columns: list[ColumnDrift], drifted: list[str], config: DriftConfig) -> float | None:
    """The drifted columns' share of the positive importance of the checked columns, or None
    when no importance is given or no checked column has a positive importance."""
    if config.importance is None:
        return None
    weights = dict(config.importance)
    total = sum(max(weights.get(c.name, 0.0), 0.0) for c in columns)
    if total <= 0:
        return None
    return sum(max(weights.get(name, 0.0), 0.0) for name in drifted) / total


def _dataset_rule(
    columns: list[ColumnDrift],
    drifted: list[str],
    share: float,
    importance: float | None,
    config: DriftConfig,
) -> tuple[bool, str]:
    """Whether the drifted columns make a dataset drift under ``config.rule``, and the sentence why."""
    counted = f"{len(drifted)} of {len(columns)} columns drifted"
    if config.rule == "share":
        sign = ">=" if share >= config.drift_share else "<"
        return bool(drifted) and share >= config.drift_share, (
            f"{counted} ({share:.1%} {sign} drift_share {config.drift_share:.1%})"
        )
    if config.rule == "importance":
        if importance is None:
            return bool(drifted), (
                f"{counted}; no checked column has a positive permutation importance, so the rule "
                "'importance' cannot weigh them: judged by the rule 'any' (one drifted column is a "
                "dataset drift)"
            )
        sign = ">=" if importance >= config.importance_share else "<"
        return bool(drifted) and importance >= config.importance_share, (
            f"{counted}, holding {importance:.1%} of the model's permutation importance ({sign} "
            f"importance_share {config.importance_share:.1%})"
        )
    return bool(drifted), f"{counted} (rule 'any': one drifted column is a dataset drift)"


def detect_drift(profile: ReferenceProfile, data: Any, config: DriftConfig = DEFAULT_CONFIG) -> DriftReport:
    """Test a batch against the reference profile, column by column, then as a dataset.

    :param profile: the reference profile (the champion's training data).
    :param data: a pandas DataFrame, a pyarrow Table, a path to a Parquet file or an open
        ``pyarrow.parquet.ParquetFile``. Parquet is read one column at a time.
    :param config: thresholds; see :class:`DriftConfig`.
    :raises ValueError: a profile column is missing from the data, or the config names columns
        the profile does not have.
    """
    if not isinstance(profile, ReferenceProfile):
        raise TypeError(f"profile must be a ReferenceProfile, got {type(profile).__name__}")
    if not isinstance(config, DriftConfig):
        raise TypeError(f"config must be a DriftConfig, got {type(config).__name__}")
    available = list(dict.fromkeys(profile.columns))
    if config.columns is not None:
        unknown = [c for c in config.columns if c not in available]
        if unknown:
            raise ValueError(
                f"DriftConfig.columns {unknown!r} are not in the reference profile; it has {available!r}"
            )
    wanted = [c for c in available if config.columns is None or c in config.columns]
    outside = [c for c in config.critical_columns if c not in wanted]
    if outside:
        raise ValueError(
            f"DriftConfig.critical_columns {outside!r} are not in the reference profile; it has {available!r}"
        )
    batch = _Batch(data)
    try:
        batch.check(wanted)
        columns = []
        for name in wanted:
            values = batch.column(name)
            if name in profile.numeric:
                columns.append(_numeric_column(name, profile.numeric[name], values))
            else:
                columns.append(_categorical_column(name, profile.categorical[name], values))
            del values
    finally:
        batch.close()
    report = _judge(columns, batch.rows, profile.rows, config)
    if log.isEnabledFor(logging.DEBUG):
        for col in report.columns:
            log.debug(
                "drift %s %s=%s adjusted p=%.3g (alpha %g) effect=%s (threshold %g); missing %.4f -> %.4f "
                "adjusted p=%.3g (threshold %g); drifted=%s",
                col.name,
                col.test,
                _g(col.statistic),
                col.p_adjusted,
                config.alpha,
                _g(col.effect),
                col.effect_threshold,
                col.missing.reference_rate,
                col.missing.current_rate,
                col.missing.p_adjusted,
                config.missing_delta,
                col.drifted,
            )
    log.info("%s", report.summary())
    return report
