"""Joined outcomes in storage (hooks/outcomes.py): one part per feedback run, replaced by a re-run,
read back by prediction time; the columns are the contract of core/outcomes.py."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from mlops_ops.core.outcomes import JOINED_COLUMNS, JOINED_OUTCOME_SCHEMA
from mlops_ops.hooks.outcomes import joined_parts, read_joined_outcomes, write_joined_outcomes
from mlops_ops.hooks.storage import PipelineStorage

DAY = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def table(ids, *, predicted_at=DAY, label="1"):
    rows = [
        {
            "prediction_id": i,
            "source": "online",
            "model_version": "2",
            "arm": "champion",
            "entity_key": None,
            "predicted_at": predicted_at,
            "outcome_at": predicted_at + dt.timedelta(days=2),
            "joined_at": predicted_at + dt.timedelta(days=2),
            "prediction": "1",
            "probability": 0.8,
            "label": label,
        }
        for i in ids
    ]
    return pa.Table.from_pylist(rows, schema=JOINED_OUTCOME_SCHEMA)


@pytest.fixture
def storage(tmp_path):
    return PipelineStorage("churn", root=f"file://{tmp_path}")


def test_round_trip_and_filter_by_prediction_time(storage):
    write_joined_outcomes(storage, DAY.date(), "2026-12-01T000000Z", table(["a", "b"]))
    later = DAY + dt.timedelta(days=1)
    write_joined_outcomes(storage, later.date(), "2026-12-02T000000Z", table(["c"], predicted_at=later))
    frame = read_joined_outcomes(storage)
    assert tuple(frame.columns) == JOINED_COLUMNS
    assert sorted(frame["prediction_id"]) == ["a", "b", "c"]
    assert str(frame["predicted_at"].dtype) == "datetime64[us, UTC]"
    assert list(read_joined_outcomes(storage, predicted_since=later)["prediction_id"]) == ["c"]
    assert sorted(read_joined_outcomes(storage, predicted_until=later)["prediction_id"]) == ["a", "b"]


def test_a_rerun_replaces_its_own_part_and_can_be_left_out(storage):
    key = "2026-12-01T000000Z"
    write_joined_outcomes(storage, DAY.date(), key, table(["a", "b"]))
    path = write_joined_outcomes(storage, DAY.date(), key, table(["a"], label="0"))
    assert len(joined_parts(storage)) == 1
    frame = read_joined_outcomes(storage)
    assert list(frame["label"]) == ["0"]
    assert read_joined_outcomes(storage, exclude=path).empty
    # nothing temporary is left beside the part
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_empty_store_reads_as_an_empty_frame_with_the_contract_columns(storage):
    frame = read_joined_outcomes(storage)
    assert frame.empty
    assert tuple(frame.columns) == JOINED_COLUMNS


def test_wrong_columns_and_naive_bounds_are_refused(storage):
    with pytest.raises(ValueError, match="joined outcomes need the columns"):
        write_joined_outcomes(storage, DAY.date(), "k", table(["a"]).drop_columns(["label"]))
    assert not joined_parts(storage)
    with pytest.raises(ValueError, match="no time zone"):
        read_joined_outcomes(storage, predicted_since=dt.datetime(2026, 12, 1))
