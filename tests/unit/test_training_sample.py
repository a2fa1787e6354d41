"""The training sample cap: seeded, stratified by the target, recorded with the result."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_ops.config import parse_pipeline_spec
from mlops_ops.core.data import DataError, FeatureSet
from mlops_ops.core.training import sample_rows, train_model
from mlops_ops.example.churn import CATEGORICAL, NUMERIC, TARGET, generate

LOGREG = "sklearn.linear_model.LogisticRegression"


@pytest.fixture(scope="module")
def churn() -> pd.DataFrame:
    return generate(4000, seed=11)


@pytest.mark.parametrize("cap", [100, 333, 1000, 3999])
def test_each_class_keeps_its_share_within_one_row(churn, cap):
    sample = sample_rows(churn, TARGET, cap, seed=3, task="classification")
    assert len(sample) == cap
    shares = churn[TARGET].value_counts()
    for label, count in sample[TARGET].value_counts().items():
        assert abs(count - shares[label] * cap / len(churn)) <= 1
    assert sample.index.is_monotonic_increasing  # rows keep their order
    assert sample.index.isin(churn.index).all()


def test_the_sample_is_seeded(churn):
    a = sample_rows(churn, TARGET, 500, seed=3, task="classification")
    b = sample_rows(churn, TARGET, 500, seed=3, task="classification")
    c = sample_rows(churn, TARGET, 500, seed=4, task="classification")
    assert a.index.equals(b.index)
    assert not a.index.equals(c.index)


def test_a_rare_class_keeps_a_row_and_a_frame_under_the_cap_is_unchanged():
    frame = pd.DataFrame({"x": np.arange(1000), "y": [1] + [0] * 999})
    sample = sample_rows(frame, "y", 100, seed=0, task="classification")
    assert len(sample) == 100
    assert sample["y"].sum() == 1
    assert sample_rows(frame, "y", 5000, seed=0, task="classification") is frame
    with pytest.raises(DataError, match="below the 2 classes"):
        sample_rows(frame, "y", 1, seed=0, task="classification")


def test_a_regression_sample_covers_the_target_range():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"y": rng.lognormal(0, 1, 10_000)})
    sample = sample_rows(frame, "y", 1000, seed=1, task="regression")
    assert len(sample) == 1000
    deciles = pd.qcut(frame["y"], 10, labels=False)
    per_bin = deciles.loc[sample.index].value_counts()
    assert per_bin.min() >= 99
    assert per_bin.max() <= 101


def test_training_with_a_cap_records_the_sample(churn):
    features = FeatureSet(tuple(NUMERIC), tuple(CATEGORICAL))
    result = train_model(
        churn,
        target=TARGET,
        features=features,
        estimator=LOGREG,
        params={"max_iter": 300},
        max_training_rows=1200,
        seed=5,
    )
    assert result.n_train == 1200
    assert result.sample == {
        "cap": 1200,
        "rows": 1200,
        "available": result.sample["available"],
        "seed": 5,
        "stratified_by": TARGET,
    }
    assert result.sample["available"] + result.n_holdout == len(churn)
    uncapped = train_model(
        churn, target=TARGET, features=features, estimator=LOGREG, params={"max_iter": 300}, seed=5
    )
    assert uncapped.sample is None
    assert uncapped.n_holdout == result.n_holdout  # the holdout is never sampled


def _spec(**model):
    return parse_pipeline_spec(
        {
            "name": "p",
            "source": {"uri": "/d/*.parquet"},
            "target": "y",
            "model": {"estimator": LOGREG, **model},
        }
    )


def test_the_cap_is_validated_and_enters_the_fingerprint_only_when_given():
    from mlops_ops.config import SpecError

    plain = _spec().training_config_sha256()
    assert _spec(max_training_rows=None).training_config_sha256() == plain
    capped = _spec(max_training_rows=50_000)
    assert capped.model.max_training_rows == 50_000
    assert capped.training_config_sha256() != plain
    with pytest.raises(SpecError, match="max_training_rows"):
        _spec(max_training_rows=10)
    with pytest.raises(SpecError, match="max_training_rows"):
        _spec(max_training_rows="many")
