"""Streaming ingest: one content hash per content, whatever the batches, files or source format.

The same rows are written as one CSV file, as Parquet files split at seeded random points, and
as a SQL result fetched in chunks; each is streamed into a snapshot file with several batch
sizes. Every way gives the same content hash (the snapshot's name), and the stored file decodes
to the content that hash names.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import random

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlops_ops.core import canonical, ingest_stream
from mlops_ops.core.data import content_sha256, normalise
from mlops_ops.core.snapshot import decode_table
from mlops_ops.errors import DataError


def _rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    gaps = rng.random(n) < 0.1
    amount = rng.normal(50, 20, n).round(2)
    amount[rng.random(n) < 0.05] = np.nan
    flag = pd.array(rng.random(n) < 0.3, dtype="boolean")
    flag[rng.random(n) < 0.05] = None
    calls = pd.array(rng.integers(0, 9, n), dtype="Int64")
    calls[gaps] = None
    region = pd.Series(rng.choice(["north", "south", "east", "west"], n), dtype="object")
    region[rng.random(n) < 0.05] = None
    return pd.DataFrame(
        {
            "customer_id": np.arange(10_000, 10_000 + n, dtype="int64"),
            "tenure": rng.integers(0, 72, n),
            "amount": amount,
            "calls": calls,
            "active": rng.random(n) < 0.5,
            "flag": flag,
            "region": region,
        }
    )


class _Sink:
    """An in-memory output that ``write_snapshot_file`` truncates on each attempt."""

    def __init__(self) -> None:
        self.raw = b""

    @contextlib.contextmanager
    def open(self):
        buf = io.BytesIO()
        yield buf
        self.raw = buf.getvalue()


def _write(batches) -> tuple[ingest_stream.Written, bytes]:
    sink = _Sink()
    written = ingest_stream.write_snapshot_file(batches, sink.open)
    return written, sink.raw


def _csv_source(raw: bytes, block_bytes: int, name: str = "day.csv", options=None):
    def batches(plan):
        yield from ingest_stream.csv_batches(name, io.BytesIO(raw), options, plan, block_bytes=block_bytes)

    return batches


def _parquet_source(parts: list[bytes], batch_rows: int):
    def batches(plan):
        for i, raw in enumerate(parts):
            yield from ingest_stream.parquet_batches(f"part-{i}.parquet", io.BytesIO(raw), batch_rows)

    return batches


def _frame_source(frame: pd.DataFrame, chunk: int):
    def batches(plan):
        chunks = (frame.iloc[i : i + chunk] for i in range(0, len(frame), chunk))
        yield from ingest_stream.frame_batches("the query on db", chunks)

    return batches


def _parquet_parts(frame: pd.DataFrame, n_parts: int, seed: int) -> list[bytes]:
    cuts = sorted(random.Random(seed).sample(range(1, len(frame)), n_parts - 1)) if n_parts > 1 else []
    parts = []
    for a, b in zip([0, *cuts], [*cuts, len(frame)], strict=True):
        buf = io.BytesIO()
        frame.iloc[a:b].to_parquet(buf, index=False)
        parts.append(buf.getvalue())
    return parts


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_content_hash_does_not_depend_on_batches_layout_or_format(seed):
    frame = _rows(3000, seed)
    expected = content_sha256(normalise(frame))
    csv = frame.to_csv(index=False).encode()
    hashes = {}
    for block in (1 << 10, 1 << 13, 1 << 20):
        hashes[f"csv/{block}B"] = _write(_csv_source(csv, block))[0].sha256
    for n_parts in (1, 2, 7):
        for batch_rows in (64, 1000, 1 << 17):
            parts = _parquet_parts(frame, n_parts, seed)
            hashes[f"parquet/{n_parts}/{batch_rows}"] = _write(_parquet_source(parts, batch_rows))[0].sha256
    for chunk in (100, 999, 5000):
        hashes[f"sql/{chunk}"] = _write(_frame_source(frame, chunk))[0].sha256
    assert set(hashes.values()) == {expected}, hashes


def test_the_stored_file_decodes_to_the_content_its_name_hashes():
    frame = _rows(2000, 7)
    written, raw = _write(_parquet_source(_parquet_parts(frame, 3, 7), 500))
    table = decode_table(raw, uri="mem://")
    assert canonical.table_sha256(table) == written.sha256
    back = canonical.frame_of_table(table)
    assert content_sha256(back) == written.sha256
    assert (written.rows, written.columns) == (2000, 7)
    assert pq.ParquetFile(io.BytesIO(raw)).metadata.num_row_groups >= 1
    assert written.file_bytes == len(raw)
    assert back["calls"].dtype == "float64"
    assert back["tenure"].dtype == "int64"
    assert back["active"].tolist()[:5] == [int(v) for v in frame["active"][:5]]


def test_a_later_batch_that_needs_a_wider_type_restarts_with_it():
    head = "n,x\n" + "".join(f"{i},{i}\n" for i in range(5000))
    raw = (head + "1.5,text\n").encode()
    written, stored = _write(_csv_source(raw, 1 << 10))
    assert written.passes == 3  # n: int64 -> float64, x: int64 -> text
    table = decode_table(stored, uri="mem://")
    assert str(table.schema.field("n").type) == "double"
    assert table.column("x").to_pylist()[-1] == "text"
    assert table.column("x").to_pylist()[:2] == ["0", "1"]  # the text as written, not re-formatted
    whole = normalise(pd.read_csv(io.BytesIO(raw)))
    assert written.sha256 == content_sha256(whole)


def test_integers_beyond_float_precision_keep_every_digit():
    big = [2**60 + 1, 2**60, 3, None]
    frame = pd.DataFrame({"id": pd.array(big, dtype="Int64")})
    written, raw = _write(_frame_source(frame, 2))
    back = canonical.frame_of_table(decode_table(raw, uri="mem://"))
    assert [None if pd.isna(v) else int(v) for v in back["id"]] == big
    other = pd.DataFrame({"id": pd.array([2**60, 2**60, 3, None], dtype="Int64")})
    assert _write(_frame_source(other, 4))[0].sha256 != written.sha256


def test_csv_dates_stay_text_as_pandas_reads_them():
    raw = b"day,n\n2026-01-01,1\n2026-01-02,2\n"
    written, stored = _write(_csv_source(raw, 1 << 20))
    assert decode_table(stored, uri="mem://").column("day").to_pylist() == ["2026-01-01", "2026-01-02"]
    assert written.sha256 == content_sha256(normalise(pd.read_csv(io.BytesIO(raw))))


def test_files_with_other_columns_are_refused_naming_both():
    a, b = io.BytesIO(), io.BytesIO()
    pd.DataFrame({"x": [1], "y": [2]}).to_parquet(a, index=False)
    pd.DataFrame({"y": [1], "x": [2]}).to_parquet(b, index=False)

    def batches(plan):
        yield from ingest_stream.parquet_batches("a.parquet", io.BytesIO(a.getvalue()))
        yield from ingest_stream.parquet_batches("b.parquet", io.BytesIO(b.getvalue()))

    with pytest.raises(DataError, match=r"b\.parquet does not have the columns of a\.parquet: the same"):
        _write(batches)


@pytest.mark.parametrize(
    ("raw", "name", "options", "message"),
    [
        (b"", "day.csv", None, "day.csv is empty"),
        (b"  \n", "day.csv", None, "day.csv is empty"),
        (b"a;b\n1;2\n", "day.csv", None, "source.csv.sep to ';'"),
        (b"a,a\n1,2\n", "day.csv", None, "more than once"),
        ("a;b\nsüd;1\n".encode("latin-1"), "day.csv", {"sep": ";"}, "source.csv.encoding"),
        (b"a,b\n1,2\n3,4,5\n", "day.csv", None, "day.csv is not a readable csv file"),
        (b"", "day.parquet", None, "day.parquet is empty"),
        (b"PAR1 this is not parquet", "day.parquet", None, "day.parquet is not a readable parquet file"),
    ],
)
def test_bad_files_fail_with_the_messages_of_the_whole_file_reader(raw, name, options, message):
    def batches(plan):
        if name.endswith(".parquet"):
            yield from ingest_stream.parquet_batches(name, io.BytesIO(raw))
        else:
            yield from ingest_stream.csv_batches(name, io.BytesIO(raw), options, plan)

    with pytest.raises(DataError, match=message.replace(".", r"\.").replace("(", r"\(")):
        _write(batches)


def test_csv_options_pyarrow_lacks_are_read_by_pandas_in_chunks():
    raw = b"id;amount\n1;1.234,5\n2;7,25\n"
    options = {"sep": ";", "decimal": ",", "thousands": "."}
    written, stored = _write(_csv_source(raw, 1 << 20, options=options))
    assert decode_table(stored, uri="mem://").column("amount").to_pylist() == [1234.5, 7.25]
    assert written.sha256 == content_sha256(pd.DataFrame({"id": [1, 2], "amount": [1234.5, 7.25]}))


@pytest.mark.parametrize(
    ("late", "stored"),
    [
        ("9223372036854775808", "uint64"),  # beyond int64: still a whole number
        ("abc", "string"),
        ("", "int64"),  # a gap: missing, no restart
    ],
)
def test_late_values_in_a_csv_widen_the_column_as_a_whole_file_read_would(late, stored):
    raw = ("n,k\n" + "".join(f"{i},x\n" for i in range(5000)) + f"{late},y\n7,z\n").encode()
    written, out = _write(_csv_source(raw, 1 << 10))
    assert str(decode_table(out, uri="mem://").schema.field("n").type) == stored
    assert written.rows == 5002
    assert written.sha256 == content_sha256(normalise(pd.read_csv(io.BytesIO(raw))))


def test_a_negative_value_after_uint64_ones_makes_the_column_text():
    raw = ("n\n" + "".join(f"{2**63 + i}\n" for i in range(3000)) + "-1\n").encode()
    written, out = _write(_csv_source(raw, 1 << 10))
    column = decode_table(out, uri="mem://").column("n").to_pylist()
    assert column[0] == str(2**63)
    assert column[-1] == "-1"
    assert written.passes <= 4


def test_row_groups_written_beside_the_reading_restart_cleanly_and_hash_the_bytes_stored(monkeypatch):
    # small row groups and output chunks: many row groups go to the writer's thread, and several
    # are written before a late batch widens a column and the write starts again
    monkeypatch.setattr(ingest_stream, "ROW_GROUP_ROWS", 256)
    monkeypatch.setattr(ingest_stream, "_SINK_CHUNK_BYTES", 4096)
    head = "n,x\n" + "".join(f"{i},{i % 7}\n" for i in range(20_000))
    raw = (head + "1.5,text\n").encode()
    written, stored = _write(_csv_source(raw, 1 << 12))
    assert written.passes == 3
    assert pq.ParquetFile(io.BytesIO(stored)).metadata.num_row_groups > 10
    assert written.file_bytes == len(stored)
    assert written.file_sha256 == hashlib.sha256(stored).hexdigest()
    assert canonical.table_sha256(decode_table(stored, uri="mem://")) == written.sha256
    assert written.sha256 == content_sha256(normalise(pd.read_csv(io.BytesIO(raw))))


def test_a_source_failing_after_row_groups_were_written_fails_the_write(monkeypatch):
    monkeypatch.setattr(ingest_stream, "ROW_GROUP_ROWS", 100)
    good = _parquet_parts(_rows(1000, 3), 1, 3)[0]

    def batches(plan):
        yield from ingest_stream.parquet_batches("part-0.parquet", io.BytesIO(good), 50)
        raise DataError("part-1.parquet is not a readable parquet file")

    with pytest.raises(DataError, match="part-1.parquet"):
        _write(batches)
