"""One frozen, typed schema per model version; every later read coerced to it (issue 8).

The given cases of the issue, each with its right value, and more inputs of each kind.
"""

from __future__ import annotations

import decimal
import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_ops.core.data import DataError, FeatureSet, content_sha256, normalise, read_frame
from mlops_ops.core.drift import build_reference_profile, detect_drift
from mlops_ops.core.schema import (
    Schema,
    SchemaError,
    canonical_label,
    coerce_column,
    infer_schema,
)
from mlops_ops.core.scoring import assemble_predictions
from mlops_ops.core.training import prepare_features, train_model
from mlops_ops.core.validation import run_checks, schema_checks

LOGREG = "sklearn.linear_model.LogisticRegression"

# -- canonical labels ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        101,
        101.0,
        "101",
        np.int8(101),
        np.uint64(101),
        np.float32(101.0),
        decimal.Decimal("101.00"),
        np.int64(101),
    ],
)
def test_one_label_per_category_whatever_its_dtype(value):
    assert canonical_label(value) == "101"


def test_labels_of_other_values():
    assert canonical_label(1.5) == "1.5"
    assert canonical_label(np.float32(0.1)) == canonical_label(0.1) == "0.1"
    assert canonical_label(True) == "1"
    assert canonical_label(False) == "0"
    assert canonical_label("00101") == "00101"  # text is kept exactly
    assert canonical_label(2**63) == str(2**63)
    for missing in (None, np.nan, pd.NA, pd.NaT):
        assert canonical_label(missing) is None


@pytest.mark.parametrize(
    "series",
    [
        pd.Series([101, 102, None, 104], dtype="Int64"),
        pd.Series([101, 102, None, 104], dtype="UInt8"),
        pd.Series([101, 102, None, 104], dtype="Int16"),
        pd.Series([101.0, 102.0, np.nan, 104.0]),
        pd.Series(["101", "102", None, "104"], dtype="string"),
        pd.Series(["101", "102", None, "104"], dtype=object),
        pd.Series([101, 102, None, 104], dtype="category"),
        pd.Series([101.0, 102.0, None, 104.0], dtype="category"),
    ],
    ids=["Int64", "UInt8", "Int16", "float64", "string", "object", "category-int", "category-float"],
)
def test_categorical_coercion_gives_the_same_labels_for_every_dtype(series):
    out = coerce_column(series, "categorical", column="store")
    assert out.iloc[[0, 1, 3]].tolist() == ["101", "102", "104"]
    assert pd.isna(out.iloc[2])


# -- booleans ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "series",
    [
        pd.Series([True, False, None, True], dtype="boolean"),
        pd.Series([True, False, None, True], dtype=object),
        pd.Series([1, 0, None, 1], dtype="Int8"),
        pd.Series([1.0, 0.0, np.nan, 1.0]),
        pd.Series(["True", "false", "", "TRUE"]),
        pd.Series(["yes", "no", None, "Y"]),
        pd.Series(["1", "0", None, "t"]),
    ],
    ids=["boolean", "object", "Int8", "float", "True/false", "yes/no", "1/0/t"],
)
def test_boolean_spellings(series):
    out = coerce_column(series, "boolean", column="flag")
    assert out.iloc[[0, 1, 3]].tolist() == [1.0, 0.0, 1.0]
    assert np.isnan(out.iloc[2])


@pytest.mark.parametrize("bad", ["maybe", 2, "2"])
def test_a_value_that_is_not_a_boolean_names_column_value_and_type(bad):
    with pytest.raises(SchemaError) as err:
        coerce_column(pd.Series([True, bad, False], dtype=object), "boolean", column="flag", where="day.csv")
    message = str(err.value)
    assert message.startswith("day.csv: column 'flag' should be boolean")
    assert repr(str(bad)) in message


def test_numeric_coercion_accepts_numbers_flags_and_numeric_text():
    out = coerce_column(pd.Series([1, True, "2.5", "", None, "false"], dtype=object), "numeric", column="x")
    assert out.iloc[[0, 1, 2, 5]].tolist() == [1.0, 1.0, 2.5, 0.0]
    assert out.iloc[[3, 4]].isna().all()
    with pytest.raises(
        SchemaError, match=r"column 'x' should be numeric but holds text in 2 row\(s\), e\.g\. \['seventy'\]"
    ):
        coerce_column(pd.Series(["1", "seventy", "seventy"]), "numeric", column="x")
    with pytest.raises(SchemaError, match=r"\['12,50'\]; a decimal comma: set source\.csv\.decimal"):
        coerce_column(pd.Series(["12,50", "7"]), "numeric", column="x")
    with pytest.raises(SchemaError, match="infinite"):
        coerce_column(pd.Series([1.0, np.inf]), "numeric", column="x")


