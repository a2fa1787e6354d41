"""Delayed outcomes end to end with dag.test(): batch scoring and online predictions, outcomes two
days late, the monitoring DAG's ingest_outcomes and join_outcomes on a real MLflow and real files.

The online service is not started: its prediction log is written with the service's own writer
(``PredictionLogWriter``, the log's contract), with the champion's real scores of real rows.
"""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from mlops_ops.core.scoring import interval_key
from mlops_ops.example.churn import write_partitions
from mlops_ops.runner import run_dag
from tests.conftest import champion_version, load_dag, mlflow_client, seed_mlflow_store

pytestmark = pytest.mark.slow

D0 = dt.date(2026, 3, 1)  # the day predictions are made; outcomes arrive on D0 + 2


def _at(day: dt.date, hour: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=dt.UTC)


def _write_log(home, predictions: pd.DataFrame, inputs: pd.DataFrame) -> list[str]:
    """Log the batch's first 40 rows as if the service had answered them at D0 10:00."""
    from mlops_ops.hooks.storage import PipelineStorage
    from mlops_ops.serving.prediction_log import PredictionLogWriter

    writer = PredictionLogWriter(PipelineStorage("churn", root=f"file://{home}/storage"))
    rows, ids = [], []
    for i in range(40):
        pid = f"online-{i:03d}"
        ids.append(pid)
        rows.append(
            {
                "prediction_id": pid,
                "request_id": f"req-{i}",
                "sticky_key": None,
                "ts": _at(D0, 10) + dt.timedelta(seconds=i),
                "model_version": "1",
                "arm": "champion",
                "served": True,
                "status": 200,
                "error": None,
                "latency_ms": 2.0,
                "prediction": str(predictions["prediction"].iloc[i]),
                "probability": float(predictions["probability"].iloc[i]),
                "input": inputs.iloc[i].to_json(),
            }
        )
    writer.append(rows)
    writer.close()
    return ids


@pytest.fixture(scope="module")
def feedback(airflow_db, tmp_path_factory):
    import shutil

    from tests.conftest import ROOT

    root = tmp_path_factory.mktemp("feedback")
    home, pipelines = root / "home", root / "pipelines"
    pipelines.mkdir()
    shutil.copy(ROOT / "pipelines" / "churn.yaml", pipelines)  # its monitoring.feedback section
    daily = home / "data" / "churn" / "daily"
    outcomes_dir = home / "data" / "churn" / "outcomes"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        mp.setenv("MLOPS_PIPELINES", str(pipelines))
        seed_mlflow_store(home)
        write_partitions(daily, start=D0 - dt.timedelta(days=14), days=19, rows_per_day=300, seed=5)
        trained = run_dag(load_dag("churn_training"), logical_date=_at(D0 - dt.timedelta(days=1)))
        assert trained.state == "success", trained.tasks
        assert champion_version(mlflow_client()) == "1"
        scored = run_dag(load_dag("churn_batch_scoring"), logical_date=_at(D0))
        assert scored.state == "success", scored.tasks
        key = interval_key(_at(D0), "")  # the scoring run's folder: its interval start
        predictions = pd.read_parquet(
            home / "storage" / "churn" / "predictions" / key / "predictions.parquet"
        )
        inputs = pd.read_parquet(daily / f"{D0}.parquet").drop(columns=["churned"])
        online = _write_log(home, predictions, inputs)
        labels = pd.read_parquet(daily / f"{D0}.parquet")["churned"]

        # two days later the outcomes arrive: 300 batch rows, 40 online, one re-delivered,
        # one unknown id, one without a label, one more than window_days after its prediction
        rows = [
            {"prediction_id": f"batch:{key}:{i}", "churned": int(labels[i]), "churned_at": f"{D0}T18:00:00Z"}
            for i in range(300)
        ]
        rows += [
            {"prediction_id": pid, "churned": float(labels[i]), "churned_at": f"{D0 + dt.timedelta(days=1)}T09:00:00Z"}
            for i, pid in enumerate(online)
        ]  # fmt: skip
        rows += [
            {"prediction_id": online[0], "churned": 1, "churned_at": f"{D0 + dt.timedelta(days=2)}T01:00:00Z"},
            {"prediction_id": "no-such-prediction", "churned": 1, "churned_at": f"{D0}T12:00:00Z"},
            {"prediction_id": online[1], "churned": None, "churned_at": f"{D0}T12:00:00Z"},
            {"prediction_id": f"batch:{key}:0", "churned": 1, "churned_at": f"{D0 + dt.timedelta(days=20)}T00:00:00Z"},
        ]  # fmt: skip
        outcomes_dir.mkdir(parents=True)
        arrival = D0 + dt.timedelta(days=2)
        pd.DataFrame(rows).to_csv(outcomes_dir / f"{arrival}.csv", index=False)
        quiet = run_dag(load_dag("churn_monitoring"), logical_date=_at(D0 + dt.timedelta(days=1)))
        first = run_dag(load_dag("churn_monitoring"), logical_date=_at(arrival))
        joined = sorted((home / "storage" / "churn" / "outcomes" / "joined").rglob("*.parquet"))
        first_part = pd.read_parquet(joined[0]) if joined else None
        again = run_dag(load_dag("churn_monitoring"), logical_date=_at(arrival))  # a re-run
        # the same file re-delivered the next day: every outcome is already joined
        shutil.copy(outcomes_dir / f"{arrival}.csv", outcomes_dir / f"{arrival + dt.timedelta(days=1)}.csv")
        redelivered = run_dag(load_dag("churn_monitoring"), logical_date=_at(arrival + dt.timedelta(days=1)))
        # an export that writes the label as text: the join fails once, naming the fix
        bad_day = arrival + dt.timedelta(days=2)
        pd.DataFrame(
            {"prediction_id": online[:3], "churned": ["yes", "no", "yes"], "churned_at": f"{D0}T12:00:00Z"}
        ).to_csv(outcomes_dir / f"{bad_day}.csv", index=False)
        bad = run_dag(load_dag("churn_monitoring"), logical_date=_at(bad_day))
        parts_after_bad = sorted((home / "storage" / "churn" / "outcomes" / "joined").rglob("*.parquet"))
        yield {
            "bad": bad,
            "parts_after_bad": parts_after_bad,
            "home": home,
            "key": key,
            "quiet": quiet,
            "first": first,
            "first_part": first_part,
            "again": again,
            "redelivered": redelivered,
        }


