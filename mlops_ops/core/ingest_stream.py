"""Streaming ingest: a source read in batches, written as Parquet row groups, hashed on the way.

Memory is bounded by a batch and a row group (about :data:`ROW_GROUP_ROWS` rows), not by the
source. Each batch is brought to its storage types (:mod:`mlops_ops.core.canonical`), appended
to the snapshot's Parquet file as it comes, and added to two hashes: the content hash (the
snapshot's name, batch-independent) and the SHA-256 of the file's bytes (the manifest's record).

**Types are decided by the first batch and widened by restarting.** A column's storage type is
the one its first batch gives (a CSV reader infers it from that block). When a later batch needs
a wider type (an integer column meets ``1.5``, a number column meets text, a uint64 beyond
int64), the write starts again from the beginning of the source with the widened type declared
for that column; the partial file is discarded. So the stored types are exactly those of a
whole-source read, and only sources whose first batch is not representative are read more than
once (at most a few times: each restart widens one column one step). Sources:

- Parquet: :meth:`pyarrow.parquet.ParquetFile.iter_batches` (one row group at a time);
- CSV: pyarrow's streaming reader (:func:`pyarrow.csv.open_csv`, multi-threaded) with pandas'
  conventions for missing values and flags; dates and times stay text as pandas reads them.
  CSV options pyarrow has no equivalent for (``thousands``) and zip or xz compression are read
  by pandas in chunks of :data:`BATCH_ROWS` rows;
- a pandas frame iterator (a SQL cursor fetched in chunks), each chunk normalised.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import re
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlops_ops.core import canonical, formats
from mlops_ops.errors import DataError

#: rows per batch read from a source
BATCH_ROWS = 1 << 17
#: rows per Parquet row group of a snapshot
ROW_GROUP_ROWS = 1 << 18
#: restarts allowed for widening before the source counts as unreadable
MAX_RESTARTS = 64
_CSV_BLOCK_BYTES = 8 << 20
#: bytes the snapshot file's writer gathers before handing them to the output
_SINK_CHUNK_BYTES = 8 << 20
_HEAD_BYTES = 1 << 20
_PANDAS_TRUE = ["True", "TRUE", "true"]
_PANDAS_FALSE = ["False", "FALSE", "false"]
_CONVERSION = re.compile(
    r"In CSV column #(\d+): .*CSV conversion error to ([^:]+): invalid value '(.*)'", re.S
)

Batches = Iterator[tuple[str, pa.RecordBatch]]


@dataclass
class Plan:
    """What earlier attempts learned: storage types by column, and whether values span lines."""

    types: dict[str, pa.DataType] = field(default_factory=dict)
    newlines_in_values: bool = False


@dataclass(frozen=True)
class Written:
    """A snapshot data file written by :func:`write_snapshot_file`.

    ``schema`` maps each column to the pandas dtype readers get; ``file_sha256``/``file_bytes``
    describe the bytes written; ``passes`` counts reads of the source (1 + restarts).
    """

    sha256: str
    rows: int
    columns: int
    schema: dict[str, str]
    file_sha256: str
    file_bytes: int
    passes: int


class _Restart(Exception):  # noqa: N818 - control flow
    pass


def write_snapshot_file(
    batches: Callable[[Plan], Batches], open_sink: Callable[[], contextlib.AbstractContextManager[IO[bytes]]]
) -> Written:
    """Write the batches ``batches(plan)`` yields to the file ``open_sink()`` opens, hashing them.

    :param batches: opens the source and yields ``(file name, record batch)`` pairs; called again
        with a wider :class:`Plan` when a batch does not fit the types so far.
    :param open_sink: opens the (temporary) output for binary writing; truncates on each call.
    :raises DataError: the source cannot be read, files disagree on their columns, a column has a
        type a snapshot cannot store, or widening did not settle after :data:`MAX_RESTARTS`.
    """
    plan = Plan()
    for attempt in range(1, MAX_RESTARTS + 1):
        try:
            with open_sink() as out:
                return _write(batches(plan), out, plan, attempt)
        except canonical.Widen as widen:
            plan.types.update(widen.types)
        except _Restart:
            plan.newlines_in_values = True
    raise DataError(f"the column types of the source did not settle after {MAX_RESTARTS} passes")


class _HashingFile:
    """A write-only file object that hashes what passes through it and hands it on in chunks of
    about :data:`_SINK_CHUNK_BYTES`.

    The Parquet writer writes many small pieces (a few per column chunk); each write through
    Airflow's file wrapper also costs a hook-lineage call, and an object store's writer likes
    large parts. The bytes hash is of the bytes as written, in order. :meth:`close` hands on what
    is left (the output itself is closed by its owner).
    """

    def __init__(self, out: IO[bytes], chunk_bytes: int | None = None) -> None:
        self.out, self.sha, self.size, self.closed = out, hashlib.sha256(), 0, False
        self.chunk_bytes = _SINK_CHUNK_BYTES if chunk_bytes is None else chunk_bytes
        self.pending = bytearray()

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.sha.update(view)
        self.pending += view
        self.size += len(view)
        if len(self.pending) >= self.chunk_bytes:
            self._hand_on()
        return len(view)

    def _hand_on(self) -> None:
        if self.pending:
            chunk, self.pending = self.pending, bytearray()  # a new buffer: the output may keep this one
            self.out.write(chunk)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._hand_on()
        self.out.flush()

    def close(self) -> None:
        self._hand_on()
        self.closed = True

    def writable(self) -> bool:
        return True


def _write(source: Batches, out: IO[bytes], plan: Plan, attempt: int) -> Written:
    """One pass over the source: read, fit, hash and write, three ways at once.

    The task's thread reads and fits the batches; the content hash runs on one worker thread and
    the Parquet writer (encoding and compression: the largest cost) on another, a row group
    behind the reading, holding at most two row groups and a few batches. Measured against
    writing on the task's thread (benchmarks/ingest): from CSV 9 % less time at 1M rows and 29 %
    at 5M, from Parquet 10 % less at 5M rows and 6 % more at 1M, for 0.3-0.6 more CPU seconds.
    """
    sink = _HashingFile(out)
    names: list[str] | None = None
    types: list[pa.DataType] = []
    first = ""
    nulls: list[int] = []
    writer: pq.ParquetWriter | None = None
    hasher: canonical.ContentHasher | None = None
    pending: list[pa.RecordBatch] = []
    buffered = 0
    hashing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshot-hash")
    writing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshot-write")
    queued: list[Future[None]] = []
    row_group: Future[None] | None = None
    try:
        for where, batch in source:
            batch_names = canonical.same_names(batch.schema.names)
            if names is None:
                names, first = batch_names, where
                _check_names(names, where)
            elif batch_names != names:
                from mlops_ops.core import data

                raise DataError(
                    f"{where} does not have the columns of {first}: {data.names_difference(names, batch_names)}; "
                    "all files of one source must share one schema"
                )
            arrays = [canonical.storage_array(batch.column(i), n, where) for i, n in enumerate(names)]
            if not types:
                types = [_initial(plan, n, a.type) for n, a in zip(names, arrays, strict=True)]
                nulls = [0] * len(types)
                schema = pa.schema([pa.field(n, t) for n, t in zip(names, types, strict=True)])
                writer = pq.ParquetWriter(
                    sink, schema, compression="zstd", use_dictionary=_dictionary_columns(schema, arrays)
                )
                hasher = canonical.ContentHasher(names, types)
            arrays = [_fit(n, a, t) for n, a, t in zip(names, arrays, types, strict=True)]
            fitted = pa.RecordBatch.from_arrays(arrays, names=names)
            for i, a in enumerate(arrays):
                nulls[i] += a.null_count
            while len(queued) > 2:  # bounded: at most a few batches wait for the hash
                queued.pop(0).result()
            assert hasher is not None
            queued.append(hashing.submit(hasher.update, fitted))
            pending.append(fitted)
            buffered += fitted.num_rows
            if buffered >= ROW_GROUP_ROWS:
                assert writer is not None
                if row_group is not None:  # bounded: one row group being written, the next filling
                    row_group.result()
                row_group = writing.submit(
                    writer.write_table, pa.Table.from_batches(pending), row_group_size=buffered
                )
                pending, buffered = [], 0
        if names is None:
            raise DataError("the source has no columns")
        assert writer is not None
        assert hasher is not None
        if row_group is not None:
            row_group.result()
        if pending:
            writer.write_table(pa.Table.from_batches(pending), row_group_size=max(buffered, 1))
        writer.close()
        writer = None
        sink.flush()
        for job in queued:
            job.result()
    finally:
        writing.shutdown(wait=True, cancel_futures=True)  # no write under way when the writer closes
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
        hashing.shutdown(wait=True, cancel_futures=True)
    return Written(
        sha256=hasher.hexdigest(),
        rows=hasher.rows,
        columns=len(names),
        schema={n: _pandas_dtype(t, k) for n, t, k in zip(names, types, nulls, strict=True)},
        file_sha256=sink.sha.hexdigest(),
        file_bytes=sink.size,
        passes=attempt,
    )


def _dictionary_columns(schema: pa.Schema, first: list[pa.Array]) -> list[str]:
    """Columns worth dictionary encoding: text, and integers whose first batch repeats its values
    (labels, codes, counts).

    Floats are left plain: measures rarely repeat, and trying a dictionary on them in every row
    group costs more CPU than the rest of the write. So are integers all different in the first
    batch, at least half of them (identifiers): the writer would build a dictionary in every
    row group only to drop it when it outgrows its page (measured by benchmarks/ingest).
    """
    chosen = []
    for f, values in zip(schema, first, strict=True):
        if f.type == pa.string():
            chosen.append(f.name)
        elif pa.types.is_integer(f.type):
            distinct = pc.count_distinct(values, mode="only_valid").as_py()
            if distinct * 2 <= max(len(values) - values.null_count, 1):
                chosen.append(f.name)
    return chosen


def _initial(plan: Plan, name: str, incoming: pa.DataType) -> pa.DataType:
    declared = plan.types.get(name)
    if declared is None:
        return incoming
    wider = canonical.widen(declared, incoming)
    if wider != declared:
        raise canonical.Widen({name: wider})
    return declared


def _fit(name: str, values: pa.Array, current: pa.DataType) -> pa.Array:
    if pa.types.is_integer(current) and pa.types.is_floating(values.type):
        # whole numbers with gaps, as pandas gives integers with missing values: still integers
        with contextlib.suppress(pa.ArrowInvalid):
            return values.cast(current, safe=True)
    wider = canonical.widen(current, values.type)
    if wider != current:
        raise canonical.Widen({name: wider})
    try:
        return canonical.cast_to(values, current)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # e.g. a negative value into uint64
        raise canonical.Widen({name: pa.string()}) from None


def _pandas_dtype(t: pa.DataType, nulls: int) -> str:
    if pa.types.is_integer(t):
        return "float64" if nulls else str(t)  # a reader gives integers with gaps as float64
    if t == pa.float64():
        return "float64"
    if t == pa.string():
        return "object"
    if pa.types.is_timestamp(t):
        return f"datetime64[{t.unit}{', ' + str(t.tz) if t.tz else ''}]"
    if pa.types.is_duration(t):
        return f"timedelta64[{t.unit}]"
    return str(t)


def _check_names(names: list[str], where: str) -> None:
    if not names:
        raise DataError(f"{where} has no columns")
    dupes = sorted({c for c in names if names.count(c) > 1})
    if dupes:
        raise DataError(f"duplicate column names {dupes}; rename them in the source")


# -- Parquet -----------------------------------------------------------------------------------

_PARSE_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)


def parquet_batches(name: str, fh: IO[bytes], batch_rows: int = BATCH_ROWS) -> Batches:
    """The record batches of one Parquet file, read one row group at a time.

    :raises DataError: the file is empty or not a readable Parquet file (names the file).
    """
    fh.seek(0, 2)
    size = fh.tell()
    fh.seek(0)
    if size == 0:
        raise DataError(f"{name} is empty (0 data bytes); write the data before this task runs")
    try:
        # no pre-buffering: its read cache would hold every row group read until the file closes
        parquet = pq.ParquetFile(fh, pre_buffer=False)
        schema = parquet.schema_arrow
        yielded = False
        for batch in parquet.iter_batches(batch_size=batch_rows, use_threads=True):
            yielded = True
            yield name, batch
        if not yielded:
            yield name, pa.RecordBatch.from_arrays([pa.array([], type=f.type) for f in schema], schema=schema)
    except _PARSE_ERRORS as err:
        raise DataError(f"{name} is not a readable parquet file: {type(err).__name__}: {err}") from None


# -- CSV ---------------------------------------------------------------------------------------


def csv_batches(
    name: str,
    fh: IO[bytes],
    options: Mapping[str, Any] | None,
    plan: Plan,
    batch_rows: int = BATCH_ROWS,
    block_bytes: int = _CSV_BLOCK_BYTES,
) -> Batches:
    """The record batches of one CSV file (pyarrow's streaming reader, or pandas in chunks).

    ``options`` are the ``source.csv`` reader options (see :func:`mlops_ops.core.data.read_frame`);
    the header checks and error messages are those of ``read_frame``.

    :raises DataError: the file is empty, not valid text in its encoding, malformed, its header
        repeats a name or it was split into one column by a wrong separator.
    """
    from mlops_ops.core import data

    opts = {k: v for k, v in dict(options or {}).items() if v is not None}
    if "sep" not in opts:
        opts["sep"] = "\t" if formats.strip_compression(name.lower()).endswith(".tsv") else ","
    compression = formats.compression_of(name)
    head = _head(fh, compression)
    if not head.strip():
        raise DataError(f"{name} is empty (0 data bytes); write the data before this task runs")
    plain = formats.strip_compression(name)
    try:
        header = data._csv_header(head, plain, opts)
    except UnicodeDecodeError as err:
        raise _encoding_error(name, opts, f"{err.reason} at byte {err.start}") from None
    except Exception as err:
        raise DataError(f"{name} is not a readable csv file: {type(err).__name__}: {err}") from None
    data._check_header_names(name, header)
    if "thousands" in opts or compression not in (None, "gzip", "bz2"):
        yield from _pandas_csv(name, fh, opts, compression, header, plan, batch_rows)
    else:
        yield from _arrow_csv(name, fh, opts, compression, header, plan, block_bytes)


def _head(fh: IO[bytes], compression: str | None) -> bytes:
    fh.seek(0)
    if compression == "gzip":
        head = gzip.GzipFile(fileobj=fh).read(_HEAD_BYTES)
    elif compression == "bz2":
        head = bz2.BZ2File(fh).read(_HEAD_BYTES)
    elif compression is None:
        head = fh.read(_HEAD_BYTES)
    else:  # zip, xz: pandas reads the head of the whole stream
        head = b"x"
    fh.seek(0)
    return head


def _encoding_error(name: str, opts: Mapping[str, Any], what: str) -> DataError:
    return DataError(
        f"{name} is not valid {opts.get('encoding', 'utf-8')!r} text ({what}); set source.csv.encoding, "
        "e.g. 'latin-1' or 'cp1252'"
    )


def _null_values(opts: Mapping[str, Any]) -> list[str]:
    from pandas._libs.parsers import STR_NA_VALUES

    extra = opts.get("na_values") or []
    extra = [extra] if isinstance(extra, str) else list(extra)
    base = sorted(STR_NA_VALUES) if opts.get("keep_default_na", True) else []
    return [*base, *(str(v) for v in extra)]


def _arrow_csv(
    name: str,
    fh: IO[bytes],
    opts: Mapping[str, Any],
    compression: str | None,
    header: list[str],
    plan: Plan,
    block_bytes: int,
) -> Batches:
    import pyarrow.csv as pacsv

    from mlops_ops.core import data

    stream: Any = fh
    if compression:
        stream = pa.CompressedInputStream(pa.PythonFile(fh, mode="r"), compression)
    nulls = _null_values(opts)
    declared = {c: plan.types[c.strip()] for c in header if c.strip() in plan.types}
    reader_options = pacsv.ReadOptions(
        block_size=block_bytes, encoding=opts.get("encoding", "utf8"), use_threads=True
    )
    parse = pacsv.ParseOptions(
        delimiter=opts["sep"],
        quote_char=opts.get("quotechar", '"'),
        newlines_in_values=plan.newlines_in_values,
    )
    convert = pacsv.ConvertOptions(
        column_types=declared,
        null_values=nulls,
        strings_can_be_null="" in nulls,
        quoted_strings_can_be_null="" in nulls,
        true_values=_PANDAS_TRUE,
        false_values=_PANDAS_FALSE,
        decimal_point=opts.get("decimal", "."),
    )
    try:
        reader = pacsv.open_csv(
            stream, read_options=reader_options, parse_options=parse, convert_options=convert
        )
        names = reader.schema.names
        if len(names) == 1:
            data._check_single_column(name, header, 1, opts["sep"])
        yielded = False
        for batch in reader:
            _check_csv_types(name, batch, declared, opts)
            yielded = True
            yield name, batch
        if not yielded:
            schema = reader.schema
            empty = [pa.array([], type=f.type) for f in schema]
            yield name, pa.RecordBatch.from_arrays(empty, schema=schema)
    except pa.ArrowInvalid as err:
        raise _csv_failure(name, err, header, plan, opts) from None
    except UnicodeDecodeError as err:
        raise _encoding_error(name, opts, f"{err.reason} at byte {err.start}") from None


def _check_csv_types(
    name: str, batch: pa.RecordBatch, declared: Mapping[str, Any], opts: Mapping[str, Any]
) -> None:
    """Types pyarrow infers where pandas reads text or exact integers: widen them to text."""
    for column, values in zip(batch.schema.names, batch.columns, strict=True):
        if column in declared:
            continue
        t = values.type
        if pa.types.is_binary(t):
            raise _encoding_error(name, opts, f"column {column.strip()!r} holds bytes that are not text")
        if pa.types.is_date(t) or pa.types.is_time(t) or pa.types.is_timestamp(t):
            raise canonical.Widen({column.strip(): pa.string()})  # pandas reads dates as text
        if t == pa.float64() and values.null_count < len(values):
            # integers beyond int64 are inferred as floats and would lose digits: keep their text
            bounds = pc.min_max(values)
            if -(2.0**53) < bounds["min"].as_py() and bounds["max"].as_py() < 2.0**53:
                continue
            big = pc.greater_equal(pc.abs(values), float(2**53))
            if pc.any(pc.and_(big, pc.equal(pc.floor(values), values))).as_py():
                raise canonical.Widen({column.strip(): pa.string()})


def _csv_failure(
    name: str, err: Exception, header: list[str], plan: Plan, opts: Mapping[str, Any]
) -> Exception:
    message = str(err)
    match = _CONVERSION.search(message)
    if match and int(match[1]) < len(header):
        column = header[int(match[1])].strip()
        current = plan.types.get(column, _arrow_type(match[2]))
        wider = canonical.widen(current, _type_of_text(match[3], opts))
        return canonical.Widen({column: wider if wider != current else pa.string()})
    if "invalid UTF8" in message or "UTF-8" in message:
        return _encoding_error(name, opts, message.split(":")[-1].strip())
    if not plan.newlines_in_values and "Expected" in message and "columns" in message:
        return _Restart()  # a quoted value may span lines: read again allowing that
    return DataError(f"{name} is not a readable csv file: {type(err).__name__}: {message}")


def _arrow_type(text: str) -> pa.DataType:
    known = {"int64": pa.int64(), "double": pa.float64(), "bool": pa.int64(), "null": pa.float64()}
    return known.get(text.strip(), pa.string())


def _type_of_text(value: str, opts: Mapping[str, Any]) -> pa.DataType:
    try:
        number = int(value)
        return pa.int64() if number <= 2**63 - 1 else pa.uint64() if number < 2**64 else pa.string()
    except ValueError:
        pass
    try:
        float(value.replace(opts.get("decimal", "."), "."))
        return pa.float64()
    except ValueError:
        return pa.string()


def _pandas_csv(
    name: str,
    fh: IO[bytes],
    opts: Mapping[str, Any],
    compression: str | None,
    header: list[str],
    plan: Plan,
    batch_rows: int,
) -> Batches:
    import pandas as pd

    from mlops_ops.core import data

    text = {c: "string" for c in header if plan.types.get(c.strip()) == pa.string()}
    empty_missing = opts.get("keep_default_na", True) or "" in (opts.get("na_values") or ())
    try:
        chunks = pd.read_csv(fh, compression=compression, chunksize=batch_rows, dtype=text or None, **opts)
        first = True
        for chunk in chunks:
            if first:
                data._check_single_column(name, header, chunk.shape[1], opts["sep"])
                first = False
            if empty_missing:
                chunk = data._empty_text_missing(chunk)
            table = canonical.arrow_of_frame(data.normalise(chunk), name)
            for batch in table.to_batches():
                yield name, batch
    except (DataError, canonical.Widen):
        raise
    except UnicodeDecodeError as err:
        raise _encoding_error(name, opts, f"{err.reason} at byte {err.start}") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{name} has no columns or rows; write the data before this task runs") from None
    except Exception as err:
        raise DataError(f"{name} is not a readable csv file: {type(err).__name__}: {err}") from None


# -- pandas frames (SQL) -----------------------------------------------------------------------


def frame_batches(name: str, frames: Iterator[Any]) -> Batches:
    """Record batches of pandas frames (e.g. a SQL result fetched in chunks), each normalised."""
    from mlops_ops.core import data

    for frame in frames:
        table = canonical.arrow_of_frame(data.normalise(frame), name)
        batches = table.to_batches()
        if not batches:
            batches = [
                pa.RecordBatch.from_arrays(
                    [c.combine_chunks() for c in table.columns], names=table.column_names
                )
            ]
        for batch in batches:
            yield name, batch
