"""The prediction log on the local disk: layout, atomic parts, bounds, reads by time range."""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlops_ops.hooks import storage as storage_hooks
from mlops_ops.hooks.storage import PipelineStorage
from mlops_ops.serving.prediction_log import (
    COLUMNS,
    PredictionLogError,
    PredictionLogWriter,
    read_prediction_log,
)

T0 = dt.datetime(2026, 12, 5, 13, 58, 0, tzinfo=dt.UTC)


def row(ts: dt.datetime = T0, **over):
    base = {
        "prediction_id": uuid.uuid4().hex,
        "request_id": uuid.uuid4().hex,
        "sticky_key": "c-1",
        "ts": ts,
        "model_version": "3",
        "arm": "champion",
        "served": True,
        "status": 200,
        "error": None,
        "latency_ms": 1.5,
        "prediction": "1",
        "probability": 0.75,
        "input": '{"tenure": 3}',
    }
    return {**base, **over}


@pytest.fixture
def storage(tmp_path):
    return PipelineStorage("churn", root=f"file://{tmp_path}")


def files(tmp_path: Path) -> list[str]:
    return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())


def test_flush_writes_one_complete_part_per_hour_under_the_contract_layout(storage, tmp_path):
    writer = PredictionLogWriter(storage, max_rows=100, max_seconds=3600)
    rows = [row(T0), row(T0 + dt.timedelta(minutes=1)), row(T0 + dt.timedelta(minutes=3))]
    writer.append(rows)
    assert files(tmp_path) == []  # buffered, nothing visible yet
    assert writer.flush() == 3
    names = files(tmp_path)
    assert len(names) == 2
    assert names[0].startswith("churn/prediction_log/date=2026-12-05/hour=13/part-")
    assert names[1].startswith("churn/prediction_log/date=2026-12-05/hour=14/part-")
    assert all(n.endswith(".parquet") and ".tmp-" not in n for n in names)
    table = pq.read_table(tmp_path / names[0])
    assert table.schema.names == list(COLUMNS)
    assert str(table.schema.field("ts").type) == "timestamp[us, tz=UTC]"
    assert str(table.schema.field("status").type) == "int16"
    assert table.num_rows == 2


def test_max_rows_flushes_on_append_and_close_writes_the_rest(storage, tmp_path):
    writer = PredictionLogWriter(storage, max_rows=2, max_seconds=3600)
    writer.append([row()])
    assert writer.parts_written == 0
    writer.append([row()])
    assert writer.parts_written == 1
    assert writer.buffered == 0
    writer.append([row()])
    assert writer.close() == 1
    assert writer.rows_written == 3
    with pytest.raises(RuntimeError, match="closed"):
        writer.append([row()])
    assert writer.close() == 0  # twice is harmless


def test_the_background_thread_flushes_rows_older_than_max_seconds(storage, tmp_path):
    writer = PredictionLogWriter(storage, max_rows=10_000, max_seconds=0.2).start()
    try:
        writer.append([row()])
        deadline = dt.datetime.now() + dt.timedelta(seconds=60)
        while writer.rows_written == 0 and dt.datetime.now() < deadline:
            threading.Event().wait(0.05)
        assert writer.rows_written == 1
    finally:
        writer.close()


def test_read_returns_the_half_open_range_sorted_and_reads_only_overlapping_hours(storage, tmp_path):
    writer = PredictionLogWriter(storage, max_rows=10_000, max_seconds=3600)
    stamps = [T0 - dt.timedelta(hours=2), T0, T0 + dt.timedelta(minutes=2), T0 + dt.timedelta(hours=1)]
    writer.append([row(ts, prediction=str(i)) for i, ts in enumerate(reversed(stamps))])
    writer.close()
    # an unreadable part in an hour outside the range must never be opened
    (tmp_path / "churn/prediction_log/date=2026-12-05/hour=09").mkdir(parents=True)
    (tmp_path / "churn/prediction_log/date=2026-12-05/hour=09/part-x.parquet").write_bytes(b"junk")
    # a writer's temporary file is never read
    hour13 = tmp_path / "churn/prediction_log/date=2026-12-05/hour=13"
    (hour13 / "part-y.parquet.tmp-abc").write_bytes(b"half")
    frame = read_prediction_log(storage, T0, T0 + dt.timedelta(hours=1))
    assert list(frame.columns) == list(COLUMNS)
    assert list(frame["ts"]) == [pd.Timestamp(T0), pd.Timestamp(T0 + dt.timedelta(minutes=2))]
    assert str(frame["ts"].dtype) == "datetime64[us, UTC]"
    some = read_prediction_log(storage, T0 - dt.timedelta(hours=3), T0, columns=["prediction"])
    assert list(some.columns) == ["prediction"]
    assert list(some["prediction"]) == ["3"]


def test_read_of_an_empty_log_has_the_columns(storage):
    frame = read_prediction_log(storage, T0, T0 + dt.timedelta(hours=1), columns=["ts", "arm"])
    assert frame.empty
    assert list(frame.columns) == ["ts", "arm"]


