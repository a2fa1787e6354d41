"""CBPE (``core.estimation``) tested as statistics, plus its exact parts and its errors.

The statistical tests simulate a world whose ``P(y | x)`` is a known logistic model. Each seeded
repetition trains a logistic regression on 2,000 rows, keeps a 2,000-row holdout as the reference,
and draws a monitoring batch of 1,000 rows:

* **covariate shift**: the batch's ``x`` moves (means +0.8 / +0.5 / 0, spread 0.8), ``P(y | x)``
  stays. The estimate must be within a stated error of the metric realised on the batch's labels
  (mean absolute error), and its 95% interval must cover the realised value at its nominal rate,
  within 3 standard errors of a binomial proportion over the repetitions;
* **covariate shift, uncalibrated model**: the same, the model's probabilities made overconfident
  (logit doubled), so the isotonic map must do the work;
* **concept shift**: ``x`` stays, ``P(y | x)`` moves (the first feature's effect reverses). The
  realised AUC falls and the estimate does not see it: the stated limit, shown here.

``python -m tests.unit.test_estimation`` prints the figures (``docs/estimation.md`` quotes them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from mlops_ops.core.estimation import (
    ESTIMABLE_METRICS,
    EstimationError,
    EstimationReference,
    describe_estimate,
    estimate_performance,
    expected_metric,
    isotonic_map,
    needs_calibration,
    realised_metrics,
)

METRICS = ("roc_auc", "accuracy", "f1")
LEVEL = 0.95
WEIGHTS = np.array([1.2, -0.8, 0.5])
BIAS = -0.3
N_TRAIN, N_REF, N_BATCH = 2000, 2000, 1000
REPS = 240  # repetitions of the covariate-shift scenario (the coverage's SE is 1.4 points)
#: the stated error: mean absolute error of the estimate against the realised metric, under
#: covariate shift with a calibrated (or calibrated-by-isotonic) model
STATED_MAE = {"roc_auc": 0.015, "accuracy": 0.02, "f1": 0.025}


def _world(rng: np.random.Generator, n: int, shift: bool = False, concept: bool = False):
    if shift:
        x = rng.normal([0.8, 0.5, 0.0], 0.8, size=(n, 3))
    else:
        x = rng.normal(0.0, 1.0, size=(n, 3))
    w = WEIGHTS * np.array([-1.0, 1.0, 1.0]) if concept else WEIGHTS
    y = rng.random(n) < 1 / (1 + np.exp(-(x @ w + BIAS)))
    return x, y


@dataclass
class Figures:
    scenario: str
    reps: int
    mae: dict[str, float]
    coverage: dict[str, float]
    mean_realised: dict[str, float]
    mean_estimate: dict[str, float]
    mean_reference: dict[str, float]
    calibrated_share: float

    def lines(self) -> list[str]:
        se = math.sqrt(LEVEL * (1 - LEVEL) / self.reps)
        out = [
            f"{self.scenario}: {self.reps} repetitions, isotonic map applied in "
            f"{self.calibrated_share:.0%} of them; coverage band {LEVEL:.2f} +/- 3 SE = "
            f"[{LEVEL - 3 * se:.3f}, {LEVEL + 3 * se:.3f}]"
        ]
        for m in METRICS:
            out.append(
                f"  {m:9s} reference {self.mean_reference[m]:.3f}  realised {self.mean_realised[m]:.3f}  "
                f"estimate {self.mean_estimate[m]:.3f}  MAE {self.mae[m]:.4f}  "
                f"inside the {LEVEL:.0%} interval {self.coverage[m]:.3f}"
            )
        return out


def simulate(scenario: str, reps: int, seed: int = 13, resamples: int = 200) -> Figures:
    """Run ``reps`` seeded repetitions of one scenario: ``covariate``, ``uncalibrated``, ``concept``."""
    from sklearn.linear_model import LogisticRegression

    errors = {m: [] for m in METRICS}
    inside = {m: [] for m in METRICS}
    realised_all = {m: [] for m in METRICS}
    estimate_all = {m: [] for m in METRICS}
    reference_all = {m: [] for m in METRICS}
    calibrated = []
    for r in range(reps):
        rng = np.random.default_rng([seed, r])
        x_train, y_train = _world(rng, N_TRAIN)
        model = LogisticRegression().fit(x_train, y_train)
        x_ref, y_ref = _world(rng, N_REF)
        x_batch, y_batch = _world(rng, N_BATCH, shift=scenario != "concept", concept=scenario == "concept")

        def proba(x, model=model):
            logit = model.decision_function(x)
            if scenario == "uncalibrated":
                logit = 2.0 * logit  # overconfident: same ranking, wrong probabilities
            return 1 / (1 + np.exp(-logit))

        p_ref, p_batch = proba(x_ref), proba(x_batch)
        ref_metrics = {m: float(realised_metrics(m, p_ref, p_ref >= 0.5, y_ref)[0]) for m in METRICS}
        reference = EstimationReference(p_ref, y_ref, "True", ref_metrics)
        est = estimate_performance(
            reference, p_batch, p_batch >= 0.5, metrics=METRICS, resamples=resamples, seed=r
        )
        calibrated.append(est["roc_auc"].calibrated)
        for m in METRICS:
            truth = float(realised_metrics(m, p_batch, p_batch >= 0.5, y_batch)[0])
            e = est[m]
            errors[m].append(abs(e.estimate - truth))
            inside[m].append(e.lower <= truth <= e.upper)
            realised_all[m].append(truth)
            estimate_all[m].append(e.estimate)
            reference_all[m].append(ref_metrics[m])
    return Figures(
        scenario=scenario,
        reps=reps,
        mae={m: float(np.mean(v)) for m, v in errors.items()},
        coverage={m: float(np.mean(v)) for m, v in inside.items()},
        mean_realised={m: float(np.mean(v)) for m, v in realised_all.items()},
        mean_estimate={m: float(np.mean(v)) for m, v in estimate_all.items()},
        mean_reference={m: float(np.mean(v)) for m, v in reference_all.items()},
        calibrated_share=float(np.mean(calibrated)),
    )


def _coverage_band(reps: int) -> tuple[float, float]:
    se = math.sqrt(LEVEL * (1 - LEVEL) / reps)
    return LEVEL - 3 * se, LEVEL + 3 * se


# -- statistics ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["covariate", "uncalibrated"])
def test_estimate_tracks_the_realised_metric_under_covariate_shift(scenario):
    reps = REPS if scenario == "covariate" else REPS // 2
    figures = simulate(scenario, reps)
    low, high = _coverage_band(reps)
    for m in METRICS:
        assert figures.mae[m] < STATED_MAE[m], figures.lines()
        assert low <= figures.coverage[m] <= high, figures.lines()
    # the shift is real: the batch's metric moved away from the holdout's, and the estimate followed
    assert abs(figures.mean_realised["roc_auc"] - figures.mean_reference["roc_auc"]) > 0.03
    if scenario == "uncalibrated":
        assert figures.calibrated_share == 1.0  # the rule applied the isotonic map every time


@pytest.mark.slow
def test_estimate_does_not_see_concept_shift():
    figures = simulate("concept", 40)
    # the realised AUC falls far; the estimate stays at the holdout's value: the stated limit
    assert figures.mean_realised["roc_auc"] < figures.mean_reference["roc_auc"] - 0.15
    assert abs(figures.mean_estimate["roc_auc"] - figures.mean_reference["roc_auc"]) < 0.02
    assert figures.mae["roc_auc"] > 0.15
    assert figures.coverage["roc_auc"] < 0.2


# -- exact parts ---------------------------------------------------------------------------------


def test_realised_metrics_match_scikit_learn():
    from sklearn import metrics as skm

    rng = np.random.default_rng(3)
    score = np.round(rng.random(400), 2)  # ties
    pred = score >= 0.5
    y = rng.random(400) < score
    expected = {
        "roc_auc": skm.roc_auc_score(y, score),
        "accuracy": skm.accuracy_score(y, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "f1": skm.f1_score(y, pred),
        "precision": skm.precision_score(y, pred),
        "recall": skm.recall_score(y, pred),
        "log_loss": skm.log_loss(y, score),
        "brier": skm.brier_score_loss(y, score),
    }
    for metric, value in expected.items():
        assert realised_metrics(metric, score, pred, y)[0] == pytest.approx(value, abs=1e-12), metric


def test_expected_metric_is_the_mean_over_label_draws():
    """With labels drawn from the calibrated probabilities, the realised metrics average to the
    CBPE value (exactly for accuracy and the losses, up to the ratio-of-expectations for the rest)."""
    rng = np.random.default_rng(4)
    score = np.round(rng.random(300), 2)
    pred = score >= 0.5
    calibrated = np.clip(score * 0.8 + 0.1, 0, 1)
    labels = rng.random((20000, 300)) < calibrated
    for metric in ESTIMABLE_METRICS:
        mc = realised_metrics(metric, score, pred, labels).mean()
        assert expected_metric(metric, score, pred, calibrated) == pytest.approx(mc, abs=3e-3), metric


def test_calibration_rule():
    rng = np.random.default_rng(5)
    p = rng.random(3000)
    y = rng.random(3000) < p
    overconfident = 1 / (1 + np.exp(-3 * np.log(p / (1 - p))))
    calibrate, figures = needs_calibration(overconfident, y)
    assert calibrate is True
    assert figures["roc_auc_raw_estimate"] > figures["roc_auc_realised"] + 2 * figures["roc_auc_se"]
    calibrate, figures = needs_calibration(p, y)
    assert abs(figures["brier_raw"] - figures["brier_cross_fitted"]) < 0.003  # the map barely helps
    assert abs(figures["roc_auc_raw_estimate"] - figures["roc_auc_realised"]) < 2 * figures["roc_auc_se"]


def test_fast_isotonic_map_is_scikit_learns():
    from sklearn.isotonic import IsotonicRegression

    rng = np.random.default_rng(9)
    p = np.round(rng.random(1500), 2)  # ties, as a tree model's leaves give
    y = rng.random(1500) < p**2
    w = np.bincount(rng.integers(0, 1500, size=1500), minlength=1500)
    score = np.concatenate([rng.random(300) * 1.2 - 0.1, p[:50]])  # beyond the range, and on its points
    sk = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y, sample_weight=w)
    assert np.allclose(isotonic_map(p, y, w)(score), sk.predict(score), atol=1e-12)


def test_reference_round_trip_and_cap():
    rng = np.random.default_rng(6)
    y = np.where(rng.random(500) < 0.4, "yes", "no")
    scores = {"proba": rng.random(500), "classes": np.array(["no", "yes"])}
    ref = EstimationReference.from_holdout(y, scores, {"roc_auc": 0.7}, max_rows=200, seed=1)
    assert len(ref.proba) == 200
    assert ref.sampled_from == 500
    assert ref.positive_label == "yes"
    back = EstimationReference.from_dict(ref.to_dict())
    assert np.array_equal(back.proba, ref.proba)
    assert np.array_equal(back.positive, ref.positive)
    assert back.metrics == {"roc_auc": 0.7}


def test_same_seed_same_estimate():
    rng = np.random.default_rng(7)
    p = rng.random(500)
    ref = EstimationReference(p, rng.random(500) < p, "1", {})
    score = rng.random(200)
    a = estimate_performance(ref, score, score >= 0.5, resamples=100, seed=3)
    b = estimate_performance(ref, score, score >= 0.5, resamples=100, seed=3)
    assert a == b


# -- errors --------------------------------------------------------------------------------------


def _ref(n: int = 500, positives: float = 0.5) -> EstimationReference:
    rng = np.random.default_rng(8)
    return EstimationReference(rng.random(n), rng.random(n) < positives, "1", {})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metrics": ["rmse"]}, "regression metric"),
        ({"metrics": ["auc"]}, "not a known metric"),
        ({"level": 1.5}, "level must be in"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    score = np.linspace(0, 1, 50)
    with pytest.raises(EstimationError, match=message):
        estimate_performance(_ref(), score, score >= 0.5, **kwargs)


def test_not_probabilities_raise():
    score = np.linspace(0, 2, 50)
    with pytest.raises(EstimationError, match="not probabilities"):
        estimate_performance(_ref(), score, score >= 0.5)


def test_small_or_one_class_reference_raises():
    score = np.linspace(0, 1, 50)
    with pytest.raises(EstimationError, match="at least"):
        estimate_performance(_ref(20), score, score >= 0.5)
    with pytest.raises(EstimationError, match="of each class"):
        estimate_performance(_ref(500, positives=0.0), score, score >= 0.5)


def test_damaged_reference_document():
    with pytest.raises(EstimationError, match="not a CBPE reference"):
        EstimationReference.from_dict({"proba": [0.1]}, where="run abc")


def test_describe_estimate():
    report = {
        "metric": "roc_auc",
        "estimate": 0.8123,
        "lower": 0.78,
        "upper": 0.84,
        "rows": 300,
        "champion_version": "2",
        "reference": 0.83,
    }
    assert describe_estimate(report) == [
        "estimated before labels: AUC 0.812 [0.780, 0.840] on 300 rows (v2; holdout 0.830)"
    ]
    assert describe_estimate({"estimate": None, "reason": "no reference"}) == [
        "estimated before labels: none (no reference)"
    ]


if __name__ == "__main__":  # python -m tests.unit.test_estimation
    for name, reps in (("covariate", REPS), ("uncalibrated", REPS // 2), ("concept", 40)):
        for line in simulate(name, reps).lines():
            print(line)
