"""The drift reference (issue 8, item 5): the batch's dates, the seasonal and rolling windows, the
partitions they select, and the spec that asks for them; the verdict rule's spec (item 4)."""

from __future__ import annotations

import copy
import datetime as dt
import re
from typing import Any

import pytest

from mlops_ops.config import SpecError, parse_pipeline_spec
from mlops_ops.core.data import DataError
from mlops_ops.core.reference import (
    Interval,
    ReferenceChoice,
    data_interval,
    reference_intervals,
    select_partitions,
)

D = dt.date


# --------------------------------------------------------------------------- the batch's dates


def test_the_batch_interval_comes_from_its_ingest_window_first():
    source = {"window": {"days": 31, "end": "2015-03-31"}, "files": ["/d/2015-03-31.csv"], "n_files": 1}
    interval, how = data_interval(source, default_day=D(2015, 4, 1))
    assert interval == Interval(D(2015, 3, 1), D(2015, 3, 31))
    assert interval.days == 31
    assert how == "its ingest window (31 day(s) up to 2015-03-31)"


@pytest.mark.parametrize(
    ("files", "fmt", "expected"),
    [
        (["/d/2015-03-02.parquet", "/d/2015-03-09.parquet"], "%Y-%m-%d", (D(2015, 3, 2), D(2015, 3, 9))),
        (["s3://b/dt=20150302/part-0.parquet"], "dt=%Y%m%d", (D(2015, 3, 2), D(2015, 3, 2))),
        (["/d/2015/03/02/a.csv", "/d/2015/02/27/a.csv"], "%Y/%m/%d", (D(2015, 2, 27), D(2015, 3, 2))),
    ],
)
def test_the_batch_interval_comes_from_its_file_dates(files, fmt, expected):
    interval, how = data_interval({"files": files, "n_files": len(files)}, date_format=fmt)
    assert (interval.start, interval.end) == expected
    assert how == f"the dates in its file names ({fmt})"


@pytest.mark.parametrize(
    "source",
    [
        {"kind": "sql", "sql": "select 1"},
        {"files": ["/d/today.csv"], "n_files": 1},  # no date in the name
        {"files": ["/d/2015-03-02.csv"], "n_files": 200},  # the list is cut: its dates are not all known
        None,
    ],
)
def test_without_dates_the_batch_is_the_runs_day(source):
    interval, how = data_interval(source, default_day=D(2015, 3, 9))
    assert interval == Interval(D(2015, 3, 9), D(2015, 3, 9))
    assert how == "the run's logical date (its files carry no date)"
    assert data_interval(source) == (None, "unknown (no window and no dated file names)")


# --------------------------------------------------------------------------- the windows


MARCH_2015 = Interval(D(2015, 3, 1), D(2015, 3, 31))


def test_a_seasonal_reference_is_the_same_period_a_season_back():
    assert reference_intervals("seasonal", MARCH_2015, lag_days=365) == [
        Interval(D(2014, 3, 1), D(2014, 3, 31))
    ]
    # pooled over three seasons, most recent first
    assert reference_intervals("seasonal", MARCH_2015, lag_days=365, seasons=3) == [
        Interval(D(2014, 3, 1), D(2014, 3, 31)),
        Interval(D(2013, 3, 1), D(2013, 3, 31)),
        Interval(D(2012, 3, 1), D(2012, 3, 31)),
    ]
    # days, not calendar years: across a leap day the window moves by one
    assert reference_intervals("seasonal", MARCH_2015.shifted(366), lag_days=365, seasons=2)[1] == Interval(
        D(2014, 3, 2), D(2014, 4, 1)
    )


@pytest.mark.parametrize(
    ("batch", "days", "expected"),
    [
        # one day, 29 days around it a year back: 14 either side
        (Interval(D(2015, 7, 15), D(2015, 7, 15)), 29, (D(2014, 7, 1), D(2014, 7, 29))),
        # one day, an even window: one day more before than after
        (Interval(D(2015, 7, 15), D(2015, 7, 15)), 4, (D(2014, 7, 13), D(2014, 7, 16))),
        # a week, widened to three weeks around it
        (Interval(D(2015, 7, 13), D(2015, 7, 19)), 21, (D(2014, 7, 6), D(2014, 7, 26))),
        # a month, narrowed to the middle week
        (MARCH_2015, 7, (D(2014, 3, 13), D(2014, 3, 19))),
    ],
)
def test_a_seasonal_window_is_centred_on_the_batch(batch, days, expected):
    (window,) = reference_intervals("seasonal", batch, lag_days=365, days=days)
    assert (window.start, window.end) == expected
    assert window.days == days


