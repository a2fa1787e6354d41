"""The feedback join (core/feedback.py): exact counts per bucket, both prediction sources, label forms."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from mlops_ops.core.feedback import (
    BUCKETS,
    FeedbackError,
    FeedbackKeys,
    batch_prediction_id,
    join_outcomes,
    label_form,
    label_texts,
    predictions_from_batch,
    predictions_from_log,
)
from mlops_ops.core.outcomes import JOINED_COLUMNS

D = dt.datetime(2026, 3, 10, tzinfo=dt.UTC)  # the run's interval start
RUN = {"run_start": D, "run_end": D + dt.timedelta(days=1)}
KEY = "2026-03-05T000000Z"


def _log_row(pid, ts, *, version="1", arm="champion", prediction="1", probability=0.8, error=None, **inputs):
    return {
        "prediction_id": pid,
        "request_id": f"r-{pid}",
        "sticky_key": None,
        "ts": ts,
        "model_version": version,
        "arm": arm,
        "served": arm != "shadow",
        "status": 200 if error is None else 422,
        "error": error,
        "latency_ms": 1.0,
        "prediction": None if error else prediction,
        "probability": None if error else probability,
        "input": json.dumps({"x": 1, **inputs}),
    }


def _log(rows):
    frame = pd.DataFrame(rows)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


def _batch(n=3, **columns):
    frame = pd.DataFrame({"prediction": [0, 1, 1][:n], "probability": [0.2, 0.7, 0.9][:n], **columns})
    manifest = {
        "model_version": "1",
        "data_interval": {"start": "2026-03-05T00:00:00+00:00", "end": "2026-03-06T00:00:00+00:00"},
        "created": "2026-03-06T01:00:00+00:00",
    }
    return frame, manifest


def _predictions_by_id():
    log = _log(
        [
            _log_row("p1", D - dt.timedelta(days=2)),
            _log_row("p2", D - dt.timedelta(hours=3), prediction="0", probability=0.3),
            _log_row(
                "p2", D - dt.timedelta(hours=3), version="2", arm="shadow", prediction="1", probability=0.6
            ),
            _log_row("p3", D - dt.timedelta(days=20)),  # within lookback (28), beyond window (14)
            _log_row("p4", D - dt.timedelta(days=1), error="bad input"),  # predicted nothing
            _log_row("p5", D - dt.timedelta(days=1)),  # joined by an earlier run
            _log_row("p6", D - dt.timedelta(days=1)),
            _log_row("p7", D - dt.timedelta(days=40)),  # beyond lookback
        ]
    )
    frame, manifest = _batch()
    return pd.concat(
        [predictions_from_log(log), predictions_from_batch(frame, manifest, interval_key=KEY)],
        ignore_index=True,
    )


def test_join_by_prediction_id_counts_every_bucket_exactly():
    preds = _predictions_by_id()
    outcomes = pd.DataFrame(
        [
            ("p1", 1, "2026-03-09T00:00:00Z"),  # joined, late
            ("p2", "0.0", "2026-03-10T05:00:00Z"),  # joined (champion + shadow rows), on time
            ("p1", 1, "2026-03-09T12:00:00Z"),  # duplicate in the batch: the earlier event wins
            ("p3", 0, "2026-03-10T01:00:00Z"),  # out of window
            ("nope", 0, "2026-03-10T01:00:00Z"),  # orphan
            ("p4", 0, "2026-03-10T01:00:00Z"),  # orphan: that request predicted nothing
            ("p5", 1, "2026-03-10T01:00:00Z"),  # duplicate of an earlier run
            ("p6", None, "2026-03-10T01:00:00Z"),  # invalid: no label
            (None, 1, "2026-03-10T01:00:00Z"),  # invalid: no key
            ("p6", 1, "not a time"),  # invalid: unreadable time
            (batch_prediction_id(KEY, 1), True, "2026-03-08T00:00:00Z"),  # joined (batch), late
            ("p6", 1, "2026-03-01T00:00:00Z"),  # invalid: before its prediction
            ("p7", 1, "2026-03-10T01:00:00Z"),  # orphan: beyond lookback
        ],
        columns=["pid", "churned", "at"],
    )
    keys = FeedbackKeys(label="churned", prediction_id="pid", time="at", window_days=14, lookback_days=28)
    result = join_outcomes(
        outcomes, preds, keys=keys, task="classification", already_joined={"p5"}, where="o.csv", **RUN
    )
    assert result.counts == {
        "received": 13,
        "invalid": 4,
        "orphan": 3,
        "out_of_window": 1,
        "duplicate": 2,
        "joined": 3,
        "late": 2,
        "conflicting": 0,
        "joined_rows": 4,
    }
    assert sum(result.counts[b] for b in BUCKETS) == result.counts["received"]
    assert result.by_source == {"online": 2, "batch": 1}
    table = result.table.to_pandas()
    assert tuple(table.columns) == JOINED_COLUMNS
    assert sorted(zip(table["prediction_id"], table["arm"], table["label"], strict=True)) == [
        (batch_prediction_id(KEY, 1), "batch", "1"),
        ("p1", "champion", "1"),
        ("p2", "champion", "0"),
        ("p2", "shadow", "0"),
    ]
    p1 = table[table["prediction_id"] == "p1"].iloc[0]
    assert p1["outcome_at"] == pd.Timestamp("2026-03-09T00:00:00Z")  # the first of the two p1 rows
    assert (table["joined_at"] == pd.Timestamp(RUN["run_end"])).all()
    assert set(table["source"]) == {"online", "batch"}
    # every bucket lists its rows with a reason
    assert [s["row"] for s in result.samples["duplicate"]] == [2, 6]
    assert [s["row"] for s in result.samples["orphan"]] == [4, 5, 12]
    assert result.samples["out_of_window"][0]["pid"] == "p3"
    assert all(s["reason"] for rows in result.samples.values() for s in rows)
    assert json.dumps(result.to_dict())


def test_join_by_entity_takes_the_latest_prediction_before_the_event_in_both_sources():
    log = _log(
        [
            _log_row("a-old", D - dt.timedelta(days=3), customer_id=7),
            _log_row("a-new", D - dt.timedelta(days=1), customer_id=7, prediction="0", probability=0.1),
            _log_row("a-after", D + dt.timedelta(hours=12), customer_id=7),  # after the event: not it
            _log_row("b", D - dt.timedelta(days=20), customer_id=8),  # too old for the window
            _log_row("c", D - dt.timedelta(days=1)),  # the request did not carry customer_id
        ]
    )
    frame, manifest = _batch(customer_id=[100, 101, 7.0])
    preds = pd.concat(
        [
            predictions_from_log(log, entity_key="customer_id"),
            predictions_from_batch(frame, manifest, interval_key=KEY, entity_key="customer_id"),
        ],
        ignore_index=True,
    )
    outcomes = pd.DataFrame(
        {
            "customer_id": ["7", 7, 8, 100, 101.0, 555, None],
            "churned": [1, 1, 0, 0, "1", 1, 1],
            "happened": pd.to_datetime(
                [
                    "2026-03-10 06:00",
                    "2026-03-10 07:00",
                    "2026-03-10 06:00",
                    "2026-03-06 00:00",
                    "2026-03-06 00:00",
                    "2026-03-10 06:00",
                    "2026-03-10 06:00",
                ]
            ),  # fmt: skip
        }
    )
    keys = FeedbackKeys(
        label="churned", entity_key="customer_id", time="happened", window_days=14, lookback_days=28
    )
    result = join_outcomes(outcomes, preds, keys=keys, task="classification", **RUN)
    assert result.counts == {
        "received": 7,
        "invalid": 1,  # no key
        "orphan": 1,  # customer 555
        "out_of_window": 1,  # customer 8
        "duplicate": 1,  # the second outcome of customer 7 matches a-new again
        "joined": 3,
        "late": 2,  # the batch outcomes happened on 03-06
        "conflicting": 0,
        "joined_rows": 3,
    }
    table = result.table.to_pandas().set_index("entity_key")
    assert table.loc["7", "prediction_id"] == "a-new"
    assert table.loc["100", "prediction_id"] == batch_prediction_id(KEY, 0)
    assert table.loc["101", "prediction_id"] == batch_prediction_id(KEY, 1)
    assert table.loc["101", "label"] == "1"


def test_a_rerun_with_its_own_part_excluded_gives_the_same_result():
    preds = _predictions_by_id()
    outcomes = pd.DataFrame({"pid": ["p1", "p2"], "churned": [1, 0]})
    keys = FeedbackKeys(label="churned", prediction_id="pid")
    first = join_outcomes(outcomes, preds, keys=keys, task="classification", **RUN)
    again = join_outcomes(outcomes, preds, keys=keys, task="classification", **RUN)
    assert first.counts == again.counts
    assert first.table.equals(again.table)
    # without a time column an outcome happens at the interval's end: never late
    assert first.counts["late"] == 0
    assert first.counts["joined"] == 2
    # a later run sees them as joined
    later = join_outcomes(
        outcomes, preds, keys=keys, task="classification", already_joined=set(first.table["prediction_id"].to_pylist()),
        run_start=D + dt.timedelta(days=1), run_end=D + dt.timedelta(days=2),
    )  # fmt: skip
    assert later.counts["duplicate"] == 2
    assert later.table.num_rows == 0


@pytest.mark.parametrize(
    ("classes", "values", "expected"),
    [
        (["0", "1"], [1, 1.0, "1", True, "1.0", 0, False, " 0 "], ["1", "1", "1", "1", "1", "0", "0", "0"]),
        (["True", "False"], [1, 0, "true", True, "1"], ["True", "False", "True", "True", "True"]),
        (["0.0", "1.0"], [1, "0", True], ["1.0", "0.0", "1.0"]),
        (["no", "yes"], ["yes", " no"], ["yes", "no"]),
    ],
)
def test_labels_take_the_text_form_of_the_predictions(classes, values, expected):
    form = label_form("classification", classes)
    assert label_texts(pd.Series(values, dtype=object), form, where="f", column="y").tolist() == expected


def test_regression_labels_are_float_text():
    assert label_texts(
        pd.Series([12, "12.5", 3.0]), label_form("regression", []), where="f", column="y"
    ).tolist() == [
        "12.0",
        "12.5",
        "3.0",
    ]


def test_a_label_without_the_models_form_fails_naming_the_file_column_and_fix():
    preds = _predictions_by_id()
    outcomes = pd.DataFrame({"pid": ["p1", "p2"], "churned": ["yes", 1.5]})
    keys = FeedbackKeys(label="churned", prediction_id="pid")
    with pytest.raises(FeedbackError) as err:
        join_outcomes(
            outcomes, preds, keys=keys, task="classification", where="outcomes/2026-03-10.csv", **RUN
        )
    text = str(err.value)
    assert "outcomes/2026-03-10.csv" in text
    assert "'churned'" in text
    assert "'yes'" in text
    assert "1.5" in text
    assert "write the outcome as the model's class" in text


def test_missing_columns_and_a_batch_output_without_the_entity_fail_clearly():
    keys = FeedbackKeys(label="churned", prediction_id="pid")
    with pytest.raises(FeedbackError, match=r"o.csv has no column\(s\) \['pid'\]"):
        join_outcomes(pd.DataFrame({"churned": [1]}), _predictions_by_id(), keys=keys, task="classification",
                      where="o.csv", **RUN)  # fmt: skip
    frame, manifest = _batch()
    with pytest.raises(FeedbackError, match="scoring.id_columns"):
        predictions_from_batch(frame, manifest, interval_key=KEY, entity_key="customer_id", where="p.parquet")


def test_an_empty_batch_and_no_predictions():
    keys = FeedbackKeys(label="churned", prediction_id="pid", time="at")
    empty = pd.DataFrame({"pid": [], "churned": [], "at": []})
    result = join_outcomes(empty, _predictions_by_id(), keys=keys, task="classification", **RUN)
    assert result.counts["received"] == 0
    assert result.table.num_rows == 0
    outcomes = pd.DataFrame({"pid": ["p1"], "churned": [1], "at": ["2026-03-10"]})
    none = join_outcomes(
        outcomes, predictions_from_log(pd.DataFrame()), keys=keys, task="classification", **RUN
    )
    assert none.counts["orphan"] == 1


def _spec(**feedback):
    from mlops_ops.config import MonitoringSpec

    return MonitoringSpec(source={"uri": "b/{{ ds }}.parquet"}, feedback=feedback)


@pytest.mark.parametrize(
    ("feedback", "message"),
    [
        ({"source": {"uri": "o.csv"}, "label": "y"}, "give exactly one of 'prediction_id'"),
        (
            {
                "source": {"uri": "o.csv"},
                "label": "y",
                "prediction_id": "p",
                "entity": {"key": "k", "time": "t"},
            },
            "give exactly one of 'prediction_id'",
        ),
        ({"source": {"uri": "o.csv"}, "label": "y", "entity": {"key": "k"}}, "time"),
        (
            {"source": {"uri": "o.csv"}, "label": "y", "entity": {"key": "k", "time": "t"}, "time": "t"},
            "entity.time",
        ),
        (
            {"source": {"prediction_log": True}, "label": "y", "prediction_id": "p"},
            "not in the prediction log",
        ),
        ({"source": {"uri": "o.csv"}, "label": "y", "prediction_id": "y"}, "must differ"),
        ({"source": {"uri": "o.csv"}, "label": "y", "prediction_id": "p", "window_days": 0}, "window_days"),
        (
            {
                "source": {"uri": "o.csv"},
                "label": "y",
                "prediction_id": "p",
                "window_days": 10,
                "lookback_days": 5,
            },
            "at least window_days",
        ),
        ({"source": {"uri": "o.csv"}, "label": "y", "prediction_id": "p", "windows": 3}, "windows"),
    ],
)
def test_the_feedback_spec_refuses_what_cannot_join(feedback, message):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        _spec(**feedback)


def test_the_feedback_spec_defaults_and_keys():
    spec = _spec(
        source={"uri": "o/{{ ds }}.csv"}, label="churned", entity={"key": "customer_id", "time": "at"}
    )
    feedback = spec.feedback
    assert feedback.window_days == 14
    assert feedback.lookback == 28
    keys = FeedbackKeys.from_spec(feedback)
    assert (keys.entity_key, keys.time, keys.prediction_id) == ("customer_id", "at", None)
    from pydantic import ValidationError

    from mlops_ops.config import MonitoringSpec

    with pytest.raises(ValidationError, match="needs 'monitoring.source'"):
        MonitoringSpec(feedback={"source": {"uri": "o.csv"}, "label": "y", "prediction_id": "p"})


@pytest.mark.parametrize("zero_width", [True, False])
def test_the_operators_interval_and_search_range_stay_in_utc_with_airflows_datetimes(zero_width):
    """Airflow hands pendulum datetimes; one with ``astimezone(UTC)`` loses its zone when a
    timedelta is added. The operator's interval and prediction range must stay aware."""
    import pendulum

    from mlops_ops.operators.feedback import JoinOutcomesOperator

    day = pendulum.datetime(2026, 3, 7, tz="UTC")
    context = {
        "logical_date": day,
        "data_interval_start": day,
        "data_interval_end": day if zero_width else day.add(days=1),
    }
    start, end = JoinOutcomesOperator._interval(context)
    assert (start, end) == (D - dt.timedelta(days=3), D - dt.timedelta(days=2))
    keys = FeedbackKeys(label="y", prediction_id="pid", time="at", window_days=14, lookback_days=28)
    frame = pd.DataFrame({"at": ["2026-03-05T10:00:00Z", None]})
    since, until = JoinOutcomesOperator._prediction_range(frame, keys, end)
    assert since.tzinfo is not None
    assert until.tzinfo is not None
    assert since == dt.datetime(2026, 2, 5, 10, tzinfo=dt.UTC)
    assert until == end + dt.timedelta(seconds=1)
