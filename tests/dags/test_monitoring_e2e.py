"""The monitoring loop end to end with dag.test(): quiet days, one retrain per incident, small batches.

A champion is trained on two weeks of clean daily partitions. Then the monitoring DAG runs day by
day: batches without drift request nothing; the first drifted batch requests exactly one retrain
(an asset event with its reason), the next drifted batch is held back by the cooldown; a batch
too small to judge reports "insufficient data". The training DAG then trains on its recent
window, and the gate decides.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from mlops_ops.example.churn import write_partitions
from mlops_ops.runner import run_dag
from tests.conftest import champion_version, load_dag, mlflow_client, seed_mlflow_store

pytestmark = pytest.mark.slow

D0 = dt.date(2026, 3, 1)  # first monitored day


def _at(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _retrain_events() -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == "x-mlops://churn/retrain")
        ).all()
        return [dict(r.extra or {}) for r in rows]


@pytest.fixture(scope="module")
def loop(airflow_db, tmp_path_factory):
    """Run the whole loop once; the tests below check what it did."""
    import shutil

    from tests.conftest import ROOT

    root = tmp_path_factory.mktemp("loop")
    home, pipelines = root / "home", root / "pipelines"
    pipelines.mkdir()
    shutil.copy(ROOT / "pipelines" / "churn.yaml", pipelines)
    daily = home / "data" / "churn" / "daily"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        mp.setenv("MLOPS_PIPELINES", str(pipelines))
        seed_mlflow_store(home)
        # two clean weeks of history, then two clean days, three drifted days, one tiny batch
        write_partitions(daily, start=D0 - dt.timedelta(days=14), days=16, rows_per_day=300, seed=5)
        write_partitions(
            daily, start=D0 + dt.timedelta(days=2), days=3, rows_per_day=300, seed=5,
            drift_from=D0, drift=1.5, concept=1.0,
        )  # fmt: skip
        write_partitions(daily, start=D0 + dt.timedelta(days=5), days=1, rows_per_day=40, seed=5)
        events_before = len(_retrain_events())

        first = run_dag(load_dag("churn_training"), logical_date=_at(D0 - dt.timedelta(days=1)))
        assert first.state == "success", first.tasks
        assert champion_version(mlflow_client()) == "1"

        days = {}
        for i in range(6):
            day = D0 + dt.timedelta(days=i)
            days[day] = run_dag(load_dag("churn_monitoring"), logical_date=_at(day))
        events = _retrain_events()[events_before:]
        retrain = run_dag(
            load_dag("churn_training"),
            conf={"reason": events[0]["reason"] if events else "test"},
            logical_date=_at(D0 + dt.timedelta(days=3)),
        )
        requests = sorted((home / "storage" / "churn" / "retrain_requests").glob("*.json"))
        yield {
            "home": home,
            "first": first,
            "days": days,
            "events": events,
            "requests": [json.loads(p.read_text()) for p in requests],
            "retrain": retrain,
        }


def test_training_reads_its_window(loop):
    ingest = loop["first"].returned["ingest"]
    assert ingest["rows"] == 14 * 300  # 14-day window up to the logical date, of 16 clean days


def test_quiet_days_request_nothing(loop):
    for i in range(2):
        run = loop["days"][D0 + dt.timedelta(days=i)]
        assert run.state == "success", run.tasks
        drift = run.returned["detect_drift"]
        assert drift["status"] == "no_drift", drift["reasons"]
        assert run.returned["check_performance"]["status"] in ("ok", "no_baseline")
        assert run.tasks["request_retrain"] == "skipped"


def test_one_incident_one_retrain(loop):
    day2, day3, day4 = (loop["days"][D0 + dt.timedelta(days=i)] for i in (2, 3, 4))
    for run in (day2, day3, day4):
        assert run.state == "success", run.tasks
        assert run.returned["detect_drift"]["status"] == "drift"
        assert "monthly_charges" in run.returned["detect_drift"]["drifted_columns"]
    assert day2.tasks["request_retrain"] == "success"
    assert day3.tasks["request_retrain"] == "skipped"  # cooldown: same incident
    assert day4.tasks["request_retrain"] == "skipped"
    assert len(loop["events"]) == 1, loop["events"]
    event = loop["events"][0]
    assert "drift" in event["reason"]
    assert "monthly_charges" in event["reason"]
    assert event["summary"]
    assert len(loop["requests"]) == 1
    assert loop["requests"][0]["requested_at"].startswith(str(D0 + dt.timedelta(days=2)))


def test_drift_report_is_stored_and_logged(loop):
    run = loop["days"][D0 + dt.timedelta(days=2)]
    report = run.returned["detect_drift"]["report_uri"]
    doc = json.loads(open(report.removeprefix("file://")).read())
    assert doc["status"] == "drift"
    assert doc["champion_version"] == "1"
    assert {c["name"] for c in doc["columns"]} >= {"monthly_charges", "contract"}
    html = open(report.removeprefix("file://")[: -len("json")] + "html").read()
    assert "monthly_charges" in html
    day = str(D0 + dt.timedelta(days=2))  # the batch's day, in the JSON and on the page
    assert (doc["data_interval"]["start"], doc["data_interval"]["end"]) == (day, day)
    assert f"{day} to {day}" in html
    assert 'src="http' not in html
    assert 'href="http' not in html
    client = mlflow_client()
    runs = client.search_runs(
        [client.get_experiment_by_name("churn").experiment_id],
        "tags.`mlops.kind` = 'monitoring.drift'",
    )
    assert len(runs) == 6  # one per batch, the tiny one too (as insufficient data)
    assert any(r.data.tags.get("mlops.status") == "drift" for r in runs)


def test_small_batch_is_insufficient_data(loop):
    run = loop["days"][D0 + dt.timedelta(days=5)]
    assert run.state == "success", run.tasks
    drift = run.returned["detect_drift"]
    assert drift["status"] == "insufficient_data"
    assert drift["drifted_columns"] == []
    assert run.returned["check_performance"]["status"] == "insufficient_data"
    assert run.tasks["request_retrain"] == "skipped"


def test_retrain_trains_on_the_recent_window_and_gates(loop):
    run = loop["retrain"]
    assert run.state == "success", run.tasks
    ingest = run.returned["ingest"]
    assert ingest["rows"] == 14 * 300
    assert run.tasks["train"] == "success"
    decision = run.returned["evaluate"]
    assert decision["baseline_version"] == "1"
    assert decision["status"] in ("promote", "reject")
    assert decision["reasons"]
