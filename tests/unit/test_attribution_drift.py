"""Attribution drift as a statistic: false alarms on batches from the reference distribution, and
power against a model whose reliance moved (core.drift.attribution).

The SHAP values of a path-dependent tree explainer (and of a linear explainer with a fixed
background) are a function of each row alone, so batches are drawn as rows of one explained pool:
the same as explaining each batch, at a fraction of the cost.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mlops_ops.core.drift.attribution import AttributionDriftError, attribution_drift, shares
from mlops_ops.core.explain import explain_pipeline
from mlops_ops.core.features import FeatureSet
from mlops_ops.core.training import prepare_features, train_model
from mlops_ops.example import churn

FEATURES = FeatureSet(numeric=list(churn.NUMERIC), categorical=list(churn.CATEGORICAL))
REPETITIONS = 300
ALPHA = 0.05


def _bound(rate: float, n: int) -> float:
    """Nominal rate + 3 standard errors of a proportion over ``n`` repetitions."""
    return rate + 3 * math.sqrt(rate * (1 - rate) / n)


@pytest.fixture(
    scope="module",
    params=["sklearn.ensemble.HistGradientBoostingClassifier", "sklearn.linear_model.LogisticRegression"],
)
def setting(request):
    """(model, background, reference mean |SHAP| from 1,000 other rows, an explainer closure)."""
    result = train_model(
        churn.generate(4000, seed=1), target="churned", features=FEATURES, estimator=request.param, params={}
    )
    background = prepare_features(churn.generate(1000, seed=2), FEATURES)

    def explain(frame: pd.DataFrame) -> pd.DataFrame:
        x = prepare_features(frame, FEATURES)
        return explain_pipeline(
            result.model, x, task="classification", background=background, max_rows=len(x), seed=0
        ).values

    reference = explain_pipeline(result.model, background, task="classification", seed=0).mean_abs()
    return reference, explain


def _draw(pool: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    return pool.iloc[rng.choice(len(pool), size=n, replace=False)]


@pytest.mark.slow
@pytest.mark.parametrize("rows", [100, 400])
def test_no_alarm_beyond_nominal_on_batches_from_the_reference_distribution(setting, rows):
    reference, explain = setting
    pool = explain(churn.generate(4000, seed=3))
    rng = np.random.default_rng(rows)
    results = [
        attribution_drift(reference, _draw(pool, rows, rng), alpha=ALPHA, n_boot=200, min_rows=100, seed=i)
        for i in range(REPETITIONS)
    ]
    alarms = np.mean([r.status == "drift" for r in results])
    assert alarms <= _bound(ALPHA, REPETITIONS)
    # and the bound holds with a threshold half the default (noise alone stays below it)
    tight = [
        attribution_drift(reference, _draw(pool, rows, rng), delta=0.05, n_boot=200, seed=i).status
        for i in range(REPETITIONS)
    ]
    assert np.mean([s == "drift" for s in tight]) <= _bound(ALPHA, REPETITIONS)


@pytest.mark.slow
@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda d: d.assign(tenure_months=d["tenure_months"].median()), id="leaned-on-feature-constant"
        ),
        pytest.param(lambda d: d.assign(support_calls=d["support_calls"] * 3), id="spread-grows"),
    ],
)
def test_flags_a_model_whose_reliance_moved(setting, change):
    reference, explain = setting
    pool = explain(change(churn.generate(2000, seed=5)))
    rng = np.random.default_rng(0)
    repetitions = 100
    results = [
        attribution_drift(reference, _draw(pool, 200, rng), n_boot=200, seed=i) for i in range(repetitions)
    ]
    power = np.mean([r.status == "drift" for r in results])
    assert power >= 0.95
    # the report names a column that moved
    assert results[0].columns[0]["column"] in ("tenure_months", "support_calls")


def test_small_batches_are_insufficient_data_never_drift():
    reference = {"a": 1.0, "b": 1.0}
    batch = pd.DataFrame({"a": [5.0] * 10, "b": [0.0] * 10})  # all attribution moved to a
    result = attribution_drift(reference, batch, min_rows=100)
    assert result.status == "insufficient_data"
    assert result.moved is None
    assert result.columns[0]["batch_share"] == 1.0


def test_the_statistic_is_the_share_of_attribution_that_moved():
    reference = {"a": 3.0, "b": 1.0}
    batch = pd.DataFrame({"a": [1.0, -1.0] * 100, "b": [3.0, -3.0] * 100})  # shares 0.75/0.25 -> 0.25/0.75
    result = attribution_drift(reference, batch, min_rows=10, n_boot=50)
    assert result.moved == pytest.approx(0.5)
    assert result.status == "drift"
    assert result.lower == pytest.approx(0.5)  # every row alike: no sampling noise
    assert result.total_ratio == pytest.approx(1.0)
    assert shares({"a": 0.0, "b": 0.0}) == {"a": 0.5, "b": 0.5}


def test_columns_that_do_not_match_the_reference_say_so():
    with pytest.raises(AttributionDriftError, match="not the same model's attributions"):
        attribution_drift({"a": 1.0}, pd.DataFrame({"b": [1.0] * 200}))
    with pytest.raises(AttributionDriftError, match="0 < delta < 1"):
        attribution_drift({"a": 1.0}, pd.DataFrame({"a": [1.0] * 200}), delta=0)
