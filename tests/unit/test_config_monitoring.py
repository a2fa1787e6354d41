"""Spec sections for windows, monitoring, scoring, bootstrap evidence and slices: each bad value is
a SpecError naming the dotted field; the shipped pipeline loads and builds its DAGs."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from mlops_ops.config import SpecError, load_pipeline_spec, parse_pipeline_spec
from tests.conftest import ROOT

MINIMAL: dict[str, Any] = {
    "name": "mini",
    "source": {"uri": "/data/mini/*.parquet"},
    "target": "y",
    "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
}
FEATURES = {"numeric": ["age", "spend"], "categorical": ["region"]}


def spec_with(**sections: Any) -> dict[str, Any]:
    data = copy.deepcopy(MINIMAL)
    data.update(copy.deepcopy(sections))
    return data


def spec_error(data: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as err:
        parse_pipeline_spec(data, origin="mini.yaml")
    return str(err.value)


def assert_names(message: str, field: str) -> None:
    """The error lists ``field`` as the location of a problem (``  - <field>: ...``)."""
    assert re.search(rf"^  - {re.escape(field)}: ", message, re.MULTILINE), message


def test_the_minimal_spec_is_valid():
    spec = parse_pipeline_spec(spec_with())
    assert spec.source.window is None
    assert spec.monitoring.source is None
    assert spec.scoring is None
    assert spec.evaluation.bootstrap.enabled
    assert spec.evaluation.slices == []


# -- source.window -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["%Y-%m-%d", "%Y%m%d", "%Y/%m/%d", "%d.%m.%Y", "dt=%Y-%m-%d"])
def test_a_window_accepts_day_formats(fmt):
    spec = parse_pipeline_spec(
        spec_with(source={"uri": "/d/*.csv", "window": {"days": 3, "date_format": fmt}})
    )
    assert spec.source.window.days == 3
    assert spec.source.window.date_format == fmt


def test_a_window_defaults_to_iso_dates():
    spec = parse_pipeline_spec(spec_with(source={"uri": "/d/*.csv", "window": {"days": 1}}))
    assert spec.source.window.date_format == "%Y-%m-%d"


@pytest.mark.parametrize("days", [0, -1])
def test_window_days_must_be_at_least_one(days):
    message = spec_error(spec_with(source={"uri": "/d/*.csv", "window": {"days": days}}))
    assert_names(message, "source.window.days")
    assert "greater than or equal to 1" in message


def test_window_days_is_required():
    assert_names(spec_error(spec_with(source={"uri": "/d/*.csv", "window": {}})), "source.window.days")


@pytest.mark.parametrize("fmt", ["%Y-%m", "%Y-%m-%d %H", "%y-%m-%d", "%Y-%b-%d", "2026-01-31", ""])
def test_window_date_format_must_use_exactly_year_month_day(fmt):
    message = spec_error(spec_with(source={"uri": "/d/*.csv", "window": {"days": 3, "date_format": fmt}}))
    assert_names(message, "source.window.date_format")
    assert "exactly %Y, %m and %d" in message


def test_window_date_format_with_a_repeated_directive_is_rejected():
    # a repeated directive would build a regex with a duplicate group: refused at parse time
    fmt = "%Y-%m/%d-%d"
    message = spec_error(spec_with(source={"uri": "/d/*.csv", "window": {"days": 3, "date_format": fmt}}))
    assert_names(message, "source.window.date_format")


def test_a_window_on_a_sql_source_is_rejected():
    source = {"sql": "select * from t", "conn_id": "db", "window": {"days": 3}}
    message = spec_error(spec_with(source=source))
    assert_names(message, "source")
    assert "'window' only applies to a file source" in message


def test_unknown_window_keys_are_rejected():
    message = spec_error(spec_with(source={"uri": "/d/*.csv", "window": {"days": 3, "hours": 2}}))
    assert_names(message, "source.window.hours")


# -- monitoring --------------------------------------------------------------------------------


def test_monitoring_defaults():
    spec = parse_pipeline_spec(spec_with())
    drift = spec.monitoring.drift
    assert (drift.alpha, drift.correction, drift.drift_share) == (0.01, "holm", 0.3)
    assert spec.monitoring.retrain.cooldown_hours == 72.0
    assert spec.performance_metric == "roc_auc"  # falls back to the primary metric


@pytest.mark.parametrize("alpha", [0.001, 0.25, 0.49])
def test_drift_alpha_in_range_is_accepted(alpha):
    assert (
        parse_pipeline_spec(spec_with(monitoring={"drift": {"alpha": alpha}})).monitoring.drift.alpha == alpha
    )


@pytest.mark.parametrize("alpha", [0.0, -0.1, 0.5, 1.0])
def test_drift_alpha_out_of_range_is_rejected(alpha):
    assert_names(spec_error(spec_with(monitoring={"drift": {"alpha": alpha}})), "monitoring.drift.alpha")


@pytest.mark.parametrize("correction", ["holm", "bh"])
def test_drift_correction_choices_are_accepted(correction):
    spec = parse_pipeline_spec(spec_with(monitoring={"drift": {"correction": correction}}))
    assert spec.monitoring.drift.correction == correction


@pytest.mark.parametrize("correction", ["bonferroni", "Holm", ""])
def test_an_unknown_drift_correction_is_rejected(correction):
    message = spec_error(spec_with(monitoring={"drift": {"correction": correction}}))
    assert_names(message, "monitoring.drift.correction")
    assert "'holm'" in message
    assert "'bh'" in message


@pytest.mark.parametrize("share", [0.01, 0.5, 1.0])
def test_drift_share_in_range_is_accepted(share):
    spec = parse_pipeline_spec(spec_with(monitoring={"drift": {"drift_share": share}}))
    assert spec.monitoring.drift.drift_share == share


@pytest.mark.parametrize("share", [0.0, -0.2, 1.01])
def test_drift_share_out_of_range_is_rejected(share):
    message = spec_error(spec_with(monitoring={"drift": {"drift_share": share}}))
    assert_names(message, "monitoring.drift.drift_share")


def test_critical_columns_must_be_listed_features():
    data = spec_with(features=FEATURES, monitoring={"drift": {"critical_columns": ["spend", "income"]}})
    message = spec_error(data)
    assert_names(message, "monitoring.drift.critical_columns")
    assert "['income']" in message


def test_listed_critical_columns_are_accepted():
    data = spec_with(features=FEATURES, monitoring={"drift": {"critical_columns": ["spend", "region"]}})
    assert parse_pipeline_spec(data).monitoring.drift.critical_columns == ["spend", "region"]


def test_critical_columns_are_not_checked_when_features_are_inferred():
    data = spec_with(monitoring={"drift": {"critical_columns": ["anything"]}})
    assert parse_pipeline_spec(data).monitoring.drift.critical_columns == ["anything"]


def test_a_monitoring_schedule_needs_a_monitoring_source():
    message = spec_error(spec_with(schedules={"monitoring": "@daily"}))
    assert_names(message, "monitoring.source")
    assert "schedules.monitoring" in message


def test_a_monitoring_schedule_with_a_source_is_accepted():
    data = spec_with(
        schedules={"monitoring": "@daily"}, monitoring={"source": {"uri": "/d/{{ ds }}.parquet"}}
    )
    spec = parse_pipeline_spec(data)
    assert spec.monitoring.source.uri == "/d/{{ ds }}.parquet"


def test_a_monitoring_source_is_validated_like_any_source():
    message = spec_error(spec_with(monitoring={"source": {"sql": "select 1"}}))
    assert_names(message, "monitoring.source")
    assert "conn_id" in message


def test_an_unknown_performance_metric_is_rejected():
    message = spec_error(spec_with(monitoring={"performance": {"metric": "auc"}}))
    assert_names(message, "monitoring.performance.metric")
    assert "unknown metric 'auc'" in message


@pytest.mark.parametrize(
    ("task", "metric"), [("classification", "rmse"), ("regression", "roc_auc"), ("regression", "log_loss")]
)
def test_a_performance_metric_must_apply_to_the_task(task, metric):
    evaluation = {"primary_metric": "r2" if task == "regression" else "roc_auc"}
    data = spec_with(
        model={**MINIMAL["model"], "task": task},
        evaluation=evaluation,
        monitoring={"performance": {"metric": metric}},
    )
    message = spec_error(data)
    assert_names(message, "monitoring.performance.metric")
    assert f"does not apply to a {task} model" in message


@pytest.mark.parametrize(("task", "metric"), [("classification", "log_loss"), ("regression", "mae")])
def test_a_performance_metric_of_the_task_is_accepted(task, metric):
    evaluation = {"primary_metric": "r2" if task == "regression" else "roc_auc"}
    data = spec_with(
        model={**MINIMAL["model"], "task": task},
        evaluation=evaluation,
        monitoring={"performance": {"metric": metric}},
    )
    assert parse_pipeline_spec(data).performance_metric == metric


def test_with_task_auto_any_known_performance_metric_is_accepted():
    assert (
        parse_pipeline_spec(spec_with(monitoring={"performance": {"metric": "rmse"}})).performance_metric
        == "rmse"
    )


@pytest.mark.parametrize(
    ("section", "field", "value"),
    [
        ("performance", "tolerance", -0.01),
        ("performance", "min_rows", 0),
        ("retrain", "cooldown_hours", -1),
        ("drift", "min_rows", 0),
    ],
)
def test_monitoring_bounds_name_the_field(section, field, value):
    message = spec_error(spec_with(monitoring={section: {field: value}}))
    assert_names(message, f"monitoring.{section}.{field}")


# -- scoring -----------------------------------------------------------------------------------


def test_a_scoring_schedule_needs_a_scoring_section():
    message = spec_error(spec_with(schedules={"scoring": "@daily"}))
    assert_names(message, "scoring")
    assert "schedules.scoring" in message


def test_a_scoring_section_is_accepted_with_its_schedule():
    data = spec_with(schedules={"scoring": "@daily"}, scoring={"source": {"uri": "/d/{{ ds }}.parquet"}})
    spec = parse_pipeline_spec(data)
    assert spec.scoring.source.uri == "/d/{{ ds }}.parquet"
    assert spec.scoring.id_columns == []


def test_a_scoring_section_needs_a_source():
    assert_names(spec_error(spec_with(scoring={})), "scoring.source")


# -- evaluation.bootstrap ----------------------------------------------------------------------


@pytest.mark.parametrize("resamples", [100, 100_000])
def test_bootstrap_resamples_bounds_are_inclusive(resamples):
    spec = parse_pipeline_spec(spec_with(evaluation={"bootstrap": {"resamples": resamples}}))
    assert spec.evaluation.bootstrap.resamples == resamples


@pytest.mark.parametrize("resamples", [99, 0, 100_001])
def test_bootstrap_resamples_out_of_bounds_are_rejected(resamples):
    message = spec_error(spec_with(evaluation={"bootstrap": {"resamples": resamples}}))
    assert_names(message, "evaluation.bootstrap.resamples")


@pytest.mark.parametrize("confidence", [0.5, 1.0, 0.3, 95])
def test_bootstrap_confidence_out_of_range_is_rejected(confidence):
    message = spec_error(spec_with(evaluation={"bootstrap": {"confidence": confidence}}))
    assert_names(message, "evaluation.bootstrap.confidence")


@pytest.mark.parametrize("confidence", [0.51, 0.9, 0.99])
def test_bootstrap_confidence_in_range_is_accepted(confidence):
    spec = parse_pipeline_spec(spec_with(evaluation={"bootstrap": {"confidence": confidence}}))
    assert spec.evaluation.bootstrap.confidence == confidence


@pytest.mark.parametrize("require", ["non_inferiority", "superiority"])
def test_bootstrap_require_choices_are_accepted(require):
    spec = parse_pipeline_spec(spec_with(evaluation={"bootstrap": {"require": require}}))
    assert spec.evaluation.bootstrap.require == require


@pytest.mark.parametrize("require", ["equivalence", "inferiority", "Superiority"])
def test_an_unknown_bootstrap_require_is_rejected(require):
    message = spec_error(spec_with(evaluation={"bootstrap": {"require": require}}))
    assert_names(message, "evaluation.bootstrap.require")
    assert "'non_inferiority'" in message
    assert "'superiority'" in message


def test_a_negative_bootstrap_margin_is_rejected():
    assert_names(
        spec_error(spec_with(evaluation={"bootstrap": {"margin": -0.01}})), "evaluation.bootstrap.margin"
    )


def test_an_unknown_bootstrap_metric_is_rejected():
    message = spec_error(spec_with(evaluation={"bootstrap": {"metric": "gini"}}))
    assert_names(message, "evaluation")
    assert "unknown metric(s) ['gini']" in message


def test_a_bootstrap_metric_must_apply_to_the_task():
    data = spec_with(
        model={**MINIMAL["model"], "task": "classification"}, evaluation={"bootstrap": {"metric": "rmse"}}
    )
    message = spec_error(data)
    assert_names(message, "evaluation")
    assert "['rmse']" in message
    assert "classification" in message


def test_a_disabled_bootstrap_metric_is_not_used():
    data = spec_with(
        model={**MINIMAL["model"], "task": "classification"},
        evaluation={"bootstrap": {"enabled": False, "metric": "rmse"}},
    )
    assert not parse_pipeline_spec(data).evaluation.bootstrap.enabled


def test_a_known_bootstrap_metric_is_accepted():
    spec = parse_pipeline_spec(spec_with(evaluation={"bootstrap": {"metric": "log_loss"}}))
    assert spec.evaluation.bootstrap.metric == "log_loss"
    assert "log_loss" in spec.evaluation.used_metrics()


# -- evaluation.slices -------------------------------------------------------------------------


def test_a_slice_column_must_be_a_listed_feature():
    data = spec_with(features=FEATURES, evaluation={"slices": [{"column": "region"}, {"column": "country"}]})
    message = spec_error(data)
    assert_names(message, "evaluation.slices")
    assert "['country']" in message


def test_a_slice_on_a_listed_feature_is_accepted():
    data = spec_with(features=FEATURES, evaluation={"slices": [{"column": "region", "min_rows": 20}]})
    (slice_,) = parse_pipeline_spec(data).evaluation.slices
    assert (slice_.column, slice_.min_rows, slice_.values) == ("region", 20, None)


def test_a_slice_needs_at_least_one_row():
    data = spec_with(features=FEATURES, evaluation={"slices": [{"column": "region", "min_rows": 0}]})
    assert_names(spec_error(data), "evaluation.slices.0.min_rows")


def test_a_slice_needs_a_column():
    assert_names(spec_error(spec_with(evaluation={"slices": [{}]})), "evaluation.slices.0.column")


# -- the shipped pipeline ----------------------------------------------------------------------


def test_the_shipped_pipeline_loads_with_its_monitoring_and_scoring():
    spec = load_pipeline_spec(ROOT / "pipelines" / "churn.yaml")
    assert spec.source.window.days == 14
    assert spec.monitoring.source.uri.endswith("{{ ds }}.parquet")
    assert spec.monitoring.drift.critical_columns == ["monthly_charges"]
    assert spec.monitoring.performance.floor == 0.65
    assert spec.performance_metric == "roc_auc"
    assert spec.scoring is not None
    assert spec.schedules.monitoring == "@daily"


def test_the_packaged_example_matches_the_shipped_pipeline():
    assert load_pipeline_spec(ROOT / "mlops_ops" / "example" / "churn.yaml") == load_pipeline_spec(
        ROOT / "pipelines" / "churn.yaml"
    )


def test_the_shipped_pipelines_build_training_and_monitoring_dags():
    from mlops_ops.dag_factory import build_dags

    dags = build_dags(ROOT / "pipelines")
    assert {"churn_training", "churn_monitoring"} <= set(dags)
    monitoring = dags["churn_monitoring"]
    assert monitoring.dag_id == "churn_monitoring"
    assert len(monitoring.tasks) > 1
