"""The release judge: a challenger against the champion on live traffic from the prediction log.

Each guardrail of ``deployment.guardrails`` is a one-sided statistical test whose null hypothesis
is "the challenger is within the guardrail"; the challenger is rolled back only when a test
rejects it, i.e. on evidence that it breaches. The tests share the significance level ``alpha``
by Bonferroni (each runs at ``alpha / k`` for the ``k`` tests that ran), so when the challenger
is as good as the champion the chance of a rollback (the false-rollback rate) is at most
``alpha``. ``tests/unit/test_release_statistics.py`` measures that rate and the power over
seeded repetitions.

- **error rate** (per request; a 5xx answer, or a failed shadow score, is an error; 4xx requests
  are the client's and are left out): an intersection-union test (Berger 1982; Berger & Hsu,
  Statistical Science 11(4), 1996) of two one-sided tests, each at the level: the exact binomial
  test of ``p_challenger <= max_error_rate`` and Fisher's exact test of
  ``p_challenger <= p_champion``. Both must reject: the challenger errs above the guardrail *and*
  more than the champion on the same traffic (an outage that hits both arms is not the
  challenger's fault).
- **p95 latency ratio** (per request): distribution-free confidence bounds of each arm's 95th
  percentile from order statistics (the binomial method; Conover, Practical Nonparametric
  Statistics, 3rd ed., section 3.2): breach when the challenger's lower bound / the champion's
  upper bound exceeds ``max_p95_latency_ratio`` (each bound at half the level, so both hold
  together with the test's confidence).
- **prediction drift**: the project's drift engine (:mod:`mlops_ops.core.drift`) with the
  champion arm's predictions as the reference: the probability of the positive class when both
  arms log one (KS test, effect = Wasserstein-1 / champion std), else the predicted label
  (chi-square, effect = Jensen-Shannon distance). Breach when the test rejects at the level AND
  the effect reaches ``max_prediction_drift``.
- **primary metric** (only over rows that carry a label, column :data:`LABEL_COLUMN`): a
  bootstrap interval of ``challenger - champion`` (sign-adjusted, positive = challenger better;
  the arms' rows resampled independently, each with the kernels of :mod:`mlops_ops.core.metrics`
  that the gate's bootstrap uses; Efron & Tibshirani 1993, ch. 13). Breach when the interval's
  upper bound (one-sided, at the level) is below ``-metric_tolerance``. A **shadow** release's
  two models scored the same requests, so its metric is tested on the rows both scored (same
  ``prediction_id``) with the gate's **paired** bootstrap (:func:`paired_metric_check`), which sees
  only the noise of the difference. The labels come from the feedback join's joined outcomes
  (:func:`attach_outcomes`, by ``prediction_id`` and ``model_version``).

This module holds no I/O: :func:`split_arms` takes the prediction log as a DataFrame.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

#: The release judge's family-wise significance level (the false-rollback rate it allows).
DEFAULT_ALPHA = 0.05
#: Column of the prediction log that carries the labelled outcome, when a later join adds it.
LABEL_COLUMN = "label"
#: Fewest labelled rows per arm (and per class, for classification) before the metric is tested.
MIN_LABELLED_ROWS = 30
#: The percentile the latency guardrail is about.
LATENCY_QUANTILE = 0.95
#: Arms of the prediction log (contract of issue 11).
CHAMPION_ARM, CHALLENGER_ARM, SHADOW_ARM = "champion", "challenger", "shadow"


class Verdict(StrEnum):
    """What the judge says: promote the challenger, or roll it back."""

    PROMOTE = "promote"
    ROLLBACK = "rollback"


@dataclass(frozen=True)
class Guardrails:
    """The thresholds (``deployment.guardrails``); see :class:`mlops_ops.config.GuardrailsSpec`."""

    max_error_rate: float = 0.01
    max_p95_latency_ratio: float = 1.5
    max_prediction_drift: float = 0.1
    metric_tolerance: float = 0.01

    @classmethod
    def from_spec(cls, spec: Any) -> Guardrails:
        return cls(**{k: float(getattr(spec, k)) for k in cls.__dataclass_fields__})

    @classmethod
    def from_spec_dict(cls, doc: Mapping[str, Any]) -> Guardrails:
        """From ``spec.deployment.guardrails.model_dump()`` (what a DAG passes to its operators)."""
        return cls(**{k: float(doc[k]) for k in cls.__dataclass_fields__ if k in doc})


@dataclass(frozen=True)
class GuardrailCheck:
    """One guardrail's test. ``tested`` False: it could not run (too little data), so it cannot breach.

    ``value`` is the estimate (error rate, p95 ratio, drift effect, metric difference),
    ``threshold`` the guardrail, ``bound`` the confidence bound compared with it (None where the
    test is a p-value), ``p_value`` the test's p-value (None where it is a bound), ``level`` the
    significance level it ran at.
    """

    name: str
    tested: bool
    breached: bool
    value: float | None
    threshold: float
    level: float
    bound: float | None = None
    p_value: float | None = None
    detail: str = ""


@dataclass(frozen=True)
class ArmSummary:
    """What one arm's rows hold: requests (4xx left out), errors, rows, p95 latency (ms)."""

    model_version: str | None
    requests: int
    errors: int
    rows: int
    p95_latency_ms: float | None
    labelled_rows: int = 0


