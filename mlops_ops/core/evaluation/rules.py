"""The gate's rules, each applied on its own: value and change thresholds, the bootstrap evidence,
the thresholds within each slice. Each returns :class:`RuleResult` records; :func:`decide` in
:mod:`~mlops_ops.core.evaluation.decision` combines them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeGuard

import numpy as np

from mlops_ops.config import METRIC_DIRECTIONS, EvaluationSpec
from mlops_ops.core.bootstrap import paired_bootstrap
from mlops_ops.core.metrics import (
    GateError,
    compute_metrics,
    undefined_reason,
)

log = logging.getLogger("mlops_ops.core.evaluation")


#: ``skip``: the rule could not be applied meaningfully (a slice too small, or with one class
#: where the metric needs two). Recorded and shown, but it neither passes nor fails the gate.
Verdict = Literal["pass", "fail", "skip"]

#: Metrics are floats: a value exactly at a threshold must not fail on rounding (0.70 - 0.65 < 0.05).
_TOL = 1e-9


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
    level = f"{100 * cfg.confidence:g}%"  # 95%, 97.5%: not rounded to a whole percent
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
    # a slice's positive class is the holdout's, even for a model without ``classes`` (whose
    # positive class compute_metrics would otherwise take from the slice's own labels)
    challenger = _with_classes(task, y, holdout.challenger)
    champion = _with_classes(task, y, holdout.champion)
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
            new = _subset_metrics(task, y_s, challenger, mask)
            old = _subset_metrics(task, y_s, champion, mask) if with_champion else None
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


def _with_classes(task: str, y: np.ndarray, scores: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """``scores`` with the holdout's two labels as ``classes`` when the classifier gave none."""
    if task != "classification" or scores is None or scores.get("classes") is not None:
        return scores
    labels = np.unique(y)
    return {**scores, "classes": labels} if len(labels) == 2 else scores


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


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)
