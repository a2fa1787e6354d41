"""More inputs of the kinds issue 8 lists, each tried as ordinary messy data would bring it.

Each test is over a kind (several inputs): exact integers held as objects (Python ints, SQL
``NUMERIC`` Decimals), empty CSV cells in columns pandas falls back to text for, durations,
flags spelled differently per file, and features that hold no usable value.
"""

from __future__ import annotations

import decimal
import io

import numpy as np
import pandas as pd
import pytest

from mlops_ops.core.data import DataError, FeatureSet, content_sha256, normalise, read_frame
from mlops_ops.core.schema import coerce_column, infer_schema
from mlops_ops.core.training import train_model

LOGREG = "sklearn.linear_model.LogisticRegression"


def _csv(text: str, name: str = "part.csv", **csv) -> pd.DataFrame:
    return normalise(read_frame(name, io.BytesIO(text.encode()), "csv", csv or None))


def _nullable(values: list, dtype: str) -> pd.DataFrame:
    return normalise(pd.DataFrame({"n": pd.array(values, dtype=dtype)}))


# -- integers held as objects: exact, never rounded through float64 ----------------------------------


@pytest.mark.parametrize("value", [2**53 + 1, 2**60 + 1, 2**63 - 1, -(2**63), 2**63, 2**64 - 1])
@pytest.mark.parametrize("wrap", [int, decimal.Decimal], ids=["int", "Decimal"])
def test_object_integers_beyond_2_53_are_kept_exactly(value, wrap):
    frame = normalise(pd.DataFrame({"n": pd.Series([wrap(value), None], dtype=object)}))
    assert int(frame["n"].iloc[0]) == value
    assert frame["n"].isna().tolist() == [False, True]
    dtype = "UInt64" if value > 2**63 - 1 else "Int64"
    assert content_sha256(frame) == content_sha256(_nullable([value, None], dtype))


@pytest.mark.parametrize("wrap", [int, decimal.Decimal], ids=["int", "Decimal"])
def test_small_object_integers_are_the_numbers_a_csv_gives(wrap):
    n = pd.Series([wrap(5), None, wrap(-2)], dtype=object)
    frame = normalise(pd.DataFrame({"n": n, "k": list("abc")}))
    assert content_sha256(frame) == content_sha256(_csv("n,k\n5,a\n,b\n-2,c\n"))


def test_decimal_fractions_and_decimal_nan_stay_numbers():
    frame = normalise(
        pd.DataFrame({"n": pd.Series([decimal.Decimal("1.50"), decimal.Decimal("NaN"), 2], dtype=object)})
    )
    assert str(frame["n"].dtype) == "float64"
    assert frame["n"].isna().tolist() == [False, True, False]


# -- an empty CSV cell is missing in every column, text fall-backs included ---------------------------


@pytest.mark.parametrize(
    "big", ["9223372036854775808", "18446744073709551615", "18446744073709551616", "-9223372036854775809"]
)
def test_an_empty_cell_next_to_an_integer_beyond_int64_is_missing_not_empty_text(big):
    frame = _csv(f"id,x\n{big},1\n,2\n")
    assert frame["id"].isna().tolist() == [False, True]
    assert str(frame["id"].iloc[0]) == big


def test_empty_text_stays_text_when_the_spec_says_empty_is_not_missing():
    frame = _csv("k,x\n,1\nb,2\n", keep_default_na=False)
    assert frame["k"].tolist() == ["", "b"]


# -- durations are quantities: numeric (seconds), never a category of their text -----------------


@pytest.mark.parametrize(
    "durations",
    [
        pd.Series(pd.to_timedelta([3600, None, 90], unit="s")),
        pd.Series(pd.to_timedelta([3600, None, 90], unit="s")).astype("timedelta64[ms]"),
        pd.Series([pd.Timedelta(hours=1), None, pd.Timedelta(seconds=90)], dtype=object),
    ],
    ids=["timedelta64[ns]", "timedelta64[ms]", "object"],
)
def test_a_duration_is_a_numeric_feature_in_seconds(durations):
    from mlops_ops.core.data import from_parquet_bytes, to_parquet_bytes

    frame = normalise(pd.DataFrame({"wait": durations, "y": [0, 1, 0]}))
    snapshot = normalise(from_parquet_bytes(to_parquet_bytes(frame)))
    schema = infer_schema(snapshot, "y")
    assert schema.type_of("wait") == "numeric"
    assert schema.coerce(snapshot)["wait"].tolist()[::2] == [3600.0, 90.0]
    assert np.isnan(schema.coerce(snapshot)["wait"].iloc[1])
    assert content_sha256(snapshot) == content_sha256(frame)


# -- a feature with no usable value in any row ---------------------------------------------------


@pytest.mark.parametrize("blank", [" ", "   ", "\t"])
def test_a_numeric_feature_of_blank_text_is_empty_for_training(blank):
    rng = np.random.default_rng(0)
    x = rng.normal(size=120)
    frame = pd.DataFrame({"x": x, "blank": [blank] * 120, "y": (x > 0).astype(int)})
    schema = infer_schema(frame, "y", numeric=["x", "blank"], categorical=[])
    with pytest.raises(DataError, match=r"\['blank'\] are empty in every row"):
        train_model(
            frame,
            target="y",
            features=FeatureSet(("x", "blank"), ()),
            estimator=LOGREG,
            params={},
            schema=schema,
        )