@dataclass(frozen=True)
class ReleaseJudgement:
    """The judge's verdict with every check and the reasons, JSON-ready through :meth:`to_dict`."""

    verdict: Verdict
    checks: tuple[GuardrailCheck, ...]
    champion: ArmSummary
    challenger: ArmSummary
    alpha: float
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def breaches(self) -> tuple[GuardrailCheck, ...]:
        return tuple(c for c in self.checks if c.breached)

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["verdict"] = self.verdict.value
        doc["checks"] = [asdict(c) for c in self.checks]
        doc["reasons"] = list(self.reasons)
        return doc


# -- the prediction log --------------------------------------------------------------------------


def split_arms(
    log: pd.DataFrame, *, champion_version: str | None, challenger_version: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The champion's and the challenger's rows of a prediction log (contract of issue 11).

    Champion: rows of arm ``champion`` scored by ``champion_version`` (any version if None).
    Challenger: rows of arm ``challenger`` or ``shadow`` scored by ``challenger_version``.
    """
    version = log["model_version"].astype("string")
    champion = log["arm"] == CHAMPION_ARM
    if champion_version is not None:
        champion &= version == str(champion_version)
    challenger = log["arm"].isin([CHALLENGER_ARM, SHADOW_ARM]) & (version == str(challenger_version))
    return log[champion.fillna(False)], log[challenger.fillna(False)]


def _requests(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per request of an arm: ``failed`` and latency.

    A row failed when this arm's model failed on it: an ``error`` with a 5xx status, or any
    ``error`` of a shadow score (whose status is its own). A 5xx without an error of this arm is
    the other arm's failure in a request split across both, and not held against this one.
    Requests answered with a 4xx are the client's fault and left out.
    """
    if rows.empty:
        return pd.DataFrame({"failed": pd.Series(dtype=bool), "latency_ms": pd.Series(dtype=float)})
    status = pd.to_numeric(rows["status"], errors="coerce").fillna(500)
    error = rows["error"].notna() if "error" in rows else pd.Series(False, index=rows.index)
    shadow = rows["arm"] == SHADOW_ARM
    failed = error & ((status >= 500) | shadow)
    frame = pd.DataFrame(
        {
            "request_id": rows["request_id"].astype("string").fillna(rows["prediction_id"].astype("string")),
            "client_error": (status >= 400) & (status < 500) & ~(shadow & error),
            "failed": failed,
            "latency_ms": pd.to_numeric(rows["latency_ms"], errors="coerce"),
        }
    )
    if frame["request_id"].is_unique:  # one row per request: nothing to group
        per_request = frame.set_index("request_id")
    else:
        per_request = frame.groupby("request_id", sort=False).agg(
            client_error=("client_error", "any"), failed=("failed", "any"), latency_ms=("latency_ms", "max")
        )
    return per_request[~per_request["client_error"]]


def summarise_arm(rows: pd.DataFrame, requests: pd.DataFrame | None = None) -> ArmSummary:
    """Counts of one arm's rows: requests, errors, rows, p95 latency, labelled rows.

    :param requests: the arm's per-request frame, when the caller has it already.
    """
    requests = _requests(rows) if requests is None else requests
    latency = requests["latency_ms"].dropna()
    versions = rows["model_version"].dropna().unique() if not rows.empty else []
    labelled = int(rows[LABEL_COLUMN].notna().sum()) if LABEL_COLUMN in rows else 0
    return ArmSummary(
        model_version=str(versions[0]) if len(versions) == 1 else None,
        requests=len(requests),
        errors=int(requests["failed"].sum()),
        rows=len(rows),
        p95_latency_ms=float(np.quantile(latency, LATENCY_QUANTILE)) if len(latency) else None,
        labelled_rows=labelled,
    )


# -- the tests -----------------------------------------------------------------------------------


def error_rate_check(
    errors: int, requests: int, champion_errors: int, champion_requests: int, *, max_rate: float, level: float
) -> GuardrailCheck:
    """Intersection-union test: the challenger errs above ``max_rate`` and above the champion."""
    from scipy.stats import binomtest, fisher_exact

    if requests == 0:
        return GuardrailCheck("error_rate", False, False, None, max_rate, level, detail="no requests")
    rate = errors / requests
    p_guardrail = float(binomtest(errors, requests, max_rate, alternative="greater").pvalue)
    if champion_requests:
        table = [[errors, requests - errors], [champion_errors, champion_requests - champion_errors]]
        p_champion = float(fisher_exact(table, alternative="greater").pvalue)
    else:
        p_champion = 0.0  # nothing to compare with: the guardrail alone decides
    p_value = max(p_guardrail, p_champion)  # the intersection-union test's p-value
    breached = p_value < level
    champion_rate = champion_errors / champion_requests if champion_requests else float("nan")
    detail = (
        f"challenger {errors}/{requests} = {rate:.4f} vs champion "
        f"{champion_errors}/{champion_requests} = {champion_rate:.4f}; guardrail {max_rate:g}: "
        f"p(rate <= guardrail) = {p_guardrail:.3g} (exact binomial), "
        f"p(rate <= champion's) = {p_champion:.3g} (Fisher)"
    )
    return GuardrailCheck("error_rate", True, breached, rate, max_rate, level, p_value=p_value, detail=detail)


def quantile_bounds(values: np.ndarray, q: float, gamma: float) -> tuple[float, float]:
    """One-sided distribution-free bounds ``(lower, upper)`` of the ``q`` quantile, each holding
    with probability >= ``1 - gamma``: order statistics chosen from Binomial(n, q) (Conover 1999,
    section 3.2). A bound that needs more data than there is is ``-inf`` / ``+inf``."""
    from scipy.stats import binom

    x = np.sort(np.asarray(values, dtype="float64"))
    n = len(x)
    if n == 0:
        return -math.inf, math.inf
    # lower: X_(l) with P(B <= l - 1) <= gamma, the largest such l
    low_k = int(binom.ppf(gamma, n, q))
    if binom.cdf(low_k, n, q) > gamma:
        low_k -= 1  # now P(B <= low_k) <= gamma: l = low_k + 1
    lower = x[low_k] if low_k >= 0 else -math.inf
    # upper: X_(u) with P(B <= u - 1) >= 1 - gamma, the smallest such u
    up_k = int(binom.ppf(1 - gamma, n, q))  # smallest j with P(B <= j) >= 1 - gamma; u = j + 1
    upper = x[up_k] if up_k < n else math.inf
    return float(lower), float(upper)


def latency_check(
    challenger_ms: np.ndarray, champion_ms: np.ndarray, *, max_ratio: float, level: float
) -> GuardrailCheck:
    """Breach when the challenger's p95 lower bound / the champion's p95 upper bound > ``max_ratio``."""
    if len(challenger_ms) == 0 or len(champion_ms) == 0:
        return GuardrailCheck(
            "p95_latency_ratio", False, False, None, max_ratio, level, detail="no latencies"
        )
    q = LATENCY_QUANTILE
    c95, b95 = float(np.quantile(challenger_ms, q)), float(np.quantile(champion_ms, q))
    lower, _ = quantile_bounds(challenger_ms, q, level / 2)
    _, upper = quantile_bounds(champion_ms, q, level / 2)
    ratio = c95 / b95 if b95 > 0 else math.inf
    bound = lower / upper if upper > 0 and math.isfinite(upper) else (0.0 if lower <= 0 else -math.inf)
    tested = math.isfinite(upper) and lower > -math.inf
    detail = (
        f"p95 challenger {c95:.2f} ms vs champion {b95:.2f} ms (ratio {ratio:.3f}); "
        f"lower confidence bound of the ratio {bound:.3f} vs guardrail {max_ratio:g}"
    )
    return GuardrailCheck(
        "p95_latency_ratio",
        tested,
        tested and bound > max_ratio,
        ratio,
        max_ratio,
        level,
        bound=bound if tested else None,
        detail=detail if tested else detail + " (too few requests for a bound)",
    )


def _prediction_column(champion: pd.DataFrame, challenger: pd.DataFrame) -> tuple[str, str]:
    """``("probability", "numeric")`` when both arms log one, else the label, numeric if it parses."""
    if (
        "probability" in champion
        and champion["probability"].notna().any()
        and challenger["probability"].notna().any()
    ):
        return "probability", "numeric"
    both = pd.concat([champion["prediction"], challenger["prediction"]])
    parsed = pd.to_numeric(both, errors="coerce")
    if parsed.notna().all() and both.nunique() > 10:
        return "prediction", "numeric"  # a regression model's number, logged as text
    return "prediction", "categorical"


def prediction_drift_check(
    champion: pd.DataFrame, challenger: pd.DataFrame, *, max_effect: float, level: float
) -> GuardrailCheck:
    """The drift engine's test of the challenger's predictions against the champion's."""
    from mlops_ops.core.drift import DriftConfig, build_reference_profile, detect_drift

    champion = champion[champion["prediction"].notna()]
    challenger = challenger[challenger["prediction"].notna()]
    if len(champion) < 2 or len(challenger) < 2:
        return GuardrailCheck(
            "prediction_drift", False, False, None, max_effect, level, detail="no predictions"
        )
    column, kind = _prediction_column(champion, challenger)

    def values(rows: pd.DataFrame) -> pd.DataFrame:
        series = rows[column]
        series = pd.to_numeric(series, errors="coerce") if kind == "numeric" else series.astype(str)
        return pd.DataFrame({column: series.to_numpy()})

    reference = values(champion)
    numeric, categorical = ([column], []) if kind == "numeric" else ([], [column])
    profile = build_reference_profile(reference, numeric=numeric, categorical=categorical)
    config = DriftConfig(
        alpha=level, delta=max_effect, categorical_delta=max_effect, missing_delta=1.0, min_rows=2
    )
    report = detect_drift(profile, values(challenger), config)
    col = report.column(column)
    breached = bool(col.distribution_drifted)
    detail = (
        f"{column} ({col.test}): effect {col.effect if col.effect is not None else float('nan'):.4f} vs "
        f"guardrail {max_effect:g}, p = {col.p_adjusted:.3g} at level {level:.3g}; "
        f"{len(challenger)} challenger vs {len(champion)} champion rows"
    )
    return GuardrailCheck(
        "prediction_drift",
        col.tested,
        breached,
        col.effect,
        max_effect,
        level,
        p_value=col.p_adjusted,
        detail=detail,
    )


def _labelled_scores(rows: pd.DataFrame) -> tuple[np.ndarray, dict[str, Any]]:
    rows = rows[rows[LABEL_COLUMN].notna() & rows["prediction"].notna()]
    scores: dict[str, Any] = {"pred": rows["prediction"].astype(str).to_numpy()}
    if "probability" in rows and rows["probability"].notna().all() and len(rows):
        scores["proba"] = rows["probability"].to_numpy(dtype="float64")
    return rows[LABEL_COLUMN].astype(str).to_numpy(), scores


def metric_check(
    champion: pd.DataFrame,
    challenger: pd.DataFrame,
    *,
    metric: str,
    task: str,
    tolerance: float,
    level: float,
    resamples: int = 1000,
    seed: int = 0,
) -> GuardrailCheck:
    """Bootstrap interval of the metric difference over labelled rows; breach when it is surely
    worse than ``-tolerance``. Too few labelled rows (or one class only): not tested."""
    from mlops_ops.config import METRIC_DIRECTIONS
    from mlops_ops.core.bootstrap import resample_counts
    from mlops_ops.core.metrics import GateError, metric_kernel

    name = f"metric:{metric}"
    if LABEL_COLUMN not in champion or LABEL_COLUMN not in challenger:
        return GuardrailCheck(name, False, False, None, tolerance, level, detail="no labelled outcomes")
    (y_c, s_c), (y_0, s_0) = _labelled_scores(challenger), _labelled_scores(champion)
    if task == "classification":
        from mlops_ops.core.live_performance import binary_classes

        # one positive class for both arms, in scikit-learn's order (the probability's class)
        classes = binary_classes(np.concatenate([y_c, y_0, s_c["pred"], s_0["pred"]]))
        if classes is not None:
            s_c["classes"] = s_0["classes"] = classes
    few = min(len(y_c), len(y_0))
    if few < MIN_LABELLED_ROWS or (task == "classification" and min(len(set(y_c)), len(set(y_0))) < 2):
        return GuardrailCheck(
            name,
            False,
            False,
            None,
            tolerance,
            level,
            detail=f"{few} labelled rows in the smaller arm (need {MIN_LABELLED_ROWS} and both classes)",
        )
    if task == "regression":
        y_c, y_0 = y_c.astype("float64"), y_0.astype("float64")
        s_c["pred"], s_0["pred"] = s_c["pred"].astype("float64"), s_0["pred"].astype("float64")
    try:
        k_c, k_0 = metric_kernel(metric, task, y_c, s_c), metric_kernel(metric, task, y_0, s_0)
    except GateError as err:
        return GuardrailCheck(name, False, False, None, tolerance, level, detail=str(err))
    rng = np.random.default_rng(seed)
    sign = 1.0 if METRIC_DIRECTIONS[metric] else -1.0
    w_c, w_0 = resample_counts(rng, len(y_c), resamples), resample_counts(rng, len(y_0), resamples)
    diffs = sign * (np.asarray(k_c(w_c)) - np.asarray(k_0(w_0)))
    diffs = diffs[np.isfinite(diffs)]
    observed = sign * (float(k_c(np.ones((1, len(y_c))))[0]) - float(k_0(np.ones((1, len(y_0))))[0]))
    if len(diffs) < resamples * 0.99:
        return GuardrailCheck(name, False, False, observed, tolerance, level, detail="degenerate resamples")
    upper = float(np.quantile(diffs, 1 - level))
    detail = (
        f"{metric} challenger - champion (positive = better) {observed:+.4f}, one-sided upper bound "
        f"{upper:+.4f} vs -{tolerance:g}; {len(y_c)} and {len(y_0)} labelled rows"
    )
    return GuardrailCheck(
        name, True, upper < -tolerance, observed, tolerance, level, bound=upper, detail=detail
    )


def _paired_rows(champion: pd.DataFrame, challenger: pd.DataFrame) -> pd.DataFrame:
    """The labelled rows both models scored: one row per ``prediction_id`` with each side's
    prediction and probability (``_c``: challenger, ``_0``: champion) and the champion row's label."""
    cols = ["prediction_id", "prediction", "probability", LABEL_COLUMN]

    def side(rows: pd.DataFrame) -> pd.DataFrame:
        rows = rows[rows[LABEL_COLUMN].notna() & rows["prediction"].notna() & rows["prediction_id"].notna()]
        rows = rows.reindex(columns=cols).assign(prediction_id=lambda f: f["prediction_id"].astype(str))
        return rows.drop_duplicates("prediction_id", keep="last")

    return side(challenger).merge(side(champion), on="prediction_id", suffixes=("_c", "_0"))


def paired_metric_check(
    champion: pd.DataFrame,
    challenger: pd.DataFrame,
    *,
    metric: str,
    task: str,
    tolerance: float,
    level: float,
    resamples: int = 1000,
    seed: int = 0,
) -> GuardrailCheck:
    """The metric guardrail of a **shadow** release: both models scored the same requests (rows
    sharing a ``prediction_id``), so the rows are resampled once for both (the gate's paired
    bootstrap, :func:`mlops_ops.core.bootstrap.paired_bootstrap`), and the interval reflects the
    noise of the difference only. Breach when the one-sided upper bound (the ``1 - level``
    quantile) of ``challenger - champion`` (sign-adjusted, positive = challenger better) is below
    ``-tolerance``. Fewer than :data:`MIN_LABELLED_ROWS` shared labelled rows, or one class only:
    not tested."""
    from mlops_ops.core.bootstrap import paired_bootstrap
    from mlops_ops.core.live_performance import binary_classes
    from mlops_ops.core.metrics import GateError

    name = f"metric:{metric}"
    if LABEL_COLUMN not in champion or LABEL_COLUMN not in challenger:
        return GuardrailCheck(name, False, False, None, tolerance, level, detail="no labelled outcomes")
    pairs = _paired_rows(champion, challenger)
    y = pairs[f"{LABEL_COLUMN}_0"].astype(str).to_numpy()
    n = len(pairs)
    if n < MIN_LABELLED_ROWS or (task == "classification" and len(set(y)) < 2):
        return GuardrailCheck(
            name, False, False, None, tolerance, level,
            detail=f"{n} labelled rows scored by both models (need {MIN_LABELLED_ROWS} and both classes)",
        )  # fmt: skip

    def scores(suffix: str) -> dict[str, Any]:
        pred = pairs[f"prediction{suffix}"]
        if task == "regression":
            return {"pred": pd.to_numeric(pred, errors="coerce").to_numpy("float64")}
        out: dict[str, Any] = {"pred": pred.astype(str).to_numpy()}
        proba = pairs[f"probability{suffix}"]
        if proba.notna().all():
            out["proba"] = proba.to_numpy("float64")
        seen = binary_classes(
            np.concatenate([y, pairs["prediction_c"].astype(str), pairs["prediction_0"].astype(str)])
        )
        if seen is not None:
            out["classes"] = seen  # one positive class for both models, in scikit-learn's order
        return out

    y_true: np.ndarray = (
        pd.to_numeric(pd.Series(y), errors="coerce").to_numpy("float64") if task == "regression" else y
    )
    try:
        result = paired_bootstrap(
            metric, task, y_true, scores("_c"), scores("_0"),
            resamples=resamples, confidence=1 - 2 * level, seed=seed,
        )  # fmt: skip
    except GateError as err:
        return GuardrailCheck(name, False, False, None, tolerance, level, detail=f"paired: {err}")
    detail = (
        f"{metric} challenger - champion (positive = better) {result.estimate:+.4f}, one-sided upper bound "
        f"{result.upper:+.4f} vs -{tolerance:g}; paired on {n} labelled rows both models scored"
    )
    return GuardrailCheck(
        name,
        True,
        result.upper < -tolerance,
        result.estimate,
        tolerance,
        level,
        bound=result.upper,
        detail=detail,
    )


def attach_outcomes(log: pd.DataFrame, outcomes: pd.DataFrame | None) -> pd.DataFrame:
    """The prediction log with a :data:`LABEL_COLUMN` from joined outcomes
    (:data:`mlops_ops.core.outcomes.JOINED_OUTCOME_SCHEMA`), matched on ``prediction_id`` and
    ``model_version``: a shadow release's two rows of one request each get the outcome joined to
    them. An outcome joined twice (a later feedback run) counts once, the latest. Rows without an
    outcome keep a missing label; a label the log already had is kept. Same rows, same index."""
    out = log.copy()
    if outcomes is None or outcomes.empty or log.empty:
        if LABEL_COLUMN not in out:
            out[LABEL_COLUMN] = pd.Series(pd.NA, index=out.index, dtype="string")
        return out
    keys = outcomes[outcomes[LABEL_COLUMN].notna()]
    if "joined_at" in keys:
        keys = keys.sort_values("joined_at", kind="stable")
    keys = keys.assign(
        prediction_id=keys["prediction_id"].astype(str), model_version=keys["model_version"].astype(str)
    ).drop_duplicates(["prediction_id", "model_version"], keep="last")
    lookup = keys.set_index(["prediction_id", "model_version"])[LABEL_COLUMN].astype("string")
    where = pd.MultiIndex.from_arrays([log["prediction_id"].astype(str), log["model_version"].astype(str)])
    attached = pd.Series(lookup.reindex(where).to_numpy(), index=log.index, dtype="string")
    out[LABEL_COLUMN] = (
        out[LABEL_COLUMN].astype("string").fillna(attached) if LABEL_COLUMN in out else attached
    )
    return out


def judge_release(
    champion: pd.DataFrame,
    challenger: pd.DataFrame,
    guardrails: Guardrails,
    *,
    alpha: float = DEFAULT_ALPHA,
    metric: str | None = None,
    task: str = "classification",
    seed: int = 0,
    paired: bool | None = None,
) -> ReleaseJudgement:
    """Judge the challenger's rows against the champion's (two frames of the prediction log).

    :param champion: the champion arm's rows (:func:`split_arms`).
    :param challenger: the challenger's rows (arm ``challenger`` or ``shadow``).
    :param guardrails: the thresholds.
    :param alpha: the family-wise level, split evenly over the tests that run.
    :param metric: the primary metric, tested where rows carry a ``label`` (None: not tested).
    :param task: ``classification`` or ``regression`` (for the metric).
    :param paired: test the metric on the rows both models scored (:func:`paired_metric_check`)
        rather than between the arms' rows (:func:`metric_check`); None: paired when every
        challenger row is a shadow score (a shadow release scores the champion's requests).
    :returns: :class:`ReleaseJudgement`; ``ROLLBACK`` iff a test rejects its guardrail.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    labelled = (
        metric is not None
        and LABEL_COLUMN in champion
        and LABEL_COLUMN in challenger
        and champion[LABEL_COLUMN].notna().any()
        and challenger[LABEL_COLUMN].notna().any()
    )
    level = alpha / (4 if labelled else 3)
    req_c, req_0 = _requests(challenger), _requests(champion)
    checks = [
        error_rate_check(
            int(req_c["failed"].sum()),
            len(req_c),
            int(req_0["failed"].sum()),
            len(req_0),
            max_rate=guardrails.max_error_rate,
            level=level,
        ),
        latency_check(
            req_c.loc[~req_c["failed"], "latency_ms"].dropna().to_numpy(),
            req_0.loc[~req_0["failed"], "latency_ms"].dropna().to_numpy(),
            max_ratio=guardrails.max_p95_latency_ratio,
            level=level,
        ),
        prediction_drift_check(champion, challenger, max_effect=guardrails.max_prediction_drift, level=level),
    ]
    if labelled:
        assert metric is not None
        if paired is None:
            paired = bool(len(challenger)) and bool((challenger["arm"] == SHADOW_ARM).all())
        check = paired_metric_check if paired else metric_check
        checks.append(
            check(
                champion,
                challenger,
                metric=metric,
                task=task,
                tolerance=guardrails.metric_tolerance,
                level=level,
                seed=seed,
            )
        )
    breaches = [c for c in checks if c.breached]
    verdict = Verdict.ROLLBACK if breaches else Verdict.PROMOTE
    reasons = tuple(f"{c.name} breached: {c.detail}" for c in breaches) or (
        "no guardrail breached: " + "; ".join(f"{c.name}: {c.detail}" for c in checks),
    )
    return ReleaseJudgement(
        verdict=verdict,
        checks=tuple(checks),
        champion=summarise_arm(champion, req_0),
        challenger=summarise_arm(challenger, req_c),
        alpha=alpha,
        reasons=reasons,
    )


def judgement_lines(doc: Mapping[str, Any]) -> list[str]:
    """Short lines for logs and the demo from :meth:`ReleaseJudgement.to_dict`."""
    lines = [f"verdict: {doc['verdict']}"]
    for check in doc["checks"]:
        state = "BREACH" if check["breached"] else ("ok" if check["tested"] else "not tested")
        lines.append(f"  {check['name']}: {state} - {check['detail']}")
    return lines


def release_html(doc: Mapping[str, Any], title: str) -> str:
    """The HTML view of a release report (``templates/release.html.j2``) from its JSON document:
    :meth:`ReleaseJudgement.to_dict` plus ``pipeline``, ``phase`` and the versions."""
    from mlops_ops.core.reports import render

    verdict = str(doc["verdict"])
    checks = []
    for c in doc["checks"]:
        result = "breach" if c["breached"] else ("within" if c["tested"] else "not tested")
        checks.append(
            {
                **c,
                "result": result,
                "badge": {"breach": "bad", "within": "ok"}.get(result, "info"),
                "cls": "fail" if c["breached"] else "",
            }
        )
    summary = {
        "pipeline": doc.get("pipeline"),
        "phase": doc.get("phase"),
        "challenger": f"v{doc['challenger']['model_version']}"
        if doc["challenger"].get("model_version")
        else None,
        "champion": f"v{doc['champion']['model_version']}" if doc["champion"].get("model_version") else None,
        "traffic window": f"{doc.get('start')} .. {doc.get('end')}",
        "family level (alpha)": doc["alpha"],
    }
    return render(
        "release.html.j2",
        title=title,
        verdict=verdict,
        badge_kind="ok" if verdict == Verdict.PROMOTE else "bad",
        summary=list(summary.items()),
        reasons=[str(r) for r in doc.get("reasons") or []],
        arms=[{"name": n, **doc[n]} for n in ("champion", "challenger")],
        checks=checks,
        alpha=doc["alpha"],
        document=dict(doc),
    )


# -- what the operators decide -------------------------------------------------------------------


@dataclass(frozen=True)
class JudgeOutcome:
    """What the judge task does: skip (with why), or act on ``judgement``."""

    skip: bool
    reason: str
    judgement: ReleaseJudgement


def override_verdict(
    judgement: ReleaseJudgement, *, by_hand: str | None, promoted_already: bool, bake: Any
) -> JudgeOutcome:
    """The judge task's decision: a rollback asked by hand (``by_hand``: its reason) wins; a
    champion alias already on the challenger (an interrupted promotion) completes the promotion;
    a bake that is not over (``bake``: :class:`~mlops_ops.core.registry.releases.BakeStatus`)
    skips; otherwise the judgement stands."""
    from dataclasses import replace

    if by_hand is not None:
        reason = f"rolled back by hand: {by_hand}"
        return JudgeOutcome(False, reason, replace(judgement, verdict=Verdict.ROLLBACK, reasons=(reason,)))
    if promoted_already:
        reason = "the champion alias already points at the challenger: completing an interrupted promotion"
        return JudgeOutcome(False, reason, replace(judgement, verdict=Verdict.PROMOTE, reasons=(reason,)))
    if not bake.over:
        return JudgeOutcome(True, bake.reason, judgement)
    return JudgeOutcome(False, bake.reason, judgement)


def release_document(
    judgement: ReleaseJudgement,
    *,
    pipeline: str,
    phase: str,
    start: Any,
    end: Any,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON report of a judgement: :meth:`ReleaseJudgement.to_dict` with its context."""
    return {
        "pipeline": pipeline,
        "phase": phase,
        "start": start.isoformat(),
        "end": end.isoformat(),
        **judgement.to_dict(),
        **dict(extra or {}),
    }


def approval_outcome(
    doc: Mapping[str, Any], approval_task_id: str | None, answer: Any
) -> tuple[bool, list[str]]:
    """Promote or not, and the reasons, from the judge's verdict and the approval task's answer.

    Without an approval task the verdict decides. With one, a promotion needs ``Approve``
    (the answer is the ``ApprovalOperator``'s result: ``chosen_options``, ``responded_by_user``);
    a rejection (or no answer) rolls the challenger back, naming who rejected it.
    """
    reasons = [str(r) for r in doc.get("reasons") or []]
    promote = doc["verdict"] == Verdict.PROMOTE
    if not promote or approval_task_id is None:
        return promote, reasons
    if not isinstance(answer, Mapping) or not answer.get("chosen_options"):
        return False, ["no approval was recorded for the promotion", *reasons]
    user = answer.get("responded_by_user") or {}
    who = user.get("name") or user.get("id") or "unknown" if isinstance(user, Mapping) else str(user)
    if "Approve" in answer["chosen_options"]:
        return True, [f"promotion approved by {who}", *reasons]
    return False, [f"promotion rejected by {who}", *reasons]


def watch_level(alpha: float, watch_minutes: int, look_minutes: int) -> float:
    """The level of one look of the watch: ``alpha`` split (Bonferroni) over the window's looks,
    one per run of the release DAG, so the window's false-rollback rate stays at most ``alpha``."""
    looks = max(1, math.ceil(watch_minutes / max(1, look_minutes)))
    return alpha / looks


@dataclass(frozen=True)
class WatchPlan:
    """What the watch task does: skip, roll back, or close the window (passed or ended)."""

    skip: bool
    rollback: bool
    ended: bool
    reason: str


def plan_watch(
    judgement: ReleaseJudgement,
    *,
    champion_now: str | None,
    promoted_version: str,
    now: Any,
    ends: Any,
    min_requests: int,
) -> WatchPlan:
    """Decide the watch task's step from a judgement of the new champion (as ``challenger``)
    against the previous one."""
    if champion_now != promoted_version:
        shown = f"v{champion_now}" if champion_now else "unset"
        return WatchPlan(
            False, False, True, f"the champion is {shown} now, moved outside the release: watch ended"
        )
    seen = judgement.challenger.requests
    if seen < min_requests:
        if now >= ends:
            return WatchPlan(
                False, False, False, f"watch window closed with {seen} requests, too few to judge"
            )
        return WatchPlan(
            True, False, False, f"watching v{promoted_version}: {seen}/{min_requests} requests so far"
        )
    if judgement.verdict is Verdict.ROLLBACK:
        names = ", ".join(c.name for c in judgement.breaches)
        return WatchPlan(False, True, False, f"a guardrail breached in the watch window ({names})")
    if now >= ends:
        return WatchPlan(False, False, False, "watch window closed with no guardrail breached")
    return WatchPlan(
        True, False, False, f"no guardrail breached so far; watching v{promoted_version} until {ends:%H:%M}Z"
    )
