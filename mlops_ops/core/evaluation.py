"""Evaluation: metrics, and the gate that decides whether a challenger replaces the champion.

The gate applies, on one holdout scored by both models:

- value thresholds on the challenger's metrics;
- change thresholds against the champion (absolute and relative, direction-aware);
- evidence: a paired bootstrap confidence interval of ``challenger - champion`` for one metric,
  which must show non-inferiority (or superiority) at the configured confidence;
- the value and change thresholds again within each configured slice (small slices are skipped,
  reported but not gated).

The gate fails closed: a metric that is missing or not finite, or an evaluation error, rejects.
With no champion yet only the value thresholds apply and the decision records "no baseline".

Permutation importance of the challenger is computed here too; it explains, it does not gate.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeGuard

import numpy as np

from mlops_ops.config import METRIC_DIRECTIONS, EvaluationSpec

log = logging.getLogger(__name__)

#: ``skip``: the rule could not be applied meaningfully (a slice too small, or with one class
#: where the metric needs two). Recorded and shown, but it neither passes nor fails the gate.
Verdict = Literal["pass", "fail", "skip"]

#: Metrics are floats: a value exactly at a threshold must not fail on rounding (0.70 - 0.65 < 0.05).
_TOL = 1e-9

#: Metrics computed from the positive-class probability rather than the predicted label.
PROBABILITY_METRICS = frozenset({"roc_auc", "log_loss", "brier"})

#: Share of bootstrap resamples that may be degenerate (e.g. one class only, for AUC) before the
#: interval is considered unreliable and the bootstrap rule fails closed.
MAX_INVALID_RESAMPLES = 0.01

_LOG_EPS = 1e-15  # probabilities are clipped to [eps, 1 - eps], as in compute_metrics


class GateError(ValueError):
    """The gate cannot evaluate a rule on the data it was given (the rule then fails closed)."""


# -- metrics ---------------------------------------------------------------------------------


def score_model(model: Any, x: Any, task: str) -> dict[str, np.ndarray]:
    """Predictions (and positive-class probabilities, for classifiers) of a fitted model."""
    out = {"pred": np.asarray(model.predict(x))}
    if task == "classification" and hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(x))
        out["proba"] = proba[:, 1] if proba.ndim == 2 else proba
        out["classes"] = np.asarray(getattr(model, "classes_", [0, 1]))
    return out


def positive_label(y_true: np.ndarray, scores: Mapping[str, Any]) -> Any:
    """The positive class: the model's second class, else the largest label in ``y_true``."""
    classes = scores.get("classes")
    if classes is not None and len(classes) == 2:
        return classes[1]
    return np.unique(y_true)[-1]


def compute_metrics(task: str, y_true: np.ndarray, scores: dict[str, np.ndarray]) -> dict[str, float]:
    from sklearn import metrics as m

    pred = scores["pred"]
    if task == "regression":
        y = np.asarray(y_true, dtype="float64")
        return {
            "r2": float(m.r2_score(y, pred)),
            "rmse": float(math.sqrt(m.mean_squared_error(y, pred))),
            "mae": float(m.mean_absolute_error(y, pred)),
        }
    positive = positive_label(y_true, scores)
    y_bin = (np.asarray(y_true) == positive).astype(int)
    p_bin = (np.asarray(pred) == positive).astype(int)
    out = {
        "accuracy": float(m.accuracy_score(y_bin, p_bin)),
        "balanced_accuracy": float(m.balanced_accuracy_score(y_bin, p_bin)),
        "f1": float(m.f1_score(y_bin, p_bin, zero_division=0)),
        "precision": float(m.precision_score(y_bin, p_bin, zero_division=0)),
        "recall": float(m.recall_score(y_bin, p_bin, zero_division=0)),
    }
    proba = scores.get("proba")
    if proba is not None:
        proba = np.clip(np.asarray(proba, dtype="float64"), _LOG_EPS, 1 - _LOG_EPS)
        if len(np.unique(y_bin)) == 2:
            out["roc_auc"] = float(m.roc_auc_score(y_bin, proba))
        out["log_loss"] = float(m.log_loss(y_bin, proba, labels=[0, 1]))
        out["brier"] = float(m.brier_score_loss(y_bin, proba))
    return out


