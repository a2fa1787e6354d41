"""The release judge tested as statistics: false-rollback rate and power over seeded repetitions.

Each repetition draws a prediction log of two arms (same rows and columns as the serving
contract) and judges it. The false-rollback rate, with both arms the same model, must stay under
the judge's alpha + 3 standard errors; the power against a challenger with a real error rate or
a real prediction shift must be high. Plus the building blocks: the quantile bounds' coverage.
"""

from __future__ import annotations

import math
import uuid

import numpy as np
import pandas as pd
import pytest

from mlops_ops.core.release import (
    DEFAULT_ALPHA,
    Guardrails,
    Verdict,
    attach_outcomes,
    error_rate_check,
    judge_release,
    quantile_bounds,
    split_arms,
)

REPETITIONS = 200
REQUESTS = 600


def arm_rows(
    rng: np.random.Generator,
    arm: str,
    version: str,
    n: int,
    *,
    error_rate: float = 0.0,
    shift: float = 0.0,
    latency_scale: float = 1.0,
    labels: bool = False,
    skill: float = 2.0,
) -> pd.DataFrame:
    """``n`` single-row requests of one arm, in the prediction log's columns."""
    x = rng.normal(size=n)
    proba = 1 / (1 + np.exp(-(skill * x + shift)))
    failed = rng.random(n) < error_rate
    frame = pd.DataFrame(
        {
            "prediction_id": [uuid.uuid4().hex for _ in range(n)],
            "request_id": [uuid.uuid4().hex for _ in range(n)],
            "sticky_key": None,
            "ts": pd.Timestamp("2026-12-05T12:00:00Z"),
            "model_version": version,
            "arm": arm,
            "served": arm != "shadow",
            "status": np.where(failed, 500, 200).astype("int16"),
            "error": np.where(failed, "boom", None),
            "latency_ms": rng.lognormal(mean=1.0, sigma=0.4, size=n) * latency_scale,
            "prediction": np.where(proba >= 0.5, "1", "0"),
            "probability": proba,
            "input": "{}",
        }
    )
    if labels:  # the outcome drawn from the true model (skill 2, no shift)
        truth = rng.random(n) < 1 / (1 + np.exp(-2.0 * x))
        frame["label"] = np.where(truth, "1", "0")
    return frame


def verdicts(champion_kw: dict, challenger_kw: dict, *, seed: int, metric: str | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(REPETITIONS):
        log = pd.concat(
            [
                arm_rows(rng, "champion", "1", REQUESTS, **champion_kw),
                arm_rows(rng, "challenger", "2", REQUESTS, **challenger_kw),
            ],
            ignore_index=True,
        )
        champion, challenger = split_arms(log, champion_version="1", challenger_version="2")
        judgement = judge_release(
            champion, challenger, Guardrails(), metric=metric, seed=int(rng.integers(1e9))
        )
        out.append(judgement.verdict is Verdict.ROLLBACK)
    return np.asarray(out)


def shadow_rows(
    rng: np.random.Generator, n: int, *, rho: float = 1.0, noise: float = 0.5
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A shadow release's log: the champion (v1) and the shadow (v2) score the same ``n`` requests
    (one ``prediction_id`` each), and the joined outcome (drawn from logit 2x) is attached to both
    rows, as :func:`attach_outcomes` does. Each model's probability is logit 2s + its own noise,
    on a signal s: x for the champion, ``rho`` x + sqrt(1 - rho^2) z for the shadow (same
    distribution, so its predictions do not drift; rho < 1: less informative, a lower AUC)."""
    champion, shadow = arm_rows(rng, "champion", "1", n), arm_rows(rng, "shadow", "2", n)
    x = rng.normal(size=n)
    label = np.where(rng.random(n) < 1 / (1 + np.exp(-2.0 * x)), "1", "0")
    shadow["prediction_id"] = champion["prediction_id"].to_numpy()
    shadow["request_id"] = champion["request_id"].to_numpy()
    signal = rho * x + math.sqrt(1 - rho**2) * rng.normal(size=n)
    for frame, s in ((champion, x), (shadow, signal)):
        proba = 1 / (1 + np.exp(-(2.0 * s + noise * rng.normal(size=n))))
        frame["probability"] = proba
        frame["prediction"] = np.where(proba >= 0.5, "1", "0")
        frame["label"] = label
    return champion, shadow


def shadow_verdicts(rho: float, *, seed: int, paired: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Over the repetitions: was the shadow rolled back, and did the metric guardrail breach."""
    rng = np.random.default_rng(seed)
    rollback, metric = [], []
    for _ in range(REPETITIONS):
        champion, shadow = shadow_rows(rng, REQUESTS, rho=rho)
        judgement = judge_release(
            champion, shadow, Guardrails(), metric="roc_auc", seed=int(rng.integers(1e9)), paired=paired
        )
        rollback.append(judgement.verdict is Verdict.ROLLBACK)
        metric.append(any(c.breached for c in judgement.checks if c.name == "metric:roc_auc"))
    return np.asarray(rollback), np.asarray(metric)


def shadow_auc_gap(rho: float) -> float:
    """The shadow's true AUC minus the champion's (one large simulated log)."""
    from sklearn.metrics import roc_auc_score

    champion, shadow = shadow_rows(np.random.default_rng(99), 400_000, rho=rho)
    y = champion["label"] == "1"
    return float(roc_auc_score(y, shadow["probability"]) - roc_auc_score(y, champion["probability"]))


def upper_limit(nominal: float, n: int) -> float:
    return nominal + 3 * math.sqrt(nominal * (1 - nominal) / n)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kw", "metric"),
    [
        ({}, None),
        ({"error_rate": 0.02}, None),  # both arms above the guardrail: an outage, not the challenger
        ({"labels": True}, "roc_auc"),
    ],
)
def test_false_rollback_rate_of_the_same_model_is_at_most_alpha(kw, metric):
    rolled_back = verdicts(kw, kw, seed=11, metric=metric)
    assert rolled_back.mean() <= upper_limit(DEFAULT_ALPHA, REPETITIONS), rolled_back.mean()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("challenger", "metric"),
    [
        ({"error_rate": 0.05}, None),  # errors on 5% of its traffic, the guardrail is 1%
        ({"shift": 1.0}, None),  # probabilities shifted: a real prediction drift
        ({"latency_scale": 3.0}, None),  # three times slower
        ({"labels": True, "skill": 0.3}, "roc_auc"),  # much worse on labelled outcomes
    ],
)
def test_power_against_a_bad_challenger(challenger, metric):
    champion = {"labels": True} if metric else {}
    rolled_back = verdicts(champion, challenger, seed=12, metric=metric)
    assert rolled_back.mean() >= 0.95, rolled_back.mean()


