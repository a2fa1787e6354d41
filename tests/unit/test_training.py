"""Training: reproducible fits on a deterministic split, robust pipelines, clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_ops.core.data import DataError, FeatureSet
from mlops_ops.core.training import TrainingError, prepare_features, train_model
from mlops_ops.example.churn import CATEGORICAL, NUMERIC, TARGET, generate

HGB = "sklearn.ensemble.HistGradientBoostingClassifier"
LOGREG = "sklearn.linear_model.LogisticRegression"
FEATURES = FeatureSet(tuple(NUMERIC), tuple(CATEGORICAL))
HGB_PARAMS = {"max_iter": 40, "learning_rate": 0.1, "max_leaf_nodes": 15}
PARAMS = {HGB: HGB_PARAMS, LOGREG: {"max_iter": 500}}


@pytest.fixture(scope="module")
def churn() -> pd.DataFrame:
    return generate(3000, seed=0)


def train(frame: pd.DataFrame, estimator: str = LOGREG, **kwargs):
    args = {
        "target": TARGET,
        "features": FEATURES,
        "estimator": estimator,
        "params": PARAMS.get(estimator, {}),
    }
    args.update(kwargs)
    return train_model(frame, **args)


@pytest.fixture(scope="module", params=[HGB, LOGREG], ids=["hgb", "logreg"])
def trained(request, churn):
    """Two fits with seed 1 and one with seed 2, per estimator.

    One OpenMP thread: HistGradientBoosting's threads spin for minutes on a loaded 2-core machine.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return {
            "estimator": request.param,
            "a": train(churn, request.param, seed=1),
            "b": train(churn, request.param, seed=1),
            "other_seed": train(churn, request.param, seed=2),
        }


def test_same_seed_gives_identical_metrics_and_probabilities(trained, churn):
    a, b = trained["a"], trained["b"]
    assert a.metrics == b.metrics
    assert (a.n_train, a.n_holdout) == (b.n_train, b.n_holdout)
    x = prepare_features(churn.head(300), FEATURES)
    pa, pb = a.model.predict_proba(x), b.model.predict_proba(x)
    np.testing.assert_array_equal(pa, pb)
    assert pa.std() > 0  # a model that predicts something


def test_another_seed_gives_another_split(trained):
    a, other = trained["a"], trained["other_seed"]
    assert a.n_train != other.n_train or a.metrics != other.metrics


def test_the_split_covers_every_row_once(trained, churn):
    a = trained["a"]
    assert a.n_train + a.n_holdout == len(churn)
    assert 0.2 < a.n_holdout / len(churn) < 0.3  # holdout_fraction 0.25


def test_a_classifier_is_useful_on_the_churn_data(trained):
    metrics = trained["a"].metrics
    assert trained["a"].task == "classification"
    assert metrics["roc_auc"] > 0.7
    assert {"accuracy", "balanced_accuracy", "f1", "precision", "recall", "log_loss", "brier"} <= set(metrics)


def test_the_seed_becomes_the_random_state(trained):
    assert trained["a"].params["random_state"] == 1
    assert trained["other_seed"].params["random_state"] == 2


def test_the_result_carries_an_input_example_with_predictions(trained):
    a = trained["a"]
    assert list(a.input_example.columns) == FEATURES.all
    assert len(a.predictions_example) == len(a.input_example) == 5


def test_the_model_scores_unseen_categories_and_missing_values(trained, churn):
    rows = churn.head(6).copy()
    rows.loc[0, "contract"] = "lifetime"  # never seen in training
    rows.loc[1, "monthly_charges"] = np.nan
    rows.loc[2, "region"] = pd.NA
    rows.loc[3, "payment_method"] = "crypto"
    rows.loc[4, ["tenure_months", "support_calls", "data_usage_gb"]] = np.nan
    proba = trained["a"].model.predict_proba(prepare_features(rows, FEATURES))
    assert proba.shape == (6, 2)
    assert np.isfinite(proba).all()


def test_none_and_nan_are_the_same_missing_category(churn):
    result = train(churn.head(1500), LOGREG, seed=0)
    x = prepare_features(churn.head(1), FEATURES)
    with_nan, with_none = x.copy(), x.copy()
    with_nan.loc[0, "region"] = np.nan
    with_none.loc[0, "region"] = None
    np.testing.assert_allclose(
        result.model.predict_proba(with_nan), result.model.predict_proba(with_none), rtol=1e-12
    )