EXPECTED = {
    "received": 344,
    "invalid": 1,
    "orphan": 1,
    "out_of_window": 1,
    "duplicate": 1,
    "joined": 340,
    "late": 340,
    "joined_rows": 340,
}


def test_a_day_without_outcomes_skips_the_join_and_still_checks_performance(feedback):
    run = feedback["quiet"]
    assert run.state == "success", run.tasks
    assert run.tasks["ingest_outcomes"] == "skipped"
    assert run.tasks["join_outcomes"] == "skipped"
    assert run.tasks["check_performance"] == "success"


def test_outcomes_two_days_late_join_both_sources_with_exact_counts(feedback):
    run = feedback["first"]
    assert run.state == "success", run.tasks
    assert run.tasks["ingest_outcomes"] == "success"
    assert run.tasks["check_performance"] == "success"
    result = run.returned["join_outcomes"]
    assert {k: result[k] for k in EXPECTED} == EXPECTED
    assert result["by_source"] == {"batch": 300, "online": 40}
    part = feedback["first_part"]
    assert len(part) == 340
    assert set(part["source"]) == {"batch", "online"}
    assert set(part["label"]) <= {"0", "1"}  # 1.0 and 1 both became the class text "1"
    assert set(part["model_version"]) == {"1"}
    # the report lists every bucket with samples and names the stored part
    doc = json.loads(open(result["report_uri"].removeprefix("file://")).read())
    assert doc["counts"] == {k: result[k] for k in doc["counts"]}
    assert set(doc["samples"]) == {"invalid", "orphan", "out_of_window", "duplicate", "joined", "late"}
    assert doc["samples"]["orphan"][0]["prediction_id"] == "no-such-prediction"
    assert doc["joined_uri"] == result["joined_uri"]
    html = open(result["report_uri"].removeprefix("file://")[: -len("json")] + "html").read()
    assert "out of window" in html


def test_a_rerun_replaces_its_own_part_and_counts_the_same(feedback):
    run = feedback["again"]
    assert run.state == "success", run.tasks
    result = run.returned["join_outcomes"]
    assert {k: result[k] for k in EXPECTED} == EXPECTED
    parts = sorted((feedback["home"] / "storage" / "churn" / "outcomes" / "joined").rglob("*.parquet"))
    assert str(parts[0]) in result["joined_uri"]


def test_a_redelivered_file_joins_nothing_twice(feedback):
    run = feedback["redelivered"]
    assert run.state == "success", run.tasks
    result = run.returned["join_outcomes"]
    assert result["joined"] == 0
    assert result["duplicate"] == 341  # every valid, matched, in-window row
    from mlops_ops.hooks.outcomes import read_joined_outcomes
    from mlops_ops.hooks.storage import PipelineStorage

    stored = read_joined_outcomes(PipelineStorage("churn", root=f"file://{feedback['home']}/storage"))
    assert len(stored) == 340
    assert stored["prediction_id"].is_unique


def test_labels_unlike_the_models_classes_fail_the_join_once_and_write_nothing(feedback):
    run = feedback["bad"]
    assert run.tasks["join_outcomes"] == "failed"
    assert run.tasks["check_performance"] == "upstream_failed"
    assert len(feedback["parts_after_bad"]) == 2  # the two earlier runs' parts only
