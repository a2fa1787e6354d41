"""Live performance tested as statistics: interval coverage of the true metric over seeded repetitions.

The true metric is known from a large simulated population (a million predictions of a slightly
miscalibrated model of a known outcome process). Each repetition draws a sample of joined outcomes
from it and computes the percentile bootstrap interval; the share of intervals that cover the
true value must be within the nominal level +/- 3 standard errors. Plus the shape of the output
and what happens with too few rows or one class.

Figures: ``python -m tests.unit.test_live_performance`` prints the coverage table.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pandas as pd
import pytest

from mlops_ops.core.live_performance import live_performance, metric_with_interval
from mlops_ops.core.metrics import compute_metrics
from mlops_ops.core.monitoring import check_performance

REPETITIONS = 400
ROWS = 400
LEVEL = 0.95
POPULATION = 1_000_000


def _draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes from logit 2x, and the model's probabilities from logit 1.5x + 0.3 (miscalibrated)."""
    x = rng.normal(size=n)
    label = rng.random(n) < 1 / (1 + np.exp(-2.0 * x))
    proba = 1 / (1 + np.exp(-(1.5 * x + 0.3)))
    return label, proba


def _frame(label: np.ndarray, proba: np.ndarray, version: str = "1", day: str = "2026-12-01") -> pd.DataFrame:
    n = len(label)
    return pd.DataFrame(
        {
            "prediction_id": [f"p{i}" for i in range(n)],
            "model_version": version,
            "predicted_at": pd.Timestamp(f"{day}T12:00:00Z"),
            "prediction": np.where(proba >= 0.5, "1", "0"),
            "probability": proba,
            "label": np.where(label, "1", "0"),
        }
    )


@cache
def true_metrics() -> dict[str, float]:
    """The metrics of the whole population: what the intervals should cover."""
    label, proba = _draw(np.random.default_rng(2026), POPULATION)
    scores = {"pred": (proba >= 0.5).astype(int), "proba": proba, "classes": np.array([0, 1])}
    return compute_metrics("classification", label.astype(int), scores)


def coverage(
    metric: str, *, rows: int = ROWS, repetitions: int = REPETITIONS, seed: int = 7
) -> dict[str, float]:
    truth = true_metrics()[metric]
    rng = np.random.default_rng(seed)
    covered, widths = [], []
    for r in range(repetitions):
        label, proba = _draw(rng, rows)
        entry = metric_with_interval(
            _frame(label, proba), metric=metric, task="classification", model_version="1", day=None,
            level=LEVEL, seed=r, classes=np.array(["0", "1"]),
        )  # fmt: skip
        assert entry.lower is not None, entry.reason
        assert entry.upper is not None, entry.reason
        covered.append(entry.lower <= truth <= entry.upper)
        widths.append(entry.upper - entry.lower)
    return {"truth": truth, "coverage": float(np.mean(covered)), "width": float(np.mean(widths))}


def band(nominal: float, n: int) -> tuple[float, float]:
    se = math.sqrt(nominal * (1 - nominal) / n)
    return nominal - 3 * se, nominal + 3 * se


@pytest.mark.slow
@pytest.mark.parametrize("metric", ["roc_auc", "accuracy", "brier"])
def test_intervals_cover_the_true_metric_at_their_level(metric):
    found = coverage(metric)
    low, high = band(LEVEL, REPETITIONS)
    print(f"{metric}: true {found['truth']:.4f}, coverage {found['coverage']:.3f} in [{low:.3f}, {high:.3f}]")
    assert low <= found["coverage"] <= high, found


def degraded_rate(drop: float, *, tolerance: float = 0.05, rows: int = ROWS, seed: int = 9) -> float:
    """How often the verdict on outcomes says degraded when the true AUC is ``drop`` below the
    value at promotion (the check's rule on the interval's better end)."""
    truth = true_metrics()["roc_auc"]
    rng = np.random.default_rng(seed)
    flagged = []
    for r in range(REPETITIONS):
        label, proba = _draw(rng, rows)
        e = metric_with_interval(
            _frame(label, proba), metric="roc_auc", task="classification", model_version="1", day=None,
            seed=r, classes=np.array(["0", "1"]),
        )  # fmt: skip
        check = check_performance(
            metric="roc_auc", value=e.value, baseline=truth + drop, rows=e.rows, tolerance=tolerance,
            floor=None, min_rows=30, interval=(e.lower, e.upper, e.level), source="outcomes",
        )  # fmt: skip
        flagged.append(check.degraded)
    return float(np.mean(flagged))


@pytest.mark.slow
def test_the_verdict_on_outcomes_holds_its_level_at_the_tolerance():
    # the hardest null: the champion is exactly `tolerance` worse than at promotion; the rule
    # (the interval's better end past the tolerance) is a one-sided test at (1 - level) / 2
    rate = degraded_rate(0.05)
    nominal = (1 - LEVEL) / 2
    print(f"degraded at a drop of exactly the tolerance: {rate:.3f} (nominal {nominal})")
    assert rate <= band(nominal, REPETITIONS)[1], rate


@pytest.mark.slow
def test_the_verdict_on_outcomes_finds_a_real_drop():
    rate = degraded_rate(0.15)
    print(f"degraded at a drop of 0.15 (tolerance 0.05): {rate:.3f}")
    assert rate >= 0.95, rate


