"""Regression tests for bugs found while splitting ``core/evaluation.py``.

- R² on resamples lost its precision to cancellation for targets far from zero (or of a tiny
  scale), so the bootstrap of r2 failed closed with a false reason ("drew a constant target",
  "non-finite predictions").
- A slice of a model without ``classes`` (no ``predict_proba``) took the largest label *of the
  slice* as the positive class, so in a slice of negatives only, precision/recall/f1 were those
  of the negative class.
- The bootstrap rule's message rounded the confidence level to a whole percent (97.5% -> "98%").
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import r2_score

from mlops_ops.core.evaluation import HoldoutPredictions, decide, metric_value, paired_bootstrap


@pytest.mark.parametrize(("offset", "scale"), [(0.0, 1.0), (1e6, 1.0), (1e8, 1.0), (0.0, 1e-8), (5.0, 1e-7)])
def test_r2_on_resamples_does_not_depend_on_the_targets_offset_or_scale(offset, scale):
    rng = np.random.default_rng(1)
    n = 400
    y = offset + scale * rng.normal(size=n)
    new = {"pred": y + scale * rng.normal(scale=0.5, size=n)}
    old = {"pred": y + scale * rng.normal(scale=0.7, size=n)}

    assert metric_value("r2", "regression", y, new) == pytest.approx(r2_score(y, new["pred"]), abs=1e-9)
    result = paired_bootstrap("r2", "regression", y, new, old, resamples=200)
    assert result.valid_resamples == 200
    assert result.estimate == pytest.approx(r2_score(y, new["pred"]) - r2_score(y, old["pred"]), abs=1e-9)


def test_r2_is_still_undefined_on_a_constant_target():
    y = np.full(50, 3.0)
    assert np.isnan(metric_value("r2", "regression", y, {"pred": y + 0.1}))


def test_a_slice_keeps_the_holdouts_positive_class_when_the_model_has_no_classes():
    y = np.array([0] * 60 + [1] * 60 + [0] * 60)
    pred = np.array([0] * 50 + [1] * 10 + [1] * 60 + [0] * 60)
    segment = np.array(["a"] * 120 + ["b"] * 60, dtype=object)  # b: negatives only
    evaluation = {
        "primary_metric": "recall",
        "thresholds": {"recall": {"lower": 0.5}, "precision": {"lower": 0.5}},
        "bootstrap": {"enabled": False},
        "slices": [{"column": "segment", "min_rows": 10}],
    }

    def run(scores):
        holdout = HoldoutPredictions("classification", y, scores, columns={"segment": segment})
        return decide(evaluation=evaluation, challenger_version="1", baseline_version=None, holdout=holdout)

    without = run({"pred": pred})
    with_classes = run({"pred": pred, "classes": np.array([0, 1])})

    by_slice = {s["slice"]: s["challenger_metrics"] for s in without.slices}
    assert by_slice["segment=b"]["recall"] == 0.0  # no positives: recall of class 1, not of class 0
    assert without.slices == with_classes.slices
    assert [r.verdict for r in without.rules] == [r.verdict for r in with_classes.rules]
    assert not without.promote


@pytest.mark.parametrize(
    ("confidence", "label"), [(0.95, "95% CI"), (0.975, "97.5% CI"), (0.999, "99.9% CI")]
)
def test_the_bootstrap_message_states_the_confidence_level_unrounded(confidence, label):
    rng = np.random.default_rng(0)
    n = 300
    y = (rng.random(n) < 0.4).astype(int)
    new = np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(scale=0.2, size=n), 0, 1)
    old = np.clip(0.5 + 0.2 * (y - 0.5) + rng.normal(scale=0.2, size=n), 0, 1)
    holdout = HoldoutPredictions(
        "classification",
        y,
        {"pred": (new > 0.5).astype(int), "proba": new, "classes": np.array([0, 1])},
        {"pred": (old > 0.5).astype(int), "proba": old, "classes": np.array([0, 1])},
    )
    decision = decide(
        evaluation={"primary_metric": "roc_auc", "bootstrap": {"confidence": confidence, "resamples": 200}},
        challenger_version="2",
        baseline_version="1",
        holdout=holdout,
    )
    (rule,) = [r for r in decision.rules if r.rule.startswith("bootstrap")]
    assert label in rule.message
    assert label in decision.bootstrap["message"]
