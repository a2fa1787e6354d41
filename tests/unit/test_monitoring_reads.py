"""What the monitoring operators moved out of ``execute()`` (issue 10, item 2): the reference's
reasons and the retrain summary in core, the check's MLflow run and a run's metrics in the hook."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from mlops_ops.core.monitoring import short_summary
from mlops_ops.core.reference import (
    Interval,
    ReferenceChoice,
    fallback_reason,
    training_reason,
    unusable_reason,
    window_reason,
)

D = dt.date


def _window(files: list[str]) -> ReferenceChoice:
    return ReferenceChoice(
        kind="rolling",
        requested="rolling",
        why="",
        intervals=[Interval(D(2026, 1, 1), D(2026, 1, 7))],
        files=files,
        n_files=len(files),
        source="/data/*.csv",
    )


def test_a_window_is_unusable_without_partitions_or_with_too_few_rows():
    assert unusable_reason(_window([]), rows=None, min_rows=50) == "no partition is dated in it"
    assert unusable_reason(_window([]), rows=10_000, min_rows=50) == "no partition is dated in it"
    assert unusable_reason(_window(["/data/2026-01-02.csv"]), rows=None, min_rows=50) is None
    assert unusable_reason(_window(["/data/2026-01-02.csv"]), rows=49, min_rows=50) == (
        "it holds 49 rows, fewer than min_rows 50"
    )
    assert unusable_reason(_window(["/data/2026-01-02.csv"]), rows=1_250, min_rows=5_000) == (
        "it holds 1,250 rows, fewer than min_rows 5,000"
    )
    for rows in (50, 51, 10_000):  # at or above the minimum: usable
        assert unusable_reason(_window(["/data/2026-01-02.csv"]), rows=rows, min_rows=50) is None


def test_the_reasons_name_the_kind_the_window_and_the_champion():
    batch = Interval(D(2026, 7, 1), D(2026, 7, 31))
    seasons = [batch.shifted(-365), batch.shifted(-730)]
    one = window_reason(
        "seasonal", batch, "the ingest window", seasons[:1], lag_days=365, seasons=1, days=None
    )
    assert "reference.kind is 'seasonal'" in one
    assert "365 days earlier" in one
    assert "31 day(s)" in one
    assert "past seasons" not in one
    two = window_reason("seasonal", batch, "the ingest window", seasons, lag_days=365, seasons=2, days=None)
    assert "in each of 2 past seasons" in two
    rolling = window_reason(
        "rolling", batch, "file names", [batch.shifted(-28)], lag_days=365, seasons=1, days=28
    )
    assert "reference.kind is 'rolling'" in rolling
    assert "28 day(s) before it" in rolling
    assert "champion v7 was trained on" in training_reason(7)
    text = fallback_reason(_window([]), "3", "no partition is dated in it")
    assert text.startswith("the rolling reference (/data/*.csv, 2026-01-01..2026-01-07) cannot be used: ")
    assert text.endswith("compared with the data champion v3 was trained on instead")


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        ({}, ""),
        ({"drift": {"status": "drift", "drifted_columns": ["a", "b"]}}, "drift drift: a, b"),
        ({"drift": {"status": "ok", "drifted_columns": []}}, "drift ok: no columns"),
        (
            {"drift": {"status": "drift", "drifted_columns": [f"c{i}" for i in range(12)]}},
            "drift drift: " + ", ".join(f"c{i}" for i in range(8)),
        ),
        (
            {"performance": {"status": "degraded", "metric": "roc_auc", "value": 0.812345}},
            "performance degraded: roc_auc 0.8123",
        ),
        (
            {"performance": {"status": "unlabelled", "metric": "rmse", "value": None}},
            "performance unlabelled: rmse None",
        ),
        (
            {
                "drift": {"status": "drift", "drifted_columns": ["x"]},
                "performance": {"status": "ok", "metric": "rmse", "value": 12.0},
            },
            "drift drift: x; performance ok: rmse 12",
        ),
    ],
)
def test_the_retrain_event_summary_is_one_line(summary, expected):
    assert short_summary(summary) == expected


def test_the_monitoring_run_is_logged_and_finished_through_the_hook(mlflow_store):
    """Real MLflow on SQLite: metrics (None left out), the document made JSON-safe, the HTML."""
    from mlops_ops.hooks.mlflow import MlflowHook

    hook = MlflowHook()
    document = {"status": "drift", "share": math.nan, "columns": ["a"]}
    run_id, url = hook.log_monitoring_run(
        "churn",
        kind="drift",
        run_name="drift-2026-01-01",
        tags={"mlops.kind": "monitoring.drift"},
        metrics={"drift.rows": 120, "drift.drifted_share": 0.25, "drift.prediction_effect": None},
        document=document,
        html="<p>report</p>",
    )
    run = hook.client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "drift-2026-01-01"
    assert run.data.tags["mlops.kind"] == "monitoring.drift"
    assert hook.get_run_metrics(run_id) == {"drift.rows": 120.0, "drift.drifted_share": 0.25}
    assert hook.load_dict(run_id, "monitoring/drift.json") == {
        "status": "drift",
        "share": None,
        "columns": ["a"],
    }
    assert run_id in url
    second, _ = hook.log_monitoring_run(
        "churn", kind="performance", run_name="p", tags={}, metrics={}, document={}, html=None
    )
    assert hook.client.get_run(second).info.experiment_id == run.info.experiment_id
    assert hook.get_run_metrics(second) == {}
