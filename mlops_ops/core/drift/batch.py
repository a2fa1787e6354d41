"""Reading the batch under test one column at a time, whatever holds it.

A pandas DataFrame, an Arrow table, a Parquet path or an open ``ParquetFile``: Parquet is read
one column at a time (``ParquetFile.read(columns=[name])``), so memory stays near one column
whatever the width of the table; numeric columns come chunk by chunk and categorical columns are
counted against the reference categories.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

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
