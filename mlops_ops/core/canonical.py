"""The canonical Arrow form of a snapshot's columns and its content hash, batch by batch.

A snapshot stores every column in one *storage type* per kind of content, whatever the source
format and however the source was split into batches:

=================================  ===============================================================
source type (Arrow)                storage type
=================================  ===============================================================
bool, int8..int64, uint8..uint32   int64 (flags as 0/1; missing values stay missing)
uint64                             int64 while every value fits, else uint64
float16, float32, float64,         float64 (decimals as their nearest float)
decimal
null (a column with no value)      float64
string, large_string, binary,      string (dictionary-encoded columns decoded; binary must be
dictionary, date, time             UTF-8; dates and times as ISO 8601 text)
timestamp[s, ms, us]               timestamp[us] (time zone kept); timestamp[ns] stays ns
duration                           duration of the same unit
=================================  ===============================================================

Other types (lists, structs, maps) are refused naming the column. When batches disagree, the
column's type widens: int64 < uint64 or float64 < string; timestamp[us] < timestamp[ns]
(see :func:`widen`).

**The content hash** (:class:`ContentHasher`, version :data:`HASH_VERSION`) is the SHA-256 of
a header (the column names, each column's kind and the row count) and one digest per column,
each computed over a stream of per-row values that does not depend on where batches start:

- ``number`` (any integer, flag or float storage type): every value as its float64 bits
  (missing as one canonical NaN, -0.0 as 0.0), plus, for integers beyond +-2**53 that float64
  cannot hold exactly, the pair (row number, exact difference). So ``1`` stored as int64,
  float64 or a flag is one value, and 2**60 + 1 is not 2**60;
- ``text``: the UTF-8 bytes of all values in order, and the byte length of each (-1 when
  missing);
- ``datetime[<unit>[,<tz>]]`` and ``duration[<unit>]``: the int64 ticks (missing as int64 min).

So the same rows hash the same from one CSV file, from many Parquet files or from a SQL query,
read in batches of any size (property-tested in tests/unit/test_ingest_stream.py). The hash of
snapshots written before version 2 is :func:`mlops_ops.core.data.content_sha256_v1`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlops_ops.errors import DataError

HASH_VERSION = 2

NUMBER, TEXT = "number", "text"
_EXACT_FLOAT = 2**53
_INT64_MAX = 2**63 - 1
_CANONICAL_NAN = np.frombuffer(np.float64(np.nan).tobytes(), dtype=np.float64)[0]
_NAT = np.iinfo(np.int64).min


class Widen(Exception):  # noqa: N818 - a control-flow signal, not an error
    """A batch needs wider storage types than the snapshot has so far: ``types`` by column."""

    def __init__(self, types: dict[str, pa.DataType]) -> None:
        super().__init__(", ".join(f"{c}: {t}" for c, t in types.items()))
        self.types = types


# -- storage types -----------------------------------------------------------------------------


def _is_int(t: pa.DataType) -> bool:
    return pa.types.is_integer(t)


def storage_array(values: pa.Array | pa.ChunkedArray, column: str, where: str) -> pa.Array:
    """One column of a batch in its storage type (see the module's table).

    :raises DataError: the column's type cannot be stored (a list, struct or map) or a binary
        column is not UTF-8 text; the message names the column and ``where``.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    t = values.type
    if pa.types.is_dictionary(t):
        values = values.dictionary_decode()
        t = values.type
    try:
        if pa.types.is_boolean(t) or (_is_int(t) and t != pa.uint64()):
            return values.cast(pa.int64())
        if t == pa.uint64():
            top = pc.max(values).as_py()
            return values if top is not None and top > _INT64_MAX else values.cast(pa.int64())
        if pa.types.is_null(t):
            return values.cast(pa.float64())
        if pa.types.is_floating(t) or pa.types.is_decimal(t):
            return values if t == pa.float64() else values.cast(pa.float64())
        if pa.types.is_string(t):
            return values
        if pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
            return values.cast(pa.string())
        if pa.types.is_date(t) or pa.types.is_time(t):
            return values.cast(pa.string())
        if pa.types.is_timestamp(t):
            return _timestamps(values)
        if pa.types.is_duration(t):
            return values
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise DataError(f"{where}: column {column!r} ({t}) cannot be stored: {err}") from None
    raise DataError(
        f"{where}: column {column!r} has type {t}, which a snapshot cannot store; flatten it to "
        "numbers or text in the export, or drop the column"
    )


def _timestamps(values: pa.Array) -> pa.Array:
    """Microseconds when that loses nothing (so 9999-12-31 fits pandas), else nanoseconds."""
    t = values.type
    if t.unit == "us":
        return values
    if t.unit == "ns":
        try:
            return values.cast(pa.timestamp("us", t.tz), safe=True)
        except pa.ArrowInvalid:  # sub-microsecond ticks
            return values
    return values.cast(pa.timestamp("us", t.tz))


def widen(current: pa.DataType, incoming: pa.DataType) -> pa.DataType:
    """The narrowest storage type holding both ``current`` and ``incoming`` values (storage types)."""
    if current == incoming:
        return current
    pair = {current, incoming}
    if pair == {pa.int64(), pa.float64()} or pair == {pa.uint64(), pa.float64()}:
        return pa.float64()
    if pair == {pa.int64(), pa.uint64()}:
        return pa.uint64()  # a negative value then fails the cast: widened once more, to text
    if pa.types.is_timestamp(current) and pa.types.is_timestamp(incoming) and current.tz == incoming.tz:
        return pa.timestamp("ns", current.tz)
    if pa.types.is_duration(current) and pa.types.is_duration(incoming):
        return pa.duration("ns")
    return pa.string()


def cast_to(values: pa.Array, target: pa.DataType) -> pa.Array:
    """``values`` (a storage type) as ``target``, a type at least as wide (see :func:`widen`).

    :raises pa.ArrowInvalid: a value does not fit (a negative value into uint64).
    """
    if values.type == target:
        return values
    if target == pa.string() and pa.types.is_floating(values.type):
        return _float_text(values)
    return values.cast(target)


def _float_text(values: pa.Array) -> pa.Array:
    """Floats as text the way pandas writes them: whole numbers without ``.0`` kept apart."""
    return pa.array([None if v is None else repr(v) for v in values.to_pylist()], type=pa.string())


# -- the content hash --------------------------------------------------------------------------


def kind_of(t: pa.DataType) -> str:
    """The hash kind of a storage type: ``number``, ``text``, ``datetime[..]``, ``duration[..]``."""
    if _is_int(t) or pa.types.is_floating(t):
        return NUMBER
    if pa.types.is_timestamp(t):
        return f"datetime[{t.unit}{',' + str(t.tz) if t.tz else ''}]"
    if pa.types.is_duration(t):
        return f"duration[{t.unit}]"
    return TEXT


class _ColumnHash:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.values = hashlib.sha256()
        self.extra = hashlib.sha256()  # residuals of big integers (number), lengths (text)

    def digest(self) -> str:
        return self.values.hexdigest() + self.extra.hexdigest()


class ContentHasher:
    """The batch-independent content hash of a snapshot (see the module's docstring).

    :param names: the column names, in order.
    :param types: each column's storage type (the kind decides how values are hashed).
    """

    def __init__(self, names: Sequence[str], types: Sequence[pa.DataType]) -> None:
        self.names = list(names)
        self.columns = [_ColumnHash(kind_of(t)) for t in types]
        self.rows = 0

    def update(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Add the rows of ``batch`` (columns in this hasher's order, storage types)."""
        for i, state in enumerate(self.columns):
            column = batch.column(i)
            chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
            offset = self.rows
            for chunk in chunks:
                _hash_into(state, chunk, offset)
                offset += len(chunk)
        self.rows += batch.num_rows

    def hexdigest(self) -> str:
        header = {
            "version": HASH_VERSION,
            "columns": [[n, c.kind] for n, c in zip(self.names, self.columns, strict=True)],
            "rows": self.rows,
        }
        h = hashlib.sha256(json.dumps(header, separators=(",", ":")).encode())
        for state in self.columns:
            h.update(state.digest().encode())
        return h.hexdigest()


def _hash_into(state: _ColumnHash, values: pa.Array, row0: int) -> None:
    if state.kind == NUMBER:
        floats, raw = _floats(values)
        state.values.update(_le_bytes(floats, "<f8"))
        if raw is not None:
            _big_integer_residuals(state, raw, floats, row0)
    elif state.kind == TEXT:
        text = values if values.type == pa.string() else values.cast(pa.string())
        offsets = np.frombuffer(text.buffers()[1], dtype=np.int32)[text.offset : text.offset + len(text) + 1]
        data = text.buffers()[2]
        if data is not None and len(offsets) and offsets[-1] > offsets[0]:
            state.values.update(memoryview(data)[int(offsets[0]) : int(offsets[-1])])
        lengths = np.diff(offsets).astype(np.int64)
        valid = _valid(text)
        if valid is not None:
            lengths[~valid] = -1
        state.extra.update(_le_bytes(lengths, "<i8"))
    else:  # timestamps and durations: int64 ticks, missing as int64 min
        ticks = _values(values.cast(pa.int64()), np.int64).copy()
        valid = _valid(values)
        if valid is not None:
            ticks[~valid] = _NAT
        state.values.update(_le_bytes(ticks, "<i8"))


# The arrays are read through their buffers, never with ``to_numpy`` or a Python scalar: pyarrow
# imports pandas for those, a fixed cost of every ingest that the Parquet path does not need.


def _le_bytes(values: np.ndarray, dtype: str) -> memoryview:
    """The values as little-endian bytes (no copy on little-endian machines): one hash everywhere."""
    return np.ascontiguousarray(values, dtype=dtype).data.cast("B")


def _values(values: pa.Array, dtype: Any) -> np.ndarray:
    """A read-only view of a fixed-width array's values (whatever its missing slots hold)."""
    n, offset = len(values), values.offset
    buffer = values.buffers()[1]
    if buffer is None or n == 0:
        return np.zeros(n, dtype=dtype)
    return np.frombuffer(buffer, dtype=dtype, count=offset + n)[offset:]


def _valid(values: pa.Array) -> np.ndarray | None:
    """Which values are present, as booleans; None when all are."""
    if not values.null_count:
        return None
    present = values.is_valid()  # a boolean array without missing values: its bits are the answer
    bits = np.frombuffer(present.buffers()[1], dtype=np.uint8)
    offset = present.offset
    return np.unpackbits(bits, bitorder="little", count=offset + len(present))[offset:].astype(bool)


def _floats(values: pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
    """The values as float64 (missing as the canonical NaN, -0.0 as 0.0), and for integer columns
    holding values beyond +-2**53 the integers themselves (missing as 0), else None."""
    valid = _valid(values)
    if _is_int(values.type):
        if values.type not in (pa.int64(), pa.uint64()):
            values = values.cast(pa.int64())
        raw = _values(values, np.uint64 if values.type == pa.uint64() else np.int64)
        out = raw.astype(np.float64)  # never NaN nor -0.0
        if valid is not None:
            out[~valid] = _CANONICAL_NAN
        if not _beyond_exact_floats(values):
            return out, None
        return out, raw if valid is None else np.where(valid, raw, 0).astype(raw.dtype, copy=False)
    out = _values(values if values.type == pa.float64() else values.cast(pa.float64()), np.float64).copy()
    if valid is not None:
        out[~valid] = np.nan
    out[np.isnan(out)] = _CANONICAL_NAN
    out[out == 0.0] = 0.0  # -0.0 is 0.0
    return out, None


def _beyond_exact_floats(values: pa.Array) -> bool:
    """Whether an integer column holds a value float64 cannot hold exactly (beyond +-2**53)."""
    bounds = pc.min_max(values)  # missing values left out
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    return low is not None and (low < -_EXACT_FLOAT or high > _EXACT_FLOAT)


def _big_integer_residuals(state: _ColumnHash, raw: np.ndarray, floats: np.ndarray, row0: int) -> None:
    if raw.dtype == np.uint64:
        big = raw > np.uint64(_EXACT_FLOAT)
    else:
        big = (raw > _EXACT_FLOAT) | (raw < -_EXACT_FLOAT)
    for i in np.flatnonzero(big):
        residual = int(raw[i]) - int(floats[i])
        if residual:
            state.extra.update(f"{row0 + int(i)}:{residual};".encode())


def table_sha256(table: pa.Table, batch_rows: int = 1 << 20) -> str:
    """The content hash of a table already in storage types (a decoded snapshot file)."""
    hasher = ContentHasher(table.column_names, [f.type for f in table.schema])
    for batch in table.to_batches(max_chunksize=batch_rows):
        hasher.update(batch)
    return hasher.hexdigest()


# -- pandas frames ----------------------------------------------------------------------------


def arrow_of_frame(frame: Any, where: str = "the data") -> pa.Table:
    """A pandas frame as a table in storage types, column by column (names as text)."""
    import pandas as pd

    names = [str(c) for c in frame.columns]
    arrays = []
    for name, (_, s) in zip(names, frame.items(), strict=True):
        arrays.append(storage_array(_arrow_column(s, pd), name, where))
    return pa.Table.from_arrays(arrays, names=names) if arrays else pa.table({})


def _arrow_column(s: Any, pd: Any) -> pa.Array:
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(s.cat.categories.dtype if not s.isna().any() else "object")
    try:
        return pa.array(s, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        # mixed objects (numbers and text), Python ints beyond 64 bits, complex numbers: as text
        return pa.array(s.astype("string"), from_pandas=True)


def frame_sha256(frame: Any) -> str:
    """The content hash of a pandas frame (see :func:`mlops_ops.core.data.content_sha256`)."""
    return table_sha256(arrow_of_frame(frame))


def frame_of_table(table: pa.Table) -> Any:
    """A decoded snapshot as the pandas frame readers get.

    As :func:`mlops_ops.core.data.normalise` gives it: integers with missing values are float64
    with NaN while every value is exact as a float, else nullable ``Int64``/``UInt64``.
    """
    import pandas as pd

    wide = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        if _is_int(column.type) and column.null_count:
            present = pc.min_max(column)
            bound = max(abs(present["min"].as_py() or 0), abs(present["max"].as_py() or 0))
            if bound > _EXACT_FLOAT:
                wide[name] = pd.UInt64Dtype() if column.type == pa.uint64() else pd.Int64Dtype()
    frame = table.to_pandas()
    for name, dtype in wide.items():
        frame[name] = pd.Series(
            pd.array(table.column(name).to_pylist(), dtype=dtype), index=frame.index, name=name
        )
    return frame


def same_names(names: Iterable[str]) -> list[str]:
    """Column names stripped of surrounding spaces (as :func:`~mlops_ops.core.data.normalise`)."""
    return [str(n).strip() for n in names]
