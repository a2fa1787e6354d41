"""Tabular data: reading files, normalising, content hashing and the snapshot manifest.

Pure logic over pandas/pyarrow; the operators hand it open files and get frames and bytes back.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import io
import json
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

import numpy as np
import pandas as pd

from mlops_ops.core.features import (
    FeatureSet,
    check_numeric,
    holdout_mask,
    infer_feature_kinds,
    resolve_features,
)
from mlops_ops.core.formats import compression_of, detect_format, strip_compression
from mlops_ops.core.partitions import partition_date, select_window
from mlops_ops.errors import DataError

# defined in mlops_ops.errors, core.features and core.partitions; importable from here as before
__all__ = [
    "DataError",
    "FeatureSet",
    "check_numeric",
    "detect_format",
    "holdout_mask",
    "infer_feature_kinds",
    "partition_date",
    "resolve_features",
    "select_window",
]


# -- reading ---------------------------------------------------------------------------------


#: separators tried when a CSV file is read into a single column, to name the likely one
_LIKELY_SEPARATORS = (";", "\t", "|", ",")


def read_frame(name: str, fh: IO[bytes], fmt: str, csv: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Read one file. Empty or malformed files raise :class:`DataError` naming the file.

    :param csv: reader options of a CSV file (``source.csv``): ``sep``, ``decimal``,
        ``encoding``, ``quotechar``, ``na_values``, ``keep_default_na``, ``thousands``. The
        separator defaults to ``,`` (``\t`` for ``.tsv`` files).
    :raises DataError: the file is empty or unreadable; a CSV header names a column twice; a
        CSV file with several columns in its header was read into one (a wrong separator).
    """
    raw = fh.read()
    if not raw or not raw.strip():
        raise DataError(f"{name} is empty (0 data bytes); write the data before this task runs")
    options = {k: v for k, v in dict(csv or {}).items() if v is not None}
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(io.BytesIO(raw))
        else:
            if "sep" not in options:
                options["sep"] = "\t" if _strip_compression(name.lower()).endswith(".tsv") else ","
            header = _csv_header(raw, name, options)
            frame = pd.read_csv(io.BytesIO(raw), compression=_compression(name), **options)
            _check_csv_header(name, header, frame, options["sep"])
            if options.get("keep_default_na", True) or "" in (options.get("na_values") or ()):
                frame = _empty_text_missing(frame)
    except DataError:
        raise
    except UnicodeDecodeError as err:
        raise DataError(
            f"{name} is not valid {options.get('encoding', 'utf-8')!r} text ({err.reason} at byte "
            f"{err.start}); set source.csv.encoding, e.g. 'latin-1' or 'cp1252'"
        ) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{name} has no columns or rows; write the data before this task runs") from None
    except Exception as err:  # parser errors differ by engine; name the file and the cause
        raise DataError(f"{name} is not a readable {fmt} file: {type(err).__name__}: {err}") from None
    if frame.shape[1] == 0:
        raise DataError(f"{name} has no columns")
    return frame


def _empty_text_missing(frame: pd.DataFrame) -> pd.DataFrame:
    """Empty cells as missing in text columns too.

    pandas' CSV reader leaves an empty cell as ``""`` in a column it fell back to text for (an
    integer beyond int64, e.g. ``9223372036854775808``), where every other column reads it as
    missing; an empty id must not become the id ``""``.
    """
    for col in frame.columns:
        s = frame[col]
        if pd.api.types.is_string_dtype(s.dtype) or s.dtype == object:
            empty = s.map(lambda v: isinstance(v, str) and v == "").astype(bool)
            if empty.any():
                frame[col] = s.mask(empty)
    return frame


def _csv_header(raw: bytes, name: str, options: Mapping[str, Any]) -> list[str]:
    """The CSV header's names exactly as written (pandas renames a repeated name to ``x.1``)."""
    keep = {k: options[k] for k in ("sep", "encoding", "quotechar") if k in options}
    head = pd.read_csv(
        io.BytesIO(raw), compression=_compression(name), header=None, nrows=1, dtype=str, **keep
    )
    return ["" if pd.isna(v) else str(v).strip() for v in head.iloc[0].tolist()] if len(head) else []


def _check_csv_header(name: str, header: list[str], frame: pd.DataFrame, sep: str) -> None:
    _check_header_names(name, header)
    _check_single_column(name, header, frame.shape[1], sep)


