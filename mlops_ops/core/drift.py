"""Drift reference profile: a compact summary of the training data, logged with every model.

Monitoring compares new data against the champion's own training data through this profile,
without re-reading that data. Numeric columns keep reference-quantile bin edges with the counts
(the binned CDF), moments and the missing rate; categorical columns keep category counts with an
"other" bucket. A profile is a few KB per column and round-trips through JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

OTHER = "__other__"
PROFILE_VERSION = 1


@dataclass
class NumericProfile:
    edges: list[float]
    counts: list[int]
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    n: int
    missing: int

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
    rows: int
    numeric: dict[str, NumericProfile] = field(default_factory=dict)
    categorical: dict[str, CategoricalProfile] = field(default_factory=dict)
    version: int = PROFILE_VERSION

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "rows": self.rows,
            "numeric": {k: asdict(v) for k, v in self.numeric.items()},
            "categorical": {k: asdict(v) for k, v in self.categorical.items()},
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
        )


def _numeric_profile(values: pd.Series, bins: int) -> NumericProfile:
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    finite = x[np.isfinite(x)]
    missing = int(len(x) - len(finite))
    if len(finite) == 0:
        return NumericProfile([], [], None, None, None, None, 0, missing)
    qs = np.quantile(finite, np.linspace(0.0, 1.0, bins + 1))
    edges = np.unique(qs)
    if len(edges) == 1:
        counts = [len(finite)]
    else:
        counts = np.histogram(finite, bins=edges)[0].tolist()
    return NumericProfile(
        edges=[float(e) for e in edges],
        counts=[int(c) for c in counts],
        mean=float(finite.mean()),
        std=float(finite.std(ddof=1)) if len(finite) > 1 else 0.0,
        min=float(finite.min()),
        max=float(finite.max()),
        n=int(len(finite)),
        missing=missing,
    )


def _categorical_profile(values: pd.Series, max_categories: int) -> CategoricalProfile:
    text = values.astype("string")
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
) -> ReferenceProfile:
    """Profile the given columns (default: every column, kinds inferred from dtypes)."""
    if categorical is None and numeric is None:
        numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
        categorical = [c for c in frame.columns if c not in numeric]
    elif numeric is None:
        given = set(categorical or ())
        numeric = [c for c in frame.columns if c not in given and pd.api.types.is_numeric_dtype(frame[c])]
    categorical = list(categorical or [])
    profile = ReferenceProfile(rows=int(len(frame)))
    for col in numeric:
        profile.numeric[col] = _numeric_profile(frame[col], bins)
    for col in categorical:
        profile.categorical[col] = _categorical_profile(frame[col], max_categories)
    return profile
