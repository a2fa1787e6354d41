"""The feedback join against hostile outcome exports: what real CSV/SQL exports do to keys, labels
and event times. Each test is a finding that gave a silent wrong answer (or a misleading count)
before its fix; real pandas frames, no mocks."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from mlops_ops.core.feedback import FeedbackError, FeedbackKeys, join_outcomes, predictions_from_log

D = dt.datetime(2026, 3, 10, tzinfo=dt.UTC)  # the run's interval start
RUN = {"run_start": D, "run_end": D + dt.timedelta(days=1)}
BY_ID = FeedbackKeys(label="y", prediction_id="pid", time="t")
BY_ENTITY = FeedbackKeys(label="y", entity_key="cust", time="t")


def _predictions(*rows, entity_key=None):
    """Prediction-log rows ``(prediction_id, ts, prediction, inputs)`` as candidate predictions."""
    log = pd.DataFrame(
        [
            {
                "prediction_id": pid,
                "ts": ts,
                "model_version": "1",
                "arm": "champion",
                "prediction": prediction,
                "probability": 0.8,
                "error": None,
                "input": json.dumps({"x": 1, **inputs}),
            }
            for pid, ts, prediction, inputs in rows
        ]
    )
    log["ts"] = pd.to_datetime(log["ts"], utc=True)
    return predictions_from_log(log, entity_key=entity_key)


def _join(outcomes, predictions, keys=BY_ID, **kwargs):
    return join_outcomes(
        pd.DataFrame(outcomes), predictions, keys=keys, task="classification", **RUN, **kwargs
    )


def _nonzero(counts):
    return {k: v for k, v in counts.items() if v}


# -- keys read as numbers ----------------------------------------------------------------------


def test_numeric_prediction_id_column_matches_zero_padded_ids():
    """A CSV reader turns the id ``00123`` into the number 123: it must still find ``00123``."""
    preds = _predictions(("00123", D - dt.timedelta(hours=5), "1", {}))
    result = _join({"pid": [123], "y": [1], "t": [D]}, preds)
    assert _nonzero(result.counts) == {"received": 1, "joined": 1, "joined_rows": 1}
    assert result.table.column("prediction_id").to_pylist() == ["00123"]


def test_numeric_entity_column_matches_zero_padded_entity_in_requests():
    """Requests carried the customer as text ``"00123"``; the outcome export has the number 123."""
    preds = _predictions(("a", D - dt.timedelta(hours=5), "1", {"cust": "00123"}), entity_key="cust")
    result = _join({"cust": [123], "y": [1], "t": [D]}, preds, keys=BY_ENTITY)
    assert _nonzero(result.counts) == {"received": 1, "joined": 1, "joined_rows": 1}


def test_text_key_column_still_matches_exactly():
    """A text column kept its zeros: ``0123`` is not ``123`` there."""
    preds = _predictions(("123", D - dt.timedelta(hours=5), "1", {}))
    result = _join({"pid": ["0123"], "y": [1], "t": [D]}, preds)
    assert result.counts["orphan"] == 1


def test_float_key_column_beyond_2_53_is_an_error_not_a_wrong_match():
    """An empty cell makes pandas read an id column as float64, which cannot hold every id above
    2**53: ``12345678901234567`` becomes ``12345678901234568``, another customer."""
    preds = _predictions(
        ("a", D - dt.timedelta(hours=5), "1", {"cust": 12345678901234567}),
        ("b", D - dt.timedelta(hours=5), "1", {"cust": 12345678901234568}),
        entity_key="cust",
    )
    with pytest.raises(FeedbackError, match=r"'cust'.*2\*\*53.*text"):
        _join({"cust": [12345678901234567.0, float("nan")], "y": [1, 1], "t": [D, D]}, preds, keys=BY_ENTITY)


# -- labels ------------------------------------------------------------------------------------


@pytest.mark.parametrize("blank", ["", " ", "\t"])
def test_blank_label_is_invalid_for_text_classes(blank):
    """A blank cell (kept as text by a parquet or SQL export) is no outcome: it was joined as the
    label ``""``, a wrong answer for every metric."""
    preds = _predictions(
        ("p1", D - dt.timedelta(hours=5), "yes", {}), ("p2", D - dt.timedelta(hours=5), "no", {})
    )
    result = _join({"pid": ["p1", "p2"], "y": [blank, "no"], "t": [D, D]}, preds)
    assert _nonzero(result.counts) == {"received": 2, "invalid": 1, "joined": 1, "joined_rows": 1}
    assert result.samples["invalid"][0]["reason"] == "no label in 'y'"


def test_blank_label_is_invalid_for_numeric_classes_not_an_error_for_the_batch():
    """One blank label among 0/1 labels failed the whole batch; it is one invalid row."""
    preds = _predictions(
        ("p1", D - dt.timedelta(hours=5), "1", {}), ("p2", D - dt.timedelta(hours=5), "0", {})
    )
    result = _join({"pid": ["p1", "p2"], "y": [" ", "0"], "t": [D, D]}, preds)
    assert _nonzero(result.counts) == {"received": 2, "invalid": 1, "joined": 1, "joined_rows": 1}


def test_text_label_differing_only_in_case_is_written_as_the_class():
    """``Yes`` answers the class ``yes``: it was joined as ``Yes``, which no prediction equals."""
    preds = _predictions(
        ("p1", D - dt.timedelta(hours=5), "yes", {}), ("p2", D - dt.timedelta(hours=5), "no", {})
    )
    result = _join({"pid": ["p1", "p2"], "y": ["Yes", " NO "], "t": [D, D]}, preds)
    assert result.table.column("label").to_pylist() == ["yes", "no"]


# -- event times -------------------------------------------------------------------------------


def test_epoch_seconds_event_time_is_read_as_seconds():
    """An event time exported as Unix seconds was read as nanoseconds after 1970: every such
    outcome was counted invalid, "before its prediction"."""
    preds = _predictions(("p1", D - dt.timedelta(hours=5), "1", {}))
    result = _join({"pid": ["p1"], "y": [1], "t": [int((D + dt.timedelta(hours=1)).timestamp())]}, preds)
    assert _nonzero(result.counts) == {"received": 1, "joined": 1, "joined_rows": 1}
    assert result.table.column("outcome_at").to_pylist()[0] == D + dt.timedelta(hours=1)


def test_epoch_milliseconds_event_time_is_invalid_with_a_reason_naming_seconds():
    preds = _predictions(("p1", D - dt.timedelta(hours=5), "1", {}))
    result = _join({"pid": ["p1"], "y": [1], "t": [int(D.timestamp() * 1000)]}, preds)
    assert _nonzero(result.counts) == {"received": 1, "invalid": 1}
    assert "epoch seconds" in result.samples["invalid"][0]["reason"]


# -- the same outcome twice --------------------------------------------------------------------


def test_duplicate_with_a_different_label_is_counted_as_conflicting():
    """The same prediction answered ``1`` then ``0``: the first wins (documented), but that the two
    disagree was not said anywhere."""
    preds = _predictions(
        ("p1", D - dt.timedelta(hours=5), "1", {}), ("p2", D - dt.timedelta(hours=5), "1", {})
    )
    outcomes = {
        "pid": ["p1", "p1", "p2", "p2"],
        "y": [1, 0, 1, 1],
        "t": [D, D + dt.timedelta(hours=1), D, D + dt.timedelta(hours=1)],
    }
    result = _join(outcomes, preds)
    assert result.counts["duplicate"] == 2
    assert result.counts["conflicting"] == 1  # p2's second row agrees
    assert result.table.column("label").to_pylist() == ["1", "1"]
    reasons = [s["reason"] for s in result.samples["duplicate"]]
    assert (
        reasons[0]
        == "another row of this batch answers this prediction first, with another label ('1' kept, '0' not)"
    )


def test_duplicate_of_an_earlier_run_with_a_different_label_is_counted_as_conflicting():
    preds = _predictions(
        ("p1", D - dt.timedelta(hours=5), "1", {}), ("p2", D - dt.timedelta(hours=5), "1", {})
    )
    result = _join(
        {"pid": ["p1", "p2"], "y": [0, 1], "t": [D, D]}, preds, already_joined={"p1": "1", "p2": "1"}
    )
    assert result.counts["duplicate"] == 2
    assert result.counts["conflicting"] == 1
    assert "another label ('1' kept, '0' not)" in result.samples["duplicate"][0]["reason"]


def test_prediction_id_as_uppercase_or_dashed_uuid_matches_the_logged_hex():
    """The service logs ``uuid4().hex``; a spreadsheet or warehouse writes it upper-case, or with
    dashes: the same id, but it was an orphan."""
    pid = "4f1c2a9be07d4c3f9a5b6d7e8f901234"
    preds = _predictions((pid, D - dt.timedelta(hours=5), "1", {}))
    dashed = "4F1C2A9B-E07D-4C3F-9A5B-6D7E8F901234"
    result = _join({"pid": [dashed], "y": [1], "t": [D]}, preds)
    assert _nonzero(result.counts) == {"received": 1, "joined": 1, "joined_rows": 1}
    assert result.table.column("prediction_id").to_pylist() == [pid]


def test_non_uuid_ids_keep_their_case():
    preds = _predictions(("Order-7", D - dt.timedelta(hours=5), "1", {}))
    result = _join({"pid": ["order-7"], "y": [1], "t": [D]}, preds)
    assert result.counts["orphan"] == 1


@pytest.mark.parametrize("day", ["2026-03-10", dt.date(2026, 3, 10)])
def test_date_only_event_time_answers_a_prediction_made_that_day(day):
    """An outcome dated 2026-03-10 (no time) for a prediction made at 09:00 that day was read as
    midnight: "before its prediction", invalid, and the outcome lost."""
    preds = _predictions(("p1", D + dt.timedelta(hours=9), "1", {}))
    result = _join({"pid": ["p1"], "y": [1], "t": [day]}, preds)
    assert _nonzero(result.counts) == {"received": 1, "joined": 1, "joined_rows": 1}


def test_date_only_event_time_by_entity_picks_that_days_prediction():
    """By entity the midnight reading chose the customer's prediction of three days before, a
    silent wrong pair, over the one made on the outcome's day."""
    preds = _predictions(
        ("old", D - dt.timedelta(days=3), "0", {"cust": "c1"}),
        ("same-day", D + dt.timedelta(hours=9), "1", {"cust": "c1"}),
        entity_key="cust",
    )
    result = _join({"cust": ["c1"], "y": [1], "t": ["2026-03-10"]}, preds, keys=BY_ENTITY)
    assert result.table.column("prediction_id").to_pylist() == ["same-day"]


