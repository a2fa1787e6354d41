"""Monitoring logic without Airflow: the performance check, the retrain policy, prediction profiles,
and the dated-partition window of a file source."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from mlops_ops.core.data import DataError, partition_date, select_window
from mlops_ops.core.monitoring import (
    PREDICTION_COLUMN,
    build_prediction_profile,
    check_performance,
    decide_retrain,
    prediction_values,
)

# -- check_performance -------------------------------------------------------------------------


def perf(**overrides):
    args = {
        "metric": "roc_auc",
        "value": 0.80,
        "baseline": 0.82,
        "rows": 500,
        "tolerance": 0.05,
        "floor": None,
        "min_rows": 200,
    }
    args.update(overrides)
    return check_performance(**args)


def test_a_small_drop_within_tolerance_is_ok():
    check = perf(value=0.80, baseline=0.82)
    assert check.status == "ok"
    assert not check.degraded
    assert check.drop == pytest.approx(0.02)
    assert "within tolerance" in check.reasons[0]


def test_a_drop_beyond_tolerance_is_degraded():
    check = perf(value=0.70, baseline=0.82)
    assert check.status == "degraded"
    assert check.degraded
    assert check.drop == pytest.approx(0.12)
    assert "tolerance 0.0500" in check.reasons[0]


def test_an_improvement_is_a_negative_drop_and_ok():
    check = perf(value=0.90, baseline=0.82)
    assert check.status == "ok"
    assert check.drop == pytest.approx(-0.08)


@pytest.mark.parametrize(
    ("metric", "value", "baseline"),
    [
        ("roc_auc", 0.75, 0.80),  # higher is better: 0.05 lower
        ("rmse", 1.05, 1.00),  # lower is better: 0.05 higher
        ("log_loss", 0.45, 0.40),
    ],
)
def test_a_drop_of_exactly_the_tolerance_is_still_ok(metric, value, baseline):
    # float arithmetic makes these differences 0.05 +- a few ulp; the boundary is inclusive
    check = perf(metric=metric, value=value, baseline=baseline, tolerance=0.05)
    assert check.drop == pytest.approx(0.05)
    assert check.status == "ok"


@pytest.mark.parametrize(
    ("metric", "value", "baseline"),
    [("roc_auc", 0.7499, 0.80), ("rmse", 1.0501, 1.00), ("log_loss", 0.4501, 0.40)],
)
def test_a_drop_just_past_the_tolerance_is_degraded(metric, value, baseline):
    check = perf(metric=metric, value=value, baseline=baseline, tolerance=0.05)
    assert check.status == "degraded"


@pytest.mark.parametrize("metric", ["rmse", "log_loss", "mae", "brier"])
def test_for_lower_is_better_metrics_a_rise_is_the_drop(metric):
    worse = perf(metric=metric, value=1.30, baseline=1.00, tolerance=0.1)
    assert worse.drop == pytest.approx(0.30)
    assert worse.status == "degraded"
    better = perf(metric=metric, value=0.70, baseline=1.00, tolerance=0.1)
    assert better.drop == pytest.approx(-0.30)
    assert better.status == "ok"


def test_for_higher_is_better_metrics_a_fall_is_the_drop():
    check = perf(metric="r2", value=0.50, baseline=0.80, tolerance=0.1)
    assert check.drop == pytest.approx(0.30)
    assert check.status == "degraded"


def test_falling_past_the_floor_is_degraded_even_within_tolerance():
    check = perf(value=0.64, baseline=0.66, tolerance=0.05, floor=0.65)
    assert check.status == "degraded"
    assert "floor 0.6500" in check.reasons[0]
    assert "higher is better" in check.reasons[0]


def test_the_floor_of_a_lower_is_better_metric_is_an_upper_limit():
    past = perf(metric="rmse", value=2.1, baseline=2.05, tolerance=0.5, floor=2.0)
    assert past.status == "degraded"
    assert "lower is better" in past.reasons[0]
    below = perf(metric="rmse", value=1.9, baseline=1.85, tolerance=0.5, floor=2.0)
    assert below.status == "ok"


def test_a_value_exactly_at_the_floor_is_not_past_it():
    assert perf(value=0.65, baseline=0.66, floor=0.65).status == "ok"
    assert perf(metric="rmse", value=2.0, baseline=1.99, floor=2.0).status == "ok"


def test_floor_and_tolerance_both_breached_give_both_reasons():
    check = perf(value=0.50, baseline=0.80, floor=0.65)
    assert check.status == "degraded"
    assert len(check.reasons) == 2


def test_too_few_rows_is_insufficient_data_even_for_a_terrible_value():
    check = perf(value=0.10, baseline=0.82, floor=0.65, rows=199, min_rows=200)
    assert check.status == "insufficient_data"
    assert not check.degraded
    assert "199" in check.reasons[0]
    assert "min_rows=200" in check.reasons[0]


def test_exactly_min_rows_is_judged():
    assert perf(value=0.10, rows=200, min_rows=200).status == "degraded"


@pytest.mark.parametrize("value", [None, float("nan"), float("inf"), float("-inf")])
def test_a_value_that_could_not_be_computed_is_insufficient_data(value):
    check = perf(value=value, floor=0.65)
    assert check.status == "insufficient_data"
    assert not check.degraded
    assert "could not be computed" in check.reasons[0]


@pytest.mark.parametrize("baseline", [None, float("nan")])
def test_without_a_baseline_only_the_floor_applies(baseline):
    check = perf(value=0.40, baseline=baseline, floor=None)
    assert check.status == "no_baseline"
    assert "only the floor applies" in check.reasons[0]
    assert perf(value=0.40, baseline=baseline, floor=0.65).status == "degraded"
    assert perf(value=0.70, baseline=baseline, floor=0.65).status == "no_baseline"


def test_to_dict_is_json_safe():
    doc = perf(value=0.70, baseline=float("nan")).to_dict()
    assert doc["baseline"] is None
    assert doc["drop"] is None
    assert doc["status"] == "no_baseline"
    doc = perf(value=0.70, baseline=0.82).to_dict()
    assert doc["degraded"] is True
    assert doc["drop"] == pytest.approx(0.12)


# -- decide_retrain ----------------------------------------------------------------------------

NOW = dt.datetime(2026, 2, 10, 12, 0, tzinfo=dt.UTC)
NO_DRIFT = {"status": "no_drift", "drifted_columns": [], "drifted_share": 0.0, "prediction_drift": False}
DRIFT = {
    "status": "drift",
    "drifted_columns": ["monthly_charges", "tenure_months"],
    "drifted_share": 0.29,
    "prediction_drift": False,
    "rows": 1000,
}
PRED_DRIFT = {**NO_DRIFT, "prediction_drift": True}
PERF_OK = {"status": "ok", "metric": "roc_auc", "value": 0.8, "baseline": 0.82, "reasons": ["fine"]}
PERF_BAD = {
    "status": "degraded",
    "metric": "roc_auc",
    "value": 0.6,
    "baseline": 0.82,
    "reasons": ["roc_auc = 0.6000 vs 0.8200 at promotion"],
}


def decide(**overrides):
    args = {
        "drift": NO_DRIFT,
        "performance": PERF_OK,
        "on_drift": True,
        "on_performance": True,
        "cooldown_hours": 72.0,
        "now": NOW,
        "last_request_at": None,
    }
    args.update(overrides)
    return decide_retrain(**args)


def test_no_trigger_means_no_retrain():
    decision = decide()
    assert not decision.retrain
    assert decision.triggers == []
    assert not decision.suppressed_by_cooldown
    assert decision.reason.startswith("no trigger")
    assert "drift no_drift" in decision.reason
    assert "performance ok" in decision.reason


def test_nothing_checked_means_no_retrain():
    decision = decide(drift=None, performance=None)
    assert not decision.retrain
    assert "nothing checked" in decision.reason


@pytest.mark.parametrize("status", ["insufficient_data", "no_baseline", "unlabelled"])
def test_inconclusive_performance_is_not_a_trigger(status):
    assert not decide(performance={**PERF_BAD, "status": status}).retrain


def test_insufficient_data_drift_is_not_a_trigger():
    assert not decide(drift={**DRIFT, "status": "insufficient_data"}).retrain


def test_data_drift_triggers_and_the_reason_names_the_columns():
    decision = decide(drift=DRIFT)
    assert decision.retrain
    assert len(decision.triggers) == 1
    assert "2 column(s)" in decision.reason
    assert "monthly_charges" in decision.reason
    assert "tenure_months" in decision.reason
    assert decision.summary["drift"]["drifted_columns"] == ["monthly_charges", "tenure_months"]


def test_prediction_drift_triggers():
    decision = decide(drift=PRED_DRIFT)
    assert decision.retrain
    assert decision.triggers == ["the champion's predictions drifted"]


def test_a_performance_drop_triggers_and_the_reason_quotes_the_check():
    decision = decide(performance=PERF_BAD)
    assert decision.retrain
    assert decision.reason.startswith("performance drop")
    assert "0.6000 vs 0.8200" in decision.reason


def test_every_trigger_is_listed():
    decision = decide(drift={**DRIFT, "prediction_drift": True}, performance=PERF_BAD)
    assert decision.retrain
    assert len(decision.triggers) == 3


def test_on_drift_off_ignores_data_and_prediction_drift():
    decision = decide(drift={**DRIFT, "prediction_drift": True}, on_drift=False)
    assert not decision.retrain
    assert decision.triggers == []
    # but a performance drop still triggers
    assert decide(drift=DRIFT, performance=PERF_BAD, on_drift=False).triggers[0].startswith("performance")


def test_on_performance_off_ignores_a_performance_drop():
    assert not decide(performance=PERF_BAD, on_performance=False).retrain
    assert (
        decide(drift=DRIFT, performance=PERF_BAD, on_performance=False).triggers[0].startswith("data drift")
    )


@pytest.mark.parametrize("hours_ago", [0, 1, 71, 71.999])
def test_the_cooldown_suppresses_a_trigger_within_the_window(hours_ago):
    last = NOW - dt.timedelta(hours=hours_ago)
    decision = decide(drift=DRIFT, last_request_at=last, cooldown_hours=72)
    assert not decision.retrain
    assert decision.suppressed_by_cooldown
    assert decision.triggers  # the trigger is recorded all the same
    assert decision.last_request_at == last.isoformat()
    assert decision.next_allowed_at == (last + dt.timedelta(hours=72)).isoformat()
    assert decision.reason.startswith("cooldown")
    assert "monthly_charges" in decision.reason


@pytest.mark.parametrize("hours_ago", [72, 72.001, 500])
def test_the_cooldown_allows_a_trigger_at_and_after_its_end(hours_ago):
    last = NOW - dt.timedelta(hours=hours_ago)
    decision = decide(drift=DRIFT, last_request_at=last, cooldown_hours=72)
    assert decision.retrain
    assert not decision.suppressed_by_cooldown
    assert decision.last_request_at == last.isoformat()


def test_without_a_previous_request_there_is_no_cooldown():
    decision = decide(drift=DRIFT, last_request_at=None, cooldown_hours=10_000)
    assert decision.retrain
    assert decision.last_request_at is None


@pytest.mark.parametrize("offset_hours", [0, 5])  # 5: a replay whose logical date precedes the request
def test_a_zero_cooldown_never_suppresses(offset_hours):
    last = NOW + dt.timedelta(hours=offset_hours)
    decision = decide(drift=DRIFT, last_request_at=last, cooldown_hours=0)
    assert decision.retrain
    assert not decision.suppressed_by_cooldown


def test_the_cooldown_does_not_matter_without_a_trigger():
    decision = decide(last_request_at=NOW - dt.timedelta(hours=1))
    assert not decision.retrain
    assert not decision.suppressed_by_cooldown


def test_the_decision_is_a_plain_dict():
    doc = decide(drift=DRIFT).to_dict()
    assert doc["retrain"] is True
    assert isinstance(doc["triggers"], list)


# -- prediction profiles -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=300), "b": rng.uniform(0, 10, size=300)})


@pytest.fixture(scope="module")
def classifier(features):
    from sklearn.linear_model import LogisticRegression

    y = (features["a"] + 0.2 * features["b"] > 1.0).astype(int)
    return LogisticRegression().fit(features, y)


@pytest.fixture(scope="module")
def regressor(features):
    from sklearn.linear_model import LinearRegression

    y = 3.0 * features["a"] - features["b"]
    return LinearRegression().fit(features, y)


def test_a_classifier_yields_positive_class_probabilities(classifier, features):
    values = prediction_values(classifier, features, "classification")
    assert values.shape == (len(features),)
    assert ((values >= 0) & (values <= 1)).all()
    np.testing.assert_allclose(values, classifier.predict_proba(features)[:, 1])
    # probabilities, not 0/1 labels
    assert len(np.unique(values)) > 2


def test_a_regressor_yields_its_predictions(regressor, features):
    values = prediction_values(regressor, features, "regression")
    assert values.dtype == np.float64
    np.testing.assert_allclose(values, regressor.predict(features))
    assert values.min() < 0 or values.max() > 1  # not squashed into probabilities


@pytest.mark.parametrize(("model", "task"), [("classifier", "classification"), ("regressor", "regression")])
def test_the_prediction_profile_has_one_numeric_column(request, features, model, task):
    profile = build_prediction_profile(request.getfixturevalue(model), features, task)
    assert list(profile.numeric) == [PREDICTION_COLUMN] == ["prediction"]
    assert profile.categorical == {}
    assert profile.rows == len(features)
    column = profile.numeric[PREDICTION_COLUMN]
    assert column.n == len(features)
    assert column.missing == 0
    if task == "classification":
        assert 0.0 <= column.min <= column.max <= 1.0


# -- dated partitions and the training window --------------------------------------------------


@pytest.mark.parametrize(
    ("path", "fmt", "expected"),
    [
        ("s3://bucket/churn/2026-01-31.parquet", "%Y-%m-%d", dt.date(2026, 1, 31)),
        ("/data/churn/dt=2026-01-31/part-0.parquet", "%Y-%m-%d", dt.date(2026, 1, 31)),
        ("/data/churn/20260131.csv", "%Y%m%d", dt.date(2026, 1, 31)),
        ("/data/churn/year=2026/20260131/part-0.parquet", "%Y%m%d", dt.date(2026, 1, 31)),
        ("/data/2026/01/31/part.parquet", "%Y/%m/%d", dt.date(2026, 1, 31)),
        # the last date in the path wins
        ("/data/2025-12-01/2026-01-31.parquet", "%Y-%m-%d", dt.date(2026, 1, 31)),
    ],
)
def test_partition_date_reads_file_and_folder_names(path, fmt, expected):
    assert partition_date(path, fmt) == expected


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        ("/data/2026-02-30.parquet", "%Y-%m-%d"),
        ("/data/2026-13-01.parquet", "%Y-%m-%d"),
        ("/data/20260230.parquet", "%Y%m%d"),
        ("/data/latest.parquet", "%Y-%m-%d"),
        ("/data/2026-01-31.parquet", "%Y%m%d"),  # another format
    ],
)
def test_partition_date_is_none_without_a_valid_date(path, fmt):
    assert partition_date(path, fmt) is None


def test_an_invalid_date_in_a_file_name_falls_back_to_a_valid_folder_date():
    assert partition_date("/data/dt=2026-01-31/2026-02-30.parquet") == dt.date(2026, 1, 31)


def days(start: dt.date, n: int, pattern: str = "/data/{:%Y-%m-%d}.parquet") -> list[str]:
    return [pattern.format(start + dt.timedelta(days=i)) for i in range(n)]


def test_the_window_is_the_last_days_including_the_end():
    paths = days(dt.date(2026, 1, 20), 20)  # 2026-01-20 .. 2026-02-08
    chosen = select_window(paths, end=dt.date(2026, 1, 31), days=7)
    assert chosen == days(dt.date(2026, 1, 25), 7)  # (01-24, 01-31]
    assert "/data/2026-01-24.parquet" not in chosen
    assert "/data/2026-01-31.parquet" in chosen
    assert "/data/2026-02-01.parquet" not in chosen


def test_a_one_day_window_is_the_end_day_only():
    paths = days(dt.date(2026, 1, 29), 5)
    assert select_window(paths, end=dt.date(2026, 1, 31), days=1) == ["/data/2026-01-31.parquet"]


def test_the_window_works_on_folder_dates_and_custom_formats():
    folders = days(dt.date(2026, 1, 28), 6, "s3://b/churn/dt={:%Y-%m-%d}/part-0.parquet")
    assert select_window(folders, end=dt.date(2026, 1, 31), days=2) == [
        "s3://b/churn/dt=2026-01-30/part-0.parquet",
        "s3://b/churn/dt=2026-01-31/part-0.parquet",
    ]
    compact = days(dt.date(2026, 1, 28), 6, "/d/{:%Y%m%d}.csv")
    assert select_window(compact, end=dt.date(2026, 2, 1), days=3, date_format="%Y%m%d") == [
        "/d/20260130.csv",
        "/d/20260131.csv",
        "/d/20260201.csv",
    ]


def test_the_window_crosses_month_and_year_ends():
    paths = days(dt.date(2025, 12, 25), 14)
    chosen = select_window(paths, end=dt.date(2026, 1, 2), days=5)
    assert chosen == days(dt.date(2025, 12, 29), 5)


def test_a_window_with_no_partitions_in_range_is_empty():
    assert select_window(days(dt.date(2026, 1, 1), 3), end=dt.date(2026, 3, 1), days=7) == []


@pytest.mark.parametrize("undated", ["/data/latest.parquet", "/data/2026-02-30.parquet"])
def test_an_undated_file_is_a_data_error_naming_it_and_the_fix(undated):
    paths = [*days(dt.date(2026, 1, 30), 2), undated]
    with pytest.raises(DataError) as err:
        select_window(paths, end=dt.date(2026, 1, 31), days=7)
    message = str(err.value)
    assert undated in message
    assert "1 file(s)" in message
    assert "rename" in message
    assert "'window'" in message
    assert "'%Y-%m-%d'" in message


def test_a_data_error_is_a_value_error():
    with pytest.raises(ValueError, match="dated partitions"):
        select_window(["/data/x.parquet"], end=dt.date(2026, 1, 31), days=1)
