"""Streaming ingest against real services: a SQL query on PostgreSQL and snapshots on S3.

The same rows through a PostgreSQL query (fetched in chunks), from one CSV file and from several
Parquet files give one snapshot name. A snapshot streamed to S3 (moto's server, standing in for
AWS, which cannot be reached from here) is written through a temporary object and a move, reads
back verified, and a failing ingest leaves no object behind.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.core import ingest_stream
from mlops_ops.operators.ingest import IngestDatasetOperator
from tests.integration.conftest import S3_CREDENTIALS

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class _TI(SimpleNamespace):
    def xcom_push(self, key, value):
        pass


def _context():
    return {
        "ti": _TI(dag_id="d", run_id="manual__sources", task_id="ingest"),
        "outlet_events": defaultdict(SimpleNamespace),
        "logical_date": None,
    }


def _rows(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    calls = pd.array(rng.integers(0, 9, n), dtype="Int64")
    calls[rng.random(n) < 0.1] = None
    amount = rng.normal(50, 20, n).round(3)
    amount[rng.random(n) < 0.05] = np.nan
    region = pd.Series(rng.choice(["north", "south", "east"], n), dtype="object")
    region[rng.random(n) < 0.05] = None
    return pd.DataFrame(
        {
            "customer_id": np.arange(n, dtype="int64"),
            "calls": calls,
            "amount": amount,
            "region": region,
            "active": rng.random(n) < 0.5,
        }
    )


def test_the_same_rows_from_postgres_csv_and_parquet_files_are_one_snapshot(
    mlops_home, postgres_db, monkeypatch
):
    import sqlalchemy as sa

    frame = _rows(2500)
    engine = sa.create_engine(postgres_db.replace("postgresql://", "postgresql+psycopg2://"))
    frame.to_sql("customers", engine, index=False)
    engine.dispose()
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", postgres_db)
    monkeypatch.setattr(ingest_stream, "BATCH_ROWS", 700)  # several chunks through the cursor

    data = mlops_home / "data"
    data.mkdir(parents=True)
    frame.to_csv(data / "all.csv", index=False)
    for i, part in enumerate(np.array_split(np.arange(len(frame)), 4)):
        frame.iloc[part].to_parquet(data / f"part-{i}.parquet", index=False)

    sql = IngestDatasetOperator(
        task_id="ingest",
        pipeline="p",
        sql="SELECT * FROM customers ORDER BY customer_id",
        conn_id="warehouse",
    ).execute(_context())
    csv = IngestDatasetOperator(task_id="ingest", pipeline="p", source_uri=str(data / "all.csv")).execute(
        _context()
    )
    parquet = IngestDatasetOperator(
        task_id="ingest", pipeline="p", source_uri=str(data / "part-*.parquet")
    ).execute(_context())
    assert sql["rows"] == csv["rows"] == parquet["rows"] == 2500
    assert sql["sha256"] == csv["sha256"] == parquet["sha256"]
    assert sql["created"] is True
    assert csv["created"] is False
    assert parquet["created"] is False


def test_a_snapshot_streams_to_s3_and_a_failed_ingest_leaves_nothing(mlops_home, s3_bucket, monkeypatch):
    import boto3

    from mlops_ops.hooks.storage import read_snapshot

    endpoint, bucket = s3_bucket
    conn = {
        "conn_type": "aws",
        "login": S3_CREDENTIALS["aws_access_key_id"],
        "password": S3_CREDENTIALS["aws_secret_access_key"],
        "extra": {"endpoint_url": endpoint, "region_name": S3_CREDENTIALS["region_name"]},
    }
    monkeypatch.setenv("AIRFLOW_CONN_S3_STORE", json.dumps(conn))
    monkeypatch.setenv("MLOPS_STORAGE", f"s3://{bucket}/root")
    monkeypatch.setenv("MLOPS_STORAGE_CONN_ID", "s3_store")
    monkeypatch.setattr(ingest_stream, "ROW_GROUP_ROWS", 500)  # several row groups, streamed

    data = Path(mlops_home) / "data"
    data.mkdir(parents=True)
    frame = _rows(3000)
    frame.to_csv(data / "day.csv", index=False)
    result = IngestDatasetOperator(task_id="ingest", pipeline="p", source_uri=str(data / "day.csv")).execute(
        _context()
    )
    assert result["uri"].startswith("s3://")  # ObjectStoragePath names the connection: s3://<conn>@<bucket>
    assert f"{bucket}/root/p/snapshots/{result['sha256']}" in result["uri"]
    back, manifest = read_snapshot(result["uri"], "s3_store")
    assert len(back) == 3000
    assert manifest["content_hash"] == 2

    (data / "bad.csv").write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(AirflowFailException, match="bad.csv is not a readable csv file"):
        IngestDatasetOperator(task_id="ingest", pipeline="p", source_uri=str(data / "bad.csv")).execute(
            _context()
        )
    s3 = boto3.client("s3", endpoint_url=endpoint, **S3_CREDENTIALS)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert not [k for k in keys if ".tmp-" in k], keys
    assert sorted(k.rsplit("/", 1)[1] for k in keys) == ["data.parquet", "manifest.json"]
