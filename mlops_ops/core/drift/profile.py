"""The reference profile: a compact summary of the training data, logged with every model.

Monitoring compares new data against the champion's own training data without re-reading it.
Numeric columns keep reference-quantile bin edges with the counts (the binned CDF), the number of
reference values equal to each edge (point masses: flags and small integers), moments and the
missing rate; categorical columns keep category counts with an "other" bucket. A profile is a few
KB per column and round-trips through JSON (format version 1; ``edge_counts`` is optional, so
profiles written before it existed still load and are tested on their bins alone). Binning a batch
on the reference edges (:func:`_bin_counts`) uses the same rule as the profile.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

OTHER = "__other__"
PROFILE_VERSION = 1

_BLOCK = 1 << 16  # values binned per pass: a block and its mask stay in the CPU cache
_SMALL = 2048  # a block this small is sorted and searched rather than compared edge by edge
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


def _quantile_edges(finite: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct linear-interpolation quantiles at ``0, 1/bins, ..., 1`` (as ``np.quantile``), and the
    sorted data.

    Sorted rather than partitioned: numpy's vectorised sort is about twice as fast as
    ``np.partition`` at the ~40 order statistics needed (0.48 s against 0.93 s for 10M float64),
    takes the same one copy, and the counts then come from binary searches.
    """
    size = len(finite)
    position = (size - 1) * np.linspace(0.0, 1.0, bins + 1)
    low = np.floor(position).astype(np.intp)
    high = np.minimum(low + 1, size - 1)
    at = ordered = np.sort(finite)
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
    up, down = _float32_bounds(edges) if ordered.dtype == np.float32 else (edges, edges)
    lt = np.searchsorted(ordered, up, side="left")
    le = np.searchsorted(ordered, down, side="right")
    del ordered
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
    from mlops_ops.core.schema import CATEGORICAL
    from mlops_ops.core.schema_inference import infer_column

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