def test_a_weekly_season():
    monday = Interval(D(2026, 3, 2), D(2026, 3, 2))
    assert reference_intervals("seasonal", monday, lag_days=7, seasons=4) == [
        Interval(D(2026, 2, 23), D(2026, 2, 23)),
        Interval(D(2026, 2, 16), D(2026, 2, 16)),
        Interval(D(2026, 2, 9), D(2026, 2, 9)),
        Interval(D(2026, 2, 2), D(2026, 2, 2)),
    ]


def test_a_rolling_reference_is_the_days_before_the_batch():
    assert reference_intervals("rolling", MARCH_2015, days=28) == [Interval(D(2015, 2, 1), D(2015, 2, 28))]
    day = Interval(D(2026, 3, 3), D(2026, 3, 3))
    assert reference_intervals("rolling", day, days=1) == [Interval(D(2026, 3, 2), D(2026, 3, 2))]


@pytest.mark.parametrize(
    ("kind", "kwargs", "message"),
    [
        ("seasonal", {"lag_days": 7, "days": 14}, "overlaps the batch"),
        ("seasonal", {"lag_days": 20}, "overlaps the batch"),  # a month one 20-day 'season' back
        ("rolling", {}, "a rolling reference needs days"),
        ("training", {}, "must be 'seasonal' or 'rolling'"),
    ],
)
def test_a_window_that_cannot_work_is_refused(kind, kwargs, message):
    with pytest.raises(ValueError, match=message):
        reference_intervals(kind, MARCH_2015, **kwargs)


def test_partitions_are_selected_by_the_date_in_their_path():
    paths = [f"/d/{D(2014, 2, 26) + dt.timedelta(days=i)}.parquet" for i in range(40)]
    chosen = select_partitions(paths, [Interval(D(2014, 3, 1), D(2014, 3, 31))], "%Y-%m-%d")
    assert chosen[0] == "/d/2014-03-01.parquet"
    assert chosen[-1] == "/d/2014-03-31.parquet"
    assert len(chosen) == 31
    two = [Interval(D(2014, 3, 1), D(2014, 3, 2)), Interval(D(2014, 3, 30), D(2014, 3, 31))]
    assert len(select_partitions(paths, two, "%Y-%m-%d")) == 4
    assert select_partitions(paths, [Interval(D(2010, 1, 1), D(2010, 1, 5))], "%Y-%m-%d") == []


def test_an_undated_partition_is_an_error_that_names_it():
    with pytest.raises(
        DataError, match=r"1 file\(s\) carry no date in the format '%Y-%m-%d', e.g. /d/latest.csv"
    ):
        select_partitions(["/d/2014-03-01.csv", "/d/latest.csv"], [MARCH_2015], "%Y-%m-%d")


def test_the_choice_says_what_and_why_in_json():
    choice = ReferenceChoice(
        kind="seasonal",
        requested="seasonal",
        why="because",
        rows=31,
        intervals=[Interval(D(2014, 3, 1), D(2014, 3, 31))],
        batch=MARCH_2015,
        batch_dates_from="its ingest window",
        files=["/d/2014-03-01.csv"],
        n_files=1,
    )
    doc = choice.to_dict()
    assert doc["kind"] == "seasonal"
    assert doc["intervals"] == [{"start": "2014-03-01", "end": "2014-03-31", "days": 31}]
    assert doc["batch_interval"] == {"start": "2015-03-01", "end": "2015-03-31", "days": 31}
    assert doc["description"] == "the same period of past season(s) (2014-03-01..2014-03-31; 31 rows)"
    assert doc["why"] == "because"
    assert not doc["fallback"]


# --------------------------------------------------------------------------- the spec

MINIMAL: dict[str, Any] = {
    "name": "mini",
    "source": {"uri": "/data/mini/*.parquet", "window": {"days": 30, "date_format": "%Y%m%d"}},
    "target": "y",
    "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
}


def spec_with_drift(drift: dict[str, Any], **top: Any) -> dict[str, Any]:
    data = copy.deepcopy(MINIMAL)
    data.update(copy.deepcopy(top))
    data["monitoring"] = {"drift": drift}
    return data


