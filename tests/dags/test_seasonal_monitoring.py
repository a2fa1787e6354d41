"""A seasonal reference end to end with dag.test(): Seattle's daily weather as dated partitions.

The vega-datasets package ships the series (2012-2015, read offline). Its dates are moved 12 years
forward (2024-2027: the same leap years), so the runs fall after the DAGs' start date. The model
predicts a wet day from the temperatures and the wind; it is trained on three years of daily CSV
partitions (2024-2026). The monitoring DAG reads a month of partitions per run and compares it
with the same month one year earlier (``reference: {kind: seasonal}``, by ``importance`` of the
champion's logged permutation importance):

- August 2027, as recorded: no drift; the report says which reference it used, its interval and
  why, and the champion's predictions are compared with its predictions on that reference;
- October 2027 with the thermometer reading 3 C high: drift;
- June 2024, whose previous year has no partitions: the training data instead, and the report
  says why.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from mlops_ops.runner import run_dag

pytestmark = pytest.mark.slow

YEARS = 12  # 2012 -> 2024, ...: leap years stay leap years


def _at(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _spec(daily: Path) -> dict:
    return {
        "name": "weather",
        "source": {"uri": f"{daily}/*.csv", "window": {"days": 1096}},
        "target": "wet",
        "features": {"numeric": ["temp_max", "temp_min", "wind"]},
        "model": {
            "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
            "params": {"max_iter": 50},
        },
        "evaluation": {"primary_metric": "roc_auc", "bootstrap": {"enabled": False}},
        "monitoring": {
            "source": {"uri": f"{daily}/*.csv", "window": {"days": 31}},
            "drift": {
                "min_rows": 28,
                "importance_share": 0.2,
                "reference": {"kind": "seasonal", "lag_days": 365},
            },
            "performance": {"enabled": False},
        },
    }


@pytest.fixture(scope="module")
def runs(airflow_db, tmp_path_factory):
    import yaml
    from vega_datasets import local_data

    from tests.conftest import load_dag

    root = tmp_path_factory.mktemp("weather")
    home, daily, pipelines = root / "home", root / "daily", root / "pipelines"
    daily.mkdir()
    pipelines.mkdir()
    (pipelines / "weather.yaml").write_text(yaml.safe_dump(_spec(daily)))
    frame = local_data.seattle_weather()
    frame["date"] = [d.date().replace(year=d.year + YEARS) for d in frame["date"]]
    frame["wet"] = (frame["precipitation"] > 0).astype(int)
    for day, row in frame.set_index("date")[["temp_max", "temp_min", "wind", "wet"]].iterrows():
        if day.year == 2027 and day.month == 10:  # the thermometer reads 3 C high
            row = row.copy()
            row[["temp_max", "temp_min"]] += 3.0
        (daily / f"{day.isoformat()}.csv").write_text(
            "temp_max,temp_min,wind,wet\n" + ",".join(f"{v:g}" for v in row.tolist()) + "\n"
        )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        mp.setenv("MLOPS_PIPELINES", str(pipelines))
        trained = run_dag(load_dag("weather_training"), logical_date=_at(dt.date(2026, 12, 31)))
        assert trained.state == "success", trained.tasks
        out = {"trained": trained}
        for day in (dt.date(2027, 8, 31), dt.date(2027, 10, 31), dt.date(2024, 6, 30)):
            out[day.strftime("%Y-%m")] = run_dag(load_dag("weather_monitoring"), logical_date=_at(day))
        yield out


def _report(run) -> dict:
    return json.loads(Path(run.returned["detect_drift"]["report_uri"].removeprefix("file://")).read_text())


def test_three_years_of_daily_partitions_train_the_champion(runs):
    assert runs["trained"].returned["ingest"]["rows"] == 1096


def test_a_month_as_recorded_is_quiet_against_the_same_month_a_year_earlier(runs):
    run = runs["2027-08"]
    assert run.state == "success", run.tasks
    drift = run.returned["detect_drift"]
    assert drift["status"] == "no_drift", drift["reasons"]
    assert drift["reference"] == "seasonal"
    assert not drift["prediction_drift"]
    assert run.tasks["request_retrain"] == "skipped"
    doc = _report(run)
    ref = doc["reference"]
    assert ref["kind"] == ref["requested"] == "seasonal"
    assert not ref["fallback"]
    assert ref["intervals"] == [{"start": "2026-08-01", "end": "2026-08-31", "days": 31}]
    assert ref["batch_interval"] == {"start": "2027-08-01", "end": "2027-08-31", "days": 31}
    assert ref["batch_dates_from"] == "its ingest window (31 day(s) up to 2027-08-31)"
    assert ref["n_files"] == 31
    assert ref["rows"] == 31
    assert ref["files"][0].endswith("2026-08-01.csv")
    assert "365 days earlier" in ref["why"]
    assert doc["reference_rows"] == 31
    assert doc["rule"] == "importance"
    assert doc["reasons"][0].startswith(
        "reference: the same period of past season(s) (2026-08-01..2026-08-31"
    )
    assert doc["prediction"]["reference_rows"] == 31  # the champion's outputs on the reference month
    html = Path(run.returned["detect_drift"]["report_uri"].removeprefix("file://")[: -len("json")] + "html")
    assert "<dt>reference</dt>" in html.read_text()


def test_a_thermometer_three_degrees_high_is_drift(runs):
    run = runs["2027-10"]
    assert run.state == "success", run.tasks
    drift = run.returned["detect_drift"]
    assert drift["status"] == "drift", drift["reasons"]
    assert {"temp_max", "temp_min"} & set(drift["drifted_columns"])
    doc = _report(run)
    assert doc["reference"]["intervals"] == [{"start": "2026-10-01", "end": "2026-10-31", "days": 31}]
    assert doc["drifted_importance_share"] >= 0.2
    assert run.tasks["request_retrain"] == "success"


def test_without_a_previous_season_the_training_data_is_used_and_the_report_says_why(runs):
    run = runs["2024-06"]
    assert run.state == "success", run.tasks
    ref = _report(run)["reference"]
    assert ref["requested"] == "seasonal"
    assert ref["kind"] == "training"
    assert ref["fallback"]
    # the batch is the 31 days up to 2024-06-30; 365 days back crosses 2024-02-29
    assert ref["batch_interval"] == {"start": "2024-05-31", "end": "2024-06-30", "days": 31}
    assert "2023-06-01..2023-07-01" in ref["why"]
    assert "no partition is dated in it" in ref["why"]
    assert ref["intervals"] == [{"start": "2024-01-01", "end": "2026-12-31", "days": 1096}]
