"""Faithful readers: nullable dtypes, flags with gaps, far timestamps, big integers, CSV options.

Each fault of issue 8 is tested over its kind (several dtypes or spellings), not one input.
"""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pandas as pd
import pytest

from mlops_ops.config import CsvSpec, SourceSpec
from mlops_ops.core.data import (
    DataError,
    content_sha256,
    from_parquet_bytes,
    normalise,
    read_frame,
    to_parquet_bytes,
)


def _parquet(frame: pd.DataFrame) -> pd.DataFrame:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return normalise(read_frame("part.parquet", io.BytesIO(buf.getvalue()), "parquet"))


def _csv(text: str, name: str = "part.csv", **csv) -> pd.DataFrame:
    raw = text.encode(csv.get("encoding", "utf-8"))
    return normalise(read_frame(name, io.BytesIO(raw), "csv", csv or None))


# -- Parquet written by pandas with nullable dtypes holding <NA> -----------------------------------


@pytest.mark.parametrize("dtype", ["Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64"])
def test_nullable_integers_with_missing_values_are_read_as_missing(dtype):
    frame = pd.DataFrame({"n": pd.array([1, None, 3, 4], dtype=dtype), "k": list("abcd")})
    out = _parquet(frame)
    assert out["n"].isna().tolist() == [False, True, False, False]
    assert out["n"].dropna().tolist() == [1, 3, 4]
    # the same content read from a CSV (float64 with NaN) is the same snapshot
    assert content_sha256(out) == content_sha256(_csv("n,k\n1,a\n,b\n3,c\n4,d\n"))


@pytest.mark.parametrize("dtype", ["Int8", "Int64", "UInt8", "UInt64", "int8", "int32", "uint16", "uint64"])
def test_integers_without_gaps_are_int64_whatever_their_width(dtype):
    out = _parquet(pd.DataFrame({"n": pd.array([1, 2, 3], dtype=dtype)}))
    assert str(out["n"].dtype) == "int64"
    assert content_sha256(out) == content_sha256(_csv("n\n1\n2\n3\n"))


@pytest.mark.parametrize("dtype", ["boolean", "object"])
def test_flags_with_missing_values_are_read_as_missing(dtype):
    frame = pd.DataFrame({"flag": pd.Series([True, None, False, True], dtype=dtype)})
    out = _parquet(frame)
    assert out["flag"].dtype == "float64"
    assert out["flag"].tolist()[0] == 1.0
    assert np.isnan(out["flag"].tolist()[1])
    assert out["flag"].tolist()[2:] == [0.0, 1.0]


@pytest.mark.parametrize("dtype", ["Float32", "Float64", "float32"])
def test_nullable_floats_are_float64_with_nan(dtype):
    out = _parquet(pd.DataFrame({"x": pd.array([0.5, None, 2.0], dtype=dtype)}))
    assert out["x"].dtype == "float64"
    assert out["x"].isna().tolist() == [False, True, False]


def test_a_flag_with_an_empty_cell_in_a_csv_is_a_flag_with_one_missing_value():
    for text in ("flag,k\nTrue,a\n,b\nFalse,c\nTrue,d\n", "flag,k\ntrue,a\n,b\nfalse,c\ntrue,d\n"):
        out = _csv(text)
        assert out["flag"].dtype == "float64", text
        assert out["flag"].isna().sum() == 1
        assert out["flag"].dropna().tolist() == [1.0, 0.0, 1.0]


# -- timestamps ----------------------------------------------------------------------------------


@pytest.mark.parametrize("unit", ["s", "ms", "us"])
def test_far_future_timestamps_are_ingested(unit):
    valid_to = pd.Series(pd.to_datetime(["2026-01-01", "9999-12-31"]).as_unit(unit))
    frame = pd.DataFrame({"customer": [1, 2], "valid_to": valid_to})
    out = _parquet(frame)
    assert out["valid_to"].iloc[1] == pd.Timestamp("9999-12-31")
    assert len(content_sha256(out)) == 64
    again = from_parquet_bytes(to_parquet_bytes(out))
    assert again["valid_to"].iloc[1] == pd.Timestamp("9999-12-31")


def test_far_future_timestamps_with_a_time_zone_are_ingested():
    stamps = pd.Series([dt.datetime(9999, 12, 31, tzinfo=dt.UTC), dt.datetime(2026, 1, 1, tzinfo=dt.UTC)])
    out = normalise(pd.DataFrame({"valid_to": stamps}))
    assert out["valid_to"].iloc[0].year == 9999
    assert str(out["valid_to"].dt.tz) == "UTC"


def test_nanosecond_timestamps_keep_their_nanoseconds():
    stamps = pd.Series(pd.to_datetime(["2026-01-01 00:00:00.000000001"]))
    out = normalise(pd.DataFrame({"t": stamps}))
    assert out["t"].iloc[0].nanosecond == 1


# -- integers beyond int64 -----------------------------------------------------------------------

BIG = 2**63  # 9223372036854775808


@pytest.mark.parametrize("values", [[BIG, 1], [2**64 - 1, 0, BIG + 12345]])
def test_uint64_beyond_int64_is_kept_exactly(values):
    frame = pd.DataFrame({"id": np.array(values, dtype="uint64")})
    out = _parquet(frame)
    assert out["id"].dtype == "uint64"
    assert [int(v) for v in out["id"]] == values
    csv = _csv("id\n" + "\n".join(str(v) for v in values) + "\n")
    assert [int(v) for v in csv["id"]] == values


