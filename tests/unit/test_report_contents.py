"""What a report tells its reader: the data interval it judged (every report, JSON and HTML) and, for
validation, the bounds and value sets each expectation checked."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from mlops_ops.core.reports import (
    INTERVAL_TERM,
    checked_text,
    decision_html,
    interval_text,
    render_html,
    validation_html,
)

INTERVAL = {
    "start": "2026-02-15",
    "end": "2026-02-28",
    "how": "its ingest window (14 day(s) up to 2026-02-28)",
}


def test_the_validation_page_shows_the_bounds_and_value_sets_it_checked():
    from mlops_ops.core import validation

    frame = pd.DataFrame({"tenure": [1, 5, 700], "plan": ["a", "b", "zz"]})
    checks = validation.spec_checks(
        [
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "tenure", "min_value": 0, "max_value": 600},
                "severity": "error",
            },
            {
                "type": "expect_column_values_to_be_in_set",
                "kwargs": {"column": "plan", "value_set": ["a", "b", "c"]},
                "severity": "warn",
            },
        ]
    )
    checks += validation.spec_checks(
        [
            {
                "type": "expect_column_values_to_be_in_set",
                "kwargs": {"column": "plan", "value_set": [f"p{i}" for i in range(120)] + ["a", "b", "zz"]},
                "severity": "warn",
            }
        ]
    )
    report = validation.run_checks(frame, checks)  # Great Expectations runs them
    doc = {**report.to_dict(), "snapshot_sha256": "abc", "data_interval": INTERVAL}
    page = validation_html(doc, "Validation")
    assert "&gt;= 0 and &lt;= 600" in page
    assert "in {a, b, c} (3 values)" in page
    assert "(123 values)" in page  # a long value set is stated whole, not cut to a sample
    assert f"<dt>{INTERVAL_TERM}</dt><dd>2026-02-15 to 2026-02-28 (its ingest window" in page


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"column": "x", "min_value": 1.5}, ">= 1.5"),
        ({"column": "x", "max_value": 3, "strict_max": True}, "< 3"),
        ({"column": "x", "value_set": list(range(60))}, "(60 values)"),
        ({"column": "x", "type_list": ["int64", "float64"]}, 'type_list ["int64", "float64"]'),
        ({"column": "x", "mostly": 0.95}, "for at least 0.95 of rows"),
        # the schema's own checks say what they mean, not their internal bounds (1e300, 1e-09)
        ({"column": "x", "min_value": -1e300, "max_value": 1e300}, "finite: no infinite values"),
        ({"column": "x", "mostly": 1e-9}, "not empty in every row"),
        ({"column": "x"}, ""),
    ],
)
def test_checked_text_names_every_argument_but_the_column(kwargs, text):
    shown = checked_text(kwargs)
    assert text in shown
    assert "column" not in shown


def test_every_page_states_the_data_interval_judged():
    generic = render_html("Performance", "ok", {"metric": "roc_auc"}, document={"data_interval": INTERVAL})
    decision = decision_html({"status": "promote", "rules": [], "data_interval": INTERVAL}, "Gate")
    for page in (generic, decision):
        assert f"<dt>{INTERVAL_TERM}</dt><dd>2026-02-15 to 2026-02-28" in page
    # a page whose document states none shows no empty row
    assert INTERVAL_TERM not in render_html("x", "ok", {"a": 1}, document={})
    assert interval_text(["2026-01-01", "2026-01-02"]) == "2026-01-01 to 2026-01-02"
    assert interval_text(None) is None


def _operator():
    from mlops_ops.operators.validate import ValidateDataOperator

    return ValidateDataOperator(task_id="validate", pipeline="churn", snapshot="s", target="y")


def test_the_interval_judged_comes_from_the_snapshot_then_from_the_run():
    op = _operator()
    when = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    context = {"logical_date": when, "data_interval_start": when, "data_interval_end": when}
    windowed = {"source": {"window": {"days": 14, "end": "2026-02-28", "files": 14}}}
    assert op.judged_interval(context, windowed) == INTERVAL
    dated = {"source": {"files": ["/d/2026-02-03.parquet", "/d/2026-02-01.parquet"], "n_files": 2}}
    got = op.judged_interval(context, dated)
    assert (got["start"], got["end"]) == ("2026-02-01", "2026-02-03")
    undated = {"source": {"files": ["/d/batch.parquet"], "n_files": 1}}
    assert op.judged_interval(context, undated)["start"] == "2026-03-01"
    run = op.judged_interval(context)
    assert run["start"] == when.isoformat()
    assert run["how"] == "the run's data interval"
    assert op.judged_interval({"logical_date": None})["start"] is None


def test_drift_reference_shows_what_the_reference_has_not_empty_fields():
    from mlops_ops.core.drift.report import _reference_view

    # a training reference as DetectDriftOperator stores it (the demo's)
    reference = {
        "batch_dates_from": None,
        "batch_interval": None,
        "description": "the champion's training data (2026-02-18..2026-03-03; 4,200 rows)",
        "fallback": False,
        "files": [],
        "intervals": [{"days": 14, "end": "2026-03-03", "start": "2026-02-18"}],
        "kind": "training",
        "n_files": 0,
        "rows": 4200,
        "settings": {},
    }
    view = dict(_reference_view(reference))
    assert view["intervals"] == "2026-02-18 to 2026-03-03"
    assert set(view) == {"description", "fallback", "intervals", "kind", "rows"}
