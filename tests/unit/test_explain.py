"""SHAP explanations of training pipelines (core.explain): additivity, column mapping, budgets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_ops.core.explain import (
    ExplanationError,
    explain_pipeline,
    importance_figure,
    input_columns,
    model_output,
    split_pipeline,
    top_contributions,
)
from mlops_ops.core.features import FeatureSet
from mlops_ops.core.training import prepare_features, train_model
from mlops_ops.example import churn

#: additivity tolerance (output units): exact algorithms, float64 sums of a few dozen terms
TOLERANCE = 1e-8

FEATURES = FeatureSet(numeric=list(churn.NUMERIC), categorical=list(churn.CATEGORICAL))


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return churn.generate(1500, seed=11)


def _fit(frame: pd.DataFrame, estimator: str, params: dict, target: str = "churned") -> tuple:
    result = train_model(frame, target=target, features=FEATURES, estimator=estimator, params=params)
    return result.model, result.task, prepare_features(frame, FEATURES)


def _additivity_error(pipeline, x, explanation) -> float:
    out = model_output(pipeline, x.iloc[explanation.positions], explanation.output)
    total = explanation.values.sum(axis=1).to_numpy() + explanation.expected_value
    return float(np.max(np.abs(total - out)))


@pytest.mark.parametrize(
    ("estimator", "params", "explainer", "output"),
    [
        ("sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": 40}, "tree", "log_odds"),
        (
            "sklearn.ensemble.RandomForestClassifier",
            {"n_estimators": 15, "max_depth": 5},
            "tree",
            "probability",
        ),
        ("sklearn.ensemble.GradientBoostingClassifier", {"n_estimators": 30}, "tree", "log_odds"),
        ("sklearn.linear_model.LogisticRegression", {}, "linear", "log_odds"),
        ("sklearn.neighbors.KNeighborsClassifier", {}, "permutation", "probability"),
    ],
)
def test_classifier_values_add_up_to_the_output_minus_the_expected_value(
    data, estimator, params, explainer, output
):
    pipeline, task, x = _fit(data, estimator, params)
    explanation = explain_pipeline(pipeline, x, task=task, seed=3, max_rows=300, fallback_max_rows=20)
    assert (explanation.explainer, explanation.output) == (explainer, output)
    assert list(explanation.values.columns) == FEATURES.numeric + FEATURES.categorical
    assert explanation.rows == (20 if explainer == "permutation" else 300)
    assert _additivity_error(pipeline, x, explanation) < TOLERANCE


@pytest.mark.parametrize(
    ("estimator", "explainer"),
    [
        ("sklearn.ensemble.HistGradientBoostingRegressor", "tree"),
        ("sklearn.linear_model.Ridge", "linear"),
    ],
)
def test_regressor_values_add_up_to_the_prediction(data, estimator, explainer):
    frame = data.assign(spend=data["monthly_charges"] * 0.3 + data["support_calls"] * 2.0).drop(
        columns=["monthly_charges"]
    )
    features = FeatureSet(
        numeric=["tenure_months", "support_calls", "data_usage_gb"], categorical=["contract"]
    )
    result = train_model(frame, target="spend", features=features, estimator=estimator, params={})
    x = prepare_features(frame, features)
    explanation = explain_pipeline(result.model, x, task=result.task, seed=0, max_rows=200)
    assert (explanation.explainer, explanation.output) == (explainer, "prediction")
    assert _additivity_error(result.model, x, explanation) < 1e-6 * float(frame["spend"].abs().max())
    # the target is built from support_calls (and the dropped charges): it leads
    assert next(iter(explanation.mean_abs())) == "support_calls"


def test_one_hot_columns_of_a_categorical_add_up(data):
    import shap

    pipeline, task, x = _fit(data, "sklearn.linear_model.LogisticRegression", {})
    transform, preprocess, model = split_pipeline(pipeline)
    owners = input_columns(preprocess)
    assert owners.count("contract") == 3
    assert owners[:4] == FEATURES.numeric
    explanation = explain_pipeline(pipeline, x, task=task, seed=1, max_rows=50, background_rows=100)
    xt = transform.transform(x.iloc[explanation.positions])
    bg = transform.transform(x.iloc[np.sort(np.random.default_rng(1).choice(len(x), 100, replace=False))])
    raw = shap.LinearExplainer(model, shap.maskers.Independent(bg, max_samples=100)).shap_values(xt)
    contract = [i for i, o in enumerate(owners) if o == "contract"]
    np.testing.assert_allclose(explanation.values["contract"].to_numpy(), raw[:, contract].sum(axis=1))


def test_seeded_sample_within_the_budget(data):
    pipeline, task, x = _fit(data, "sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": 20})
    first = explain_pipeline(pipeline, x, task=task, seed=5, max_rows=100)
    again = explain_pipeline(pipeline, x, task=task, seed=5, max_rows=100)
    other = explain_pipeline(pipeline, x, task=task, seed=6, max_rows=100)
    assert (first.rows, first.available) == (100, len(x))
    pd.testing.assert_frame_equal(first.values, again.values)
    assert not first.values.index.equals(other.values.index)
    assert list(first.values.index) == list(x.index[first.positions])
    doc = first.to_dict()
    assert doc["rows"] == 100
    assert abs(sum(doc["share"].values()) - 1) < 1e-12
    assert list(doc["mean_abs_shap"].values()) == sorted(doc["mean_abs_shap"].values(), reverse=True)


def test_top_contributions_are_the_largest_in_absolute_value():
    from mlops_ops.core.explain import Explanation

    values = pd.DataFrame({"a": [0.1, -2.0], "b": [-0.5, 1.0], "c": [0.3, 0.0]}, index=[10, 11])
    explanation = Explanation(values, np.arange(2), 0.0, "tree", "log_odds", 2, 0)
    top = top_contributions(explanation, 2)
    assert list(top.columns) == ["top1_feature", "top1_contribution", "top2_feature", "top2_contribution"]
    assert top.loc[10].tolist() == ["b", -0.5, "c", 0.3]
    assert top.loc[11].tolist() == ["a", -2.0, "b", 1.0]
    assert top_contributions(explanation, 9).shape[1] == 6  # at most one per column


def test_what_cannot_be_explained_says_why(data):
    pipeline, task, x = _fit(data, "sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": 5})
    with pytest.raises(ExplanationError, match="expected the training Pipeline"):
        explain_pipeline(pipeline[-1], x, task=task)
    with pytest.raises(ExplanationError, match="no rows"):
        explain_pipeline(pipeline, x.head(0), task=task)


def test_importance_figure_has_one_bar_per_column(data):
    from mlops_ops.core.explain import figure_png

    pipeline, task, x = _fit(data, "sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": 5})
    profile = explain_pipeline(pipeline, x, task=task, max_rows=100).to_dict()
    fig = importance_figure(profile, "churn v1")
    assert len(fig.axes[0].patches) == len(FEATURES.all)
    assert figure_png(fig).startswith(b"\x89PNG")


# -- top-k contributions in batch scoring (core.scoring_stream) -------------------------------------


@pytest.mark.parametrize("batch_rows", [70, 1000])
def test_batch_scoring_adds_the_top_k_contributions_within_the_budget(data, batch_rows):
    import datetime as dt
    import io

    from mlops_ops.core.schema import Schema
    from mlops_ops.core.scoring_stream import score_parquet

    pipeline, task, _ = _fit(data, "sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": 20})
    frame = churn.generate(300, seed=4).assign(customer_id=[f"c{i}" for i in range(300)])
    source, out = io.BytesIO(), io.BytesIO()
    frame.to_parquet(source, index=False)
    scored = score_parquet(
        io.BytesIO(source.getvalue()),
        out,
        model=pipeline,
        task=task,
        schema=Schema.from_feature_set(FEATURES, "churned"),
        id_columns=["customer_id"],
        model_version="1",
        input_sha256="e" * 64,
        interval_start=dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
        interval_end=dt.datetime(2026, 3, 2, tzinfo=dt.UTC),
        batch_rows=batch_rows,
        explain_top_k=2,
        explain_max_rows=200,
    )
    got = pd.read_parquet(io.BytesIO(out.getvalue()))
    assert scored.columns[-4:] == ["top1_feature", "top1_contribution", "top2_feature", "top2_contribution"]
    assert scored.explained == {
        "k": 2,
        "explainer": "tree",
        "output": "log_odds",
        "rows": 200,
        "max_rows": 200,
    }
    # the first 200 rows: the same values as explaining them at once; the rest: null
    x = prepare_features(frame, FEATURES)
    want = top_contributions(explain_pipeline(pipeline, x.head(200), task=task, max_rows=200), 2)
    assert got["top1_feature"].head(200).tolist() == want["top1_feature"].tolist()
    np.testing.assert_allclose(got["top2_contribution"].head(200), want["top2_contribution"])
    assert got["top1_feature"].iloc[200:].isna().all()
    assert got["top1_contribution"].iloc[200:].isna().all()