def test_integers_beyond_any_machine_integer_in_a_csv_are_kept_as_exact_text():
    out = _csv(f"id,x\n{BIG},1\n-5,2\n{2**64 + 7},3\n")
    assert out["id"].tolist() == [str(BIG), "-5", str(2**64 + 7)]


def test_uint64_with_a_gap_beyond_int64_stays_exact():
    out = _parquet(pd.DataFrame({"id": pd.array([BIG, None, 3], dtype="UInt64")}))
    assert int(out["id"].iloc[0]) == BIG
    assert out["id"].isna().iloc[1]


# -- CSV options ---------------------------------------------------------------------------------

EUROPEAN = "kunde;umsatz;region\n1;12,50;nord\n2;7,25;süd\n3;;ost\n"


def test_semicolon_file_with_decimal_commas_is_read_with_the_spec_options():
    out = _csv(EUROPEAN, sep=";", decimal=",")
    assert list(out.columns) == ["kunde", "umsatz", "region"]
    assert out["umsatz"].tolist()[:2] == [12.5, 7.25]
    assert np.isnan(out["umsatz"].iloc[2])
    latin = _csv(EUROPEAN, sep=";", decimal=",", encoding="latin-1")
    assert latin["region"].tolist() == ["nord", "süd", "ost"]


@pytest.mark.parametrize(
    ("text", "found"), [(EUROPEAN, ";"), ("a|b|c\n1|2|3\n", "|"), ("a\tb\n1\t2\n", "\\t")]
)
def test_a_file_read_into_one_column_names_the_separator(text, found):
    with pytest.raises(DataError) as err:
        read_frame("exports/day.csv", io.BytesIO(text.encode()), "csv")
    message = str(err.value)
    assert "exports/day.csv" in message
    assert "single column" in message
    assert f"source.csv.sep to {found!r}" in message


def test_a_wrong_encoding_names_the_option():
    raw = EUROPEAN.encode("latin-1")
    with pytest.raises(DataError, match=r"day\.csv is not valid 'utf-8' text.*source\.csv\.encoding"):
        read_frame("day.csv", io.BytesIO(raw), "csv", {"sep": ";"})


def test_a_one_column_file_is_fine():
    assert list(_csv("amount\n1\n2\n").columns) == ["amount"]


@pytest.mark.parametrize("text", ["id,churned,churned\n1,0,1\n", "a,b,a,c\n1,2,3,4\n", "x;x\n1;2\n"])
def test_a_duplicated_header_name_is_refused(text):
    sep = ";" if ";" in text else ","
    with pytest.raises(DataError, match=r"header names column\(s\) .* more than once"):
        read_frame("day.csv", io.BytesIO(text.encode()), "csv", {"sep": sep})


def test_na_values_mean_missing():
    out = _csv("x,y\n1,a\n-,b\nn/a,c\n", na_values=["-", "n/a"])
    assert out["x"].isna().tolist() == [False, True, True]


def test_csv_spec_validates_its_options():
    assert CsvSpec(sep=";", decimal=",").reader_options()["decimal"] == ","
    with pytest.raises(ValueError, match="unknown text encoding"):
        CsvSpec(encoding="klingon")
    with pytest.raises(ValueError, match="sep and decimal are both"):
        CsvSpec(sep=",", decimal=",")
    with pytest.raises(ValueError, match="'csv' only applies to a file source"):
        SourceSpec(sql="select 1", conn_id="db", csv=CsvSpec())
    assert SourceSpec(uri="/data/*.csv", csv={"sep": ";"}).csv.sep == ";"


# -- the spec's typed declarations ---------------------------------------------------------------


def _spec(**features):
    from mlops_ops.config import parse_pipeline_spec

    return parse_pipeline_spec(
        {
            "name": "p",
            "source": {"uri": "/d/*.csv", "csv": {"sep": ";", "decimal": ","}},
            "target": "y",
            "features": features,
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        }
    )


def test_features_types_and_id_columns_are_validated():
    from mlops_ops.config import SpecError

    spec = _spec(
        numeric=["x"], categorical=["store"], types={"x": "integer", "flag": "boolean"}, id_columns=["cid"]
    )
    assert spec.training_types() == {"cid": "id", "x": "integer", "flag": "boolean"}
    assert spec.source.csv.reader_options()["sep"] == ";"
    with pytest.raises(SpecError, match="features.types.x"):
        _spec(types={"x": "money"})
    with pytest.raises(SpecError, match="contradicts the list"):
        _spec(categorical=["store"], types={"store": "numeric"})
    with pytest.raises(SpecError, match="id columns are never features"):
        _spec(numeric=["cid"], id_columns=["cid"])
    with pytest.raises(SpecError, match="target column 'y' cannot have a feature type"):
        _spec(types={"y": "boolean"})


def test_the_training_fingerprint_changes_with_types_only_when_they_are_given():
    plain = _spec(numeric=["x"]).training_config_sha256()
    assert _spec(numeric=["x"], types={}).training_config_sha256() == plain
    assert _spec(numeric=["x"], types={"x": "integer"}).training_config_sha256() != plain