def _check_header_names(name: str, header: list[str]) -> None:
    """A CSV header must not name a column twice."""
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise DataError(
            f"{name}: the CSV header names column(s) {dupes} more than once; a reader would rename the "
            "second to '<name>.1' and use only one. Rename or drop the repeated column in the export"
        )


def _check_single_column(name: str, header: list[str], n_columns: int, sep: str) -> None:
    """A file read into one column whose header holds another separator names that separator."""
    if n_columns == 1 and header:
        text = header[0]
        other = [s for s in _LIKELY_SEPARATORS if s != sep and s in text]
        if other:
            shown = {"\t": "\\t"}.get(other[0], other[0])
            raise DataError(
                f"{name} was read into a single column {text[:80]!r} with the separator {sep!r}, but its "
                f"header holds {other[0]!r}; set source.csv.sep to {shown!r}"
                + ("" if other[0] != ";" else " (and source.csv.decimal to ',' for decimal commas)")
            )


# the file-name rules live in core.formats (free of pandas, for the Parquet ingest path)
_strip_compression = strip_compression
_compression = compression_of


def combine(frames: Sequence[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
    """Concatenate the frames of a multi-file source; all files must share their columns."""
    if not frames:
        raise DataError("the source matched no files")
    first_name, first = frames[0]
    for name, frame in frames[1:]:
        if list(frame.columns) != list(first.columns):
            raise DataError(
                f"{name} does not have the columns of {first_name}: {_column_difference(first, frame)}; "
                "all files of one source must share one schema"
            )
    if len(frames) == 1:
        return first
    return pd.concat([f for _, f in frames], ignore_index=True)


def _column_difference(first: pd.DataFrame, other: pd.DataFrame) -> str:
    return names_difference([str(c) for c in first.columns], [str(c) for c in other.columns])


def names_difference(want: list[str], got: list[str]) -> str:
    """What differs between two files' columns: missing, extra, or the order (first position)."""
    missing = [c for c in want if c not in got]
    extra = [c for c in got if c not in want]
    parts = []
    if missing:
        parts.append(f"missing {missing}")
    if extra:
        parts.append(f"extra {extra}")
    if not parts and sorted(want) == sorted(got) and len(want) == len(got):
        at = next(i for i, (a, b) in enumerate(zip(want, got, strict=True)) if a != b)
        parts.append(
            f"the same columns in another order (column {at + 1} is {got[at]!r}, expected {want[at]!r}; "
            f"expected order {want}, found {got})"
        )
    elif not parts:  # the same names, but repeated a different number of times
        dupes = sorted({c for c in got if got.count(c) != want.count(c)})
        parts.append(f"column(s) {dupes} appear a different number of times")
    return ", ".join(parts)


# -- normalising and hashing -------------------------------------------------------------------


_INT64_MAX = 2**63 - 1
_UINT64_MAX = 2**64 - 1
_EXACT_FLOAT = 2**53


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """One canonical form per content: string column names, a fresh index, faithful values.

    So that the same rows read from CSV or from Parquet, with numpy or pandas' nullable dtypes,
    give the same frame and the same hash:

    - flags (``bool``, nullable ``boolean``, or an object column of True/False) become int64
      0/1, or float64 0/1 with NaN when a value is missing;
    - integers (numpy or nullable ``Int8``..``UInt64``) become int64; with missing values,
      float64 with NaN (as a CSV reader gives them) while every value is exact as a float
      (``|v| <= 2**53``), else nullable ``Int64``; integers beyond int64 stay ``uint64`` (or
      ``UInt64``) and are never wrapped to negative numbers;
    - floats (``float32``, nullable ``Float64``) become float64 with NaN for missing;
    - numbers held as objects (SQL ``NUMERIC`` as ``Decimal``) become float64, except integers
      beyond int64, which are kept exactly as text;
    - text, categorical dtypes and mixed objects become pandas' string dtype;
    - durations (``timedelta64``) stay durations (a quantity: the schema reads them as seconds);
    - timestamps keep their values: microsecond resolution when that loses nothing (so
      ``9999-12-31`` fits), nanoseconds otherwise; time zones are kept.
    """
    frame = frame.copy()
    frame.columns = [str(c).strip() for c in frame.columns]
    dupes = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if dupes:
        raise DataError(f"duplicate column names {dupes}; rename them in the source")
    out = {}
    for col in frame.columns:
        out[col] = _normalise_column(frame[col])
    return pd.DataFrame(out, columns=list(frame.columns)).reset_index(drop=True)


def _normalise_column(s: pd.Series) -> pd.Series:
    s = s.reset_index(drop=True)
    dtype = s.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return _flags(s)
    if pd.api.types.is_integer_dtype(dtype):
        return _integers(s)
    if pd.api.types.is_float_dtype(dtype):
        return pd.Series(s.to_numpy(dtype="float64", na_value=np.nan), name=s.name)
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return _timestamps(s)
    if pd.api.types.is_timedelta64_dtype(dtype):  # a duration is a quantity, not text
        return s
    if isinstance(dtype, pd.CategoricalDtype):  # a memory encoding: normalise the values it encodes
        categories = dtype.categories
        if pd.api.types.is_numeric_dtype(categories.dtype) or pd.api.types.is_bool_dtype(categories.dtype):
            return _normalise_column(
                pd.Series(np.asarray(s, dtype=object), name=s.name).astype(
                    categories.dtype if not s.isna().any() else "object"
                )
            )
        return s.astype("string")
    if pd.api.types.is_object_dtype(dtype):
        present = s.dropna()
        if len(present) and all(isinstance(v, bool | np.bool_) for v in present):
            return _flags(s.astype("boolean"))
        if len(present) and all(isinstance(v, dt.timedelta | np.timedelta64) for v in present):
            return pd.Series(pd.to_timedelta(s), name=s.name)
        if _all_numbers(s):
            if all(_integral(v) for v in present):  # ints, or Decimal whole numbers (SQL NUMERIC(p, 0))
                ints = [int(v) for v in present]
                if min(ints) >= -_INT64_MAX - 1 and max(ints) <= _UINT64_MAX:
                    wide = "UInt64" if max(ints) > _INT64_MAX else "Int64"
                    exact = pd.array([None if pd.isna(v) else int(v) for v in s], dtype=wide)
                    return _integers(pd.Series(exact, name=s.name))
                return s.map(lambda v: str(int(v)) if v is not None and not _na(v) else v).astype("string")
            return pd.to_numeric(s).astype("float64")  # e.g. Decimal from a SQL NUMERIC column
    if pd.api.types.is_numeric_dtype(dtype):  # e.g. complex: keep as it is
        return s
    return _big_integer_text(s.astype("string"))


def _big_integer_text(s: pd.Series) -> pd.Series:
    """Integer text beyond int64 that fits uint64 (a CSV reader gives it when a cell is empty) as
    ``UInt64``, as the same column without the empty cell is read; ids with leading zeros stay text."""
    present = s.dropna()
    if not len(present) or not present.str.fullmatch(r"\d+").all():
        return s
    if present.str.len().max() < 19 or (present.str.len() > 20).any() or present.str.match(r"0\d").any():
        return s
    ints = [int(v) for v in present]
    if max(ints) <= _INT64_MAX or max(ints) > _UINT64_MAX:
        return s
    return _integers(
        pd.Series(pd.array([None if pd.isna(v) else int(v) for v in s], dtype="UInt64"), name=s.name)
    )


def _all_numbers(s: pd.Series) -> bool:
    values = s.dropna()
    return len(values) > 0 and all(
        isinstance(v, numbers.Number | decimal.Decimal) and not isinstance(v, bool | np.bool_) for v in values
    )


def _integral(value: Any) -> bool:
    """An integer, or a finite Decimal with no fractional part (not a flag)."""
    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, numbers.Integral):
        return True
    return isinstance(value, decimal.Decimal) and value.is_finite() and value == value.to_integral_value()


def _na(value: Any) -> bool:
    return value is pd.NA or (isinstance(value, float) and value != value)


def _flags(s: pd.Series) -> pd.Series:
    if s.isna().any():
        return pd.Series(s.astype("boolean").to_numpy(dtype="float64", na_value=np.nan), name=s.name)
    return s.astype("int64")


def _integers(s: pd.Series) -> pd.Series:
    present = s.dropna()
    top = int(present.max()) if len(present) else 0
    bottom = int(present.min()) if len(present) else 0
    if not s.isna().any():
        return s.astype("uint64") if top > _INT64_MAX else s.astype("int64")
    if max(abs(top), abs(bottom)) <= _EXACT_FLOAT:
        return pd.Series(s.to_numpy(dtype="float64", na_value=np.nan), name=s.name)
    return s.astype("UInt64") if top > _INT64_MAX else s.astype("Int64")


def _timestamps(s: pd.Series) -> pd.Series:
    unit = s.dt.unit
    if unit == "ns":
        ticks = s.dropna().dt.tz_localize(None) if s.dt.tz is not None else s.dropna()
        return s.dt.as_unit("us") if (ticks.astype("int64") % 1000 == 0).all() else s
    return s.dt.as_unit("us") if unit in ("s", "ms") else s


def schema_of(frame: pd.DataFrame) -> dict[str, str]:
    return {str(c): str(t) for c, t in frame.dtypes.items()}


def content_sha256(frame: pd.DataFrame) -> str:
    """Hash of the content (64 hex digits): column names, each column's kind and every value, in
    row order; the name of a snapshot.

    The frame is brought to the snapshot's storage types and hashed as ingest hashes a source
    batch by batch (:mod:`mlops_ops.core.canonical`, hash version 2): independent of batch size,
    file layout and source format. Numbers (flags, any integer or float width, nullable or not)
    are one kind, hashed by exact value; text of any dtype is text; timestamps are their ticks. So
    ``1`` read as ``int64``, ``Int32`` or ``float64`` gives one snapshot.

    :raises DataError: a column holds values a snapshot cannot store (lists, structs).
    """
    from mlops_ops.core.canonical import frame_sha256

    return frame_sha256(frame)


def content_sha256_v1(frame: pd.DataFrame) -> str:
    """The content hash of snapshots written before hash version 2 (whole columns at a time).

    Independent of the file format, of the Parquet writer's version and of how a reader
    represents the same values: numbers (bool, any integer or float width, nullable or not) are
    hashed as float64 while that is exact (integers beyond 2**53 by their exact digits), text of
    any dtype as text, timestamps as their ticks. So ``1`` read as ``int64``, ``Int32`` or
    ``float64`` gives one snapshot.
    """
    h = hashlib.sha256()
    kinds = {}
    columns = []
    for col in frame.columns:
        kind, canonical = _hash_form(frame[col])
        kinds[str(col)] = kind
        columns.append((str(col), canonical))
    h.update(json.dumps(kinds, sort_keys=False).encode())
    h.update(str(len(frame)).encode())
    for col, canonical in columns:
        values = pd.util.hash_pandas_object(canonical, index=False, categorize=False).to_numpy()
        h.update(col.encode() + b"\0")
        h.update(np.ascontiguousarray(values).tobytes())
    return h.hexdigest()


def _hash_form(s: pd.Series) -> tuple[str, pd.Series]:
    """A column's kind and values in one representation per content (see :func:`content_sha256`)."""
    dtype = s.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_integer_dtype(dtype):
        present = s.dropna()
        exact = not len(present) or max(abs(int(present.max())), abs(int(present.min()))) <= _EXACT_FLOAT
        if exact:
            return "number", pd.Series(s.to_numpy(dtype="float64", na_value=np.nan))
        return "integer", s.astype("object").map(lambda v: None if _na(v) else str(int(v))).astype("string")
    if pd.api.types.is_float_dtype(dtype):
        return "number", pd.Series(s.to_numpy(dtype="float64", na_value=np.nan))
    if pd.api.types.is_datetime64_any_dtype(dtype):
        tz = str(getattr(s.dt, "tz", None) or "")
        return f"datetime[{s.dt.unit}{',' + tz if tz else ''}]", s
    return "text", s.astype("string")


def to_parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False, compression="zstd")
    return buf.getvalue()


def from_parquet_bytes(raw: bytes, columns: Iterable[str] | None = None) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(raw), columns=list(columns) if columns is not None else None)


# -- the snapshot manifest ---------------------------------------------------------------------


def describe_manifest(
    *, sha256: str, frame: pd.DataFrame, source: dict[str, Any], dag_run: dict[str, Any], uri: str
) -> dict[str, Any]:
    return {
        "sha256": sha256,
        "uri": uri,
        "rows": int(len(frame)),
        "columns": int(frame.shape[1]),
        "schema": schema_of(frame),
        "source": source,
        "created_by": dag_run,
        "format": "parquet",
        "manifest_version": 1,
    }