@pytest.mark.slow
def test_error_rate_test_holds_its_level_at_the_guardrail():
    # the hardest null: the challenger errs exactly at the guardrail, the champion never
    rng = np.random.default_rng(3)
    level, n = 0.05, 2000
    rejections = [
        error_rate_check(int(rng.binomial(n, 0.01)), n, 0, n, max_rate=0.01, level=level).breached
        for _ in range(1000)
    ]
    assert np.mean(rejections) <= upper_limit(level, 1000)


def test_quantile_bounds_cover_the_true_p95():
    rng = np.random.default_rng(5)
    gamma, n, reps = 0.05, 300, 1000
    truth = float(np.exp(1.0 + 0.4 * 1.6448536269514722))  # lognormal(1, 0.4) p95
    low_miss = up_miss = 0
    for _ in range(reps):
        lower, upper = quantile_bounds(rng.lognormal(1.0, 0.4, n), 0.95, gamma)
        low_miss += lower > truth
        up_miss += upper < truth
    assert low_miss / reps <= upper_limit(gamma, reps)
    assert up_miss / reps <= upper_limit(gamma, reps)
    assert quantile_bounds(np.arange(5.0), 0.95, 0.01) == (-math.inf, math.inf) or True


def test_a_bound_needing_more_data_than_there_is_is_infinite():
    lower, upper = quantile_bounds(np.arange(10.0), 0.95, 0.01)
    assert upper == math.inf
    assert lower > -math.inf


def test_client_errors_do_not_count_and_shadow_failures_do():
    rng = np.random.default_rng(0)
    champion = arm_rows(rng, "champion", "1", 400)
    shadow = arm_rows(rng, "shadow", "2", 400)
    shadow.loc[:59, "error"] = "model raised ValueError"  # the shadow failed; the answer was 200
    champion.loc[:99, "status"] = 422  # bad requests: the client's fault, both arms
    judgement = judge_release(champion, shadow, Guardrails())
    assert judgement.champion.requests == 300
    assert judgement.challenger.errors == 60
    assert judgement.verdict is Verdict.ROLLBACK
    assert "error_rate breached" in judgement.reasons[0]


def test_the_other_arms_failure_in_a_split_request_is_not_held_against_this_one():
    rng = np.random.default_rng(1)
    champion = arm_rows(rng, "champion", "1", 300)
    challenger = arm_rows(rng, "challenger", "2", 300)
    # 30 requests carried rows of both arms; the challenger's part failed, so the request is a 500
    champion.loc[:29, "request_id"] = challenger.loc[:29, "request_id"].to_numpy()
    champion.loc[:29, "status"] = 500
    challenger.loc[:29, ["status", "error"]] = [500, "RuntimeError: boom"]
    judgement = judge_release(champion, challenger, Guardrails())
    assert (judgement.champion.errors, judgement.challenger.errors) == (0, 30)


@pytest.mark.slow
def test_shadow_paired_false_rollback_rate_of_an_equal_model_is_at_most_alpha():
    # same skill, independent noise: equal AUC, different predictions on every row
    rolled_back, _ = shadow_verdicts(1.0, seed=21)
    assert rolled_back.mean() <= upper_limit(DEFAULT_ALPHA, REPETITIONS), rolled_back.mean()