def test_a_small_noisy_window_past_the_tolerance_is_not_degraded():
    # a point estimate 0.08 below the value at promotion, but on 60 outcomes: the interval reaches
    # back within the tolerance, so no retrain on this evidence
    check = check_performance(
        metric="roc_auc", value=0.74, baseline=0.82, rows=60, tolerance=0.05, floor=0.7, min_rows=30,
        interval=(0.62, 0.85, 0.95), source="outcomes",
    )  # fmt: skip
    assert check.status == "ok", check.reasons
    assert check.drop == pytest.approx(0.08)
    assert "better end 0.8500 judged" in check.reasons[0]
    surely = check_performance(
        metric="rmse", value=1.3, baseline=1.0, rows=600, tolerance=0.1, floor=None, min_rows=30,
        interval=(1.2, 1.4, 0.95), source="outcomes",
    )  # fmt: skip
    assert surely.status == "degraded"  # lower is better: even the lower end is 0.2 worse
    assert (surely.lower, surely.upper, surely.level, surely.source) == (1.2, 1.4, 0.95, "outcomes")


def test_one_entry_per_version_and_day_then_the_window():
    rng = np.random.default_rng(1)
    parts = []
    for version, day in (("2", "2026-12-01"), ("10", "2026-12-01"), ("2", "2026-12-02")):
        label, proba = _draw(rng, 200)
        parts.append(_frame(label, proba, version, day))
    frame = pd.concat(parts, ignore_index=True)
    frame.loc[0, "predicted_at"] = pd.Timestamp("2026-12-01T23:59:59Z")
    entries = live_performance(frame, metric="roc_auc", task="classification", resamples=200)
    assert [(e.model_version, e.day, e.rows) for e in entries] == [
        ("2", "2026-12-01", 200),
        ("2", "2026-12-02", 200),
        ("2", None, 400),
        ("10", "2026-12-01", 200),
        ("10", None, 200),
    ]
    for e in entries:
        doc = e.to_dict()
        assert set(doc) >= {"model_version", "day", "metric", "rows", "value", "lower", "upper", "level"}
        assert doc["lower"] <= doc["value"] <= doc["upper"]
        assert doc["level"] == 0.95


def test_the_value_is_the_gates_metric():
    label, proba = _draw(np.random.default_rng(3), 300)
    (day, window) = live_performance(_frame(label, proba), metric="roc_auc", task="classification")
    from sklearn.metrics import roc_auc_score

    assert window.value == pytest.approx(roc_auc_score(label, proba))
    assert day.value == window.value


def test_too_few_rows_or_one_class_give_no_interval_and_say_why():
    label, proba = _draw(np.random.default_rng(4), 10)
    few = metric_with_interval(
        _frame(label, proba), metric="accuracy", task="classification", model_version="1", day=None
    )
    assert few.value is not None
    assert few.lower is None
    assert few.upper is None
    assert "10 row(s) < 30" in few.reason
    one_class = _frame(np.ones(100, dtype=bool), np.linspace(0.1, 0.9, 100))
    auc = metric_with_interval(
        one_class, metric="roc_auc", task="classification", model_version="1", day=None
    )
    assert auc.value is None
    assert auc.lower is None
    assert "one class" in auc.reason
    no_proba = _frame(*_draw(np.random.default_rng(5), 100)).assign(probability=np.nan)
    entry = metric_with_interval(
        no_proba, metric="roc_auc", task="classification", model_version="1", day=None
    )
    assert entry.value is None
    assert "probability" in entry.reason


def test_one_class_on_a_day_keeps_the_positive_class():
    # a day with only negatives: accuracy still counts "1" as the positive class, from the window
    frame = _frame(*_draw(np.random.default_rng(6), 200))
    frame.loc[:49, "label"] = "0"
    frame.loc[:49, "predicted_at"] = pd.Timestamp("2026-11-30T12:00:00Z")
    frame.loc[:49, "prediction"] = "1"
    entries = live_performance(frame, metric="recall", task="classification", resamples=100)
    assert entries[0].day == "2026-11-30"
    assert entries[0].value == 0.0


def test_regression_outcomes():
    rng = np.random.default_rng(8)
    y = rng.normal(10, 2, 300)
    frame = _frame(np.zeros(300, dtype=bool), np.zeros(300)).assign(
        label=[f"{v:.4f}" for v in y],
        prediction=[f"{v:.4f}" for v in y + rng.normal(0, 1, 300)],
        probability=None,
    )
    (_, window) = live_performance(frame, metric="mae", task="regression", resamples=200)
    assert 0.6 < window.value < 1.0
    assert window.lower < window.value < window.upper


def test_a_frame_without_the_contracts_columns_is_refused():
    with pytest.raises(ValueError, match="lack the column"):
        live_performance(pd.DataFrame({"label": ["1"]}), metric="accuracy", task="classification")


if __name__ == "__main__":  # the figures of docs/monitoring.md: python -m tests.unit.test_live_performance
    low, high = band(LEVEL, REPETITIONS)
    print(
        f"{REPETITIONS} seeded repetitions of {ROWS} joined outcomes, level {LEVEL}, "
        f"population {POPULATION:,}; pass band [{low:.3f}, {high:.3f}]"
    )
    for name in ("roc_auc", "accuracy", "brier", "log_loss"):
        for rows in (100, ROWS, 2000):
            found = coverage(name, rows=rows)
            print(
                f"  {name:9s} {rows:5d} rows: true {found['truth']:.4f}, coverage {found['coverage']:.3f}, "
                f"mean width {found['width']:.4f}"
            )
    print(f"verdict on outcomes (roc_auc, {ROWS} rows, tolerance 0.05, rule on the interval's better end):")
    for drop in (0.0, 0.05, 0.10, 0.15):
        print(f"  true drop {drop:.2f}: degraded in {degraded_rate(drop):.3f} of repetitions")