def test_orphan_reason_tells_a_missing_prediction_from_one_too_old():
    """An event time typed a year ahead made its outcome an orphan "no prediction matches", though
    the prediction is there: the reason now says which."""
    preds = _predictions(("p1", D - dt.timedelta(hours=5), "1", {}))
    result = _join({"pid": ["p1", "p9"], "y": [1, 1], "t": ["2027-03-10T00:00:00Z", D]}, preds)
    assert result.counts["orphan"] == 2
    first, second = (s["reason"] for s in result.samples["orphan"])
    assert first == (
        "its prediction was made more than lookback_days=28 before the event time (a wrong year "
        "or time zone?)"
    )
    assert second == "no prediction has this key"


def test_numeric_labels_for_text_classes_are_an_error_not_a_wrong_answer():
    """A model predicting ``yes``/``no`` and an export writing 1/0: every label was joined as
    ``"1"``/``"0"``, which no prediction equals, and the live accuracy fell to zero."""
    preds = _predictions(
        ("p1", D - dt.timedelta(hours=5), "yes", {}), ("p2", D - dt.timedelta(hours=5), "no", {})
    )
    with pytest.raises(FeedbackError, match=r"'y'.*none of.*\['no', 'yes'\]"):
        _join({"pid": ["p1", "p2"], "y": [1, 0], "t": [D, D]}, preds, where="outcomes.csv")