def test_integer_coercion_refuses_fractions_and_inexact_integers():
    assert coerce_column(pd.Series([1, None, 3], dtype="Int32"), "integer", column="n").iloc[2] == 3.0
    with pytest.raises(SchemaError, match="should be integer"):
        coerce_column(pd.Series([1.0, 2.5]), "integer", column="n")
    with pytest.raises(SchemaError, match="declare the column as id"):
        coerce_column(pd.Series([2**60, 1], dtype="int64"), "integer", column="n")


def test_datetime_coercion_gives_days_and_names_bad_text():
    out = coerce_column(pd.Series(["1970-01-02", None, "1970-01-01T12:00:00"]), "datetime", column="t")
    assert out.iloc[0] == 1.0
    assert np.isnan(out.iloc[1])
    assert out.iloc[2] == 0.5
    with pytest.raises(SchemaError, match="column 't' should be datetime"):
        coerce_column(pd.Series(["2026-01-01", "next tuesday"]), "datetime", column="t")


# -- inference and persistence -------------------------------------------------------------------


def _mixed(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return normalise(
        pd.DataFrame(
            {
                "amount": rng.normal(50, 10, n),
                "store": rng.choice([101, 102, 103, 104], n),
                "plan": rng.choice(["a", "b"], n),
                "signup": pd.Series(pd.date_range("2026-01-01", periods=n, freq="D")),
                "signup_text": pd.date_range("2026-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
                "big_id": np.arange(n, dtype="uint64") + np.uint64(2**63),
                "y": rng.integers(0, 2, n),
            }
        )
    )


def test_inferred_schema_keeps_datetimes_and_big_integers_out_of_the_features():
    schema = infer_schema(_mixed(), "y")
    types = {c.name: c.type for c in schema.columns}
    assert types == {
        "amount": "numeric",
        "store": "numeric",
        "plan": "categorical",
        "signup": "datetime",
        "signup_text": "datetime",
        "big_id": "id",
    }
    assert schema.features == ["amount", "store", "plan"]
    assert set(schema.excluded) == {"signup", "signup_text", "big_id"}
    assert Schema.from_dict(schema.to_dict()) == schema


def test_declared_types_win_and_are_validated():
    frame = _mixed()
    schema = infer_schema(
        frame, "y", numeric=["amount"], categorical=["store"], types={"signup": "datetime", "big_id": "id"}
    )
    assert schema.feature_set == FeatureSet(("amount", "signup"), ("store",))
    assert schema.ids == ["big_id"]
    assert schema.type_of("plan") == "ignored"
    with pytest.raises(SchemaError, match="unknown logical type"):
        infer_schema(frame, "y", types={"amount": "money"})
    with pytest.raises(SchemaError, match=r"column\(s\) \['nope'\] named in the spec's features are missing"):
        infer_schema(frame, "y", types={"nope": "numeric"})


def test_a_missing_feature_is_named_on_coercion():
    schema = infer_schema(_mixed(), "y")
    with pytest.raises(SchemaError, match=r"day\.parquet: feature column\(s\) \['plan'\]"):
        schema.coerce(_mixed().drop(columns="plan"), where="day.parquet")


# -- given case: an integer category with one gap is not "unseen" ----------------------------------


def _stores(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"store": rng.choice([101, 102, 103, 104], n), "x": rng.normal(size=n)})


@pytest.mark.parametrize("dtype", ["float64", "Int64", "Int8", "UInt16", "string", "category", "object"])
@pytest.mark.parametrize("via", ["frame", "parquet"])
def test_an_integer_category_with_one_gap_does_not_drift(dtype, via):
    reference = _stores(5000, seed=1)
    profile = build_reference_profile(reference, numeric=["x"], categorical=["store"])
    assert set(profile.categorical["store"].counts) == {"101", "102", "103", "104"}
    batch = _stores(1000, seed=2)
    store = batch["store"].astype(object)
    store.iloc[17] = None
    if dtype == "string":
        store = store.map(lambda v: None if v is None else str(v))
    batch["store"] = store.astype(dtype) if dtype != "category" else store.astype("category")
    data = batch
    if via == "parquet":
        buf = io.BytesIO()
        batch.to_parquet(buf, index=False)
        buf.seek(0)
        data = pq.ParquetFile(buf)
    report = detect_drift(profile, data)
    col = report.column("store")
    assert col.unseen_share == 0.0, dtype
    assert report.status == "no_drift", report.reasons


def test_an_integer_category_with_a_gap_in_an_arrow_table_does_not_drift():
    profile = build_reference_profile(_stores(5000, 1), numeric=["x"], categorical=["store"])
    batch = _stores(1000, 2)
    values = [None if i == 3 else int(v) for i, v in enumerate(batch["store"])]
    table = pa.table({"store": pa.array(values, type=pa.int64()), "x": batch["x"]})
    assert detect_drift(profile, table).column("store").unseen_share == 0.0


# -- given case: datetimes are never categories -------------------------------------------------------


def test_inferred_profile_leaves_datetimes_out_and_says_why():
    frame = _mixed(51)
    profile = build_reference_profile(frame.drop(columns="y"))
    assert "signup" not in profile.columns
    assert "signup_text" not in profile.columns
    assert "big_id" not in profile.columns
    assert "not a feature unless declared" in profile.excluded["signup"]
    assert set(profile.excluded) == {"signup", "signup_text", "big_id"}
    again = type(profile).from_dict(profile.to_dict())
    assert again.excluded == profile.excluded
    # tomorrow's dates are not "100% unseen": they are not tested at all
    tomorrow = _mixed(51, seed=3).drop(columns="y")
    tomorrow["signup"] = tomorrow["signup"] + pd.Timedelta(days=51)
    report = detect_drift(profile, tomorrow)
    assert {c.name for c in report.columns} == {"amount", "store", "plan"}


# -- given case: a listed feature empty in every row ---------------------------------------------


@pytest.mark.parametrize(
    "empty",
    [
        pd.Series([np.nan] * 200),
        pd.Series([None] * 200, dtype=object),
        pd.Series([None] * 200, dtype="Int64"),
        pd.Series([None] * 200, dtype="string"),
    ],
    ids=["float", "object", "Int64", "string"],
)
def test_a_feature_empty_in_every_row_fails_validation_and_training(empty):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=200), "blank": empty, "y": rng.integers(0, 2, 200)})
    report = run_checks(frame, schema_checks("y", ["x", "blank"], [], 1))
    assert {r.column for r in report.errors} == {"blank"}
    assert any("'blank' is a listed feature but is empty in every row" in r.message for r in report.errors)
    with pytest.raises(DataError, match=r"\['blank'\] are empty in every row"):
        train_model(frame, target="y", features=FeatureSet(("x", "blank"), ()), estimator=LOGREG, params={})
    as_category = run_checks(frame, schema_checks("y", ["x"], ["blank"], 1))
    assert [r.column for r in as_category.errors] == ["blank"]
    assert "empty in every row" in as_category.errors[0].message


