"""What every generated DAG shares."""

from __future__ import annotations

import datetime as dt
from typing import Any

START_DATE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)

DEFAULT_ARGS: dict[str, Any] = {
    "retries": 2,
    "retry_delay": dt.timedelta(minutes=2),
    "retry_exponential_backoff": True,
}


def dag_kwargs(spec: Any, kind: str, *, default_args: dict[str, Any] | None = None) -> dict[str, Any]:
    """What every DAG of a pipeline shares: start date, no catch-up, one run at a time, tags, owner."""
    return {
        "start_date": START_DATE,
        "catchup": False,
        "max_active_runs": 1,
        "tags": ["mlops-ops", spec.name, kind, *spec.tags],
        "default_args": {"owner": spec.owner, **DEFAULT_ARGS, **(default_args or {})},
    }


def ingest_task(source: Any, *, task_id: str, pipeline: str, min_rows: int, **kwargs: Any) -> Any:
    """An ingest task reading a spec's ``SourceSpec`` (files with an optional window, or SQL)."""
    from mlops_ops.operators.ingest import IngestDatasetOperator

    window = source.window
    return IngestDatasetOperator(
        task_id=task_id,
        pipeline=pipeline,
        source_uri=source.uri,
        source_format=source.format,
        source_conn_id=source.conn_id_storage,
        sql=source.sql,
        conn_id=source.conn_id,
        parameters=dict(source.parameters) or None,
        min_rows=min_rows,
        window_days=window.days if window else None,
        window_date_format=window.date_format if window else "%Y-%m-%d",
        csv_options=source.csv.reader_options() if source.csv else None,
        **kwargs,
    )
