"""The promotion gate as a rule table, and metric sanity checks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mlops_ops.config import EvaluationSpec
from mlops_ops.core.evaluation import GateDecision, compute_metrics, decide, higher_is_better

NAN = float("nan")


def gate(
    challenger, champion=None, *, thresholds=None, changes=None, primary="roc_auc", **kwargs
) -> GateDecision:
    evaluation = {
        "primary_metric": primary,
        "thresholds": thresholds or {},
        "change_thresholds": changes or {},
    }
    return decide(
        challenger_metrics=challenger,
        champion_metrics=champion,
        evaluation=evaluation,
        challenger_version="2",
        baseline_version="1" if champion is not None else None,
        **kwargs,
    )


def failed(decision: GateDecision) -> list:
    return [r for r in decision.rules if r.verdict == "fail"]


# -- value thresholds ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "bounds", "promote"),
    [
        # lower only
        (0.80, {"lower": 0.75}, True),
        (0.75, {"lower": 0.75}, True),
        (0.7499, {"lower": 0.75}, False),
        (0.10, {"lower": 0.75}, False),
        # upper only
        (0.20, {"upper": 0.30}, True),
        (0.30, {"upper": 0.30}, True),
        (0.3001, {"upper": 0.30}, False),
        # both
        (0.85, {"lower": 0.8, "upper": 0.9}, True),
        (0.80, {"lower": 0.8, "upper": 0.9}, True),
        (0.90, {"lower": 0.8, "upper": 0.9}, True),
        (0.7999, {"lower": 0.8, "upper": 0.9}, False),
        (0.9001, {"lower": 0.8, "upper": 0.9}, False),
        # a point interval
        (0.5, {"lower": 0.5, "upper": 0.5}, True),
    ],
)
def test_value_thresholds(value, bounds, promote):
    decision = gate({"roc_auc": value}, thresholds={"roc_auc": bounds})
    assert decision.promote is promote
    [rule] = [r for r in decision.rules if r.rule == "value"]
    assert rule.verdict == ("pass" if promote else "fail")
    assert rule.observed == value
    assert rule.metric == "roc_auc"
    if not promote:
        assert decision.reasons == [rule.message]
        assert "outside" in rule.message


def test_every_value_threshold_is_a_rule():
    decision = gate(
        {"roc_auc": 0.8, "accuracy": 0.6, "log_loss": 0.4},
        thresholds={"roc_auc": {"lower": 0.7}, "accuracy": {"lower": 0.65}, "log_loss": {"upper": 0.5}},
    )
    assert [(r.metric, r.verdict) for r in decision.rules] == [
        ("roc_auc", "pass"),
        ("accuracy", "fail"),
        ("log_loss", "pass"),
    ]
    assert not decision.promote
    assert len(decision.reasons) == 1
    assert "accuracy" in decision.reasons[0]


def test_the_gate_accepts_an_evaluation_spec():
    spec = EvaluationSpec(thresholds={"roc_auc": {"lower": 0.9}})
    decision = decide(
        challenger_metrics={"roc_auc": 0.85},
        champion_metrics=None,
        evaluation=spec,
        challenger_version="1",
        baseline_version=None,
    )
    assert not decision.promote
    assert decision.rules[0].threshold == "[0.9, inf]"


# -- change thresholds ---------------------------------------------------------------------------

# (metric, challenger, champion, change threshold, promote)
CHANGE_RULES = [
    # higher is better (roc_auc), absolute
    ("roc_auc", 0.82, 0.80, {"absolute": 0.0}, True),
    ("roc_auc", 0.80, 0.80, {"absolute": 0.0}, True),
    ("roc_auc", 0.79, 0.80, {"absolute": 0.0}, False),
    ("roc_auc", 0.797, 0.80, {"absolute": -0.005}, True),
    ("roc_auc", 0.794, 0.80, {"absolute": -0.005}, False),
    ("roc_auc", 0.83, 0.80, {"absolute": 0.02}, True),
    ("roc_auc", 0.81, 0.80, {"absolute": 0.02}, False),
    # higher is better, relative (gain / |champion|)
    ("roc_auc", 0.88, 0.80, {"relative": 0.05}, True),
    ("roc_auc", 0.83, 0.80, {"relative": 0.05}, False),
    ("roc_auc", 0.79, 0.80, {"relative": -0.02}, True),
    ("roc_auc", 0.78, 0.80, {"relative": -0.02}, False),
    # lower is better (rmse): a smaller value is a gain
    ("rmse", 9.0, 10.0, {"absolute": 0.5}, True),
    ("rmse", 9.8, 10.0, {"absolute": 0.5}, False),
    ("rmse", 10.5, 10.0, {"absolute": 0.0}, False),
    ("rmse", 10.4, 10.0, {"absolute": -0.5}, True),
    ("rmse", 9.0, 10.0, {"relative": 0.05}, True),
    ("rmse", 9.8, 10.0, {"relative": 0.05}, False),
    ("rmse", 10.1, 10.0, {"relative": 0.0}, False),
    # lower is better (log_loss)
    ("log_loss", 0.35, 0.40, {"absolute": 0.0}, True),
    ("log_loss", 0.45, 0.40, {"absolute": 0.0}, False),
    ("log_loss", 0.39, 0.40, {"relative": 0.05}, False),
    ("log_loss", 0.37, 0.40, {"relative": 0.05}, True),
    # both absolute and relative: both must pass
    ("roc_auc", 0.85, 0.80, {"absolute": 0.01, "relative": 0.05}, True),
    ("roc_auc", 0.82, 0.80, {"absolute": 0.01, "relative": 0.05}, False),
    # the direction override
    ("rmse", 11.0, 10.0, {"absolute": 0.5, "higher_is_better": True}, True),
    ("rmse", 9.0, 10.0, {"absolute": 0.5, "higher_is_better": True}, False),
    ("roc_auc", 0.75, 0.80, {"absolute": 0.0, "higher_is_better": False}, True),
    ("roc_auc", 0.85, 0.80, {"absolute": 0.0, "higher_is_better": False}, False),
]


@pytest.mark.parametrize(("metric", "new", "old", "threshold", "promote"), CHANGE_RULES)
def test_change_thresholds(metric, new, old, threshold, promote):
    decision = gate({metric: new}, {metric: old}, changes={metric: threshold}, primary=metric)
    changes = [r for r in decision.rules if r.rule.startswith("change_")]
    kinds = [k for k in ("absolute", "relative") if k in threshold]
    assert [r.rule for r in changes] == [f"change_{k}" for k in kinds]
    assert decision.promote is promote
    assert decision.status == ("promote" if promote else "reject")
    hib = threshold.get("higher_is_better", metric == "roc_auc")
    gain = (new - old) if hib else (old - new)
    for rule in changes:
        expected = gain if rule.rule == "change_absolute" else gain / abs(old)
        assert rule.observed == pytest.approx(expected)
        assert rule.verdict == (
            "pass" if rule.observed >= threshold[rule.rule.removeprefix("change_")] else "fail"
        )


@pytest.mark.parametrize(("new", "old", "limit"), [(0.70, 0.65, 0.05), (0.3, 0.2, 0.1), (0.9, 0.8, 0.1)])
def test_a_gain_exactly_at_the_threshold_passes(new, old, limit):
    assert gate({"roc_auc": new}, {"roc_auc": old}, changes={"roc_auc": {"absolute": limit}}).promote


@pytest.mark.parametrize(
    ("new", "relative", "promote", "observed"),
    [
        (0.1, 0.0, True, None),  # any gain on a zero baseline is an infinite relative gain
        (0.1, 0.5, True, None),
        (0.0, 0.0, True, 0.0),  # equal: no change
        (0.0, 0.01, False, 0.0),
    ],
)
def test_a_zero_champion_with_a_relative_threshold(new, relative, promote, observed):
    decision = gate({"r2": new}, {"r2": 0.0}, changes={"r2": {"relative": relative}}, primary="r2")
    [rule] = decision.rules
    assert decision.promote is promote
    assert rule.observed == observed


def test_a_loss_on_a_zero_champion_fails_the_relative_threshold():
    decision = gate({"r2": -0.1}, {"r2": 0.0}, changes={"r2": {"relative": -0.5}}, primary="r2")
    assert not decision.promote
    assert decision.rules[0].observed is None  # -inf is not stored as a number
    assert "regression -inf (relative)" in decision.reasons[0]


def test_a_lower_is_better_zero_champion():
    # champion rmse 0.0 is perfect: any positive rmse is a loss
    assert not gate(
        {"rmse": 0.1}, {"rmse": 0.0}, changes={"rmse": {"relative": -0.5}}, primary="rmse"
    ).promote
    assert gate({"rmse": 0.0}, {"rmse": 0.0}, changes={"rmse": {"relative": 0.0}}, primary="rmse").promote


def test_the_default_change_rule_is_primary_metric_not_worse():
    better = gate({"roc_auc": 0.81}, {"roc_auc": 0.80})
    same = gate({"roc_auc": 0.80}, {"roc_auc": 0.80})
    worse = gate({"roc_auc": 0.7999}, {"roc_auc": 0.80})
    assert better.promote
    assert same.promote
    assert not worse.promote
    [rule] = worse.rules[-1:]
    assert (rule.rule, rule.metric, rule.threshold) == ("change_absolute", "roc_auc", ">= +0")
    assert rule.observed == pytest.approx(-0.0001)
    assert "roc_auc" in worse.reasons[0]


def test_the_default_change_rule_follows_a_lower_is_better_primary_metric():
    assert gate({"rmse": 9.0}, {"rmse": 10.0}, primary="rmse").promote
    assert not gate({"rmse": 11.0}, {"rmse": 10.0}, primary="rmse").promote


def test_configured_change_thresholds_replace_the_default():
    # a configured accuracy rule: roc_auc may then get worse
    decision = gate(
        {"roc_auc": 0.70, "accuracy": 0.9},
        {"roc_auc": 0.80, "accuracy": 0.8},
        changes={"accuracy": {"absolute": 0}},
    )
    assert decision.promote
    assert [r.metric for r in decision.rules if r.rule.startswith("change_")] == ["accuracy"]


def test_value_and_change_rules_both_apply_with_a_champion():
    decision = gate(
        {"roc_auc": 0.82},
        {"roc_auc": 0.80},
        thresholds={"roc_auc": {"lower": 0.85}},
        changes={"roc_auc": {"absolute": 0}},
    )
    assert [(r.rule, r.verdict) for r in decision.rules] == [("value", "fail"), ("change_absolute", "pass")]
    assert not decision.promote


# -- fail closed ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("challenger", "champion", "missing"),
    [
        ({"accuracy": 0.9}, None, "roc_auc"),  # primary metric missing, no champion
        ({"roc_auc": NAN}, None, "roc_auc"),
        ({"roc_auc": math.inf}, None, "roc_auc"),
        ({"roc_auc": 0.9}, None, "accuracy"),  # a thresholded metric missing
        ({"roc_auc": 0.9, "accuracy": NAN}, None, "accuracy"),
        ({"roc_auc": NAN}, {"roc_auc": 0.8}, "roc_auc"),
        ({"roc_auc": 0.9, "accuracy": 0.9}, {"roc_auc": 0.8}, "log_loss"),  # missing on both sides
        (
            {"roc_auc": 0.9, "accuracy": 0.9, "log_loss": 0.3},
            {"roc_auc": 0.8},
            "log_loss",
        ),  # champion lacks it
    ],
    ids=[
        "primary-missing",
        "primary-nan",
        "primary-inf",
        "threshold-missing",
        "threshold-nan",
        "nan-with-champion",
        "change-metric-missing",
        "change-metric-missing-for-champion",
    ],
)
def test_a_missing_or_nan_metric_fails_closed(challenger, champion, missing):
    changes = {"log_loss": {"absolute": 0.0}} if missing == "log_loss" else None
    decision = gate(challenger, champion, thresholds={"accuracy": {"lower": 0.5}}, changes=changes)
    assert decision.promote is False
    assert decision.status == "reject"
    bad = [r for r in failed(decision) if r.metric == missing]
    assert bad, decision.rules
    assert all(r.observed is None for r in bad)
    assert any(missing in reason and "fail closed" in reason for reason in decision.reasons)


def test_an_evaluation_error_rejects_with_the_error():
    decision = gate({"roc_auc": 0.99}, {"roc_auc": 0.5}, error="ValueError: the holdout has one class")
    assert not decision.promote
    assert [r.rule for r in decision.rules] == ["evaluation_error"]
    assert decision.rules[0].verdict == "fail"
    assert any("ValueError: the holdout has one class" in r for r in decision.reasons)


def test_no_metrics_at_all_rejects():
    decision = gate(None, {"roc_auc": 0.5})
    assert not decision.promote
    assert "no metrics" in decision.reasons[0]


# -- no baseline ---------------------------------------------------------------------------------


def test_no_champion_means_value_rules_only_and_no_baseline():
    decision = gate(
        {"roc_auc": 0.75},
        None,
        thresholds={"roc_auc": {"lower": 0.7}},
        changes={"roc_auc": {"absolute": 0.1}},
    )
    assert decision.promote
    assert {r.rule for r in decision.rules} == {"value"}
    assert decision.baseline_version is None
    assert decision.no_baseline is True
    assert decision.champion_metrics is None
    assert any("no baseline" in r for r in decision.reasons)


def test_no_champion_and_a_failing_value_rule_still_rejects():
    decision = gate({"roc_auc": 0.6}, None, thresholds={"roc_auc": {"lower": 0.7}})
    assert not decision.promote
    assert decision.to_dict()["no_baseline"] is True


def test_with_a_champion_there_is_a_baseline():
    decision = gate({"roc_auc": 0.9}, {"roc_auc": 0.8})
    assert decision.no_baseline is False
    assert decision.baseline_version == "1"
    assert "no worse than champion v1" in decision.reasons[0]


# -- the decision document ----------------------------------------------------------------------


def test_the_decision_is_a_json_document():
    decision = gate(
        {"roc_auc": 0.81, "accuracy": 0.7},
        {"roc_auc": 0.8, "accuracy": 0.75},
        thresholds={"accuracy": {"lower": 0.72}},
        changes={"roc_auc": {"absolute": 0.0, "relative": 0.0}},
    )
    doc = json.loads(json.dumps(decision.to_dict()))
    assert doc["status"] == "reject"
    assert doc["promote"] is False
    assert doc["no_baseline"] is False
    assert doc["primary_metric"] == "roc_auc"
    assert [r["rule"] for r in doc["rules"]] == ["value", "change_absolute", "change_relative"]
    assert set(doc["rules"][0]) == {"rule", "metric", "slice", "observed", "threshold", "verdict", "message"}
    assert doc["reasons"]
    assert "accuracy" in doc["reasons"][0]
    assert doc["challenger_metrics"] == {"roc_auc": 0.81, "accuracy": 0.7}


def test_a_decision_with_a_nan_metric_is_strict_json():
    decision = gate({"roc_auc": NAN}, {"roc_auc": 0.8})
    json.dumps(decision.to_dict(), allow_nan=False)


def test_metric_directions():
    assert higher_is_better("roc_auc")
    assert higher_is_better("r2")
    assert not higher_is_better("rmse")
    assert not higher_is_better("log_loss")
    assert higher_is_better("rmse", True)
    assert not higher_is_better("roc_auc", False)


# -- metrics -------------------------------------------------------------------------------------


def test_perfect_classification_metrics():
    y = np.array([0, 1, 1, 0, 1, 0])
    scores = {"pred": y.copy(), "proba": y.astype(float), "classes": np.array([0, 1])}
    m = compute_metrics("classification", y, scores)
    for name in ("roc_auc", "accuracy", "balanced_accuracy", "f1", "precision", "recall"):
        assert m[name] == pytest.approx(1.0), name
    assert m["log_loss"] < 1e-10
    assert m["brier"] == pytest.approx(0.0)


def test_inverted_classification_metrics():
    y = np.array([0, 1, 1, 0])
    scores = {"pred": 1 - y, "proba": (1 - y).astype(float), "classes": np.array([0, 1])}
    m = compute_metrics("classification", y, scores)
    assert m["roc_auc"] == 0.0
    assert m["accuracy"] == 0.0
    assert m["brier"] == pytest.approx(1.0)


def test_classification_metrics_with_text_labels():
    y = np.array(["stay", "leave", "leave", "stay"])
    scores = {
        "pred": y.copy(),
        "proba": np.array([0.9, 0.2, 0.3, 0.8]),
        "classes": np.array(["leave", "stay"]),
    }
    m = compute_metrics("classification", y, scores)
    assert m["accuracy"] == 1.0
    assert m["roc_auc"] == 1.0  # 'stay' is the positive class (classes_[1]) and scores highest


def test_a_one_class_holdout_has_no_roc_auc():
    y = np.array([1, 1, 1])
    m = compute_metrics(
        "classification", y, {"pred": y, "proba": np.array([0.9, 0.8, 0.7]), "classes": np.array([0, 1])}
    )
    assert "roc_auc" not in m
    assert m["accuracy"] == 1.0


def test_regression_metrics_on_known_values():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    pred = np.array([1.0, 2.0, 3.0, 6.0])
    m = compute_metrics("regression", y, {"pred": pred})
    assert m["mae"] == pytest.approx(0.5)
    assert m["rmse"] == pytest.approx(1.0)  # sqrt(4 / 4)
    assert m["r2"] == pytest.approx(1 - 4 / 5)  # SS_res 4, SS_tot 5
    perfect = compute_metrics("regression", y, {"pred": y})
    assert perfect == {"r2": 1.0, "rmse": 0.0, "mae": 0.0}