def undefined_reason(metric: str, task: str, y_true: np.ndarray) -> str | None:
    """Why ``metric`` has no meaning on these labels (one class for AUC, a constant target for R²)."""
    if len(np.unique(np.asarray(y_true))) >= 2:
        return None
    if task == "classification" and metric == "roc_auc":
        return "one class only; roc_auc needs both classes"
    if task == "regression" and metric == "r2":
        return "a constant target; r2 needs variance"
    return None


# -- metrics on resample weights -------------------------------------------------------------
#
# A bootstrap resample of n rows is a vector of counts w (how often each row was drawn, summing
# to n). Every supported metric is a function of weighted sums over rows, so one (resamples x n)
# count matrix W evaluates a metric on all resamples at once: means are W @ v / n, confusion
# counts are W @ indicator, and the AUC is the Mann-Whitney statistic with weights, computed from
# cumulative sums over the rows sorted by score once. W = ones((1, n)) gives the plain value.

MetricKernel = Callable[[np.ndarray], np.ndarray]


def metric_kernel(metric: str, task: str, y_true: np.ndarray, scores: Mapping[str, Any]) -> MetricKernel:
    """A function W -> metric per row of W (resample counts), for one model's holdout scores.

    Raises :class:`GateError` for a metric that does not apply or needs what the model lacks.
    """
    if metric not in METRIC_DIRECTIONS:
        raise GateError(f"unsupported metric {metric!r}; known: {sorted(METRIC_DIRECTIONS)}")
    y_raw = np.asarray(y_true)
    if task == "regression":
        if metric not in ("r2", "rmse", "mae"):
            raise GateError(f"{metric} does not apply to a regression model; use r2, rmse or mae")
        y = y_raw.astype("float64")
        err = np.asarray(scores["pred"], dtype="float64") - y
        if metric == "mae":
            absolute = np.abs(err)
            return lambda w: (w @ absolute) / w.sum(axis=1)
        squared = err**2
        if metric == "rmse":
            return lambda w: np.sqrt((w @ squared) / w.sum(axis=1))
        y2 = y**2

        def r2(w: np.ndarray) -> np.ndarray:
            n = w.sum(axis=1)
            total = (w @ y2) - (w @ y) ** 2 / n
            with np.errstate(divide="ignore", invalid="ignore"):
                out = 1.0 - (w @ squared) / total
            return np.where(total > 1e-12 * np.maximum(w @ y2, 1.0), out, np.nan)

        return r2
    if metric in ("r2", "rmse", "mae"):
        raise GateError(f"{metric} does not apply to a classification model")
    positive = positive_label(y_raw, scores)
    y_pos = y_raw == positive
    if metric in PROBABILITY_METRICS:
        if scores.get("proba") is None:
            raise GateError(f"{metric} needs predicted probabilities and the model has no predict_proba")
        p = np.clip(np.asarray(scores["proba"], dtype="float64"), _LOG_EPS, 1 - _LOG_EPS)
        if metric == "log_loss":
            loss = -np.where(y_pos, np.log(p), np.log1p(-p))
            return lambda w: (w @ loss) / w.sum(axis=1)
        if metric == "brier":
            sq = (p - y_pos) ** 2
            return lambda w: (w @ sq) / w.sum(axis=1)
        return _auc_kernel(p, y_pos)
    p_pos = np.asarray(scores["pred"]) == positive
    if metric == "accuracy":
        hit = (p_pos == y_pos).astype("float64")
        return lambda w: (w @ hit) / w.sum(axis=1)
    tp_v = (y_pos & p_pos).astype("float64")
    fp_v = (~y_pos & p_pos).astype("float64")
    fn_v = (y_pos & ~p_pos).astype("float64")
    tn_v = (~y_pos & ~p_pos).astype("float64")

    def counts(w: np.ndarray) -> tuple[np.ndarray, ...]:
        return w @ tp_v, w @ fp_v, w @ fn_v, w @ tn_v

    def ratio(num: np.ndarray, den: np.ndarray, empty: float) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, num / den, empty)

    def from_counts(w: np.ndarray) -> np.ndarray:
        tp, fp, fn, tn = counts(w)
        if metric == "precision":
            return ratio(tp, tp + fp, 0.0)  # zero_division=0, as compute_metrics
        if metric == "recall":
            return ratio(tp, tp + fn, 0.0)
        if metric == "f1":
            return ratio(2 * tp, 2 * tp + fp + fn, 0.0)
        # balanced accuracy, as scikit-learn: the mean of the recalls of the classes present
        tpr, tnr = ratio(tp, tp + fn, np.nan), ratio(tn, tn + fp, np.nan)
        return np.where(np.isnan(tpr), tnr, np.where(np.isnan(tnr), tpr, (tpr + tnr) / 2))

    return from_counts


