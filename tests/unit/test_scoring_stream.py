"""Streaming batch scoring: labels derived from probabilities are the model's own, batch by batch."""

from __future__ import annotations

import datetime as dt
import hashlib
import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from mlops_ops.core.data import DataError, FeatureSet
from mlops_ops.core.metrics import score_model
from mlops_ops.core.schema import Schema
from mlops_ops.core.scoring import assemble_predictions
from mlops_ops.core.scoring_stream import (
    HashingSink,
    label_rule,
    near_ties,
    predict_batch,
    score_parquet,
)
from mlops_ops.core.training import build_pipeline, make_estimator

ESTIMATORS = [
    (lambda: LogisticRegression(max_iter=500), "score"),
    (lambda: RandomForestClassifier(n_estimators=15, random_state=0), "proba"),
    (lambda: ExtraTreesClassifier(n_estimators=15, random_state=0), "proba"),
    (lambda: HistGradientBoostingClassifier(max_iter=20, random_state=0), "proba"),
    (lambda: GradientBoostingClassifier(n_estimators=20, random_state=0), "score"),
    (lambda: DecisionTreeClassifier(max_depth=4, random_state=0), "score"),
    (lambda: GaussianNB(), "score"),
    (lambda: KNeighborsClassifier(n_neighbors=4), "score"),  # even k: vote ties happen
    (lambda: SGDClassifier(loss="modified_huber", random_state=0), "score"),
    (lambda: MLPClassifier(hidden_layer_sizes=(8,), max_iter=60, random_state=0), "score"),
    (lambda: SVC(probability=True, random_state=0), None),  # Platt scaling: predict is not argmax
]


