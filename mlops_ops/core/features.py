"""Feature columns of a training frame and the seeded holdout split.

Pure logic over pandas; see docs/architecture.md ("Layers").
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlops_ops.errors import DataError


@dataclass(frozen=True)
class FeatureSet:
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]

    @property
    def all(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def to_dict(self) -> dict[str, list[str]]:
        return {"numeric": list(self.numeric), "categorical": list(self.categorical)}


def resolve_features(
    frame: pd.DataFrame,
    target: str,
    numeric: Sequence[str] | None,
    categorical: Sequence[str] | None,
) -> FeatureSet:
    """Feature columns from the spec, or inferred from dtypes when the spec lists none."""
    if target not in frame.columns:
        raise DataError(
            f"the target column {target!r} is missing; the data has {list(frame.columns)}. "
            "Fix the source or the spec's 'target'"
        )
    if numeric is None and categorical is None:
        num, cat = infer_feature_kinds(frame, target)
        return FeatureSet(tuple(num), tuple(cat))
    num, cat = list(numeric or ()), list(categorical or ())
    missing = [c for c in (*num, *cat) if c not in frame.columns]
    if missing:
        raise DataError(
            f"feature column(s) {missing} are missing; the data has {list(frame.columns)}. "
            "Fix the source or the spec's 'features'"
        )
    return FeatureSet(tuple(num), tuple(cat))


def check_numeric(frame: pd.DataFrame, columns: Iterable[str]) -> None:
    """Numeric columns must hold numbers: name the column and a sample of the offending text."""
    for col in columns:
        s = frame[col]
        if pd.api.types.is_numeric_dtype(s):
            values = s.to_numpy(dtype="float64", na_value=np.nan)
            if np.isinf(values).any():
                n = int(np.isinf(values).sum())
                raise DataError(
                    f"column {col!r} holds {n} infinite value(s); replace them or leave them empty"
                )
            continue
        as_num = pd.to_numeric(s, errors="coerce")
        bad = s[as_num.isna() & s.notna()]
        if bad.empty:  # numbers stored as text (e.g. SQL NUMERIC read as Decimal): usable as they are
            continue
        sample = [str(v) for v in bad.drop_duplicates().head(3).tolist()]
        raise DataError(
            f"column {col!r} should be numeric but holds text in {len(bad)} row(s), e.g. {sample}; "
            "fix the source, or list the column under features.categorical"
        )


# -- the holdout split ---------------------------------------------------------------------------


def holdout_mask(frame: pd.DataFrame, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of holdout rows, decided by a seeded hash of each row's content.

    The same row lands on the same side in every snapshot that contains it, so a model trained on
    an earlier snapshot has not seen today's holdout rows that were already in its holdout, and
    duplicated rows never straddle the split.
    """
    if len(frame) == 0:
        return np.zeros(0, dtype=bool)
    # hash a canonical form: every numeric column as float64 (one missing value in a new batch
    # turns an int column into float and must not move the other rows), everything else as text
    canonical = pd.DataFrame(index=frame.index)
    for col in frame.columns:
        s = frame[col]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            canonical[col] = s.astype("float64")
        else:
            canonical[col] = s.astype("string")
    keyed = pd.util.hash_pandas_object(canonical, index=False, hash_key=_hash_key(seed)).to_numpy()
    bucket = (keyed % np.uint64(10_000)).astype("int64")
    return bucket < int(round(fraction * 10_000))


def _hash_key(seed: int) -> str:
    return hashlib.md5(f"mlops-ops:{seed}".encode()).hexdigest()[:16]


def infer_feature_kinds(frame: pd.DataFrame, target: str) -> tuple[list[str], list[str]]:
    """Numeric and categorical columns besides the target, inferred once per column.

    Numbers and flags are numeric, text is categorical; timestamps, ISO 8601 date text and
    integers beyond int64 are neither (see :func:`mlops_ops.core.schema_inference.infer_column`).
    """
    from mlops_ops.core.schema import CATEGORICAL, NUMERIC
    from mlops_ops.core.schema_inference import infer_column

    kinds = {c: infer_column(frame[c])[0] for c in frame.columns if c != target}
    return [c for c, k in kinds.items() if k == NUMERIC], [c for c, k in kinds.items() if k == CATEGORICAL]
