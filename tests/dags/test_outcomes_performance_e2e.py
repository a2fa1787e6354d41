"""The performance check on joined outcomes, end to end with dag.test(): a drop requests a retrain.

A champion is trained (real training DAG, real MLflow). It then "predicts" two days of traffic
(the real model scores real rows); the outcomes are joined and stored with
``write_joined_outcomes`` (the feedback join's writer; the join itself is the feedback engineer's
part, so the test writes its output). The monitoring DAG, built from the spec, with its
performance task switched to ``use_outcomes=True`` (the spec's switch is wired by the feedback
branch), then runs on clean, labelled batches:

- outcomes that match the truth: the check is ``ok`` on the outcomes (they win over the batch's
  own labels), the ``live`` list has one entry per version and day plus the window, and no
  retrain is requested;
- the same run's outcomes replaced by ones the model gets wrong: ``degraded`` and exactly one
  retrain request, through the existing policy.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from mlops_ops.example.churn import write_partitions
from mlops_ops.runner import run_dag
from tests.conftest import champion_version, load_dag, mlflow_client, seed_mlflow_store

pytestmark = pytest.mark.slow

D0 = dt.date(2026, 3, 1)  # the first day of predictions with outcomes
TARGET = "churned"


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


def _joined(frames: dict[dt.date, object], *, wrong: bool) -> object:
    """Joined outcomes of the champion (v1) on each day's rows: its real predictions, and the
    rows' real labels (``wrong``: the opposite label, an outcome the model gets wrong)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from mlops_ops.core.outcomes import JOINED_OUTCOME_SCHEMA
    from mlops_ops.hooks.mlflow import MlflowHook

    model = MlflowHook().load_sklearn_model("models:/churn/1")
    classes = list(model.classes_)
    parts = []
    for day, frame in frames.items():
        x = frame.drop(columns=[TARGET])
        proba = model.predict_proba(x)[:, 1]
        truth = frame[TARGET].to_numpy()
        label = np.where(truth == classes[1], classes[0], classes[1]) if wrong else truth
        at = pd.Timestamp(_at(day)) + pd.to_timedelta(np.arange(len(frame)), unit="s")
        parts.append(
            pd.DataFrame(
                {
                    "prediction_id": [f"{day}-{i}" for i in range(len(frame))],
                    "source": "online",
                    "model_version": "1",
                    "arm": "champion",
                    "entity_key": None,
                    "predicted_at": at,
                    "outcome_at": at + pd.Timedelta(days=2),
                    "joined_at": at + pd.Timedelta(days=2, hours=1),
                    "prediction": [str(v) for v in model.predict(x)],
                    "probability": proba,
                    "label": [str(v) for v in label],
                }
            )
        )
    return pa.Table.from_pandas(pd.concat(parts, ignore_index=True), schema=JOINED_OUTCOME_SCHEMA)


def _monitoring_on_outcomes():
    """The spec's monitoring DAG, its performance task judging on joined outcomes."""
    dag = load_dag("churn_monitoring")
    task = dag.get_task("check_performance")
    task.use_outcomes, task.outcome_days = True, 14
    return dag


