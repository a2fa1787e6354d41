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
