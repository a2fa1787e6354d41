"""The paired bootstrap as a statistical procedure, over many seeded repetitions.

Each repetition draws a fresh holdout from a known generating process and runs the gate's
bootstrap (``paired_bootstrap``, 1000 resamples, the spec's default) on two models:

* scores = latent + independent noise, latent = ``mu * y + N(0, 1)``, so the population AUC of a
  model with noise ``s`` is ``Phi(mu / sqrt(2 (1 + s^2)))`` (binormal model): equal noise means
  equally good models, and the true difference of two models is known exactly;
* a rule at confidence ``c`` passes when the interval's lower bound clears the threshold, i.e. a
  one-sided test at level ``(1 - c) / 2``.

Rates are compared with their nominal value plus three binomial standard errors, so a correct
procedure fails a check about once in 700 runs per check, and a procedure that reads the wrong
quantile, resamples the models independently or flips the sign fails it every time.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from mlops_ops.core.evaluation import HoldoutPredictions, decide, paired_bootstrap

# statistics over hundreds of seeded repetitions of a 1000-resample bootstrap
pytestmark = pytest.mark.slow

SEEDS = 200
RESAMPLES = 1000
MU = 1.5
PREVALENCE = 0.3


def true_auc(noise: float) -> float:
    return float(norm.cdf(MU / math.sqrt(2 * (1 + noise**2))))


def classification(seed: int, n: int, noise_new: float, noise_old: float):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < PREVALENCE).astype(int)
    latent = MU * y + rng.normal(size=n)

    def model(noise: float) -> dict:
        score = latent + rng.normal(scale=noise, size=n)
        proba = 1 / (1 + np.exp(-(score - MU * PREVALENCE)))
        return {"pred": (proba >= 0.5).astype(int), "proba": proba, "classes": np.array([0, 1])}

    return y, model(noise_new), model(noise_old)


def regression(seed: int, n: int, noise_new: float, noise_old: float):
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    y = signal + rng.normal(scale=0.5, size=n)
    return (
        y,
        {"pred": signal + rng.normal(scale=noise_new, size=n)},
        {"pred": signal + rng.normal(scale=noise_old, size=n)},
    )


def pass_rate(metric, *, n, noise_new, noise_old, limit, confidence=0.95, seeds=SEEDS):
    """Share of seeds whose interval's lower bound is above ``limit``."""
    task = "regression" if metric in ("r2", "rmse", "mae") else "classification"
    draw = regression if task == "regression" else classification
    hits = 0
    for seed in range(seeds):
        y, new, old = draw(seed, n, noise_new, noise_old)
        result = paired_bootstrap(
            metric, task, y, new, old, resamples=RESAMPLES, confidence=confidence, seed=seed
        )
        hits += result.lower > limit
    return hits / seeds


def ceiling(level: float, seeds: int = SEEDS) -> float:
    return level + 3 * math.sqrt(level * (1 - level) / seeds)


@pytest.mark.parametrize("metric", ["roc_auc", "log_loss", "accuracy", "rmse", "r2"])
def test_equally_good_models_are_rarely_found_superior(metric):
    # superiority with margin 0 on two models from the same process: a false promotion
    rate = pass_rate(metric, n=300, noise_new=0.7, noise_old=0.7, limit=0.0)
    assert rate <= ceiling(0.025), f"{metric}: {rate:.3f} of equal pairs promoted, level 0.025"


def test_a_clearly_better_model_is_found_superior():
    # true AUC difference 0.072 (0.845 vs 0.773) on 500 rows
    assert true_auc(0.3) - true_auc(1.0) == pytest.approx(0.0718, abs=1e-3)
    rate = pass_rate("roc_auc", n=500, noise_new=0.3, noise_old=1.0, limit=0.0)
    assert rate >= 0.95


def test_the_interval_covers_the_true_difference_at_its_confidence():
    seeds, confidence = 300, 0.90
    true = true_auc(0.5) - true_auc(1.0)
    covered = below = 0
    for seed in range(seeds):
        y, new, old = classification(seed, 500, 0.5, 1.0)
        r = paired_bootstrap(
            "roc_auc", "classification", y, new, old, resamples=RESAMPLES, confidence=confidence, seed=seed
        )
        covered += r.lower <= true <= r.upper
        below += r.lower > true  # the one-sided error the gate's rule makes
    se = math.sqrt(confidence * (1 - confidence) / seeds)
    assert abs(covered / seeds - confidence) <= 3 * se, covered / seeds
    assert below / seeds <= ceiling((1 - confidence) / 2, seeds)


def _noise_for_difference(diff: float, reference: float) -> float:
    """The challenger noise whose true AUC is ``diff`` above that of a champion with ``reference``."""
    return brentq(lambda s: true_auc(s) - true_auc(reference) - diff, 0.0, 10.0)


def test_non_inferiority_at_the_margin_is_a_test_at_the_one_sided_level():
    # a challenger worse by exactly the margin must pass no more often than (1 - c) / 2
    margin = 0.03
    noise = _noise_for_difference(-margin, 0.6)
    assert true_auc(noise) - true_auc(0.6) == pytest.approx(-margin)
    rate = pass_rate("roc_auc", n=500, noise_new=noise, noise_old=0.6, limit=-margin)
    assert rate <= ceiling(0.025)


def test_non_inferiority_passes_an_equal_model_and_rejects_a_worse_one():
    # on 500 rows the AUC difference of two equal models has a standard deviation of ~0.015, so a
    # margin of 0.06 (4 SDs) passes an equal challenger with probability ~Phi(4 - 1.96) ~ 0.98
    margin = 0.06
    equal = pass_rate("roc_auc", n=500, noise_new=0.6, noise_old=0.6, limit=-margin)
    worse = pass_rate(
        "roc_auc", n=500, noise_new=_noise_for_difference(-2 * margin, 0.6), noise_old=0.6, limit=-margin
    )
    assert equal >= 0.9, equal
    assert worse <= 0.02, worse  # twice the margin worse: passes almost never


def test_the_gate_applies_the_requirement_to_the_interval():
    # end to end through decide(): the rule's verdict is the interval against the margin
    y, new, old = classification(0, 500, 0.3, 1.0)
    for require, margin, promote in [
        ("superiority", 0.0, True),
        ("superiority", 0.2, False),
        ("non_inferiority", 0.01, True),
    ]:
        decision = decide(
            evaluation={"bootstrap": {"require": require, "margin": margin}},
            challenger_version="2",
            baseline_version="1",
            holdout=HoldoutPredictions("classification", y, new, old),
        )
        assert decision.promote is promote, (require, margin, decision.reasons)
