"""The gate's decision: every rule over one holdout, combined into a :class:`GateDecision`.

Fails closed: a metric that is missing or not finite, or an evaluation error, rejects. With no
champion yet only the value thresholds apply and the decision records "no baseline".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mlops_ops.core.evaluation.rules import (
    HoldoutPredictions,
    RuleResult,
    _as_spec,
    _effective_changes,
    _finite,
    bootstrap_rule,
    change_rules,
    slice_rules,
    value_rules,
)
from mlops_ops.core.jsonsafe import json_safe
from mlops_ops.core.metrics import (
    GateError,
    compute_metrics,
)


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
        """Strict JSON (:func:`~mlops_ops.core.jsonsafe.json_safe`): non-finite numbers become null."""
        doc = json_safe(asdict(self))
        doc["status"] = self.status
        doc["no_baseline"] = self.no_baseline
        return doc


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
    :param baseline_version: the serving champion's version, or None when there is none. When it
        is the challenger itself (a re-run evaluating the serving version), the rules run as for a
        first model and the decision is never to promote: there is nothing to deploy.
    :param error: an evaluation error that already happened (the gate then rejects with it).
    :param importance: the challenger's permutation importance, recorded as is.
    """
    already_champion = baseline_version is not None and baseline_version == challenger_version
    decision = _apply_rules(
        challenger_metrics=challenger_metrics,
        champion_metrics=champion_metrics,
        evaluation=evaluation,
        challenger_version=challenger_version,
        baseline_version=None if already_champion else baseline_version,
        error=error,
        holdout=holdout,
        importance=importance,
    )
    if already_champion:
        decision.baseline_version = baseline_version
        decision.promote = False
        decision.reasons = [f"v{challenger_version} is already the champion: nothing to deploy"]
    return decision


def _apply_rules(
    *,
    challenger_metrics: dict[str, float] | None,
    champion_metrics: dict[str, float] | None,
    evaluation: Any,
    challenger_version: str | None,
    baseline_version: str | None,
    error: str | None,
    holdout: HoldoutPredictions | None,
    importance: dict[str, Any] | None,
) -> GateDecision:
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