def test_a_text_label_of_a_class_not_predicted_yet_still_joins():
    """One class the window never predicted is a real outcome (a multiclass model's rare class)."""
    preds = _predictions(
        ("p1", D - dt.timedelta(hours=5), "a", {}), ("p2", D - dt.timedelta(hours=5), "b", {})
    )
    preds["probability"] = np.nan  # multiclass: the service writes no positive-class probability
    result = _join({"pid": ["p1", "p2"], "y": ["a", "c"], "t": [D, D]}, preds)
    assert result.table.column("label").to_pylist() == ["a", "c"]


# -- live performance on what the join stores ------------------------------------------------


def test_live_auc_of_numeric_classes_takes_the_models_positive_class():
    """The probability is of the model's second class in scikit-learn's order (numbers sort as
    numbers: 2 < 10); sorted as text ("10" < "2") the positive class flipped and a perfect model
    read AUC 0.0."""
    from mlops_ops.core.live_performance import live_performance

    n = 40
    frame = pd.DataFrame(
        {
            "model_version": "1",
            "predicted_at": pd.Timestamp("2026-03-10", tz="UTC"),
            "label": ["10"] * (n // 2) + ["2"] * (n // 2),
            "prediction": ["10"] * (n // 2) + ["2"] * (n // 2),
            "probability": [0.9] * (n // 2) + [0.1] * (n // 2),  # P(class 10), the model's classes_[1]
        }
    )
    whole = live_performance(frame, metric="roc_auc", task="classification")[-1]
    assert whole.value == pytest.approx(1.0)
    loss = live_performance(frame, metric="log_loss", task="classification")[-1]
    assert loss.value == pytest.approx(-np.log(0.9))


def _arm(labels, proba, prefix="r"):
    return pd.DataFrame(
        {
            "prediction_id": [f"{prefix}{i}" for i in range(len(labels))],
            "prediction": ["10" if p >= 0.5 else "2" for p in proba],
            "probability": proba,
            "label": labels,
        }
    )


@pytest.mark.parametrize("paired", [False, True])
def test_release_judge_of_numeric_classes_takes_the_models_positive_class(paired):
    """The release judge sorted the classes "2"/"10" as text too: a challenger that ranks every
    row right (AUC 1) against a coin-flip champion was judged worse and breached."""
    from mlops_ops.core.release import metric_check, paired_metric_check

    rng = np.random.default_rng(3)
    labels = ["10"] * 40 + ["2"] * 40
    challenger = _arm(labels, [0.9] * 40 + [0.1] * 40)
    champion = _arm(labels, list(rng.uniform(size=80)), prefix="r" if paired else "s")
    check = (paired_metric_check if paired else metric_check)(
        champion, challenger, metric="roc_auc", task="classification", tolerance=0.05, level=0.05
    )
    assert check.tested
    assert not check.breached
    assert check.value > 0.2  # challenger - champion, positive = challenger better


def test_a_real_csv_export_with_zero_padded_ids_joins(tmp_path):
    """The whole path a CSV export takes: the ingest's reader (core.data.read_frame) turns the ids
    into numbers, and the join still finds the zero-padded ids the requests carried."""
    from mlops_ops.core.data import read_frame

    path = tmp_path / "outcomes.csv"
    path.write_text("cust,y,t\n00123,yes,2026-03-10\n00456, no ,2026-03-10T08:00:00+02:00\n")
    with path.open("rb") as fh:
        outcomes = read_frame(str(path), fh, "csv")
    assert outcomes["cust"].dtype.kind == "i"  # what the reader does to the ids
    preds = _predictions(
        ("a", D - dt.timedelta(hours=5), "yes", {"cust": "00123"}),
        ("b", D - dt.timedelta(hours=5), "no", {"cust": "00456"}),
        entity_key="cust",
    )
    result = join_outcomes(outcomes, preds, keys=BY_ENTITY, task="classification", where=str(path), **RUN)
    assert _nonzero(result.counts) == {"received": 2, "joined": 2, "joined_rows": 2}
    assert sorted(result.table.column("label").to_pylist()) == ["no", "yes"]


def test_a_misspelt_column_is_named_with_the_likely_one():
    """The error named the missing column and listed the file's; it now says which one was meant."""
    preds = _predictions(("p1", D - dt.timedelta(hours=5), "1", {}))
    with pytest.raises(FeedbackError) as err:
        _join({"pid": ["p1"], "Y ": [1], "t": [D]}, preds, where="s3://b/outcomes/2026-03-10.csv")
    message = str(err.value)
    assert "s3://b/outcomes/2026-03-10.csv" in message
    assert "did you mean 'Y ' for 'y'?" in message


@pytest.mark.parametrize("case", ["every row invalid", "no prediction has the entity"])
def test_entity_join_with_nothing_to_match_counts_instead_of_crashing(case):
    """By entity, a batch whose rows were all invalid, or a window without a prediction carrying
    the entity column, raised a TypeError (a naive NaT cast to UTC) and failed the task."""
    inputs = {"cust": "c1"} if case == "every row invalid" else {}
    preds = _predictions(("a", D - dt.timedelta(hours=5), "1", inputs), entity_key="cust")
    label = None if case == "every row invalid" else 1
    result = _join({"cust": ["c1", "c2"], "y": [label, label], "t": [D, D]}, preds, keys=BY_ENTITY)
    bucket = "invalid" if case == "every row invalid" else "orphan"
    assert _nonzero(result.counts) == {"received": 2, bucket: 2}


def test_a_label_outside_a_binary_models_classes_is_invalid():
    """A 0/1 model (its predictions carry the positive class's probability, so it has two classes)
    and the label 2: it was joined, and live performance then saw three classes and no AUC."""
    preds = _predictions(
        ("p1", D - dt.timedelta(hours=5), "1", {}), ("p2", D - dt.timedelta(hours=5), "0", {})
    )
    result = _join({"pid": ["p1", "p2"], "y": [2, 0], "t": [D, D]}, preds)
    assert _nonzero(result.counts) == {"received": 2, "invalid": 1, "joined": 1, "joined_rows": 1}
    assert (
        result.samples["invalid"][0]["reason"]
        == "the label '2' is not one of the binary model's classes ['0', '1']"
    )


def test_a_numeric_entity_is_stored_as_the_request_wrote_it():
    """Joined by value (123 for ``00123``), the stored entity_key is the request's ``00123``, the
    form that joins back to the customer's records, not the export's damaged 123."""
    preds = _predictions(("a", D - dt.timedelta(hours=5), "1", {"cust": "00123"}), entity_key="cust")
    result = _join({"cust": [123], "y": [1], "t": [D]}, preds, keys=BY_ENTITY)
    assert result.table.column("entity_key").to_pylist() == ["00123"]
