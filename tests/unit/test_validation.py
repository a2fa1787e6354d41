"""Data validation on real Great Expectations (ephemeral context): schema, spec and inferred checks."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlops_ops.core.drift import build_reference_profile
from mlops_ops.core.validation import (
    Check,
    ValidationConfigError,
    ValidationReport,
    infer_checks,
    run_checks,
    schema_checks,
    spec_checks,
)
from mlops_ops.example.churn import CATEGORICAL, NUMERIC, TARGET, generate

SEVERITIES = {
    "columns": "error",
    "types": "error",
    "nullability": "warn",
    "ranges": "warn",
    "categories": "warn",
}


@pytest.fixture(scope="module")
def good() -> pd.DataFrame:
    return generate(600, seed=0)


@pytest.fixture(scope="module")
def schema() -> list[Check]:
    return schema_checks(TARGET, NUMERIC, CATEGORICAL, min_rows=100)


@pytest.fixture(scope="module")
def profile(good):
    return build_reference_profile(good, numeric=NUMERIC, categorical=CATEGORICAL)


@pytest.fixture(scope="module")
def inferred(profile) -> list[Check]:
    return infer_checks(profile, SEVERITIES)


@pytest.fixture(scope="module")
def good_report(good, schema, inferred) -> ValidationReport:
    return run_checks(good, schema + inferred, reference="runs:/abc/profile.json")


def messages(results) -> list[str]:
    return [r.message for r in results]


def distinct(checks: list[Check]) -> int:
    """GX runs an expectation once however often it is added (schema and inferred checks overlap)."""
    return len({(c.type, json.dumps(c.kwargs, sort_keys=True)) for c in checks})


# -- schema checks ---------------------------------------------------------------------------


def test_schema_checks_cover_target_and_features(schema):
    exists = {c.kwargs["column"] for c in schema if c.type == "expect_column_to_exist"}
    assert exists == {TARGET, *NUMERIC, *CATEGORICAL}
    assert {c.severity for c in schema} == {"error"}
    assert {c.origin for c in schema} == {"schema"}
    [rows] = [c for c in schema if c.type == "expect_table_row_count_to_be_between"]
    assert rows.kwargs == {"min_value": 100}


def test_a_good_frame_passes(good_report, schema, inferred):
    assert good_report.status == "passed", messages(good_report.errors + good_report.warnings)
    assert len(good_report.results) == distinct(schema + inferred)
    assert len(good_report.results) > len(schema)
    assert all(r.success for r in good_report.results)
    assert good_report.rows == 600
    assert good_report.reference == "runs:/abc/profile.json"


def test_a_missing_target_column_is_an_error(good, schema):
    report = run_checks(good.drop(columns=[TARGET]), schema)
    assert report.status == "failed"
    assert any("column 'churned' is missing" in m for m in messages(report.errors)), messages(report.errors)
    assert all(r.column == TARGET for r in report.errors)


def test_text_in_a_numeric_column_names_the_column_and_samples(good, schema):
    frame = good.astype({"monthly_charges": object})
    frame.loc[[3, 9], "monthly_charges"] = ["abc", "n/a"]
    report = run_checks(frame, schema)
    assert report.status == "failed"
    [typed] = [r for r in report.errors if r.type == "expect_column_values_to_be_in_type_list"]
    assert typed.column == "monthly_charges"
    assert "column 'monthly_charges' should be numeric" in typed.message
    assert "['abc', 'n/a']" in typed.message
    assert {r.column for r in report.errors} == {"monthly_charges"}


def test_text_in_a_numeric_column_reports_the_found_type(good, schema):
    frame = good.astype({"monthly_charges": object})
    frame.loc[3, "monthly_charges"] = "abc"
    [typed] = [
        r for r in run_checks(frame, schema).errors if r.type == "expect_column_values_to_be_in_type_list"
    ]
    assert "type None" not in typed.message


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_an_infinite_value_is_an_error(good, schema, value):
    frame = good.copy()
    frame.loc[11, "data_usage_gb"] = value
    report = run_checks(frame, schema)
    assert report.status == "failed"
    [error] = report.errors
    assert error.column == "data_usage_gb"
    assert "column 'data_usage_gb' holds 1 infinite value(s)" in error.message


def test_missing_target_values_are_an_error(good, schema):
    frame = good.astype({TARGET: "float64"})
    frame.loc[[1, 2], TARGET] = np.nan
    report = run_checks(frame, schema)
    assert [(r.type, r.column) for r in report.errors] == [("expect_column_values_to_not_be_null", TARGET)]


def test_too_few_rows_is_an_error(good, schema):
    report = run_checks(good.head(50), schema)
    assert messages(report.errors) == ["the table has 50 rows, needs {'min_value': 100}"]


# -- spec checks ---------------------------------------------------------------------------------


def test_spec_expectations_keep_their_severity(good):
    checks = spec_checks(
        [
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "tenure_months", "max_value": 12},
            },
            {
                "type": "expect_column_values_to_be_in_set",
                "kwargs": {"column": "contract", "value_set": ["one_year"]},
                "severity": "warn",
            },
        ]
    )
    assert [(c.severity, c.origin) for c in checks] == [("error", "spec"), ("warn", "spec")]
    report = run_checks(good, checks)
    assert report.status == "failed"
    assert [r.column for r in report.errors] == ["tenure_months"]
    assert [r.column for r in report.warnings] == ["contract"]
    assert "unexpected value(s)" in report.errors[0].message
    assert "'max_value': 12" in report.errors[0].message


def test_a_schema_error_wins_over_the_same_inferred_warning(good, schema):
    # the schema check comes first, as in ValidateDataOperator
    inferred_warn = Check("expect_column_to_exist", {"column": "region"}, "warn", "inferred:columns")
    report = run_checks(good.drop(columns=["region"]), [*schema, inferred_warn])
    assert [(r.column, r.severity, r.origin) for r in report.errors] == [("region", "error", "schema")]


def test_an_error_check_is_not_lost_behind_the_same_warning(good):
    kwargs = {"column": "tenure_months", "min_value": 0, "max_value": 12}
    checks = [
        Check("expect_column_values_to_be_between", kwargs, "warn", "spec"),
        Check("expect_column_values_to_be_between", kwargs, "error", "inferred:ranges"),
    ]
    assert run_checks(good, checks).status == "failed"


def test_an_unknown_expectation_type_is_a_config_error(good):
    with pytest.raises(ValidationConfigError, match="unknown expectation 'expect_column_to_be_awesome'"):
        run_checks(good, [Check("expect_column_to_be_awesome", {"column": "region"}, "error", "spec")])


@pytest.mark.parametrize(
    "kwargs",
    [{"colum": "tenure_months", "min_value": 0}, {"column": "tenure_months", "min_value": "zero"}],
    ids=["typo-in-kwarg", "wrong-type"],
)
def test_bad_expectation_kwargs_are_a_config_error(good, kwargs):
    check = Check("expect_column_values_to_be_between", kwargs, "error", "spec")
    with pytest.raises(ValidationConfigError) as err:
        run_checks(good, [check])
    assert "expectation expect_column_values_to_be_between with" in str(err.value)
    assert repr(kwargs) in str(err.value)


# -- inferred checks -----------------------------------------------------------------------------


def test_inferred_checks_have_every_kind_with_its_severity(inferred):
    kinds = {c.origin.removeprefix("inferred:"): c.severity for c in inferred}
    assert kinds == SEVERITIES
    exists = {c.kwargs["column"] for c in inferred if c.origin == "inferred:columns"}
    assert exists == {*NUMERIC, *CATEGORICAL}
    [contract] = [
        c for c in inferred if c.origin == "inferred:categories" and c.kwargs["column"] == "contract"
    ]
    assert contract.kwargs["value_set"] == ["month_to_month", "one_year", "two_year"]
    ranges = {c.kwargs["column"]: c.kwargs for c in inferred if c.origin == "inferred:ranges"}
    assert set(ranges) == set(NUMERIC)
    assert ranges["tenure_months"]["min_value"] < 1
    assert ranges["tenure_months"]["max_value"] > 72


def test_nullability_allows_the_reference_missing_rate_with_margin(inferred, profile):
    nulls = {c.kwargs["column"]: c.kwargs for c in inferred if c.origin == "inferred:nullability"}
    assert "mostly" not in nulls["tenure_months"]  # never missing in the reference
    usage_rate = profile.numeric["data_usage_gb"].missing_rate
    assert 0.05 < usage_rate < 0.12
    assert nulls["data_usage_gb"]["mostly"] == pytest.approx(1 - max(2 * usage_rate, usage_rate + 0.05))


def test_off_removes_a_kind(profile):
    checks = infer_checks(profile, {**SEVERITIES, "ranges": "off", "categories": "off"})
    origins = {c.origin for c in checks}
    assert origins == {"inferred:columns", "inferred:types", "inferred:nullability"}


def test_severities_can_come_from_the_spec_model(profile):
    from mlops_ops.config import InferredSeverities

    checks = infer_checks(profile, InferredSeverities(types="off", ranges="error"))
    severities = {c.origin: c.severity for c in checks}
    assert "inferred:types" not in severities
    assert severities["inferred:ranges"] == "error"


def test_a_new_category_is_a_warning(good, inferred):
    frame = generate(600, seed=1)
    frame["contract"] = frame["contract"].astype(object)
    frame.loc[:29, "contract"] = "lifetime"  # 5% of the rows, above the 1% allowed
    report = run_checks(frame, inferred)
    assert report.status == "passed_with_warnings", messages(report.errors)
    [warning] = report.warnings
    assert (warning.origin, warning.column, warning.severity) == ("inferred:categories", "contract", "warn")
    assert "'lifetime'" in warning.message
    assert "30 unexpected value(s)" in warning.message


def test_a_rare_new_category_is_tolerated(inferred):
    frame = generate(600, seed=1)
    frame["contract"] = frame["contract"].astype(object)
    frame.loc[:2, "contract"] = "lifetime"  # 0.5% of the rows, within the 1% allowed
    report = run_checks(frame, inferred)
    assert report.status == "passed", messages(report.warnings + report.errors)


def test_values_far_outside_the_reference_range_are_a_warning(inferred):
    frame = generate(600, seed=2)
    frame["monthly_charges"] = frame["monthly_charges"] * 100
    report = run_checks(frame, inferred)
    assert report.status == "passed_with_warnings", messages(report.errors)
    assert [(r.origin, r.column) for r in report.warnings] == [("inferred:ranges", "monthly_charges")]


def test_a_missing_reference_column_fails_the_inferred_suite(inferred):
    report = run_checks(generate(600, seed=2).drop(columns=["region"]), inferred)
    assert report.status == "failed"
    assert any("column 'region' is missing" in m for m in messages(report.errors))


def test_the_report_is_a_json_document(good, schema, inferred):
    frame = good.astype({"monthly_charges": object})
    frame.loc[3, "monthly_charges"] = "abc"
    frame.loc[5, "data_usage_gb"] = np.inf
    frame.loc[:29, "region"] = "mars"
    report = run_checks(frame, schema + inferred)
    doc = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert doc["status"] == "failed"
    assert doc["rows"] == 600
    assert doc["evaluated"] == distinct(schema + inferred)
    assert doc["errors"] == len(report.errors) > 0
    assert doc["warnings"] == len(report.warnings) > 0
    assert {"type", "column", "severity", "origin", "success", "message", "details"} <= set(doc["results"][0])
    # failures first, errors before warnings
    flags = [(r["success"], r["severity"] != "error") for r in doc["results"]]
    assert flags == sorted(flags)


def test_the_good_report_is_a_json_document(good_report):
    doc = json.loads(json.dumps(good_report.to_dict(), allow_nan=False))
    assert (doc["status"], doc["errors"], doc["warnings"]) == ("passed", 0, 0)
