"""Joined outcomes in storage: ``<root>/<pipeline>/outcomes/joined/date=YYYY-MM-DD/part-<key>.parquet``.

One part per feedback run (``key``: the run's data interval, :func:`mlops_ops.core.scoring.interval_key`),
written whole through a temporary name, so a re-run of the same run replaces its own part and a
reader never sees half a part. ``date`` is the day (UTC) of the run's interval start. Columns:
:data:`mlops_ops.core.outcomes.JOINED_OUTCOME_SCHEMA`.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import TYPE_CHECKING, Any

from mlops_ops.hooks.storage import PipelineStorage, _safe, write_atomic

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from airflow.sdk import ObjectStoragePath

PART_PREFIX, PART_SUFFIX = "part-", ".parquet"


def joined_part_path(storage: PipelineStorage, day: dt.date, key: str) -> ObjectStoragePath:
    """Where the feedback run with interval ``key`` (its start on ``day``) stores its joined outcomes."""
    return (
        storage.outcomes_dir() / "joined" / f"date={day:%Y-%m-%d}" / f"{PART_PREFIX}{_safe(key)}{PART_SUFFIX}"
    )


def write_joined_outcomes(
    storage: PipelineStorage, day: dt.date, key: str, table: pa.Table
) -> ObjectStoragePath:
    """Store one run's joined outcomes (an Arrow table with exactly the joined columns), replacing
    that run's earlier part. :raises ValueError: the table's columns are not the contract's."""
    import pyarrow.parquet as pq

    from mlops_ops.core.outcomes import JOINED_COLUMNS, JOINED_OUTCOME_SCHEMA

    if tuple(table.column_names) != JOINED_COLUMNS:
        raise ValueError(f"joined outcomes need the columns {list(JOINED_COLUMNS)}, got {table.column_names}")
    buffer = io.BytesIO()
    pq.write_table(table.cast(JOINED_OUTCOME_SCHEMA), buffer, compression="zstd")
    return write_atomic(joined_part_path(storage, day, key), buffer.getvalue())


def joined_parts(storage: PipelineStorage) -> list[ObjectStoragePath]:
    """Every complete part, oldest day first (temporary files of a write under way are not listed)."""
    root = storage.outcomes_dir() / "joined"
    if not root.exists():
        return []
    parts: list[ObjectStoragePath] = []
    for day_dir in sorted(root.iterdir(), key=lambda p: p.name):
        if not day_dir.name.startswith("date=") or not day_dir.is_dir():
            continue
        parts += sorted(
            (p for p in day_dir.iterdir() if p.name.startswith(PART_PREFIX) and p.name.endswith(PART_SUFFIX)),
            key=lambda p: p.name,
        )
    return parts


def read_joined_outcomes(
    storage: PipelineStorage,
    *,
    predicted_since: dt.datetime | None = None,
    predicted_until: dt.datetime | None = None,
    exclude: ObjectStoragePath | None = None,
) -> pd.DataFrame:
    """All joined outcomes with ``predicted_since <= predicted_at < predicted_until`` (either bound
    optional, time-zone aware), every column of the contract, timestamps as ``datetime64[us, UTC]``.

    :param exclude: a part to leave out (a re-run's own earlier part).
    :returns: a frame, empty with the contract's columns when nothing was joined.
    :raises ValueError: a naive bound.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from mlops_ops.core.outcomes import JOINED_OUTCOME_SCHEMA

    for name, value in (("predicted_since", predicted_since), ("predicted_until", predicted_until)):
        if value is not None and value.tzinfo is None:
            raise ValueError(f"{name} {value!r} has no time zone; pass an aware datetime (UTC)")
    tables: list[Any] = []
    for part in joined_parts(storage):
        if exclude is not None and str(part) == str(exclude):
            continue
        with part.open("rb") as fh:
            tables.append(pq.read_table(io.BytesIO(fh.read())).cast(JOINED_OUTCOME_SCHEMA))
    table = pa.concat_tables(tables) if tables else JOINED_OUTCOME_SCHEMA.empty_table()
    at = table.column("predicted_at")
    if predicted_since is not None:
        table = table.filter(
            pc.greater_equal(at, pa.scalar(predicted_since.astimezone(dt.UTC), type=at.type))
        )
        at = table.column("predicted_at")
    if predicted_until is not None:
        table = table.filter(pc.less(at, pa.scalar(predicted_until.astimezone(dt.UTC), type=at.type)))
    return table.to_pandas()
