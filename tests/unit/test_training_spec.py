"""artifacts.TrainingSpec: training_spec.json read as a dataclass, its keys checked on read."""

from __future__ import annotations

import pytest

from mlops_ops.artifacts import TRAINING_SPLIT_KEYS, TrainingSpec
from mlops_ops.errors import StoredDocumentError

FULL = {
    "target": "churned",
    "features": {"numeric": ["age", "spend"], "categorical": ["plan"]},
    "schema": "schema.json",
    "task": "classification",
    "holdout_fraction": 0.25,
    "seed": 7,
    "estimator": "sklearn.linear_model.LogisticRegression",
    "snapshot_uri": "file:///s/data.parquet",
    "snapshot_sha256": "ab" * 32,
    "n_train": 75,
    "n_holdout": 25,
}


def test_round_trip_keeps_the_document_and_its_key_order():
    spec = TrainingSpec.from_dict(FULL, required=TRAINING_SPLIT_KEYS)
    assert spec.numeric == ("age", "spend")
    assert spec.categorical == ("plan",)
    assert (spec.task, spec.holdout_fraction, spec.seed) == ("classification", 0.25, 7)
    assert spec.to_dict() == FULL
    assert list(spec.to_dict()) == list(FULL)


@pytest.mark.parametrize("missing", TRAINING_SPLIT_KEYS)
def test_a_missing_key_is_a_verdict_naming_the_key_and_the_document(missing):
    doc = {k: v for k, v in FULL.items() if k != missing}
    with pytest.raises(StoredDocumentError, match=rf"run r1.*{missing}"):
        TrainingSpec.from_dict(doc, required=TRAINING_SPLIT_KEYS, where="training_spec.json of run r1")


@pytest.mark.parametrize(
    "features",
    [None, [], {"numeric": ["a"]}, {"categorical": []}, {"numeric": "a", "categorical": []}],
)
def test_features_without_both_lists_is_a_verdict(features):
    with pytest.raises(StoredDocumentError, match="'features' must hold"):
        TrainingSpec.from_dict({**FULL, "features": features})


@pytest.mark.parametrize("doc", [[], "x", None, 3])
def test_a_document_that_is_not_an_object_is_a_verdict(doc):
    with pytest.raises(StoredDocumentError, match="not a JSON object"):
        TrainingSpec.from_dict(doc)


def test_without_the_split_the_reader_of_features_still_gets_them():
    spec = TrainingSpec.from_dict({"features": {"numeric": [], "categorical": ["c"]}, "task": "regression"})
    assert spec.holdout_fraction is None
    assert spec.seed is None
    assert spec.categorical == ("c",)