def spec_error(data: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as err:
        parse_pipeline_spec(data, origin="mini.yaml")
    return str(err.value)


def test_the_default_rule_is_any_and_the_default_reference_the_training_data():
    spec = parse_pipeline_spec(spec_with_drift({}))
    assert spec.monitoring.drift.rule == "any"
    assert spec.monitoring.drift.reference.kind == "training"
    assert spec.drift_reference.kind == "training"


@pytest.mark.parametrize(
    ("drift", "rule"),
    [
        ({"drift_share": 0.3}, "share"),  # a share alone selects its rule
        ({"importance_share": 0.5}, "importance"),
        ({"rule": "share"}, "share"),
        ({"rule": "share", "drift_share": 0.5}, "share"),
        ({"rule": "importance", "importance_share": 0.5}, "importance"),
        ({"rule": "any"}, "any"),
    ],
)
def test_the_rule(drift, rule):
    assert parse_pipeline_spec(spec_with_drift(drift)).monitoring.drift.rule == rule


@pytest.mark.parametrize(
    ("drift", "field", "message"),
    [
        ({"rule": "most"}, "monitoring.drift.rule", "Input should be 'any', 'share' or 'importance'"),
        ({"drift_share": 0}, "monitoring.drift.drift_share", "greater than 0"),
        ({"importance_share": 1.5}, "monitoring.drift.importance_share", "less than or equal to 1"),
        ({"rule": "any", "drift_share": 0.3}, "monitoring.drift.drift_share", "only applies to rule 'share'"),
        (
            {"rule": "share", "importance_share": 0.3},
            "monitoring.drift.importance_share",
            "only applies to rule 'importance'",
        ),
        ({"drift_share": 0.3, "importance_share": 0.3}, "monitoring.drift.rule", "choose a rule"),
        ({"reference": {"kind": "monthly"}}, "monitoring.drift.reference.kind", "'training', 'seasonal'"),
        ({"reference": {"kind": "rolling"}}, "monitoring.drift.reference.days", "needs 'days'"),
        ({"reference": {"kind": "seasonal", "lag_days": 0}}, "monitoring.drift.reference.lag_days", ">= 1"),
        (
            {"reference": {"lag_days": 365}},
            "monitoring.drift.reference.lag_days",
            "only applies to kind 'seasonal'",
        ),
        (
            {"reference": {"kind": "rolling", "days": 7, "seasons": 2}},
            "monitoring.drift.reference.seasons",
            "only applies to kind 'seasonal'",
        ),
        ({"reference": {"days": 7}}, "monitoring.drift.reference.days", "'seasonal' or 'rolling'"),
        (
            {"reference": {"kind": "seasonal", "date_format": "%Y-%m"}},
            "monitoring.drift.reference.date_format",
            "exactly %Y, %m and %d",
        ),
    ],
)
def test_a_bad_drift_setting_names_its_field(drift, field, message):
    text = spec_error(spec_with_drift(drift))
    line = re.search(rf"^  - {re.escape(field)}: (.*)$", text, re.MULTILINE)
    assert line, text
    assert message in line.group(1).replace("greater than or equal to", ">="), text


def test_a_windowed_reference_reads_the_training_files_by_default():
    spec = parse_pipeline_spec(spec_with_drift({"reference": {"kind": "seasonal", "seasons": 2}}))
    ref = spec.drift_reference
    assert (ref.kind, ref.uri, ref.date_format, ref.lag_days, ref.seasons) == (
        "seasonal",
        "/data/mini/*.parquet",
        "%Y%m%d",  # the training window's format
        365,
        2,
    )
    own = parse_pipeline_spec(
        spec_with_drift({"reference": {"kind": "rolling", "days": 14, "uri": "/other/*.csv"}})
    ).drift_reference
    assert (own.uri, own.date_format, own.days) == ("/other/*.csv", "%Y-%m-%d", 14)


def test_a_windowed_reference_of_a_sql_source_needs_its_files():
    data = spec_with_drift(
        {"reference": {"kind": "rolling", "days": 7}},
        source={"sql": "select * from t", "conn_id": "db"},
    )
    text = spec_error(data)
    assert "monitoring.drift.reference.uri: a rolling reference is read from dated files" in text
    data["monitoring"]["drift"]["reference"]["uri"] = "/d/*.parquet"
    assert parse_pipeline_spec(data).drift_reference.uri == "/d/*.parquet"


def test_the_monitoring_dag_passes_the_resolved_reference(tmp_path):
    from mlops_ops.dag_factory.monitoring import build_monitoring_dag

    data = spec_with_drift({"reference": {"kind": "seasonal", "days": 29}, "importance_share": 0.3})
    data["monitoring"]["source"] = {"uri": "/data/mini/{{ ds }}.parquet"}
    dag = build_monitoring_dag(parse_pipeline_spec(data))
    drift = dag.get_task("detect_drift").drift
    assert drift["rule"] == "importance"
    assert drift["importance_share"] == 0.3
    assert "drift_share" not in drift  # only what was set: the operator validates it again
    assert drift["reference"] == {
        "kind": "seasonal",
        "days": 29,
        "uri": "/data/mini/*.parquet",
        "format": "auto",
        "conn_id_storage": None,
        "date_format": "%Y%m%d",
    }
    assert "the same period one season earlier" in dag.doc_md
    assert "rule `importance`" in dag.doc_md
