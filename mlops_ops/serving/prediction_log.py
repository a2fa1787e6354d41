"""The prediction log: every row the online service answered, per model that scored it, as Parquet.

Layout under the pipeline's storage root (:meth:`PipelineStorage.prediction_log_dir`)::

    <root>/<pipeline>/prediction_log/date=YYYY-MM-DD/hour=HH/part-<utc-timestamp>-<uuid>.parquet

A part is written whole to a temporary name and then moved to its final name (never appended), so
a reader sees complete parts only; the hour is the hour (UTC) of the rows' ``ts``. Columns and
their Arrow types are :data:`PREDICTION_LOG_SCHEMA` (the contract of docs/serving.md):

=================  ==========================  ==================================================
``prediction_id``  string                      uuid4 hex of the answered row
``request_id``     string                      the request that carried it
``sticky_key``     string, nullable            the routing key's value, as text
``ts``             timestamp[us, tz=UTC]       when the request arrived
``model_version``  string                      the registry version that scored the row
``arm``            string                      ``champion``, ``challenger`` or ``shadow``
``served``         bool                        this row's score was the answer returned
``status``         int16                       the request's HTTP status
``error``          string, nullable            why the model failed, when it did
``latency_ms``     float64                     this model's scoring time for the whole request
``prediction``     string, nullable            the label or value, as text
``probability``    float64, nullable           probability of the positive class
``input``          string                      the request row as JSON
=================  ==========================  ==================================================

Crash bound: :class:`PredictionLogWriter` holds at most ``max_rows`` rows or ``max_seconds``
seconds of rows in memory (whichever comes first, with the background flush on); a process killed
without a graceful stop loses at most those. :meth:`~PredictionLogWriter.close` (the service's
shutdown) writes everything buffered.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlops_ops.hooks.storage import PipelineStorage, write_atomic

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)

PREDICTION_LOG_SCHEMA = pa.schema(
    [
        pa.field("prediction_id", pa.string(), nullable=False),
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("sticky_key", pa.string()),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("arm", pa.string(), nullable=False),
        pa.field("served", pa.bool_(), nullable=False),
        pa.field("status", pa.int16(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("latency_ms", pa.float64(), nullable=False),
        pa.field("prediction", pa.string()),
        pa.field("probability", pa.float64()),
        pa.field("input", pa.string(), nullable=False),
    ]
)
COLUMNS = tuple(PREDICTION_LOG_SCHEMA.names)
ARMS = ("champion", "challenger", "shadow")
PART_PREFIX, PART_SUFFIX = "part-", ".parquet"


class PredictionLogError(ValueError):
    """Rows that do not fit the prediction log's columns; the message names the column."""