def test_read_refuses_naive_times_and_unknown_columns(storage):
    with pytest.raises(ValueError, match="time zone"):
        read_prediction_log(storage, T0.replace(tzinfo=None), T0)
    with pytest.raises(ValueError, match="unknown prediction log column"):
        read_prediction_log(storage, T0, T0, columns=["nope"])


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"arm": "canary"}, "'arm' must be one of"),
        ({"ts": T0.replace(tzinfo=None)}, "'ts' must be a datetime with a time zone"),
        ({"status": "ok"}, "column 'status' must hold int16"),
        ({"latency_ms": None}, "'latency_ms' may not be null"),
        ({"extra": 1}, r"unknown column\(s\) \['extra'\]"),
    ],
)
def test_a_bad_row_is_refused_at_append_naming_the_column_and_nothing_is_buffered(storage, change, match):
    writer = PredictionLogWriter(storage)
    with pytest.raises(PredictionLogError, match=match):
        writer.append([row(), row(**change)])
    assert writer.buffered == 0


def test_a_failed_write_keeps_the_unwritten_rows_and_never_duplicates(storage, tmp_path, monkeypatch):
    writer = PredictionLogWriter(storage, max_rows=10_000, max_seconds=3600)
    rows = [row(T0), row(T0 + dt.timedelta(hours=1))]
    ids = [r["prediction_id"] for r in rows]
    writer.append(rows)
    real_move = storage_hooks.move_file
    calls = []

    def flaky_move(src, dst):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("storage down")
        return real_move(src, dst)

    monkeypatch.setattr(storage_hooks, "move_file", flaky_move)
    with pytest.raises(OSError, match="storage down"):
        writer.flush()
    assert writer.buffered == 1
    assert writer.flush() == 1
    frame = read_prediction_log(storage, T0 - dt.timedelta(hours=1), T0 + dt.timedelta(hours=3))
    assert sorted(frame["prediction_id"]) == sorted(ids)
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]


def test_concurrent_appends_lose_and_duplicate_nothing(storage):
    writer = PredictionLogWriter(storage, max_rows=7, max_seconds=3600)
    ids: list[str] = []
    lock = threading.Lock()

    def worker():
        for _ in range(50):
            r = row()
            with lock:
                ids.append(r["prediction_id"])
            writer.append([r])

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    frame = read_prediction_log(storage, T0, T0 + dt.timedelta(hours=1), columns=["prediction_id"])
    assert sorted(frame["prediction_id"]) == sorted(ids)


# -- the prediction log as the monitoring DAG's batch source ---------------------------------------


def test_the_ingest_step_reads_the_answered_rows_of_the_interval_as_a_snapshot(mlops_home):
    from collections import defaultdict
    from types import SimpleNamespace

    from airflow.sdk.exceptions import AirflowSkipException

    from mlops_ops.hooks.storage import read_snapshot
    from mlops_ops.operators.ingest import IngestDatasetOperator

    storage = PipelineStorage("churn")
    writer = PredictionLogWriter(storage)
    inside = [row(T0, input=json.dumps({"tenure": i, "region": "north"})) for i in range(3)]
    shadow = [row(T0, arm="shadow", served=False, input=json.dumps({"tenure": 0, "region": "north"}))]
    outside = [row(T0 + dt.timedelta(hours=2), input=json.dumps({"tenure": 99, "region": "x"}))]
    writer.append(inside + shadow + outside)
    writer.close()

    def context(start, end):
        return {
            "ti": SimpleNamespace(dag_id="d", run_id="r", task_id="ingest_batch", xcom_push=lambda **_: None),
            "outlet_events": defaultdict(SimpleNamespace),
            "logical_date": start,
            "data_interval_start": start,
            "data_interval_end": end,
        }

    op = IngestDatasetOperator(task_id="ingest_batch", pipeline="churn", prediction_log=True)
    result = op.execute(context(T0 - dt.timedelta(minutes=30), T0 + dt.timedelta(minutes=30)))
    assert result["rows"] == 3  # the shadow's score of a served row is not another row
    frame, manifest = read_snapshot(result)
    assert sorted(frame["tenure"]) == [0, 1, 2]
    assert manifest["source"]["kind"] == "prediction_log"
    with pytest.raises(AirflowSkipException, match="no answered rows"):
        op.execute(context(T0 + dt.timedelta(days=3), T0 + dt.timedelta(days=4)))


def test_the_spec_takes_the_prediction_log_as_monitoring_source_only():
    from mlops_ops.config import SpecError, parse_pipeline_spec

    base = {
        "name": "churn",
        "source": {"uri": "/data/*.parquet"},
        "target": "churned",
        "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
    }
    spec = parse_pipeline_spec({**base, "monitoring": {"source": {"prediction_log": True}}})
    assert spec.monitoring.source.prediction_log
    with pytest.raises(SpecError, match="prediction_log"):
        parse_pipeline_spec({**base, "monitoring": {"source": {"prediction_log": True, "uri": "/x"}}})
    with pytest.raises(SpecError, match="source.prediction_log"):
        parse_pipeline_spec({**base, "source": {"prediction_log": True}})