@pytest.fixture(scope="module")
def runs(airflow_db, tmp_path_factory):
    import shutil

    import pandas as pd

    from mlops_ops.hooks.outcomes import write_joined_outcomes
    from mlops_ops.hooks.storage import PipelineStorage
    from tests.conftest import ROOT

    root = tmp_path_factory.mktemp("outcomes")
    home, pipelines = root / "home", root / "pipelines"
    pipelines.mkdir()
    shutil.copy(ROOT / "pipelines" / "churn.yaml", pipelines)
    daily = home / "data" / "churn" / "daily"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        mp.setenv("MLOPS_PIPELINES", str(pipelines))
        seed_mlflow_store(home)
        write_partitions(daily, start=D0 - dt.timedelta(days=14), days=18, rows_per_day=300, seed=5)
        events_before = len(_retrain_events())
        first = run_dag(load_dag("churn_training"), logical_date=_at(D0 - dt.timedelta(days=1)))
        assert first.state == "success", first.tasks
        assert champion_version(mlflow_client()) == "1"

        served = {d: pd.read_parquet(daily / f"{d}.parquet") for d in (D0, D0 + dt.timedelta(days=1))}
        storage = PipelineStorage("churn")
        key = "feedback-run-1"  # one feedback run's part; a re-run replaces it
        write_joined_outcomes(storage, D0 + dt.timedelta(days=2), key, _joined(served, wrong=False))
        good = run_dag(_monitoring_on_outcomes(), logical_date=_at(D0 + dt.timedelta(days=2)))
        # no batch today (ingest_batch skipped, as a prediction-log source without traffic does):
        # the check judges the joined outcomes alone, or skips without them
        nobatch = _monitoring_on_outcomes()
        nobatch.get_task("check_performance").snapshot = None
        alone = run_dag(nobatch, logical_date=_at(D0 + dt.timedelta(days=2, hours=6)))
        nobatch.get_task("check_performance").use_outcomes = False
        nothing = run_dag(nobatch, logical_date=_at(D0 + dt.timedelta(days=2, hours=12)))
        write_joined_outcomes(storage, D0 + dt.timedelta(days=2), key, _joined(served, wrong=True))
        bad = run_dag(_monitoring_on_outcomes(), logical_date=_at(D0 + dt.timedelta(days=3)))
        yield {
            "good": good,
            "alone": alone,
            "nothing": nothing,
            "bad": bad,
            "events": _retrain_events()[events_before:],
        }


def test_outcomes_that_match_request_nothing(runs):
    run = runs["good"]
    assert run.state == "success", run.tasks
    check = run.returned["check_performance"]
    assert check["source"] == "outcomes"  # the batch is labelled too: the outcomes win
    assert check["status"] == "ok", check["reasons"]
    assert check["rows"] == 600
    assert check["lower"] <= check["value"] <= check["upper"]
    assert [(e["model_version"], e["day"], e["rows"]) for e in check["live"]] == [
        ("1", str(D0), 300),
        ("1", str(D0 + dt.timedelta(days=1)), 300),
        ("1", None, 600),
    ]
    assert all(e["metric"] == "roc_auc" and e["level"] == 0.95 for e in check["live"])
    assert run.tasks["request_retrain"] == "skipped"


def test_outcomes_the_model_gets_wrong_request_one_retrain(runs):
    run = runs["bad"]
    assert run.state == "success", run.tasks
    check = run.returned["check_performance"]
    assert check["source"] == "outcomes"
    assert check["status"] == "degraded", check["reasons"]
    assert check["upper"] < check["baseline"] - check["tolerance"]  # even the better end is past it
    assert run.tasks["request_retrain"] == "success"
    assert len(runs["events"]) == 1, runs["events"]
    assert "performance" in runs["events"][0]["reason"]


def test_the_report_holds_the_live_list(runs):
    check = runs["bad"].returned["check_performance"]
    path = check["report_uri"].removeprefix("file://")
    doc = json.loads(open(path).read())
    assert doc["live"] == check["live"]
    # the window ends at the run's data interval end (a dag.test() run's interval ends at its logical date)
    end = dt.datetime.fromisoformat(doc["outcome_window"]["end"])
    assert dt.datetime.fromisoformat(doc["outcome_window"]["start"]) == end - dt.timedelta(days=14)
    assert end.date() in (D0 + dt.timedelta(days=3), D0 + dt.timedelta(days=4))
    html = open(path[: -len("json")] + "html").read()
    assert "joined outcomes" in html
    assert "whole window" in html


def test_without_a_batch_the_outcomes_alone_are_judged(runs):
    alone, nothing = runs["alone"], runs["nothing"]
    assert alone.tasks["check_performance"] == "success", alone.tasks
    check = alone.returned["check_performance"]
    assert check["source"] == "outcomes"
    assert check["status"] == "ok", check["reasons"]
    assert check["rows"] == 600
    assert nothing.tasks["check_performance"] == "skipped", nothing.tasks