def _auc_kernel(score: np.ndarray, positive: np.ndarray) -> MetricKernel:
    """Weighted Mann-Whitney AUC: P(score_pos > score_neg) + P(tie) / 2.

    Negatives are sorted by score once; per resample, the cumulative negative weight at each
    positive's score (found once by binary search) is the weight it outranks.
    """
    neg = np.flatnonzero(~positive)
    pos = np.flatnonzero(positive)
    neg = neg[np.argsort(score[neg], kind="mergesort")]
    sorted_neg = score[neg]
    left = np.searchsorted(sorted_neg, score[pos], side="left")
    right = np.searchsorted(sorted_neg, score[pos], side="right")
    ties = bool(np.any(left != right))

    def auc(w: np.ndarray) -> np.ndarray:
        cum = np.zeros((w.shape[0], len(neg) + 1))
        np.cumsum(w[:, neg], axis=1, out=cum[:, 1:])
        credit = cum[:, left]
        if ties:  # a tie counts one half
            credit += 0.5 * (cum[:, right] - credit)
        wp = w[:, pos]
        num = np.einsum("ij,ij->i", wp, credit)
        den = wp.sum(axis=1) * cum[:, -1]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, num / den, np.nan)

    return auc


def metric_value(metric: str, task: str, y_true: np.ndarray, scores: Mapping[str, Any]) -> float:
    """One metric on the whole sample, with the same code the bootstrap uses."""
    n = len(np.asarray(y_true))
    return float(metric_kernel(metric, task, y_true, scores)(np.ones((1, n)))[0])


# -- the paired bootstrap --------------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapResult:
    """Percentile interval of ``sign * (challenger - champion)``: positive means the challenger is better."""

    metric: str
    higher_is_better: bool
    challenger: float
    champion: float
    estimate: float
    lower: float
    upper: float
    confidence: float
    resamples: int
    valid_resamples: int
    seed: int
    rows: int
    method: str = "percentile"