# -- a flag spelled differently per file ---------------------------------------------------------


_SPELLINGS = [("yes", "no"), ("Yes", "No"), ("Y", "N"), ("y", "n"), ("t", "f"), ("True", "False"), ("1", "0")]


def _flag_file(true: str, false: str) -> str:
    return "flag,x,y\n" + "".join(f"{(true, false)[i % 3 == 0]},{i},{i % 2}\n" for i in range(12))


@pytest.mark.parametrize("train", _SPELLINGS, ids=["/".join(s) for s in _SPELLINGS])
@pytest.mark.parametrize(
    "later", [("yes", "no"), ("TRUE", "FALSE"), ("1", "0"), ("Y", "N")], ids=lambda s: "/".join(s)
)
def test_a_flag_spelled_differently_in_a_later_file_gives_the_same_input(train, later):
    first = _csv(_flag_file(*train))
    schema = infer_schema(first, "y")
    assert "flag" in schema.features
    expected = schema.coerce(first)["flag"].tolist()
    assert set(expected) == {0.0, 1.0}
    if schema.type_of("flag") == "numeric" and later[0].lower() in ("yes", "y"):
        # True/False and 1/0 are read as numbers 1/0 (a numeric feature): a number column refuses
        # words, loudly, naming the column and the value (a "no" could be a missing-value marker)
        with pytest.raises(
            DataError, match=r"later.csv: column 'flag' should be numeric but holds text.*'(yes|Y)'"
        ):
            schema.coerce(_csv(_flag_file(*later), name="later.csv"), where="later.csv")
        return
    assert schema.coerce(_csv(_flag_file(*later)))["flag"].tolist() == expected


@pytest.mark.parametrize("values", [["yes", "yes"], ["N", "N"], ["yes", "no", "maybe"], ["F", "M"]])
def test_text_that_is_not_a_two_valued_flag_stays_categorical(values):
    frame = pd.DataFrame({"k": values, "y": [0, 1] * (len(values) // 2) + [0] * (len(values) % 2)})
    assert infer_schema(frame, "y").type_of("k") == "categorical"


# -- numbers written with a comma: never a category, never a guessed decimal mark ----------------


@pytest.mark.parametrize(
    ("text", "sep"),
    [
        ('amount,y\n"1,234",0\n"5,678",1\n"12,000",0\n', ","),
        ('amount,y\n"1,234.50",0\n"15,678.25",1\n', ","),
        ("amount;y\n1,5;0\n2,25;1\n", ";"),
        ("amount\ty\n1,5\t0\n-3,75\t1\n", "\t"),
    ],
    ids=["thousands", "thousands-and-point", "decimal-comma-semicolon", "decimal-comma-tab"],
)
def test_numbers_written_with_a_comma_are_refused_at_inference_with_the_csv_options(text, sep):
    frame = _csv(text, sep=sep)
    with pytest.raises(DataError, match=r"column 'amount' holds numbers written with a comma.*source\.csv"):
        infer_schema(frame, "y")
    # declared, the user decides: the options read them as numbers
    assert infer_schema(frame, "y", types={"amount": "categorical"}).type_of("amount") == "categorical"


@pytest.mark.parametrize("value", ["1,234", "12,345,678", "1,234.5"])
def test_a_thousands_separator_is_not_called_a_decimal_comma(value):
    with pytest.raises(DataError, match=r"source\.csv\.thousands to ','") as err:
        coerce_column(pd.Series([value, "7"]), "numeric", column="amount", where="part.csv")
    assert "part.csv: column 'amount' should be numeric" in str(err.value)


def test_a_decimal_comma_names_the_decimal_option():
    with pytest.raises(DataError, match=r"source\.csv\.decimal to ','"):
        coerce_column(pd.Series(["1,5", "7"]), "numeric", column="amount", where="part.csv")


# -- integers at the edge of exactness -------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        pd.Series(["9007199254740993", "1"]),
        pd.Series([2**53 + 1, 1], dtype="int64"),
        pd.Series([-(2**53) - 1, 1], dtype="Int64"),
        pd.Series([2**53 + 1, None], dtype=object),
        pd.Series([decimal.Decimal(2**53 + 1), None], dtype=object),
    ],
    ids=["text", "int64", "Int64-negative", "object-int", "Decimal"],
)
def test_an_integer_column_refuses_a_value_float64_would_round(values):
    with pytest.raises(DataError, match=r"part.csv: column 'n' should be integer.*beyond 2\*\*53"):
        coerce_column(values, "integer", column="n", where="part.csv")


@pytest.mark.parametrize("big", [2**63, 2**63 + 7, 2**64 - 1])
def test_big_ids_with_an_empty_cell_are_the_same_snapshot_from_csv_and_parquet(big):
    csv = _csv(f"id,x\n{big},1\n,2\n5,3\n")
    parquet = normalise(pd.DataFrame({"id": pd.array([big, None, 5], dtype="UInt64"), "x": [1, 2, 3]}))
    assert content_sha256(csv) == content_sha256(parquet)
    assert int(csv["id"].iloc[0]) == big
    assert infer_schema(csv.assign(y=[0, 1, 0]), "y").type_of("id") == "id"


def test_integer_text_with_leading_zeros_stays_text():
    frame = _csv("id,x\n09223372036854775808,1\n,2\n")
    assert frame["id"].iloc[0] == "09223372036854775808"
