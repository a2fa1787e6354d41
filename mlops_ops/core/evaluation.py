"""Evaluation: metrics, and the gate that decides whether a challenger replaces the champion.

The gate fails closed: a metric that is missing or not finite, or an evaluation error, rejects.
With no champion yet only the value thresholds apply and the decision records "no baseline".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeGuard

import numpy as np

from mlops_ops.config import METRIC_DIRECTIONS

Verdict = Literal["pass", "fail"]

#: Metrics are floats: a value exactly at a threshold must not fail on rounding (0.70 - 0.65 < 0.05).
_TOL = 1e-9


# -- metrics ---------------------------------------------------------------------------------


def score_model(model: Any, x: Any, task: str) -> dict[str, np.ndarray]:
    """Predictions (and positive-class probabilities, for classifiers) of a fitted model."""
    out = {"pred": np.asarray(model.predict(x))}
    if task == "classification" and hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(x))
        out["proba"] = proba[:, 1] if proba.ndim == 2 else proba
        out["classes"] = np.asarray(getattr(model, "classes_", [0, 1]))
    return out


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
    classes = scores.get("classes")
    positive = classes[1] if classes is not None and len(classes) == 2 else np.unique(y_true)[-1]
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
        proba = np.clip(np.asarray(proba, dtype="float64"), 1e-15, 1 - 1e-15)
        if len(np.unique(y_bin)) == 2:
            out["roc_auc"] = float(m.roc_auc_score(y_bin, proba))
        out["log_loss"] = float(m.log_loss(y_bin, proba, labels=[0, 1]))
        out["brier"] = float(m.brier_score_loss(y_bin, proba))
    return out


# -- the gate --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleResult:
    """One rule's outcome. ``observed`` is the metric (value rules) or the improvement (change rules)."""

    rule: str
    metric: str
    slice: str
    observed: float | None
    threshold: str
    verdict: Verdict
    message: str


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
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def higher_is_better(metric: str, override: bool | None = None) -> bool:
    if override is not None:
        return override
    return METRIC_DIRECTIONS[metric]


def value_rules(
    metrics: dict[str, float], thresholds: dict[str, Any], slice_name: str = "all"
) -> list[RuleResult]:
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
                    f"{metric} is missing or not finite (fail closed)",
                )
            )
            continue
        ok = (lower is None or value >= lower - _TOL) and (upper is None or value <= upper + _TOL)
        msg = f"{metric} = {value:.4f} {'within' if ok else 'outside'} {bounds}"
        results.append(
            RuleResult("value", metric, slice_name, float(value), bounds, "pass" if ok else "fail", msg)
        )
    return results


def change_rules(
    challenger: dict[str, float],
    champion: dict[str, float],
    thresholds: dict[str, Any],
    slice_name: str = "all",
) -> list[RuleResult]:
    """Direction-aware improvement of challenger over champion, absolute and relative."""
    results = []
    for metric, th in thresholds.items():
        hib = higher_is_better(metric, _get(th, "higher_is_better"))
        new, old = challenger.get(metric), champion.get(metric)
        checks = [(k, _get(th, k)) for k in ("absolute", "relative") if _get(th, k) is not None]
        if not (_finite(new) and _finite(old)):
            for kind, limit in checks:
                results.append(
                    RuleResult(
                        f"change_{kind}",
                        metric,
                        slice_name,
                        None,
                        f">= {limit:+.4g}",
                        "fail",
                        f"{metric} missing for challenger or champion (fail closed)",
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
                f"{metric}: challenger {new:.4f} vs champion {old:.4f}, {word} {observed:+.4g}{unit}, "
                f"needs >= {limit:+.4g}"
            )
            results.append(
                RuleResult(
                    f"change_{kind}",
                    metric,
                    slice_name,
                    observed if math.isfinite(observed) else None,
                    f">= {limit:+.4g}",
                    "pass" if ok else "fail",
                    msg,
                )
            )
    return results


def decide(
    *,
    challenger_metrics: dict[str, float] | None,
    champion_metrics: dict[str, float] | None,
    evaluation: Any,
    challenger_version: str | None,
    baseline_version: str | None,
    error: str | None = None,
) -> GateDecision:
    """Apply value thresholds, and change thresholds when a champion exists. Fail closed.

    :param evaluation: an :class:`~mlops_ops.config.EvaluationSpec` or its dict form. With a
        champion and no change thresholds configured, the primary metric must not get worse.
    """
    primary = _get(evaluation, "primary_metric") or "roc_auc"
    thresholds = dict(_get(evaluation, "thresholds") or {})
    changes = dict(_get(evaluation, "change_thresholds") or {})
    decision = GateDecision(
        promote=False,
        baseline_version=baseline_version,
        challenger_version=challenger_version,
        challenger_metrics=dict(challenger_metrics or {}),
        champion_metrics=dict(champion_metrics) if champion_metrics is not None else None,
        primary_metric=primary,
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
        return decision
    rules = value_rules(challenger_metrics, thresholds)
    if primary not in challenger_metrics or not _finite(challenger_metrics.get(primary)):
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
    if champion_metrics is not None:
        if not changes:
            changes = {primary: {"absolute": 0.0}}
        rules += change_rules(challenger_metrics, champion_metrics, changes)
    decision.rules = rules
    failed = [r for r in rules if r.verdict == "fail"]
    decision.promote = not failed
    if failed:
        decision.reasons = [r.message for r in failed]
    else:
        base = (
            "no baseline: first model, value thresholds only"
            if champion_metrics is None
            else f"no worse than champion v{baseline_version} by any configured rule"
        )
        decision.reasons = [f"all {len(rules)} rule(s) passed; {base}"]
    return decision


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)
