"""The promotion gate as a rule table: value, change, bootstrap and slice rules; the decision
document and its HTML; metric sanity checks; permutation importance."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mlops_ops.config import METRIC_DIRECTIONS, EvaluationSpec
from mlops_ops.core.evaluation import (
    GateDecision,
    HoldoutPredictions,
    compute_metrics,
    decide,
    higher_is_better,
    metric_kernel,
    paired_bootstrap,
    permutation_importance_report,
)
from mlops_ops.core.reports import decision_html

NAN = float("nan")


def gate(
    challenger,
    champion=None,
    *,
    thresholds=None,
    changes=None,
    primary="roc_auc",
    bootstrap=None,
    slices=None,
    **kwargs,
) -> GateDecision:
    """The gate on metrics alone; the bootstrap is off unless given (it needs predictions)."""
    evaluation = {
        "primary_metric": primary,
        "thresholds": thresholds or {},
        "change_thresholds": changes or {},
        "bootstrap": bootstrap or {"enabled": False},
        "slices": slices or [],
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


@pytest.mark.parametrize(
    ("metric", "value", "bounds", "promote"),
    [
        # value thresholds are bounds: the same for lower-is-better metrics
        ("log_loss", 0.40, {"upper": 0.5}, True),
        ("log_loss", 0.55, {"upper": 0.5}, False),
        ("rmse", 3.0, {"upper": 3.0}, True),
        ("rmse", 3.01, {"upper": 3.0}, False),
        ("brier", 0.01, {"lower": 0.02, "upper": 0.3}, False),
        ("mae", 0.0, {"upper": 1.0}, True),
        ("r2", -0.5, {"lower": 0.0}, False),
        ("r2", 0.0, {"lower": 0.0}, True),
    ],
)
def test_value_thresholds_of_lower_is_better_and_regression_metrics(metric, value, bounds, promote):
    decision = gate({metric: value}, thresholds={metric: bounds}, primary=metric)
    assert decision.promote is promote
    [rule] = decision.rules
    assert (rule.rule, rule.metric, rule.observed) == ("value", metric, value)


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
    # every other metric, in its own direction
    ("accuracy", 0.91, 0.90, {"absolute": 0.0}, True),
    ("accuracy", 0.89, 0.90, {"absolute": 0.0}, False),
    ("balanced_accuracy", 0.80, 0.78, {"relative": 0.02}, True),
    ("f1", 0.60, 0.62, {"absolute": -0.01}, False),
    ("precision", 0.70, 0.70, {"relative": 0.0}, True),
    ("recall", 0.50, 0.55, {"relative": -0.05}, False),
    ("brier", 0.18, 0.20, {"absolute": 0.01}, True),
    ("brier", 0.20, 0.18, {"absolute": -0.01}, False),
    ("mae", 2.0, 2.5, {"relative": 0.1}, True),
    ("mae", 2.4, 2.5, {"relative": 0.1}, False),
    ("r2", 0.6, 0.5, {"absolute": 0.05, "relative": 0.1}, True),
    ("r2", 0.52, 0.5, {"absolute": 0.05}, False),
    # a negative champion value: relative gain is scaled by |champion|
    ("r2", -0.1, -0.2, {"relative": 0.4}, True),
    ("r2", -0.3, -0.2, {"relative": -0.25}, False),
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
    hib = threshold.get("higher_is_better", METRIC_DIRECTIONS[metric])
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


# -- the bootstrap rule ---------------------------------------------------------------------------


def _labels(n=600, seed=0):
    return np.random.default_rng(seed).binomial(1, 0.4, n)


def clf(y, separation, seed):
    """Classifier scores: larger ``separation`` means a better model."""
    rng = np.random.default_rng(seed)
    proba = 1 / (1 + np.exp(-(separation * (2 * y - 1) + rng.normal(size=len(y)))))
    return {"pred": (proba >= 0.5).astype(int), "proba": proba, "classes": np.array([0, 1])}


def reg(y, noise, seed):
    return {"pred": y + np.random.default_rng(seed).normal(scale=noise, size=len(y))}


def holdout_gate(
    y, new, old, *, task="classification", primary="roc_auc", bootstrap=None, slices=None, columns=None, **kw
):
    evaluation = {
        "primary_metric": primary,
        "bootstrap": {"resamples": 400, **(bootstrap or {})},
        "slices": slices or [],
        **kw,
    }
    return decide(
        evaluation=evaluation,
        challenger_version="2",
        baseline_version="1" if old is not None else None,
        holdout=HoldoutPredictions(task, y, new, old, columns or {}),
    )


def boot_rule(decision):
    return [r for r in decision.rules if r.rule.startswith("bootstrap_")]


# (require, margin, challenger separation, champion separation, verdict)
BOOTSTRAP_RULES = [
    ("non_inferiority", 0.01, 2.0, 0.5, "pass"),  # clearly better
    ("non_inferiority", 0.01, 0.5, 2.0, "fail"),  # clearly worse
    ("non_inferiority", 0.01, "same", None, "pass"),  # identical: lower bound 0 > -0.01
    ("non_inferiority", 0.0, "same", None, "fail"),  # margin 0: the same as superiority
    ("non_inferiority", 0.5, 0.5, 2.0, "pass"),  # worse, but within a huge margin
    ("superiority", 0.0, 2.0, 0.5, "pass"),
    ("superiority", 0.0, "same", None, "fail"),  # a tie is not better
    ("superiority", 0.0, 0.5, 2.0, "fail"),
    ("superiority", 0.5, 2.0, 0.5, "fail"),  # better, but not by the margin
]


@pytest.mark.parametrize(("require", "margin", "new_sep", "old_sep", "verdict"), BOOTSTRAP_RULES)
@pytest.mark.parametrize("metric", ["roc_auc", "log_loss"])
def test_bootstrap_requirement(require, margin, new_sep, old_sep, verdict, metric):
    y = _labels()
    new = clf(y, 2.0 if new_sep == "same" else new_sep, seed=1)
    old = new if new_sep == "same" else clf(y, old_sep, seed=2)
    decision = holdout_gate(
        y, new, old, primary=metric, bootstrap={"require": require, "margin": margin}, change_thresholds={}
    )
    [rule] = boot_rule(decision)
    boot = decision.bootstrap
    assert rule.rule == f"bootstrap_{require}"
    assert rule.verdict == verdict, rule.message
    assert boot["status"] == verdict
    assert rule.observed == boot["lower"]
    limit = -margin if require == "non_inferiority" else margin
    assert boot["threshold"] == limit
    assert (boot["lower"] > limit) is (verdict == "pass")
    assert boot["lower"] <= boot["estimate"] <= boot["upper"]
    # the estimate is the sign-adjusted difference of the metrics on the whole holdout
    sign = 1 if METRIC_DIRECTIONS[metric] else -1
    diff = sign * (decision.challenger_metrics[metric] - decision.champion_metrics[metric])
    assert boot["estimate"] == pytest.approx(diff, abs=1e-12)
    assert (boot["resamples"], boot["confidence"], boot["require"]) == (400, 0.95, require)
    if verdict == "fail":
        assert rule.message in decision.reasons
        assert not decision.promote


def test_a_clearly_better_lower_is_better_challenger_has_a_positive_difference():
    y = np.random.default_rng(0).normal(size=800)
    decision = holdout_gate(
        y,
        reg(y, 0.5, 1),
        reg(y, 1.0, 2),
        task="regression",
        primary="rmse",
        bootstrap={"require": "superiority"},
    )
    boot = decision.bootstrap
    assert boot["higher_is_better"] is False
    assert boot["challenger"] < boot["champion"]  # smaller rmse ...
    assert boot["estimate"] > 0
    assert boot["lower"] > 0
    assert decision.promote


@pytest.mark.parametrize("metric", sorted(METRIC_DIRECTIONS))
def test_every_metric_is_bootstrapped(metric):
    task = "regression" if metric in ("r2", "rmse", "mae") else "classification"
    if task == "regression":
        y = np.random.default_rng(0).normal(size=800)
        new, old = reg(y, 0.3, 1), reg(y, 1.5, 2)
    else:
        y = _labels(800)
        new, old = clf(y, 2.5, 1), clf(y, 0.2, 2)
    decision = holdout_gate(y, new, old, task=task, primary=metric, bootstrap={"require": "superiority"})
    [rule] = boot_rule(decision)
    assert rule.verdict == "pass", rule.message
    assert decision.bootstrap["metric"] == metric
    assert decision.bootstrap["valid_resamples"] == 400


@pytest.mark.parametrize("metric", sorted(METRIC_DIRECTIONS))
def test_the_resample_kernels_equal_scikit_learn_with_sample_weights(metric):
    from sklearn import metrics as m

    rng = np.random.default_rng(3)
    weights = rng.integers(0, 4, size=(4, 500)).astype(float)
    if metric in ("r2", "rmse", "mae"):
        y = rng.normal(size=500)
        scores = reg(y, 0.7, 4)
        ref = {
            "r2": lambda w: m.r2_score(y, scores["pred"], sample_weight=w),
            "rmse": lambda w: math.sqrt(m.mean_squared_error(y, scores["pred"], sample_weight=w)),
            "mae": lambda w: m.mean_absolute_error(y, scores["pred"], sample_weight=w),
        }[metric]
        task = "regression"
    else:
        y = _labels(500)
        scores = clf(y, 1.0, 4)
        scores["proba"] = np.round(scores["proba"], 2)  # ties, which the AUC counts as one half
        p, pred = scores["proba"], scores["pred"]
        ref = {
            "roc_auc": lambda w: m.roc_auc_score(y, p, sample_weight=w),
            "accuracy": lambda w: m.accuracy_score(y, pred, sample_weight=w),
            "balanced_accuracy": lambda w: m.balanced_accuracy_score(y, pred, sample_weight=w),
            "f1": lambda w: m.f1_score(y, pred, sample_weight=w),
            "precision": lambda w: m.precision_score(y, pred, sample_weight=w),
            "recall": lambda w: m.recall_score(y, pred, sample_weight=w),
            "log_loss": lambda w: m.log_loss(y, p, sample_weight=w),
            "brier": lambda w: m.brier_score_loss(y, p, sample_weight=w),
        }[metric]
        task = "classification"
    got = metric_kernel(metric, task, y, scores)(weights)
    assert got == pytest.approx([ref(w) for w in weights], abs=1e-12)


def test_text_labels_use_the_models_positive_class():
    y = np.where(_labels(), "leave", "stay")
    scores = clf((y == "stay").astype(int), 1.5, 1)
    scores["pred"] = np.where(scores["pred"] == 1, "stay", "leave")
    scores["classes"] = np.array(["leave", "stay"])
    full = compute_metrics("classification", y, scores)
    for metric in ("roc_auc", "f1", "log_loss"):
        assert metric_kernel(metric, "classification", y, scores)(np.ones((1, len(y))))[0] == pytest.approx(
            full[metric]
        )


def test_the_bootstrap_is_seeded():
    y = _labels()
    new, old = clf(y, 1.0, 1), clf(y, 0.9, 2)
    a = paired_bootstrap("roc_auc", "classification", y, new, old, resamples=300, seed=7)
    b = paired_bootstrap("roc_auc", "classification", y, new, old, resamples=300, seed=7)
    c = paired_bootstrap("roc_auc", "classification", y, new, old, resamples=300, seed=8)
    assert (a.lower, a.upper) == (b.lower, b.upper)
    assert (a.lower, a.upper) != (c.lower, c.upper)
    # chunking does not change the draws
    d = paired_bootstrap("roc_auc", "classification", y, new, old, resamples=300, seed=7, max_cells=7000)
    assert (a.lower, a.upper) == (d.lower, d.upper)


def test_a_higher_confidence_gives_a_wider_interval():
    y = _labels()
    new, old = clf(y, 1.0, 1), clf(y, 0.9, 2)
    narrow = paired_bootstrap("roc_auc", "classification", y, new, old, confidence=0.8)
    wide = paired_bootstrap("roc_auc", "classification", y, new, old, confidence=0.99)
    assert wide.lower < narrow.lower < narrow.upper < wide.upper


def test_the_bootstrap_metric_can_differ_from_the_primary_metric():
    y = _labels()
    decision = holdout_gate(y, clf(y, 2.0, 1), clf(y, 0.5, 2), bootstrap={"metric": "brier"})
    [rule] = boot_rule(decision)
    assert rule.metric == "brier"
    assert decision.bootstrap["higher_is_better"] is False


def test_a_direction_override_applies_to_the_bootstrap():
    y = _labels()
    decision = holdout_gate(
        y,
        clf(y, 2.0, 1),
        clf(y, 0.5, 2),
        bootstrap={"require": "superiority", "margin": 0.0},
        change_thresholds={"roc_auc": {"absolute": -1.0, "higher_is_better": False}},
    )
    assert decision.bootstrap["higher_is_better"] is False
    assert decision.bootstrap["estimate"] < 0
    assert boot_rule(decision)[0].verdict == "fail"


def test_no_champion_means_no_bootstrap_rule_and_no_baseline():
    y = _labels()
    decision = holdout_gate(y, clf(y, 2.0, 1), None)
    assert boot_rule(decision) == []
    assert decision.bootstrap["status"] == "no_baseline"
    assert "no baseline" in decision.bootstrap["message"]
    assert decision.promote
    assert decision.no_baseline
    assert decision.champion_metrics is None


def test_a_disabled_bootstrap_is_recorded():
    y = _labels()
    decision = holdout_gate(y, clf(y, 2.0, 1), clf(y, 0.5, 2), bootstrap={"enabled": False})
    assert boot_rule(decision) == []
    assert decision.bootstrap == {"status": "disabled"}


@pytest.mark.parametrize(
    ("new", "old", "reason"),
    [
        # the champion has no predict_proba: no AUC to compare
        ({"proba": None}, {}, "needs predicted probabilities"),
        ({}, {"proba": None}, "needs predicted probabilities"),
        ({"classes": np.array(["a", "b"])}, {}, "classes differ"),
    ],
    ids=["challenger-without-proba", "champion-without-proba", "different-classes"],
)
def test_a_bootstrap_that_cannot_be_computed_fails_closed(new, old, reason):
    y = _labels()
    a, b = clf(y, 2.0, 1), clf(y, 0.5, 2)
    a = {k: v for k, v in {**a, **new}.items() if v is not None}
    b = {k: v for k, v in {**b, **old}.items() if v is not None}
    decision = holdout_gate(y, a, b, change_thresholds={"accuracy": {"absolute": -1}})
    [rule] = boot_rule(decision)
    assert rule.verdict == "fail"
    assert rule.observed is None
    assert reason in rule.message
    assert "fail closed" in rule.message
    assert decision.bootstrap["status"] == "error"
    assert not decision.promote


def test_a_tiny_holdout_fails_the_bootstrap_closed():
    y = np.array([1, 0, 0, 0, 0, 0])
    new = {"pred": y, "proba": np.linspace(0.9, 0.1, 6), "classes": np.array([0, 1])}
    decision = holdout_gate(y, new, new)
    [rule] = boot_rule(decision)
    assert rule.verdict == "fail"
    assert "one class only" in rule.message
    assert "too small" in rule.message


def test_metrics_alone_cannot_satisfy_an_enabled_bootstrap():
    decision = gate({"roc_auc": 0.9}, {"roc_auc": 0.8}, bootstrap={"enabled": True})
    [rule] = boot_rule(decision)
    assert rule.verdict == "fail"
    assert "predictions" in rule.message
    assert not decision.promote


def test_the_bootstrap_is_fast_enough():
    import time

    y = _labels(5000)
    new, old = clf(y, 1.0, 1), clf(y, 0.9, 2)
    started = time.perf_counter()
    paired_bootstrap("roc_auc", "classification", y, new, old, resamples=1000)
    assert time.perf_counter() - started < 5.0  # ~0.3 s measured on 2 cores


# -- slices ---------------------------------------------------------------------------------------


def _sliced(n_a=400, n_b=20, n_c=120, seed=0):
    """Slice a: large, both classes; b: smaller than min_rows; c: one class only."""
    rng = np.random.default_rng(seed)
    y = np.r_[rng.binomial(1, 0.4, n_a), rng.binomial(1, 0.4, n_b), np.zeros(n_c, dtype=int)]
    col = np.array(["a"] * n_a + ["b"] * n_b + ["c"] * n_c, dtype=object)
    return y, col


def test_slices_gate_each_value_and_skip_small_or_one_class_slices():
    y, col = _sliced()
    new, old = clf(y, 2.0, 1), clf(y, 1.0, 2)
    decision = holdout_gate(
        y,
        new,
        old,
        slices=[{"column": "contract", "min_rows": 50}],
        columns={"contract": col},
        thresholds={"roc_auc": {"lower": 0.6}, "accuracy": {"lower": 0.5}},
        change_thresholds={"roc_auc": {"absolute": 0.0}},
    )
    by_slice = {}
    for r in decision.rules:
        by_slice.setdefault(r.slice, []).append((r.rule, r.metric, r.verdict))
    assert by_slice["contract=a"] == [
        ("value", "roc_auc", "pass"),
        ("value", "accuracy", "pass"),
        ("change_absolute", "roc_auc", "pass"),
    ]
    assert by_slice["contract=b"] == [("slice_size", "rows", "skip")]
    assert sorted(by_slice["contract=c"]) == [
        ("change_absolute", "roc_auc", "skip"),
        ("value", "accuracy", "pass"),
        ("value", "roc_auc", "skip"),
    ]
    assert decision.promote, decision.reasons
    assert "skipped" in decision.reasons[0]
    table = {s["slice"]: s for s in decision.slices}
    assert (table["contract=a"]["rows"], table["contract=a"]["status"]) == (400, "gated")
    assert (table["contract=b"]["rows"], table["contract=b"]["status"]) == (20, "skipped")
    assert table["contract=b"]["challenger_metrics"]["accuracy"] >= 0  # reported, not gated
    assert "one class" in table["contract=c"]["note"]
    [size] = [r for r in decision.rules if r.rule == "slice_size"]
    assert size.observed == 20
    assert size.threshold == ">= 50"
    assert "fewer than min_rows 50" in size.message


def test_a_slice_that_fails_rejects_and_names_the_slice():
    rng = np.random.default_rng(5)
    y = rng.binomial(1, 0.4, 800)
    col = np.array(["good", "bad"] * 400, dtype=object)
    new, old = clf(y, 2.0, 1), clf(y, 2.0, 1)
    bad = col == "bad"
    new["proba"] = np.where(bad, rng.random(800), new["proba"])  # the challenger guesses on "bad"
    decision = holdout_gate(
        y, new, old, slices=[{"column": "segment"}], columns={"segment": col}, bootstrap={"enabled": False}
    )
    failed_rules = failed(decision)
    assert [(r.slice, r.rule, r.metric) for r in failed_rules] == [
        ("all", "change_absolute", "roc_auc"),
        ("segment=bad", "change_absolute", "roc_auc"),
    ]
    assert any(r.startswith("[segment=bad] roc_auc") for r in decision.reasons)
    good = [r for r in decision.rules if r.slice == "segment=good"]
    assert [r.verdict for r in good] == ["pass"]  # equal there: the default "not worse" rule


def test_listed_slice_values_missing_values_and_numbers():
    y = _labels(300)
    col = np.array([1, 2, None] * 100, dtype=object)
    decision = holdout_gate(
        y,
        clf(y, 2.0, 1),
        None,
        slices=[{"column": "calls", "values": ["1", "7"], "min_rows": 10}],
        columns={"calls": col},
        thresholds={"roc_auc": {"lower": 0.5}},
    )
    table = {s["slice"]: s for s in decision.slices}
    assert set(table) == {"calls=1", "calls=7"}  # only the listed values; missing is no slice
    assert table["calls=1"]["rows"] == 100
    assert table["calls=7"]["rows"] == 0
    assert table["calls=7"]["status"] == "skipped"
    assert table["calls=1"]["champion_metrics"] is None  # no champion: value rules only
    assert [r.rule for r in decision.rules if r.slice == "calls=1"] == ["value"]


def test_all_values_of_a_slice_column_by_default():
    y = _labels(300)
    col = np.array(["x", "y", "z"] * 100, dtype=object)
    decision = holdout_gate(
        y, clf(y, 2.0, 1), None, slices=[{"column": "c", "min_rows": 10}], columns={"c": col}
    )
    assert [s["slice"] for s in decision.slices] == ["c=x", "c=y", "c=z"]


def test_a_regression_slice_with_a_constant_target_skips_r2():
    y = np.r_[np.random.default_rng(0).normal(size=200), np.full(60, 3.0)]
    col = np.array(["var"] * 200 + ["flat"] * 60, dtype=object)
    new = reg(y, 0.2, 1)
    decision = holdout_gate(
        y,
        new,
        new,
        task="regression",
        primary="r2",
        slices=[{"column": "s"}],
        columns={"s": col},
        bootstrap={"enabled": False},
        thresholds={"r2": {"lower": 0.5}, "rmse": {"upper": 1.0}},
    )
    flat = {(r.rule, r.metric): r.verdict for r in decision.rules if r.slice == "s=flat"}
    assert flat == {("value", "r2"): "skip", ("value", "rmse"): "pass", ("change_absolute", "r2"): "skip"}


def test_a_slice_column_that_is_not_given_fails_closed():
    y = _labels(100)
    decision = holdout_gate(y, clf(y, 2.0, 1), None, slices=[{"column": "region"}], columns={})
    [rule] = [r for r in decision.rules if r.rule == "slices"]
    assert rule.verdict == "fail"
    assert "region" in rule.message
    assert "evaluation.slices" in rule.message
    assert not decision.promote


def test_slices_without_predictions_fail_closed():
    decision = gate({"roc_auc": 0.9}, None, slices=[{"column": "region"}])
    assert not decision.promote
    assert "no holdout predictions" in decision.reasons[0]


# -- evaluation errors with predictions -------------------------------------------------------------


@pytest.mark.parametrize(
    "broken",
    [
        {"pred": np.zeros(49, dtype=int), "proba": np.zeros(49), "classes": np.array([0, 1])},
        {"pred": np.zeros(50, dtype=int), "proba": np.full(50, np.nan), "classes": np.array([0, 1])},
    ],
    ids=["wrong-length", "nan-probabilities"],
)
def test_predictions_that_break_the_metrics_fail_closed(broken):
    y = _labels(50)
    decision = holdout_gate(y, broken, clf(y, 1.0, 0))
    assert [r.rule for r in decision.rules] == ["evaluation_error"]
    assert "could not be computed" in decision.reasons[0]
    assert not decision.promote


def test_metrics_and_predictions_are_not_both_accepted():
    y = _labels(50)
    with pytest.raises(ValueError, match="not both"):
        decide(
            challenger_metrics={"roc_auc": 0.9},
            evaluation={},
            challenger_version="1",
            baseline_version=None,
            holdout=HoldoutPredictions("classification", y, clf(y, 1.0, 0)),
        )


# -- the document and its HTML ------------------------------------------------------------------


def _full_decision():
    y, col = _sliced()
    col = col.copy()
    col[col == "a"] = "<b>a&b</b>"
    new, old = clf(y, 2.0, 1), clf(y, 1.0, 2)
    importance = {
        "metric": "roc_auc",
        "rows": 540,
        "n_repeats": 5,
        "baseline": 0.9,
        "features": [
            {"feature": "tenure<script>", "importance": 0.12, "std": 0.01},
            {"feature": "noise", "importance": -0.002, "std": 0.001},
        ],
    }
    decision = decide(
        evaluation={"slices": [{"column": "contract"}], "thresholds": {"roc_auc": {"lower": 0.6}}},
        challenger_version="2",
        baseline_version="1",
        holdout=HoldoutPredictions("classification", y, new, old, {"contract": col}),
        importance=importance,
    )
    return decision


def test_the_full_decision_is_strict_json_with_its_new_parts():
    doc = json.loads(json.dumps(_full_decision().to_dict(), allow_nan=False))
    boot = doc["bootstrap"]
    assert {"metric", "estimate", "lower", "upper", "confidence", "resamples", "require", "margin"} <= set(
        boot
    )
    assert boot["status"] in ("pass", "fail")
    assert {s["slice"] for s in doc["slices"]} == {"contract=<b>a&b</b>", "contract=b", "contract=c"}
    assert doc["importance"]["features"][0]["feature"] == "tenure<script>"
    assert {r["verdict"] for r in doc["rules"]} == {"pass", "skip"}
    for key in ("promote", "challenger_version", "baseline_version", "reasons", "status", "champion_metrics"):
        assert key in doc


def test_the_decision_html_shows_every_part_escaped():
    doc = {**_full_decision().to_dict(), "holdout_rows": 540, "snapshot_sha256": "abc"}
    page = decision_html(doc, "Gate <decision>")
    assert "<title>Gate &lt;decision&gt;</title>" in page
    assert "<b>a&b</b>" not in page
    assert "&lt;b&gt;a&amp;b&lt;/b&gt;" in page
    assert "<script>" not in page
    assert "tenure&lt;script&gt;" in page
    for part in ("Rules", "Evidence: paired bootstrap", "Slices", "Permutation importance"):
        assert f"<h2>{part}</h2>" in page, part
    assert "<svg" in page
    assert "threshold -0.01" in page
    assert "badge ok'>pass<" in page
    assert "badge info'>skip<" in page
    assert f"{doc['bootstrap']['lower']:+.4f}" in page
    assert "http" not in page.replace("http://www.w3.org/2000/svg", "")  # self-contained


def test_the_html_of_a_decision_without_baseline_or_extras():
    decision = gate({"roc_auc": 0.9}, None, bootstrap={"enabled": True})
    page = decision_html(decision.to_dict(), "t")
    assert "no baseline" in page
    assert "<svg" not in page
    assert "<h2>Slices</h2>" not in page


# -- permutation importance -----------------------------------------------------------------------


def _fitted(task="classification", n=1500, seed=0):
    import pandas as pd
    from sklearn.linear_model import LinearRegression, LogisticRegression

    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"signal": rng.normal(size=n), "weak": rng.normal(size=n), "noise": rng.normal(size=n)})
    latent = 2.0 * x["signal"] + 0.4 * x["weak"]
    if task == "classification":
        y = (latent + rng.normal(size=n) > 0).astype(int).to_numpy()
        return LogisticRegression().fit(x, y), x, y
    y = (latent + rng.normal(size=n)).to_numpy()
    return LinearRegression().fit(x, y), x, y


@pytest.mark.parametrize(
    ("task", "metric"),
    [("classification", "roc_auc"), ("classification", "log_loss"), ("regression", "rmse")],
)
def test_permutation_importance_ranks_the_signal_first(task, metric):
    model, x, y = _fitted(task)
    report = permutation_importance_report(model, x, y, task=task, metric=metric, seed=0)
    names = [f["feature"] for f in report["features"]]
    assert names == ["signal", "weak", "noise"]
    by_name = {f["feature"]: f for f in report["features"]}
    assert by_name["signal"]["importance"] > 0.05  # shuffling it costs (for a loss: raises it)
    assert abs(by_name["noise"]["importance"]) < 0.01
    assert report["metric"] == metric
    assert report["n_repeats"] == 5
    assert report["rows"] == len(y)
    again = permutation_importance_report(model, x, y, task=task, metric=metric, seed=0)
    assert again == report  # seeded


def test_permutation_importance_subsamples_the_holdout():
    model, x, y = _fitted(n=3000)
    report = permutation_importance_report(
        model, x, y, task="classification", metric="accuracy", max_rows=500
    )
    assert (report["rows"], report["holdout_rows"]) == (500, 3000)


# -- re-evaluating the serving version -----------------------------------------------------------


@pytest.mark.parametrize("good", [True, False])
def test_the_serving_version_against_itself_is_never_promoted_and_its_rules_still_run(good):
    metrics = {"roc_auc": 0.9 if good else 0.4}
    decision = decide(
        challenger_metrics=metrics,
        evaluation={"primary_metric": "roc_auc", "thresholds": {"roc_auc": {"lower": 0.7}}},
        challenger_version="3",
        baseline_version="3",
    )
    assert decision.promote is False
    assert decision.baseline_version == "3"  # recorded: the champion it was compared with
    assert decision.reasons == ["v3 is already the champion: nothing to deploy"]
    assert decision.champion_metrics is None  # compared as a first model: no change rules
    assert [r.verdict for r in decision.rules if r.rule == "value"] == (["pass"] if good else ["fail"])
    assert decision.bootstrap == {"status": "disabled"} or decision.bootstrap["status"] == "no_baseline"
