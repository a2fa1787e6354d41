"""Profiles of a stored Parquet file, a column at a time: identical to the in-memory profile."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_ops.core.data import FeatureSet
from mlops_ops.core.drift import DriftConfig, build_reference_profile, detect_drift
from mlops_ops.core.drift.profile_file import prediction_profile_parquet, profile_parquet
from mlops_ops.core.monitoring import build_prediction_profile
from mlops_ops.core.schema import ColumnSchema, Schema
from mlops_ops.core.training import build_pipeline, make_estimator


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lots = np.array([f"k{i:03d}" for i in range(80)])
    out = pd.DataFrame(
        {
            "normal": rng.normal(50, 10, n),
            "lognormal": rng.lognormal(3, 1, n),
            "heavy": rng.standard_t(2, n),
            "counts": rng.poisson(2, n).astype("int64"),
            "flag": rng.integers(0, 2, n).astype("int64"),
            "float32": rng.normal(0, 1, n).astype("float32"),
            "constant": np.full(n, 7.0),
            "gaps": np.where(rng.random(n) < 0.2, np.nan, rng.exponential(2, n)),
            "rounded": np.round(rng.normal(size=n), 1),
            "empty": np.full(n, np.nan),
            "nullable": pd.array(np.where(rng.random(n) < 0.1, None, rng.integers(0, 9, n)), dtype="Int64"),
            "boolean": rng.random(n) < 0.3,
            # 80 categories, many with equal counts: which ones make the top 50 depends on the order
            "many": lots[np.repeat(np.arange(n // 10 + 1), 10)[:n] % 80],
            "plan": pd.array(rng.choice(["basic", "premium", None], n, p=[0.6, 0.3, 0.1]), dtype="string"),
            "zipf": np.minimum(rng.zipf(1.6, n), 200).astype(str),
            "codes": np.where(rng.random(n) < 0.1, np.nan, rng.integers(100, 104, n).astype(float)),
            "ints_as_text": rng.integers(0, 5, n).astype("int64"),
        }
    )
    return out


NUMERIC = [
    "normal",
    "lognormal",
    "heavy",
    "counts",
    "flag",
    "float32",
    "constant",
    "gaps",
    "rounded",
    "empty",
    "nullable",
    "boolean",
]
CATEGORICAL = ["many", "plan", "zipf", "codes", "ints_as_text"]


def _schema() -> Schema:
    cols = [ColumnSchema(c, "numeric", "listed") for c in NUMERIC if c not in ("boolean", "counts")]
    cols += [ColumnSchema("counts", "integer", "declared"), ColumnSchema("boolean", "boolean", "declared")]
    cols += [ColumnSchema(c, "categorical", "listed") for c in CATEGORICAL]
    return Schema(columns=tuple(cols), target=None)


def _parquet(frame: pd.DataFrame, **kwargs) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False, **kwargs)
    return buf.getvalue()


@pytest.mark.parametrize(("n", "seed"), [(1, 0), (57, 1), (3000, 2), (200_000, 3)])
def test_the_file_profile_is_the_in_memory_profile(n, seed):
    frame = _frame(n, seed)
    schema = _schema()
    coerced = schema.coerce(frame)
    features = schema.feature_set
    want = build_reference_profile(
        coerced, numeric=list(features.numeric), categorical=list(features.categorical), schema=schema
    )
    got = profile_parquet(io.BytesIO(_parquet(frame, row_group_size=max(n // 4, 1))), schema)
    assert got.to_dict() == want.to_dict()  # tolerance zero: edges, counts, moments, categories


def test_dictionary_encoded_text_profiles_the_same():
    frame = _frame(5000, 4)
    schema = _schema()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.set_column(
        table.schema.get_field_index("zipf"), "zipf", table.column("zipf").dictionary_encode()
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    got = profile_parquet(io.BytesIO(buf.getvalue()), schema)
    features = schema.feature_set
    want = build_reference_profile(
        schema.coerce(frame),
        numeric=list(features.numeric),
        categorical=list(features.categorical),
        schema=schema,
    )
    assert got.to_dict() == want.to_dict()


def test_a_missing_column_is_named():
    with pytest.raises(ValueError, match=r"snapshot x has no column\(s\) \['normal', 'lognormal',"):
        profile_parquet(io.BytesIO(_parquet(pd.DataFrame({"a": [1.0]}))), _schema(), where="snapshot x")


@pytest.mark.parametrize(
    "estimator",
    [
        "sklearn.linear_model.LogisticRegression",
        "sklearn.ensemble.RandomForestClassifier",
        "sklearn.linear_model.Ridge",
    ],
)
def test_the_prediction_profile_from_batches_is_the_in_memory_one(estimator):
    frame = _frame(20_000, 5)
    frame["y"] = (frame["normal"] + 5 * frame["flag"] > 52).astype(int)
    features = FeatureSet(("normal", "lognormal", "flag", "gaps"), ("plan",))
    schema = Schema.from_feature_set(features, "y")
    task = "regression" if estimator.endswith("Ridge") else "classification"
    params = {"n_estimators": 10} if "Forest" in estimator else {}
    model = build_pipeline(make_estimator(estimator, params, 0), features, schema).fit(frame, frame["y"])
    want = build_prediction_profile(model, schema.coerce(frame), task).to_dict()
    got = prediction_profile_parquet(
        model, io.BytesIO(_parquet(frame)), schema, task, batch_rows=3001
    ).to_dict()
    # the model sees 3,001-row batches instead of one frame: equal up to the floating-point order of
    # its sums (a relative 1e-12 on the edges and moments), and the same bin counts
    g, w = got["numeric"]["prediction"], want["numeric"]["prediction"]
    assert g["n"] == w["n"]
    assert g["missing"] == w["missing"]
    np.testing.assert_allclose(g["edges"], w["edges"], rtol=1e-12)
    for key in ("mean", "std", "min", "max"):
        assert g[key] == pytest.approx(w[key], rel=1e-12)
    assert g["counts"] == w["counts"]
    assert g["edge_counts"] == w["edge_counts"]


def test_drift_verdicts_are_the_same_against_either_profile():
    reference = _frame(20_000, 6)
    schema = _schema()
    features = schema.feature_set
    old = build_reference_profile(
        schema.coerce(reference),
        numeric=list(features.numeric),
        categorical=list(features.categorical),
        schema=schema,
    )
    new = profile_parquet(io.BytesIO(_parquet(reference)), schema)
    for seed, shift in ((7, 0.0), (8, 0.3)):
        batch = _frame(5000, seed)
        batch["normal"] += shift * 10
        batch = schema.coerce(batch)
        a = detect_drift(old, batch, DriftConfig()).to_dict()
        b = detect_drift(new, batch, DriftConfig()).to_dict()
        assert a == b