def test_a_feature_with_one_value_passes_the_emptiness_check():
    frame = pd.DataFrame({"x": [np.nan] * 99 + [1.0], "y": [0, 1] * 50})
    assert run_checks(frame, schema_checks("y", ["x"], [], 1)).errors == []


# -- given case: a True/False flag with one empty cell in a CSV batch --------------------------------


def _flags(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    flag = rng.integers(0, 2, n).astype(bool)
    x = rng.normal(size=n)
    y = (x + 1.5 * flag + rng.normal(size=n) > 0.7).astype(int)
    return pd.DataFrame({"flag": flag, "x": x, "y": y})


@pytest.fixture(scope="module")
def flag_model():
    frame = normalise(_flags(600, seed=0))
    schema = infer_schema(frame, "y", numeric=["flag", "x"])
    return train_model(
        frame, target="y", features=schema.feature_set, estimator=LOGREG, params={}, schema=schema
    ), schema


@pytest.mark.parametrize("spelling", [("True", "False"), ("true", "false"), ("TRUE", "FALSE"), ("1", "0")])
def test_a_flag_with_one_empty_cell_in_a_csv_is_scored(flag_model, spelling):
    result, schema = flag_model
    batch = _flags(50, seed=1)
    text = batch.assign(flag=batch["flag"].map({True: spelling[0], False: spelling[1]}))
    text.loc[7, "flag"] = ""
    raw = text.to_csv(index=False).encode()
    frame = normalise(read_frame("2026-03-01.csv", io.BytesIO(raw), "csv"))
    x = prepare_features(frame, result.features, schema, where="2026-03-01.csv")
    assert x["flag"].isna().sum() == 1
    expected = result.model.predict_proba(prepare_features(normalise(batch), result.features, schema))[:, 1]
    got = result.model.predict_proba(x)[:, 1]
    keep = np.arange(50) != 7
    np.testing.assert_allclose(got[keep], expected[keep])
    # the model's own first step coerces raw rows too
    np.testing.assert_allclose(result.model.predict_proba(frame)[:, 1], got)


# -- given case: uint64 ids at or above 2**63 are copied exactly ----------------------------------


@pytest.mark.parametrize("ids", [[2**63, 2**63 + 1, 2**64 - 1], [0, 2**63 + 5, 7]])
def test_uint64_ids_come_back_exactly_in_the_predictions(ids):
    raw = pd.DataFrame({"customer_id": np.array(ids, dtype="uint64"), "x": [0.1, 0.2, 0.3]})
    buf = io.BytesIO()
    raw.to_parquet(buf, index=False)
    frame = normalise(read_frame("p.parquet", io.BytesIO(buf.getvalue()), "parquet"))
    out = assemble_predictions(
        frame,
        {"pred": np.array([0, 1, 0]), "proba": np.array([0.1, 0.9, 0.2])},
        task="classification",
        id_columns=["customer_id"],
        model_version="1",
        input_sha256=content_sha256(frame),
        interval_start=None,
        interval_end=None,
    )
    assert [int(v) for v in out["customer_id"]] == ids
    round_trip = pd.read_parquet(io.BytesIO(_to_parquet(out)))
    assert [int(v) for v in round_trip["customer_id"]] == ids


def _to_parquet(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


# -- property: gaps and dtype widenings change nothing else -----------------------------------------


def _widen(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The same values in another dtype each column might arrive in."""
    out = frame.copy()
    out["tenure"] = frame["tenure"].astype(
        rng.choice(["int64", "Int64", "Int32", "float64", "UInt16", "int32"])
    )
    out["store"] = frame["store"].astype(rng.choice(["int64", "Int16", "float64", "category", "UInt64"]))
    out["flag"] = frame["flag"].astype(rng.choice(["bool", "boolean", "object"]))
    out["amount"] = frame["amount"].astype(rng.choice(["float64", "Float64"]))
    out["plan"] = frame["plan"].astype(rng.choice(["object", "string", "category"]))
    return out


def _base(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 60, n)
    store = rng.choice([101, 102, 104, 107], n)
    flag = rng.integers(0, 2, n).astype(bool)
    amount = np.round(rng.normal(50, 10, n), 2)
    plan = rng.choice(["basic", "plus", "pro"], n)
    y = ((amount - 50) / 10 + flag + (store == 104) + rng.normal(size=n) > 0.8).astype(int)
    return pd.DataFrame(
        {"tenure": tenure, "store": store, "flag": flag, "amount": amount, "plan": plan, "y": y}
    )


def test_property_gaps_and_widenings_leave_labels_hash_and_predictions_of_other_rows_unchanged():
    train = normalise(_base(800, seed=0))
    schema = infer_schema(train, "y", numeric=["tenure", "amount", "flag"], categorical=["store", "plan"])
    result = train_model(
        train, target="y", features=schema.feature_set, estimator=LOGREG, params={}, schema=schema
    )
    base = _base(120, seed=1)
    base_norm = normalise(base)
    x_base = schema.coerce(base_norm)
    p_base = result.model.predict_proba(x_base)[:, 1]
    rng = np.random.default_rng(2026)
    for _ in range(60):
        widened = _widen(base, rng)
        # dtype widenings alone: the same snapshot
        assert content_sha256(normalise(widened)) == content_sha256(base_norm)
        gapped = widened.astype({c: "object" for c in ("tenure", "store", "flag", "amount")}).copy()
        holes = rng.random(gapped.shape[0]) < 0.1
        column = rng.choice(["tenure", "store", "flag", "amount", "plan"])
        gapped.loc[holes, column] = None
        gapped = gapped.astype({c: widened[c].dtype for c in widened.columns if c != column})
        if column in ("tenure", "store", "amount"):
            gapped[column] = pd.to_numeric(gapped[column])  # a reader gives float64 with NaN
        x = schema.coerce(normalise(gapped))
        same = ~holes
        for name in schema.feature_set.categorical:
            assert x.loc[same, name].tolist() == x_base.loc[same, name].tolist(), (name, column)
        p = result.model.predict_proba(x)[:, 1]
        np.testing.assert_array_equal(p[same], p_base[same])
        np.testing.assert_array_equal(result.model.predict_proba(normalise(gapped))[:, 1][same], p_base[same])