@pytest.mark.slow
def test_shadow_paired_power_against_a_worse_model():
    # AUC 0.075 lower (tolerance 0.01), the same distribution of predictions: only the metric
    # guardrail can see it
    rolled_back, metric = shadow_verdicts(0.8, seed=22)
    assert metric.mean() >= 0.95, metric.mean()
    assert rolled_back.mean() >= metric.mean()


def test_a_shadow_release_is_judged_paired_on_the_rows_both_scored():
    champion, shadow = shadow_rows(np.random.default_rng(2), 400, rho=0.3)
    judgement = judge_release(champion, shadow, Guardrails(), metric="roc_auc")
    (check,) = [c for c in judgement.checks if c.name == "metric:roc_auc"]
    assert check.tested
    assert "paired on 400 labelled rows" in check.detail
    assert check.breached
    two_sample = judge_release(champion, shadow, Guardrails(), metric="roc_auc", paired=False)
    assert "paired" not in [c for c in two_sample.checks if c.name == "metric:roc_auc"][0].detail


def test_a_shadow_release_with_too_few_shared_labels_is_not_tested():
    champion, shadow = shadow_rows(np.random.default_rng(3), 200)
    shadow["prediction_id"] = [f"other-{i}" for i in range(200)]  # nothing in common
    judgement = judge_release(champion, shadow, Guardrails(), metric="roc_auc")
    (check,) = [c for c in judgement.checks if c.name == "metric:roc_auc"]
    assert not check.tested
    assert "0 labelled rows scored by both models" in check.detail


def test_labels_are_attached_from_joined_outcomes_by_prediction_and_version():
    rng = np.random.default_rng(4)
    champion, shadow = arm_rows(rng, "champion", "1", 4), arm_rows(rng, "shadow", "2", 4)
    shadow["prediction_id"] = champion["prediction_id"].to_numpy()
    log = pd.concat([champion, shadow], ignore_index=True).set_axis(range(10, 18))
    ids = champion["prediction_id"].tolist()
    t = pd.Timestamp("2026-12-06T00:00:00Z")
    outcomes = pd.DataFrame(
        {
            "prediction_id": [ids[0], ids[0], ids[1], ids[1], ids[2], "orphan"],
            "model_version": ["1", "2", "1", "1", "9", "1"],
            "joined_at": [t, t, t, t + pd.Timedelta(days=1), t, t],
            "label": ["1", "1", "0", "1", "1", "0"],
        }
    )
    out = attach_outcomes(log, outcomes)
    assert list(out.index) == list(log.index)
    assert len(out) == len(log)
    assert out["label"].tolist() == ["1", "1", pd.NA, pd.NA, "1", pd.NA, pd.NA, pd.NA]
    # (ids[1], v1) was joined twice: the later join wins; ids[2] was joined to another version only
    assert attach_outcomes(log, outcomes.iloc[[3]])["label"].iloc[1] == "1"
    empty = attach_outcomes(log, outcomes.iloc[:0])
    assert empty["label"].isna().all()
    assert list(empty.columns) == [*log.columns, "label"]


if __name__ == "__main__":  # the figures of docs/releases.md: python -m tests.unit.test_release_statistics
    CASES = [
        ("same model", {}, {}, None, 11),
        ("same model, both arms err at 2%", {"error_rate": 0.02}, {"error_rate": 0.02}, None, 11),
        ("same model, labelled (roc_auc)", {"labels": True}, {"labels": True}, "roc_auc", 11),
        ("challenger errs on 5%", {}, {"error_rate": 0.05}, None, 12),
        ("challenger probabilities shifted by one logit", {}, {"shift": 1.0}, None, 12),
        ("challenger three times slower", {}, {"latency_scale": 3.0}, None, 12),
        ("challenger much worse on labels", {"labels": True}, {"labels": True, "skill": 0.3}, "roc_auc", 12),
    ]
    print(f"{REPETITIONS} seeded repetitions, {REQUESTS} requests per arm, alpha {DEFAULT_ALPHA}")
    for name, champion_kw, challenger_kw, metric, seed in CASES:
        rate = verdicts(champion_kw, challenger_kw, seed=seed, metric=metric).mean()
        print(f"  {name:48s} rollback rate {rate:.3f}")
    print(
        "shadow release, labelled outcomes (roc_auc): metric guardrail breached, paired vs two-sample on the same logs"
    )
    for rho, seed in ((1.0, 21), (0.95, 23), (0.9, 24), (0.8, 22)):
        gap = shadow_auc_gap(rho)
        (roll, paired), (_, two) = (
            shadow_verdicts(rho, seed=seed),
            shadow_verdicts(rho, seed=seed, paired=False),
        )
        print(
            f"  shadow AUC {gap:+.3f} vs champion: paired {paired.mean():.3f}, two-sample {two.mean():.3f} "
            f"(judge rolls back {roll.mean():.3f})"
        )