def paired_bootstrap(
    metric: str,
    task: str,
    y_true: np.ndarray,
    challenger: Mapping[str, Any],
    champion: Mapping[str, Any],
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    higher_is_better: bool | None = None,
    max_cells: int = 100_000,
) -> BootstrapResult:
    """Paired bootstrap CI of the metric difference, both models scored on the same resampled rows.

    Each resample draws ``n`` row indices with replacement (seeded), and both models are scored on
    exactly those rows, so the interval reflects the noise of the difference, not of each metric.
    The interval is the percentile interval at ``confidence`` (two-sided): its lower bound is the
    ``(1 - confidence) / 2`` quantile. Work is vectorised over chunks of at most ``max_cells``
    (resamples x rows) counts. Raises :class:`GateError` when it cannot give a reliable interval.
    """
    y = np.asarray(y_true)
    n = len(y)
    if n < 2:
        raise GateError(f"the holdout has {n} row(s); a bootstrap needs at least 2")
    for who, scores in (("challenger", challenger), ("champion", champion)):
        for key in ("pred", "proba"):
            if scores.get(key) is not None and len(scores[key]) != n:
                raise GateError(f"{who} has {len(scores[key])} {key} values for {n} holdout rows")
    if task == "classification":
        cc, bc = challenger.get("classes"), champion.get("classes")
        if cc is not None and bc is not None and list(np.asarray(cc)) != list(np.asarray(bc)):
            raise GateError(f"the models' classes differ ({list(cc)} vs {list(bc)}): they cannot be compared")
    hib = METRIC_DIRECTIONS[metric] if higher_is_better is None else higher_is_better
    sign = 1.0 if hib else -1.0
    k_new = metric_kernel(metric, task, y, challenger)
    k_old = metric_kernel(metric, task, y, champion)
    ones = np.ones((1, n))
    new, old = float(k_new(ones)[0]), float(k_old(ones)[0])
    if not (math.isfinite(new) and math.isfinite(old)):
        reason = undefined_reason(metric, task, y) or "non-finite predictions"
        raise GateError(f"{metric} is not finite on the holdout ({reason})")
    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples)
    chunk = max(1, min(resamples, max_cells // n))
    for start in range(0, resamples, chunk):
        m = min(chunk, resamples - start)
        idx = rng.integers(0, n, size=(m, n))
        idx += (np.arange(m) * n)[:, None]
        w = np.bincount(idx.ravel(), minlength=m * n).reshape(m, n).astype("float64")
        diffs[start : start + m] = sign * (k_new(w) - k_old(w))
    valid = diffs[np.isfinite(diffs)]
    if len(valid) < (1 - MAX_INVALID_RESAMPLES) * resamples:
        why = {"roc_auc": "drew one class only", "r2": "drew a constant target"}.get(
            metric, "were degenerate"
        )
        raise GateError(
            f"{resamples - len(valid)} of {resamples} resamples {why}, so {metric} is undefined on "
            f"them; the holdout ({n} rows) is too small for a bootstrap of {metric}"
        )
    alpha = (1 - confidence) / 2
    lower, upper = (float(q) for q in np.quantile(valid, [alpha, 1 - alpha]))
    return BootstrapResult(
        metric=metric,
        higher_is_better=hib,
        challenger=new,
        champion=old,
        estimate=sign * (new - old),
        lower=lower,
        upper=upper,
        confidence=confidence,
        resamples=resamples,
        valid_resamples=int(len(valid)),
        seed=seed,
        rows=n,
    )


# -- the gate --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleResult:
    """One rule's outcome.

    ``observed`` is the metric (value rules), the improvement (change rules), the interval's lower
    bound (bootstrap rules) or the row count (slice size rules); None when it is not a finite number.
    """

    rule: str
    metric: str
    slice: str
    observed: float | None
    threshold: str
    verdict: Verdict
    message: str


@dataclass(frozen=True)
class HoldoutPredictions:
    """Both models' predictions on the same holdout rows, with the columns slices are cut by.

    :param task: ``classification`` or ``regression``.
    :param y_true: the holdout's target values.
    :param challenger: :func:`score_model` output of the challenger.
    :param champion: :func:`score_model` output of the champion, None when there is none.
    :param columns: slice columns, name -> values aligned with ``y_true``.
    """

    task: str
    y_true: Any
    challenger: Mapping[str, Any]
    champion: Mapping[str, Any] | None = None
    columns: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class GateDecision:
    """The gate's verdict, with every rule it applied. Serialises to the decision JSON."""

    promote: bool
    baseline_version: str | None
    challenger_version: str | None
    challenger_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    rules: list[RuleResult] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    primary_metric: str = ""
    #: the evidence rule: ``status`` is pass, fail, error, no_baseline or disabled
    bootstrap: dict[str, Any] | None = None
    #: one entry per slice: its rows, whether it was gated, both models' metrics within it
    slices: list[dict[str, Any]] = field(default_factory=list)
    #: permutation importance of the challenger (informational, never a rule)
    importance: dict[str, Any] | None = None

    @property
    def status(self) -> str:
        return "promote" if self.promote else "reject"

    @property
    def no_baseline(self) -> bool:
        return self.baseline_version is None

    def to_dict(self) -> dict[str, Any]:
        """Strict JSON: non-finite numbers become null."""
        doc = _json_safe(asdict(self))
        doc["status"] = self.status
        doc["no_baseline"] = self.no_baseline
        return doc


def _json_safe(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _where(slice_name: str) -> str:
    return "" if slice_name == "all" else f"[{slice_name}] "


def higher_is_better(metric: str, override: bool | None = None) -> bool:
    if override is not None:
        return override
    return METRIC_DIRECTIONS[metric]


def value_rules(
    metrics: dict[str, float], thresholds: Mapping[str, Any], slice_name: str = "all"
) -> list[RuleResult]:
    """``lower <= metric <= upper`` for each thresholded metric; missing or non-finite fails."""
    results = []
    for metric, th in thresholds.items():
        lower, upper = _get(th, "lower"), _get(th, "upper")
        bounds = (
            f"[{_fmt(lower) if lower is not None else '-inf'}, {_fmt(upper) if upper is not None else 'inf'}]"
        )
        value = metrics.get(metric)
        if not _finite(value):
            results.append(
                RuleResult(
                    "value",
                    metric,
                    slice_name,
                    None,
                    bounds,
                    "fail",
                    f"{_where(slice_name)}{metric} is missing or not finite (fail closed)",
                )
            )
            continue
        ok = (lower is None or value >= lower - _TOL) and (upper is None or value <= upper + _TOL)
        msg = f"{_where(slice_name)}{metric} = {value:.4f} {'within' if ok else 'outside'} {bounds}"
        results.append(
            RuleResult("value", metric, slice_name, float(value), bounds, "pass" if ok else "fail", msg)
        )
    return results


def change_rules(
    challenger: dict[str, float],
    champion: dict[str, float],
    thresholds: Mapping[str, Any],
    slice_name: str = "all",
) -> list[RuleResult]:
    """Direction-aware improvement of challenger over champion, absolute and relative.

    ``improvement = challenger - champion`` (higher is better) or ``champion - challenger``
    (lower is better); relative divides by ``|champion|``. A zero champion has no relative scale:
    a tie is 0, any gain +inf (passes), any loss -inf (fails).
    """
    results = []
    for metric, th in thresholds.items():
        hib = higher_is_better(metric, _get(th, "higher_is_better"))
        new, old = challenger.get(metric), champion.get(metric)
        checks = [(k, _get(th, k)) for k in ("absolute", "relative") if _get(th, k) is not None]
        if not (_finite(new) and _finite(old)):
            missing = " and ".join(
                who for who, v in (("challenger", new), ("champion", old)) if not _finite(v)
            )
            for kind, limit in checks:
                results.append(
                    RuleResult(
                        f"change_{kind}",
                        metric,
                        slice_name,
                        None,
                        _change_threshold(kind, limit),
                        "fail",
                        f"{_where(slice_name)}{metric} is missing or not finite for the {missing} "
                        "(fail closed)",
                    )
                )
            continue
        gain = (new - old) if hib else (old - new)
        for kind, limit in checks:
            if kind == "absolute":
                observed = gain
            elif old == 0:
                # a zero baseline has no relative scale: any gain is infinite, any loss too
                observed = 0.0 if gain == 0 else math.copysign(math.inf, gain)
            else:
                observed = gain / abs(old)
            ok = observed >= limit - _TOL
            word = "improvement" if observed >= 0 else "regression"
            unit = "" if kind == "absolute" else " (relative)"
            msg = (
                f"{_where(slice_name)}{metric}: challenger {new:.4f} vs champion {old:.4f}, "
                f"{word} {observed:+.4g}{unit}, needs >= {limit:+.4g}"
            )
            results.append(
                RuleResult(
                    f"change_{kind}",
                    metric,
                    slice_name,
                    observed if math.isfinite(observed) else None,
                    _change_threshold(kind, limit),
                    "pass" if ok else "fail",
                    msg,
                )
            )
    return results


def _change_threshold(kind: str, limit: float) -> str:
    return f">= {limit:+.4g}" + ("" if kind == "absolute" else " (relative)")


def _as_spec(evaluation: Any) -> EvaluationSpec:
    if isinstance(evaluation, EvaluationSpec):
        return evaluation
    return EvaluationSpec.model_validate(evaluation or {})


def _effective_changes(spec: EvaluationSpec) -> dict[str, Any]:
    """The configured change thresholds, or "the primary metric must not get worse"."""
    return dict(spec.change_thresholds) or {spec.primary_metric: {"absolute": 0.0}}


def bootstrap_rule(
    spec: EvaluationSpec, holdout: HoldoutPredictions | None
) -> tuple[RuleResult, dict[str, Any]]:
    """The evidence rule against the champion, and the ``bootstrap`` record of the decision.

    Fails closed when predictions are missing or the interval cannot be computed.
    """
    cfg = spec.bootstrap
    metric = cfg.metric or spec.primary_metric
    change = spec.change_thresholds.get(metric)
    hib = higher_is_better(metric, change.higher_is_better if change is not None else None)
    limit = -cfg.margin if cfg.require == "non_inferiority" else cfg.margin
    name = f"bootstrap_{cfg.require}"
    threshold = f"lower bound > {limit:+.4g}"
    record: dict[str, Any] = {
        "status": "error",
        "metric": metric,
        "require": cfg.require,
        "margin": cfg.margin,
        "threshold": limit,
        "confidence": cfg.confidence,
        "resamples": cfg.resamples,
        "seed": cfg.seed,
        "higher_is_better": hib,
        "method": "percentile",
    }
    try:
        if holdout is None or holdout.champion is None:
            raise GateError("it needs both models' predictions on the holdout, and none were given")
        result = paired_bootstrap(
            metric,
            holdout.task,
            np.asarray(holdout.y_true),
            holdout.challenger,
            holdout.champion,
            resamples=cfg.resamples,
            confidence=cfg.confidence,
            seed=cfg.seed,
            higher_is_better=hib,
        )
    except Exception as err:  # fail closed: whatever went wrong, the evidence is missing
        detail = str(err) if isinstance(err, GateError) else f"{type(err).__name__}: {err}"
        message = f"{metric}: the bootstrap could not be computed: {detail} (fail closed)"
        record["message"] = message
        return RuleResult(name, metric, "all", None, threshold, "fail", message), record
    ok = result.lower > limit
    level = f"{cfg.confidence:.0%}".replace(".0%", "%")
    requirement = "non-inferiority" if cfg.require == "non_inferiority" else "superiority"
    message = (
        f"{metric}: challenger - champion = {result.estimate:+.4f} "
        f"({'higher' if hib else 'lower'} is better, sign-adjusted so positive is better), "
        f"{level} CI [{result.lower:+.4f}, {result.upper:+.4f}] from {result.valid_resamples} paired "
        f"resamples; {requirement} needs the lower bound > {limit:+.4g}"
    )
    record.update(asdict(result))
    record.update({"status": "pass" if ok else "fail", "passed": ok, "message": message})
    return RuleResult(name, metric, "all", result.lower, threshold, "pass" if ok else "fail", message), record


def slice_rules(
    spec: EvaluationSpec, holdout: HoldoutPredictions, with_champion: bool
) -> tuple[list[RuleResult], list[dict[str, Any]]]:
    """The value and change thresholds within each value of each configured slice column.

    A slice with fewer than ``min_rows`` rows gets one ``slice_size`` rule with verdict ``skip``;
    a rule on a metric the slice cannot define (AUC with one class, R² with a constant target) gets
    verdict ``skip`` too. Skips are reported, and neither pass nor fail the gate. Rows whose slice
    value is missing belong to no slice. Raises :class:`GateError` for a column that is not given.
    """
    import pandas as pd

    y = np.asarray(holdout.y_true)
    task = holdout.task
    changes = _effective_changes(spec) if with_champion else {}
    rules: list[RuleResult] = []
    table: list[dict[str, Any]] = []
    for cfg in spec.slices:
        if cfg.column not in holdout.columns:
            raise GateError(
                f"slice column {cfg.column!r} is not among the holdout's columns; fix evaluation.slices"
            )
        text = pd.Series(np.asarray(holdout.columns[cfg.column], dtype=object)).astype("string")
        if len(text) != len(y):
            raise GateError(f"slice column {cfg.column!r} has {len(text)} values for {len(y)} holdout rows")
        present = sorted(str(v) for v in text.dropna().unique())
        values = [str(v) for v in cfg.values] if cfg.values is not None else present
        for value in values:
            name = f"{cfg.column}={value}"
            mask = (text == value).fillna(False).to_numpy(dtype=bool)
            rows = int(mask.sum())
            y_s = y[mask]
            new = _subset_metrics(task, y_s, holdout.challenger, mask)
            old = _subset_metrics(task, y_s, holdout.champion, mask) if with_champion else None
            entry: dict[str, Any] = {
                "slice": name,
                "column": cfg.column,
                "value": value,
                "rows": rows,
                "min_rows": cfg.min_rows,
                "challenger_metrics": new,
                "champion_metrics": old,
            }
            table.append(entry)
            if rows < cfg.min_rows:
                message = f"[{name}] {rows} row(s), fewer than min_rows {cfg.min_rows}: reported, not gated"
                entry.update(status="skipped", note=message)
                rules.append(
                    RuleResult("slice_size", "rows", name, float(rows), f">= {cfg.min_rows}", "skip", message)
                )
                continue
            own: list[RuleResult] = []
            undefined: set[str] = set()
            gated_values, gated_changes = {}, {}
            for metric, th in spec.thresholds.items():
                reason = undefined_reason(metric, task, y_s)
                if reason:
                    undefined.add(reason)
                    own.append(_skip("value", metric, name, rows, reason))
                else:
                    gated_values[metric] = th
            for metric, th in changes.items():
                reason = undefined_reason(metric, task, y_s)
                if reason:
                    undefined.add(reason)
                    kinds = [k for k in ("absolute", "relative") if _get(th, k) is not None]
                    own += [_skip(f"change_{k}", metric, name, rows, reason) for k in kinds]
                else:
                    gated_changes[metric] = th
            own += value_rules(new, gated_values, name)
            if old is not None:
                own += change_rules(new, old, gated_changes, name)
            note = f"{'; '.join(sorted(undefined))}: those rules are skipped" if undefined else ""
            entry.update(status="gated", note=note)
            rules += own
    return rules, table


def _skip(rule: str, metric: str, name: str, rows: int, reason: str) -> RuleResult:
    return RuleResult(
        rule, metric, name, None, "n/a", "skip", f"[{name}] {rows} rows with {reason}: reported, not gated"
    )


def _subset_metrics(
    task: str, y: np.ndarray, scores: Mapping[str, Any] | None, mask: np.ndarray
) -> dict[str, float]:
    if scores is None or len(y) == 0:
        return {}
    part = {k: (v if k == "classes" else np.asarray(v)[mask]) for k, v in scores.items()}
    try:
        return compute_metrics(task, y, part)
    except ValueError as err:  # e.g. one row: the caller's rules then fail closed or skip
        log.info("metrics of a slice could not be computed: %s", err)
        return {}


def decide(
    *,
    challenger_metrics: dict[str, float] | None = None,
    champion_metrics: dict[str, float] | None = None,
    evaluation: Any,
    challenger_version: str | None,
    baseline_version: str | None,
    error: str | None = None,
    holdout: HoldoutPredictions | None = None,
    importance: dict[str, Any] | None = None,
) -> GateDecision:
    """Apply the gate. Fail closed.

    Give either the metrics of both models (value and change rules only; a configured bootstrap
    or slice then fails closed, as it needs predictions) or ``holdout``, the predictions of both
    models on the same holdout, from which the metrics, the bootstrap and the slices are computed.

    :param evaluation: an :class:`~mlops_ops.config.EvaluationSpec` or its dict form. With a
        champion and no change thresholds configured, the primary metric must not get worse.
    :param error: an evaluation error that already happened (the gate then rejects with it).
    :param importance: the challenger's permutation importance, recorded as is.
    """
    spec = _as_spec(evaluation)
    primary = spec.primary_metric
    if holdout is not None and error is None:
        if challenger_metrics is not None or champion_metrics is not None:
            raise ValueError("give the models' metrics or their holdout predictions, not both")
        try:
            y = np.asarray(holdout.y_true)
            challenger_metrics = compute_metrics(holdout.task, y, dict(holdout.challenger))
            if holdout.champion is not None:
                champion_metrics = compute_metrics(holdout.task, y, dict(holdout.champion))
        except Exception as err:  # fail closed: any error computing the metrics rejects
            error = f"the metrics could not be computed on the holdout: {type(err).__name__}: {err}"
    decision = GateDecision(
        promote=False,
        baseline_version=baseline_version,
        challenger_version=challenger_version,
        challenger_metrics=dict(challenger_metrics or {}),
        champion_metrics=dict(champion_metrics) if champion_metrics is not None else None,
        primary_metric=primary,
        importance=importance,
    )
    if error is not None or challenger_metrics is None:
        decision.rules.append(
            RuleResult(
                "evaluation_error",
                primary,
                "all",
                None,
                "no error",
                "fail",
                error or "the challenger was not evaluated",
            )
        )
        decision.reasons.append(f"evaluation failed, rejecting (fail closed): {error or 'no metrics'}")
        if spec.bootstrap.enabled:
            decision.bootstrap = {"status": "error", "message": "not computed: the evaluation failed"}
        return decision
    with_champion = champion_metrics is not None
    rules = value_rules(challenger_metrics, spec.thresholds)
    if not _finite(challenger_metrics.get(primary)):
        rules.append(
            RuleResult(
                "value",
                primary,
                "all",
                None,
                "present",
                "fail",
                f"primary metric {primary} is missing or not finite (fail closed)",
            )
        )
    if with_champion:
        rules += change_rules(challenger_metrics, champion_metrics or {}, _effective_changes(spec))
    if not spec.bootstrap.enabled:
        decision.bootstrap = {"status": "disabled"}
    elif not with_champion:
        decision.bootstrap = {
            "status": "no_baseline",
            "metric": spec.bootstrap.metric or primary,
            "message": "no baseline: there is no champion to compare with",
        }
    else:
        rule, decision.bootstrap = bootstrap_rule(spec, holdout)
        rules.append(rule)
    if spec.slices:
        if holdout is None:
            rules.append(
                RuleResult(
                    "slices",
                    primary,
                    "all",
                    None,
                    "predictions",
                    "fail",
                    "slices are configured but no holdout predictions were given (fail closed)",
                )
            )
        else:
            try:
                more, decision.slices = slice_rules(spec, holdout, with_champion)
                rules += more
            except Exception as err:  # fail closed
                detail = str(err) if isinstance(err, GateError) else f"{type(err).__name__}: {err}"
                rules.append(
                    RuleResult(
                        "slices", primary, "all", None, "computable", "fail", f"{detail} (fail closed)"
                    )
                )
    decision.rules = rules
    failed = [r for r in rules if r.verdict == "fail"]
    skipped = sum(r.verdict == "skip" for r in rules)
    decision.promote = not failed
    if failed:
        decision.reasons = [r.message for r in failed]
    else:
        base = (
            "no baseline: first model, value thresholds only"
            if not with_champion
            else f"no worse than champion v{baseline_version} by any configured rule"
        )
        gated = len(rules) - skipped
        note = f" ({skipped} slice rule(s) skipped, not gated)" if skipped else ""
        decision.reasons = [f"all {gated} rule(s) passed; {base}{note}"]
    return decision


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


# -- permutation importance ------------------------------------------------------------------


def importance_scorer(metric: str, task: str) -> Callable[[Any, Any, Any], float]:
    """A scikit-learn scorer for ``metric``, sign-adjusted so that greater is better."""
    sign = 1.0 if METRIC_DIRECTIONS[metric] else -1.0

    def score(estimator: Any, x: Any, y: Any) -> float:
        scores: dict[str, Any] = {}
        if metric in PROBABILITY_METRICS:
            proba = np.asarray(estimator.predict_proba(x))
            scores["proba"] = proba[:, 1] if proba.ndim == 2 else proba
            scores["classes"] = np.asarray(getattr(estimator, "classes_", [0, 1]))
        else:
            scores["pred"] = np.asarray(estimator.predict(x))
            if task == "classification" and hasattr(estimator, "classes_"):
                scores["classes"] = np.asarray(estimator.classes_)
        return sign * metric_value(metric, task, np.asarray(y), scores)

    return score


def permutation_importance_report(
    model: Any,
    x: Any,
    y: Any,
    *,
    task: str,
    metric: str,
    seed: int = 0,
    n_repeats: int = 5,
    max_rows: int = 5000,
) -> dict[str, Any]:
    """Permutation importance of each raw input column of ``model`` on the holdout.

    ``importance`` of a column is the drop in ``metric`` (sign-adjusted: a loss that grows is a
    drop) when that column is shuffled, averaged over ``n_repeats`` shuffles; near zero or
    negative means the model does not rely on it. The holdout is subsampled (seeded) to
    ``max_rows`` rows to bound the time. Features are sorted by importance, largest first.
    """
    from sklearn.inspection import permutation_importance

    y_arr = np.asarray(y)
    n = len(y_arr)
    if metric in PROBABILITY_METRICS and not hasattr(model, "predict_proba"):
        raise GateError(f"{metric} needs predict_proba, which the model does not have")
    if n > max_rows:
        pick = np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))
        x, y_arr = x.iloc[pick], y_arr[pick]
    reason = undefined_reason(metric, task, y_arr)
    if reason:
        raise GateError(f"permutation importance by {metric} is undefined on this holdout: {reason}")
    scorer = importance_scorer(metric, task)
    baseline = scorer(model, x, y_arr)
    result = permutation_importance(
        model, x, y_arr, scoring=scorer, n_repeats=n_repeats, random_state=seed, n_jobs=1
    )
    features: list[dict[str, Any]] = [
        {"feature": str(col), "importance": float(mean), "std": float(std)}
        for col, mean, std in zip(x.columns, result.importances_mean, result.importances_std, strict=True)
    ]
    features.sort(key=lambda f: f["importance"], reverse=True)
    return {
        "metric": metric,
        "higher_is_better": METRIC_DIRECTIONS[metric],
        "baseline": float(baseline if METRIC_DIRECTIONS[metric] else -baseline),
        "rows": int(len(y_arr)),
        "holdout_rows": int(n),
        "n_repeats": n_repeats,
        "seed": seed,
        "features": features,
    }