# -- errors --------------------------------------------------------------------------------------


def test_an_unknown_estimator_parameter_lists_the_accepted_ones(churn):
    with pytest.raises(TrainingError) as err:
        train(churn, LOGREG, params={"C": 1.0, "max_iterations": 10})
    message = str(err.value)
    assert f"{LOGREG} does not accept parameter(s) ['max_iterations']" in message
    assert "it accepts [" in message
    assert "'max_iter'" in message
    assert "'C'" in message


@pytest.mark.parametrize(
    ("estimator", "message"),
    [
        ("sklearn.linear_model.LogisticRegresion", "module 'sklearn.linear_model' has no estimator"),
        ("sklearn.no_such_module.Model", "cannot import module 'sklearn.no_such_module'"),
        (
            "collections.OrderedDict",
            "'collections.OrderedDict' is not an estimator class with a fit() method",
        ),
        ("sklearn.metrics.roc_auc_score", "is not an estimator class with a fit() method"),
    ],
    ids=["typo-in-class", "missing-module", "not-an-estimator", "a-function"],
)
def test_a_bad_estimator_path_is_a_training_error(churn, estimator, message):
    with pytest.raises(TrainingError) as err:
        train(churn, estimator, params={})
    assert message in str(err.value)


def test_an_estimator_of_unknown_kind_asks_for_model_task(churn):
    with pytest.raises(TrainingError, match="set model.task"):
        train(churn, "sklearn.preprocessing.StandardScaler", params={})


def test_a_non_binary_target_is_rejected_for_classification(churn):
    frame = churn.assign(**{TARGET: np.arange(len(churn)) % 3})
    with pytest.raises(
        DataError, match="'churned' has 3 distinct values; classification pipelines need a binary"
    ):
        train(frame)


def test_missing_target_values_are_rejected(churn):
    frame = churn.astype({TARGET: "float64"})
    frame.loc[[5, 50, 500], TARGET] = np.nan
    with pytest.raises(DataError, match="the target column 'churned' has [1-3] missing value"):
        train(frame)


def test_too_few_rows_are_rejected(churn):
    with pytest.raises(DataError) as err:
        train(churn.head(20))
    message = str(err.value)
    assert "too few rows to train" in message
    assert "need at least 20 and 2" in message
    assert "model.holdout_fraction" in message


def test_text_in_a_numeric_feature_is_rejected(churn):
    frame = churn.astype({"monthly_charges": object})
    frame.loc[:99, "monthly_charges"] = "seventy"  # on both sides of the split
    with pytest.raises(DataError, match=r"column 'monthly_charges' should be numeric.*e\.g\. \['seventy'"):
        train(frame)


def test_no_features_is_a_training_error(churn):
    with pytest.raises(TrainingError, match="no feature columns"):
        train(churn, features=FeatureSet((), ()))


# -- regression ----------------------------------------------------------------------------------


def test_regression_with_ridge(churn):
    frame = churn.assign(
        spend=churn["monthly_charges"] * 12
        + 3.0 * churn["tenure_months"]
        + np.where(churn["contract"] == "two_year", 50.0, 0.0)
    )
    features = FeatureSet(("monthly_charges", "tenure_months", "support_calls"), ("contract", "region"))
    result = train_model(
        frame,
        target="spend",
        features=features,
        estimator="sklearn.linear_model.Ridge",
        params={"alpha": 1.0},
    )
    assert result.task == "regression"
    assert set(result.metrics) == {"r2", "rmse", "mae"}
    assert result.metrics["r2"] > 0.99  # the target is linear in the features
    assert 0 <= result.metrics["mae"] <= result.metrics["rmse"]
    again = train_model(
        frame,
        target="spend",
        features=features,
        estimator="sklearn.linear_model.Ridge",
        params={"alpha": 1.0},
    )
    assert again.metrics == result.metrics


def test_regression_rejects_a_text_target(churn):
    with pytest.raises(DataError, match="column 'contract' should be numeric"):
        train_model(
            churn,
            target="contract",
            features=FeatureSet(("tenure_months",), ()),
            estimator="sklearn.linear_model.Ridge",
            params={},
        )