class PredictionLogWriter:
    """Buffers prediction-log rows and writes them as atomic Parquet parts, one per hour touched.

    Thread-safe: the service appends from its request handlers and flushes from a background
    thread. A flush that fails (storage down) keeps its rows buffered for the next one and raises.

    :param storage: the pipeline's storage (its :meth:`~PipelineStorage.prediction_log_dir`).
    :param max_rows: flush once this many rows are buffered (the crash bound in rows).
    :param max_seconds: flush rows buffered this long (the crash bound in seconds); checked on
        every append and, after :meth:`start`, by a background thread every ``max_seconds / 2``.
    """

    def __init__(self, storage: PipelineStorage, *, max_rows: int = 5000, max_seconds: float = 5.0) -> None:
        if max_rows < 1 or max_seconds <= 0:
            raise ValueError(f"max_rows must be >= 1 and max_seconds > 0, got {max_rows} and {max_seconds}")
        self.storage = storage
        self.max_rows = max_rows
        self.max_seconds = max_seconds
        self._batches: list[pa.RecordBatch] = []
        self._rows = 0
        self._writing = 0  # rows taken out of the buffer by a flush under way
        self._oldest: float | None = None
        self._lock = threading.Lock()  # guards the buffer
        self._write_lock = threading.Lock()  # one flush at a time, so parts keep their order
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.rows_written = 0
        self.parts_written = 0
        self.last_error: str | None = None  # why the last flush failed; None once one succeeds

    # -- writing ---------------------------------------------------------------------------------
    def append(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Buffer ``rows`` (dicts keyed by :data:`COLUMNS`); flushes when a bound is reached (in the
        background thread once :meth:`start` ran, so a request never waits for storage).

        :raises PredictionLogError: a row lacks a column, has an unknown one, or a value of the
            wrong type (checked here, so a bad row never reaches a flush); nothing is buffered then.
        :raises RuntimeError: the writer is closed.
        """
        if not rows:
            return
        batch = to_record_batch(rows)
        with self._lock:
            if self._closed:
                raise RuntimeError("the prediction log writer is closed")
            self._batches.append(batch)
            self._rows += batch.num_rows
            if self._oldest is None:
                self._oldest = time.monotonic()
        if not self._due():
            return
        if self._thread is not None:
            self._wake.set()  # the background thread writes: the caller (a request) does not wait
        else:
            self.flush()

    def _due(self) -> bool:
        with self._lock:
            return self._rows >= self.max_rows or (
                self._oldest is not None and time.monotonic() - self._oldest >= self.max_seconds
            )

    def flush(self) -> int:
        """Write every buffered row (one part per hour partition); returns the rows written.

        On an error the rows not yet written go back to the front of the buffer and the error
        propagates; parts already moved into place stay (each row is written once).
        """
        with self._write_lock:
            with self._lock:
                batches, self._batches = self._batches, []
                self._writing, self._rows, self._oldest = self._rows, 0, None
            if not batches:
                return 0
            table, slices = _by_hour(pa.Table.from_batches(batches, schema=PREDICTION_LOG_SCHEMA))
            written = 0
            try:
                for hour, part in slices:
                    self._write_part(hour, part)
                    written += part.num_rows
            except BaseException as err:
                rest = table.slice(written)  # the hours not yet written (slices are in table order)
                with self._lock:
                    self._batches[:0] = rest.to_batches()
                    self._rows += rest.num_rows
                    self._writing = 0
                    self._oldest = self._oldest or time.monotonic()
                    self.last_error = f"{type(err).__name__}: {err}"
                raise
            with self._lock:
                self._writing = 0
                self.last_error = None
            self.rows_written += written
            return written

    def _write_part(self, hour: dt.datetime, table: pa.Table) -> ObjectStoragePath:
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        now = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = hour_dir(self.storage, hour) / f"{PART_PREFIX}{now}-{uuid.uuid4().hex}{PART_SUFFIX}"
        write_atomic(path, sink.getvalue())
        self.parts_written += 1
        log.debug("prediction log: %d row(s) to %s", table.num_rows, path)
        return path

    # -- background flush and shutdown -----------------------------------------------------------
    def start(self) -> PredictionLogWriter:
        """Start the background thread that flushes rows older than ``max_seconds``."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="prediction-log-flush", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.max_seconds / 2)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                if self._due():
                    self.flush()
            except Exception:  # storage down: the rows stay buffered, the next tick tries again
                log.exception("prediction log flush failed; %d row(s) stay buffered", self.buffered)

    @property
    def buffered(self) -> int:
        """Rows not yet written: buffered, or being written by a flush under way."""
        with self._lock:
            return self._rows + self._writing

    def spill(self, storage: PipelineStorage) -> int:
        """Write every buffered row under another storage, in the same layout; returns the rows
        written. The service's last resort when its log's storage fails at shutdown: call it after
        :meth:`close` (no background flush then).

        :raises: that storage's errors (the rows then stay buffered).
        """
        own, self.storage = self.storage, storage
        try:
            return self.flush()
        finally:
            self.storage = own

    def close(self) -> int:
        """Stop the background thread and write everything buffered; returns the rows written.

        Later appends raise. Calling it twice is harmless.
        """
        with self._lock:
            self._closed = True
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None
        return self.flush()


def to_record_batch(rows: Sequence[Mapping[str, Any]]) -> pa.RecordBatch:
    """Rows as a record batch of :data:`PREDICTION_LOG_SCHEMA`.

    :raises PredictionLogError: naming the missing, unknown or mistyped column.
    """
    expected = set(COLUMNS)
    for i, row in enumerate(rows):
        keys = set(row)
        if keys != expected:
            missing, unknown = sorted(expected - keys), sorted(keys - expected)
            raise PredictionLogError(
                f"prediction log row {i}: missing column(s) {missing}, unknown column(s) {unknown}; "
                f"the columns are {list(COLUMNS)}"
            )
        ts = row["ts"]
        if not isinstance(ts, dt.datetime) or ts.tzinfo is None:
            raise PredictionLogError(
                f"prediction log row {i}: column 'ts' must be a datetime with a time zone, got {ts!r}"
            )
        if row["arm"] not in ARMS:
            raise PredictionLogError(
                f"prediction log row {i}: column 'arm' must be one of {ARMS}, got {row['arm']!r}"
            )
    columns = {}
    for field in PREDICTION_LOG_SCHEMA:
        values = [row[field.name] for row in rows]
        try:
            columns[field.name] = pa.array(values, type=field.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as err:
            raise PredictionLogError(
                f"prediction log column {field.name!r} must hold {field.type}: {err}"
            ) from None
        if not field.nullable and columns[field.name].null_count:
            raise PredictionLogError(f"prediction log column {field.name!r} may not be null")
    return pa.RecordBatch.from_pydict(columns, schema=PREDICTION_LOG_SCHEMA)


def _by_hour(table: pa.Table) -> tuple[pa.Table, list[tuple[dt.datetime, pa.Table]]]:
    """The table sorted by the UTC hour of ``ts`` (stable: arrival order kept within an hour), and
    its consecutive slices per hour, hours ascending."""
    hours = pc.floor_temporal(table.column("ts"), unit="hour")
    distinct = sorted(pc.unique(hours).to_pylist())
    if len(distinct) == 1:
        return table, [(distinct[0], table)]
    order = pc.sort_indices(pa.table({"h": hours}), sort_keys=[("h", "ascending")])
    table, hours = table.take(order), hours.take(order)
    slices, offset = [], 0
    for hour in distinct:
        count = pc.sum(pc.equal(hours, pa.scalar(hour, type=hours.type))).as_py()
        slices.append((hour, table.slice(offset, count)))
        offset += count
    return table, slices


def hour_dir(storage: PipelineStorage, hour: dt.datetime) -> ObjectStoragePath:
    """``prediction_log/date=YYYY-MM-DD/hour=HH`` for the UTC hour holding ``hour``."""
    hour = hour.astimezone(dt.UTC)
    return storage.prediction_log_dir() / f"date={hour:%Y-%m-%d}" / f"hour={hour:%H}"


# -- reading ---------------------------------------------------------------------------------------


def read_prediction_log(
    storage: PipelineStorage,
    start: dt.datetime,
    end: dt.datetime,
    *,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The logged rows with ``start <= ts < end``, reading only the hour partitions that overlap.

    :param start: inclusive, time-zone aware.
    :param end: exclusive, time-zone aware.
    :param columns: the columns to return (default all of :data:`COLUMNS`).
    :returns: a frame with those columns (``ts`` as ``datetime64[us, UTC]``), sorted by ``ts``;
        empty with the same columns when nothing was logged.
    :raises ValueError: a naive datetime, or an unknown column.
    """
    for name, value in (("start", start), ("end", end)):
        if value.tzinfo is None:
            raise ValueError(f"{name} {value!r} has no time zone; pass an aware datetime (UTC)")
    wanted = list(columns) if columns is not None else list(COLUMNS)
    unknown = [c for c in wanted if c not in COLUMNS]
    if unknown:
        raise ValueError(f"unknown prediction log column(s) {unknown}; the columns are {list(COLUMNS)}")
    read_cols = wanted if "ts" in wanted else [*wanted, "ts"]
    tables = [_read_part(part, read_cols) for part in prediction_log_parts(storage, start, end)]
    schema = pa.schema([PREDICTION_LOG_SCHEMA.field(c) for c in read_cols])
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    ts = table.column("ts")
    lo = pa.scalar(start.astimezone(dt.UTC), type=ts.type)
    hi = pa.scalar(end.astimezone(dt.UTC), type=ts.type)
    table = table.filter(pc.and_(pc.greater_equal(ts, lo), pc.less(ts, hi)))
    table = table.sort_by([("ts", "ascending")]).select(wanted)
    return table.to_pandas()


def _read_part(path: ObjectStoragePath, columns: list[str]) -> pa.Table:
    with path.open("rb") as fh:
        data = fh.read()
    return pq.read_table(io.BytesIO(data), columns=columns).cast(
        pa.schema([PREDICTION_LOG_SCHEMA.field(c) for c in columns])
    )


def prediction_log_parts(
    storage: PipelineStorage, start: dt.datetime, end: dt.datetime
) -> list[ObjectStoragePath]:
    """The complete parts of the hour partitions overlapping ``[start, end)``, in time order.

    Temporary files of a write under way (or of a killed writer) are never listed.
    """
    root = storage.prediction_log_dir()
    if not root.exists():
        return []
    first = start.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    last = end.astimezone(dt.UTC)
    parts = []
    for date_dir in sorted(root.iterdir(), key=lambda p: p.name):
        day = _parse(date_dir.name, "date=", "%Y-%m-%d")
        if day is None or day < first.replace(hour=0) or day >= last:
            continue
        for hour_path in sorted(date_dir.iterdir(), key=lambda p: p.name):
            hour = _parse(hour_path.name, "hour=", "%H")
            if hour is None:
                continue
            at = day.replace(hour=hour.hour)
            if at < first or at >= last:
                continue
            parts += sorted(
                (
                    p
                    for p in hour_path.iterdir()
                    if p.name.startswith(PART_PREFIX) and p.name.endswith(PART_SUFFIX)
                ),
                key=lambda p: p.name,
            )
    return parts


def _parse(name: str, prefix: str, fmt: str) -> dt.datetime | None:
    if not name.startswith(prefix):
        return None
    try:
        return dt.datetime.strptime(name[len(prefix) :], fmt).replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def served_inputs(storage: PipelineStorage, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    """The request rows answered (``served``) with ``start <= ts < end``, one per answered row, as
    the client sent them (the ``input`` JSON as columns): a batch of live traffic for monitoring.

    :returns: a frame with the request's columns; empty (no columns) when nothing was answered.
    """
    import json

    import pandas as pd

    log_rows = read_prediction_log(storage, start, end, columns=["input", "served"])
    inputs = log_rows.loc[log_rows["served"].astype(bool), "input"]
    return pd.DataFrame.from_records([json.loads(text) for text in inputs])