def _data(classes: list, n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(
        {"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.integers(0, 3, n).astype(float)}
    )
    # labels depend on the features, listed in an order that is not the sorted one
    score = x["a"] + 0.5 * x["b"] + rng.normal(scale=0.7, size=n)
    bins = np.quantile(score, np.linspace(0, 1, len(classes) + 1)[1:-1])
    y = np.asarray(classes, dtype=object if isinstance(classes[0], str) else None)[np.digitize(score, bins)]
    return x, y


@pytest.mark.slow  # 44 fits, about 30 s
@pytest.mark.parametrize("classes", [[1, 0], ["yes", "no"], [2, 0, 1], ["c", "a", "b", "d"]])
@pytest.mark.parametrize(("make", "rule"), ESTIMATORS)
def test_labels_from_probabilities_are_the_models_own(make, rule, classes):
    import warnings

    x, y = _data(classes)
    model = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of the small MLP
        model.fit(x, y)
    assert label_rule(model) == rule
    scores = predict_batch(model, x, "classification")
    np.testing.assert_array_equal(scores["pred"], model.predict(x))
    assert scores["pred"].dtype == model.predict(x).dtype
    np.testing.assert_array_equal(scores["proba_all"], model.predict_proba(x))
    np.testing.assert_array_equal(scores["classes"], model.classes_)


@pytest.mark.parametrize("classes", [["yes", "no"], [2, 0, 1]])
def test_labels_of_a_logistic_regression_and_a_forest_are_their_own(classes):
    x, y = _data(classes)
    for model in (LogisticRegression(max_iter=500), RandomForestClassifier(n_estimators=5, random_state=0)):
        model.fit(x, y)
        np.testing.assert_array_equal(predict_batch(model, x, "classification")["pred"], model.predict(x))


def test_an_exact_tie_goes_to_the_models_predict():
    """A logistic regression with decision 0 and +-1e-300: probabilities 0.5/0.5 on all three rows,
    while predict says class 1 for the positive decision (sklearn: decision > 0)."""
    model = LogisticRegression().fit(np.array([[-1.0], [1.0]]), np.array(["no", "yes"]))
    model.coef_ = np.array([[1.0]])
    model.intercept_ = np.array([0.0])
    x = np.array([[0.0], [1e-300], [-1e-300], [3.0]])
    proba = model.predict_proba(x)
    assert (proba[:3] == 0.5).all()  # argmax alone would say "no" for all three
    scores = predict_batch(model, x, "classification")
    np.testing.assert_array_equal(scores["pred"], model.predict(x))
    assert scores["pred"].tolist() == ["no", "yes", "no", "yes"]


def test_a_tie_in_the_probabilities_of_a_forest_picks_the_first_class_as_sklearn_does():
    x = np.array([[0.0], [0.0], [1.0], [1.0]])
    y = np.array([5, 3, 5, 3])  # every leaf holds one of each: every row is a 0.5/0.5 tie
    model = RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y)
    scores = predict_batch(model, x, "classification")
    np.testing.assert_array_equal(scores["pred"], model.predict(x))
    assert set(scores["pred"]) == {3}  # classes_ is [3, 5]: the first maximum wins


def test_a_subclass_that_overrides_predict_keeps_its_own_labels():
    class Contrarian(LogisticRegression):
        def predict(self, x):
            return self.classes_[1 - np.argmax(self.predict_proba(x), axis=1)]

    x, y = _data([0, 1])
    model = Contrarian(max_iter=500).fit(x, y)
    assert label_rule(model) is None
    np.testing.assert_array_equal(predict_batch(model, x, "classification")["pred"], model.predict(x))


def test_near_ties():
    proba = np.array([[0.5, 0.5], [0.4, 0.6], [0.3, 0.3 + 1e-12], [1.0, 0.0]])
    assert near_ties(proba).tolist() == [True, False, True, False]
    assert near_ties(np.array([[0.2, 0.4, 0.4], [0.1, 0.2, 0.7]])).tolist() == [True, False]


def test_a_pipeline_is_preprocessed_once_and_predicts_as_before():
    x, y = _data([0, 1])
    x["cat"] = np.where(x["a"] > 0, "p", "q")
    features = FeatureSet(("a", "b", "c"), ("cat",))
    schema = Schema.from_feature_set(features)
    model = build_pipeline(make_estimator("sklearn.linear_model.LogisticRegression", {}, 0), features, schema)
    model.fit(x, y)
    ours = predict_batch(model, x, "classification")
    theirs = score_model(model, x, "classification")
    np.testing.assert_array_equal(ours["pred"], theirs["pred"])
    np.testing.assert_allclose(ours["proba"], theirs["proba"], rtol=0, atol=0)


def test_a_regressor_is_called_once_with_predict():
    from sklearn.linear_model import LinearRegression

    x, _ = _data([0, 1])
    model = LinearRegression().fit(x, x["a"] * 2)
    out = predict_batch(model, x, "regression")
    assert set(out) == {"pred"}
    np.testing.assert_array_equal(out["pred"], model.predict(x))


def test_the_hashing_sink_hashes_what_it_forwards():
    raw = io.BytesIO()
    sink = HashingSink(raw)
    sink.write(b"abc")
    sink.write(memoryview(b"defg"))
    assert sink.tell() == sink.size == 7
    assert (
        sink.hexdigest()
        == hashlib.sha256(b"abcdefg").hexdigest()
        == hashlib.sha256(raw.getvalue()).hexdigest()
    )


# -- score_parquet ---------------------------------------------------------------------------------


def _snapshot(n: int, seed: int = 1) -> tuple[bytes, pd.DataFrame]:
    x, y = _data([0, 1], n=n, seed=seed)
    frame = x.assign(cat=np.where(x["b"] > 0, "p", "q"), churned=y.astype(int))
    frame.insert(0, "customer_id", pd.array([f"c{i:05d}" for i in range(n)], dtype="string"))
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False, row_group_size=max(n // 3, 1))
    return buf.getvalue(), frame


@pytest.fixture(scope="module")
def fitted():
    _, frame = _snapshot(800, seed=2)
    features = FeatureSet(("a", "b", "c"), ("cat",))
    schema = Schema.from_feature_set(features, "churned")
    model = build_pipeline(
        make_estimator("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 10}, 0), features, schema
    )
    model.fit(frame, frame["churned"])
    return model, schema


START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
END = dt.datetime(2026, 1, 6, tzinfo=dt.UTC)
COMMON = {
    "task": "classification",
    "id_columns": ["customer_id"],
    "model_version": "3",
    "input_sha256": "e" * 64,
}


def _score(data: bytes, model, schema, batch_rows: int, **kwargs):
    out = io.BytesIO()
    scored = score_parquet(
        io.BytesIO(data),
        out,
        model=model,
        schema=schema,
        interval_start=START,
        interval_end=END,
        batch_rows=batch_rows,
        **{**COMMON, **kwargs},
    )
    return scored, out.getvalue()


@pytest.mark.parametrize("batch_rows", [97, 333, 1 << 18])
def test_streamed_predictions_equal_the_in_memory_ones(fitted, batch_rows):
    model, schema = fitted
    data, frame = _snapshot(1000)
    scored, raw = _score(data, model, schema, batch_rows)
    got = pd.read_parquet(io.BytesIO(raw))
    want = assemble_predictions(
        frame,
        score_model(model, frame, "classification"),
        task="classification",
        id_columns=["customer_id"],
        model_version="3",
        input_sha256="e" * 64,
        interval_start=START,
        interval_end=END,
    )
    assert list(got.columns) == list(want.columns) == scored.columns
    assert scored.rows == len(got) == 1000
    for col in want.columns:
        assert got[col].tolist() == want[col].tolist(), col
    assert str(got["data_interval_start"].dtype) == "datetime64[ns, UTC]"
    assert got["prediction"].dtype == want["prediction"].dtype
    assert scored.sha256 == hashlib.sha256(raw).hexdigest()
    assert scored.size == len(raw)
    assert pq.ParquetFile(io.BytesIO(raw)).metadata.num_row_groups == -(-1000 // batch_rows)
    assert scored.positive == 1
    assert scored.probability_sum / scored.probability_rows == pytest.approx(want["probability"].mean())


def test_the_same_input_gives_the_same_bytes(fitted):
    model, schema = fitted
    data, _ = _snapshot(300)
    assert _score(data, model, schema, 100)[1] == _score(data, model, schema, 100)[1]


def test_no_data_interval_gives_null_stamps_and_an_empty_file_keeps_the_columns(fitted):
    model, schema = fitted
    data, frame = _snapshot(50)
    empty = io.BytesIO()
    frame.iloc[:0].to_parquet(empty, index=False)
    out = io.BytesIO()
    scored = score_parquet(
        io.BytesIO(empty.getvalue()),
        out,
        model=model,
        schema=schema,
        interval_start=None,
        interval_end=None,
        **COMMON,
    )
    got = pd.read_parquet(io.BytesIO(out.getvalue()))
    assert scored.rows == 0
    assert len(got) == 0
    assert (
        list(got.columns)
        == scored.columns
        == [
            "customer_id",
            "prediction",
            "probability",
            "model_version",
            "input_sha256",
            "data_interval_start",
            "data_interval_end",
        ]
    )
    out = io.BytesIO()
    score_parquet(
        io.BytesIO(data), out, model=model, schema=schema, interval_start=None, interval_end=None, **COMMON
    )
    got = pd.read_parquet(io.BytesIO(out.getvalue()))
    assert got["data_interval_start"].isna().all()
    assert str(got["data_interval_end"].dtype) == "datetime64[ns, UTC]"


def test_a_value_that_cannot_be_coerced_in_a_later_batch_names_the_column(fitted):
    model, schema = fitted
    _, frame = _snapshot(300)
    frame = frame.astype({"b": object})
    frame.loc[250, "b"] = "12,5"
    buf = io.BytesIO()
    pa_table = pa.Table.from_pandas(frame.astype({"b": str}), preserve_index=False)
    pq.write_table(pa_table, buf)
    with pytest.raises(DataError, match=r"snapshot abc: column 'b'"):
        _score(buf.getvalue(), model, schema, 100, where="snapshot abc")
