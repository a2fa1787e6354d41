"""Reference and prediction profiles of a stored Parquet snapshot, in bounded memory.

:func:`profile_parquet` reads the file one column at a time (``ParquetFile.read(columns=[c])``),
coerces the column to the model version's schema and profiles it with the same code as
:func:`~mlops_ops.core.drift.profile.build_reference_profile`, so the result is *identical* to
profiling the coerced frame in memory (tolerance zero: the same quantile edges, counts, moments
and categories). Peak memory is a few copies of one column (about 50 bytes a row at the peak
for a numeric column: the Arrow column, the float64 values, the finite values, their sorted copy
and the temporaries of the moments), whatever the number of columns: a 10M-row snapshot
profiles in about 0.7 GiB (process total), however wide.

Categorical columns are counted in Arrow (``pyarrow.compute.value_counts``); only the distinct
values become canonical labels, so a text column costs its Arrow size, not a Python string per row.

:func:`prediction_profile_parquet` scores the file in row batches (one model call per batch,
:func:`~mlops_ops.core.scoring_stream.predict_batch`) and profiles the model's outputs: one
float64 per row is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlops_ops.core.drift.profile import (
    OTHER,
    CategoricalProfile,
    ReferenceProfile,
    _numeric_profile,
    build_reference_profile,
)


def _open(source: Any) -> pq.ParquetFile:
    from mlops_ops.core.scoring_stream import open_parquet

    return open_parquet(source)


def _column(file: pq.ParquetFile, name: str) -> pd.Series:
    """One column as ``pandas.read_parquet`` would give it."""
    return file.read(columns=[name]).to_pandas()[name]


def _categorical_counts(column: pa.ChunkedArray, name: str, max_categories: int) -> CategoricalProfile:
    """The profile :func:`~mlops_ops.core.drift.profile._categorical_profile` gives this column,
    counted in Arrow: distinct values in order of first appearance, turned into canonical labels
    (values with one label add up), then ordered by count as ``pandas.Series.value_counts`` does."""
    from mlops_ops.core.schema import coerce_column

    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    counted = pc.value_counts(column)
    distinct = counted.field("values").to_pandas()
    tallies = counted.field("counts").to_numpy(zero_copy_only=False).astype(np.int64)
    labels = coerce_column(pd.Series(distinct, name=name), "categorical", column=name)
    by_label: dict[str, int] = {}
    missing = 0
    for label, count in zip(labels.tolist(), tallies.tolist(), strict=True):
        if not isinstance(label, str):
            missing += int(count)
            continue
        by_label[label] = by_label.get(label, 0) + int(count)
    ordered = pd.Series(by_label, dtype="int64")
    if len(ordered):
        ordered = ordered.sort_values(ascending=False, kind="stable")  # ties: first appearance
    top = ordered.iloc[:max_categories]
    result = {str(k): int(v) for k, v in top.items()}
    rest = int(ordered.iloc[max_categories:].sum())
    if rest:
        result[OTHER] = rest
    return CategoricalProfile(counts=result, n=int(ordered.sum()), missing=missing)


def profile_parquet(
    source: Any,
    schema: Any,
    *,
    numeric: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    bins: int = 20,
    max_categories: int = 50,
    where: str | None = None,
) -> ReferenceProfile:
    """The reference profile of a Parquet file's feature columns, one column at a time.

    :param source: a Parquet path, binary file or ``pyarrow.parquet.ParquetFile``.
    :param schema: the model version's :class:`~mlops_ops.core.schema.Schema`; each column is
        coerced to its logical type first (as :meth:`Schema.coerce` does for the model), and the
        schema is stored in the profile.
    :param numeric, categorical: the columns to profile (default: the schema's features).
    :returns: the same :class:`ReferenceProfile` as ``build_reference_profile(schema.coerce(frame),
        numeric=..., categorical=..., schema=schema)`` on the whole file.
    :raises SchemaError: a value cannot be coerced (the message names the column).
    :raises ValueError: a column is not in the file.
    """
    from mlops_ops.core.schema import CATEGORICAL, coerce_column

    file = _open(source)
    features = schema.feature_set
    numeric = list(features.numeric if numeric is None else numeric)
    categorical = list(features.categorical if categorical is None else categorical)
    names = set(file.schema_arrow.names)
    absent = [c for c in [*numeric, *categorical] if c not in names]
    if absent:
        raise ValueError(f"{where or 'the file'} has no column(s) {absent}; it has {sorted(names)[:30]}")
    types = {c.name: c.type for c in schema.columns}
    profile = ReferenceProfile(rows=int(file.metadata.num_rows))
    for col in numeric:
        values = coerce_column(_column(file, col), types.get(col, "numeric"), column=col, where=where)
        profile.numeric[col] = _numeric_profile(values, bins)
        del values
    for col in categorical:
        if types.get(col, CATEGORICAL) == CATEGORICAL:
            column = file.read(columns=[col]).column(0)
            profile.categorical[col] = _categorical_counts(column, col, max_categories)
        else:  # a column profiled as categorical against its schema type: coerce it first
            from mlops_ops.core.drift.profile import _categorical_profile

            values = coerce_column(_column(file, col), types[col], column=col, where=where)
            profile.categorical[col] = _categorical_profile(values, max_categories)
    profile.excluded = dict(schema.excluded)
    profile.schema = schema.to_dict()
    return profile


def prediction_profile_parquet(
    model: Any,
    source: Any,
    schema: Any,
    task: str,
    *,
    batch_rows: int | None = None,
    where: str | None = None,
) -> ReferenceProfile:
    """The profile of the model's outputs on a Parquet file (see
    :func:`mlops_ops.core.monitoring.build_prediction_profile`), scored in row batches.

    The values are the positive-class probability (classifiers with ``predict_proba``) or the
    prediction, as :func:`mlops_ops.core.monitoring.prediction_values` gives them.
    :raises SchemaError: a batch cannot be coerced. Model errors propagate.
    """
    from mlops_ops.core.monitoring import PREDICTION_COLUMN, prediction_values
    from mlops_ops.core.scoring_stream import iter_batches
    from mlops_ops.core.training import prepare_features

    file = _open(source)
    features = schema.feature_set
    values = np.empty(int(file.metadata.num_rows), dtype="float64")
    at = 0
    for frame in iter_batches(file, features.all, batch_rows):
        x = prepare_features(frame, features, schema, where=where)
        out = prediction_values(model, x, task).astype("float64")
        values[at : at + len(out)] = out
        at += len(out)
    return build_reference_profile(
        pd.DataFrame({PREDICTION_COLUMN: values[:at]}), numeric=[PREDICTION_COLUMN]
    )
