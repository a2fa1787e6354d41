"""Tabular data: reading, normalising, content hashing, feature resolution and the holdout split."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pandas as pd
import pytest

from mlops_ops.core.data import (
    DataError,
    check_numeric,
    combine,
    content_sha256,
    detect_format,
    holdout_mask,
    normalise,
    read_frame,
    resolve_features,
)
from mlops_ops.example.churn import CATEGORICAL, NUMERIC, TARGET, generate


@pytest.fixture(scope="module")
def churn() -> pd.DataFrame:
    return generate(400, seed=3)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def read_back(frame: pd.DataFrame, fmt: str) -> pd.DataFrame:
    raw = csv_bytes(frame) if fmt == "csv" else parquet_bytes(frame)
    return normalise(read_frame(f"part-0.{fmt}", io.BytesIO(raw), fmt))


# -- content hash --------------------------------------------------------------------------------


def test_same_rows_from_csv_and_parquet_hash_the_same(churn):
    from_csv, from_parquet = read_back(churn, "csv"), read_back(churn, "parquet")
    pd.testing.assert_frame_equal(from_csv, from_parquet)
    assert content_sha256(from_csv) == content_sha256(from_parquet)
    assert content_sha256(from_csv) == content_sha256(normalise(churn))


def test_missing_values_and_integer_valued_floats_hash_the_same_from_csv_and_parquet():
    frame = pd.DataFrame(
        {"x": [1.0, 2.0, None], "n": [1, 2, 3], "t": ["a", None, "c"], "b": [True, False, True]}
    )
    assert content_sha256(read_back(frame, "csv")) == content_sha256(read_back(frame, "parquet"))


def test_the_hash_is_a_sha256_hex_digest(churn):
    digest = content_sha256(normalise(churn))
    assert len(digest) == 64
    int(digest, 16)


def test_the_hash_changes_when_one_value_changes(churn):
    base = normalise(churn)
    changed = base.copy()
    changed.loc[17, "monthly_charges"] += 0.01
    assert content_sha256(changed) != content_sha256(base)
    text = base.copy()
    text.loc[3, "contract"] = "one_year" if text.loc[3, "contract"] != "one_year" else "two_year"
    assert content_sha256(text) != content_sha256(base)


def test_the_hash_changes_when_rows_are_reordered(churn):
    base = normalise(churn)
    swapped = normalise(base.iloc[[1, 0, *range(2, len(base))]])
    assert set(map(tuple, swapped.astype(str).to_numpy())) == set(map(tuple, base.astype(str).to_numpy()))
    assert content_sha256(swapped) != content_sha256(base)


def test_the_hash_changes_when_a_column_is_renamed(churn):
    base = normalise(churn)
    assert content_sha256(base.rename(columns={"region": "area"})) != content_sha256(base)


def test_the_hash_changes_when_a_row_is_dropped(churn):
    base = normalise(churn)
    assert content_sha256(normalise(base.iloc[:-1])) != content_sha256(base)


def test_normalise_rejects_duplicate_column_names():
    frame = pd.DataFrame([[1, 2, 3]], columns=["a", "b", "a"])
    with pytest.raises(DataError, match=r"duplicate column names \['a'\]"):
        normalise(frame)


def test_normalise_strips_column_names_so_they_collide():
    frame = pd.DataFrame([[1, 2]], columns=["a", " a "])
    with pytest.raises(DataError, match="duplicate column names"):
        normalise(frame)


def test_normalise_gives_canonical_dtypes():
    frame = pd.DataFrame(
        {"i": np.array([1, 2], dtype="int32"), "f": np.array([1, 2], dtype="float32"), "b": [True, False]},
        index=[10, 20],
    )
    frame["t"] = pd.Categorical(["x", "y"])
    out = normalise(frame)
    assert out.dtypes.astype(str).to_dict() == {"i": "int64", "f": "float64", "b": "int64", "t": "string"}
    assert list(out.index) == [0, 1]


# -- reading -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("empty.csv", b"", "empty.csv is empty"),
        ("blank.csv", b"  \n\n\t\n", "blank.csv is empty"),
        ("empty.parquet", b"", "empty.parquet is empty"),
        ("garbage.parquet", b"this is not parquet at all", "garbage.parquet is not a readable parquet file"),
    ],
    ids=["empty-csv", "whitespace-csv", "empty-parquet", "garbage-parquet"],
)
def test_unreadable_files_raise_a_data_error_naming_the_file(name, raw, message):
    with pytest.raises(DataError, match=message):
        read_frame(name, io.BytesIO(raw), detect_format(name))


def test_a_header_only_csv_is_a_frame_without_rows():
    frame = read_frame("header.csv", io.BytesIO(b"a,b,c\n"), "csv")
    assert list(frame.columns) == ["a", "b", "c"]
    assert len(frame) == 0


def test_a_csv_is_read_with_its_values(churn):
    frame = read_frame("x.csv", io.BytesIO(csv_bytes(churn.head(5))), "csv")
    assert list(frame.columns) == list(churn.columns)
    assert frame["tenure_months"].tolist() == churn["tenure_months"].head(5).tolist()


def test_a_tsv_is_split_on_tabs():
    frame = read_frame("x.tsv", io.BytesIO(b"a\tb\n1\t2\n"), "csv")
    assert list(frame.columns) == ["a", "b"]
    assert frame.iloc[0].tolist() == [1, 2]


def test_a_gzipped_csv_is_read(churn):
    raw = gzip.compress(csv_bytes(churn.head(5)))
    frame = read_frame("part-0.csv.gz", io.BytesIO(raw), detect_format("part-0.csv.gz"))
    assert list(frame.columns) == list(churn.columns)
    assert len(frame) == 5


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("data.csv", "csv"),
        ("DATA.CSV", "csv"),
        ("data.tsv", "csv"),
        ("data.parquet", "parquet"),
        ("data.pq", "parquet"),
        ("data.csv.gz", "csv"),
        ("data.csv.zip", "csv"),
        ("s3://bucket/2024-01-01/part-0.csv", "csv"),
    ],
)
def test_detect_format_from_the_extension(name, fmt):
    assert detect_format(name) == fmt


def test_a_declared_format_wins_over_the_extension():
    assert detect_format("export.json", "csv") == "csv"
    assert detect_format("data.csv", "parquet") == "parquet"


@pytest.mark.parametrize("name", ["data.json", "data", "data.gz"])
def test_an_unknown_extension_suggests_source_format(name):
    with pytest.raises(DataError, match="set source.format to 'csv' or 'parquet'") as err:
        detect_format(name)
    assert repr(name) in str(err.value)


def test_combine_concatenates_files_with_the_same_columns():
    a = pd.DataFrame({"x": [1, 2], "y": ["a", "b"]})
    b = pd.DataFrame({"x": [3], "y": ["c"]})
    out = combine([("a.csv", a), ("b.csv", b)])
    assert out["x"].tolist() == [1, 2, 3]
    assert list(out.index) == [0, 1, 2]


def test_combine_rejects_files_with_different_columns_naming_both():
    a = pd.DataFrame({"x": [1], "y": ["a"]})
    b = pd.DataFrame({"x": [2], "z": ["b"]})
    with pytest.raises(DataError) as err:
        combine([("2024-01-01.csv", a), ("2024-01-02.csv", b)])
    message = str(err.value)
    assert "2024-01-02.csv does not have the columns of 2024-01-01.csv" in message
    assert "missing ['y'], extra ['z']" in message


def test_combine_rejects_reordered_columns():
    a = pd.DataFrame({"x": [1], "y": ["a"]})
    with pytest.raises(DataError, match="b.csv does not have the columns of a.csv"):
        combine([("a.csv", a), ("b.csv", a[["y", "x"]])])


def test_combine_of_no_files_is_an_error():
    with pytest.raises(DataError, match="matched no files"):
        combine([])


# -- the holdout split ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big() -> pd.DataFrame:
    return normalise(generate(10_000, seed=0))


def test_holdout_is_deterministic_for_a_seed(big):
    np.testing.assert_array_equal(holdout_mask(big, 0.25, 42), holdout_mask(big, 0.25, 42))


def test_holdout_differs_across_seeds(big):
    a, b = holdout_mask(big, 0.25, 1), holdout_mask(big, 0.25, 2)
    assert (a != b).mean() > 0.2  # independent splits disagree on ~37.5% of the rows


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
def test_holdout_share_is_close_to_the_fraction(big, fraction):
    mask = holdout_mask(big, fraction, 7)
    assert mask.dtype == bool
    assert len(mask) == len(big)
    assert abs(mask.mean() - fraction) < 0.03


def test_a_row_stays_on_its_side_when_the_frame_grows(big):
    first, second = big.iloc[:4000], normalise(generate(3000, seed=99))
    grown = normalise(pd.concat([first, second], ignore_index=True))
    alone = holdout_mask(normalise(first), 0.25, 5)
    np.testing.assert_array_equal(holdout_mask(grown, 0.25, 5)[: len(first)], alone)
    # and when other rows come first
    grown_before = normalise(pd.concat([second, first], ignore_index=True))
    np.testing.assert_array_equal(holdout_mask(grown_before, 0.25, 5)[len(second) :], alone)


def test_a_row_stays_on_its_side_when_new_rows_make_an_integer_column_float(big):
    first = normalise(big.iloc[:4000])
    assert first["support_calls"].dtype == "int64"
    extra = normalise(generate(10, seed=5)).astype({"support_calls": "float64"})
    extra.loc[0, "support_calls"] = np.nan
    grown = normalise(pd.concat([first, extra], ignore_index=True))
    assert grown["support_calls"].dtype == "float64"
    np.testing.assert_array_equal(holdout_mask(grown, 0.25, 5)[: len(first)], holdout_mask(first, 0.25, 5))


def test_duplicated_rows_land_on_the_same_side(big):
    rows = big.iloc[:500]
    doubled = normalise(pd.concat([rows, big.iloc[500:1500], rows], ignore_index=True))
    mask = holdout_mask(doubled, 0.3, 11)
    np.testing.assert_array_equal(mask[:500], mask[-500:])
    assert 0 < mask[:500].sum() < 500


def test_holdout_of_an_empty_frame_is_empty(big):
    assert holdout_mask(big.iloc[:0], 0.25, 0).shape == (0,)


# -- features --------------------------------------------------------------------------------


def test_features_are_inferred_from_dtypes_when_the_spec_lists_none(churn):
    features = resolve_features(normalise(churn), TARGET, None, None)
    assert features.numeric == tuple(NUMERIC)
    assert features.categorical == tuple(CATEGORICAL)
    assert TARGET not in features.all


def test_listed_features_are_taken_as_given(churn):
    features = resolve_features(churn, TARGET, ["tenure_months"], ["region"])
    assert features.to_dict() == {"numeric": ["tenure_months"], "categorical": ["region"]}


def test_a_missing_target_is_named(churn):
    with pytest.raises(DataError, match="the target column 'churn' is missing; the data has") as err:
        resolve_features(churn, "churn", None, None)
    assert "'churned'" in str(err.value)
    assert "'target'" in str(err.value)


def test_missing_feature_columns_are_named(churn):
    with pytest.raises(DataError) as err:
        resolve_features(churn, TARGET, ["tenure_months", "age"], ["region", "plan"])
    message = str(err.value)
    assert "feature column(s) ['age', 'plan'] are missing" in message
    assert "'features'" in message


def test_check_numeric_names_the_column_and_sample_text():
    frame = pd.DataFrame({"ok": [1.0, 2.0, 3.0, 4.0], "charges": ["1.5", "abc", None, "n/a"]})
    check_numeric(frame, ["ok"])
    with pytest.raises(DataError) as err:
        check_numeric(frame, ["ok", "charges"])
    message = str(err.value)
    assert "column 'charges' should be numeric but holds text in 2 row(s)" in message
    assert "['abc', 'n/a']" in message
    assert "features.categorical" in message


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_check_numeric_detects_infinite_values(value):
    frame = pd.DataFrame({"x": [1.0, value, 3.0]})
    with pytest.raises(DataError, match="column 'x' holds 1 infinite value"):
        check_numeric(frame, ["x"])


def test_check_numeric_accepts_numbers_that_normalise_made_text():
    from decimal import Decimal

    frame = normalise(pd.DataFrame({"amount": [Decimal("1.50"), Decimal("2.25"), None]}))
    check_numeric(frame, ["amount"])


def test_check_numeric_accepts_missing_values():
    check_numeric(pd.DataFrame({"x": [1.0, np.nan], "n": pd.array([1, None], dtype="Int64")}), ["x", "n"])


def test_compressed_tsv_is_split_on_tabs_and_zip_is_recognised():
    import gzip
    import zipfile

    tsv = read_frame("x.tsv.gz", io.BytesIO(gzip.compress(b"a\tb\n1\t2\n")), detect_format("x.tsv.gz"))
    assert list(tsv.columns) == ["a", "b"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("x.csv", "a,b\n1,2\n")
    assert detect_format("x.csv.zip") == "csv"
    assert read_frame("x.csv.zip", io.BytesIO(buf.getvalue()), "csv").shape == (1, 2)
