"""Evaluation: the gate that decides whether a challenger replaces the champion.

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

The metrics themselves live in :mod:`mlops_ops.core.metrics` and the paired bootstrap in
:mod:`mlops_ops.core.bootstrap`; their public names are re-exported here, so
``from mlops_ops.core.evaluation import score_model, paired_bootstrap`` keeps working.

The package holds the rules (:mod:`~mlops_ops.core.evaluation.rules`), the decision
(:mod:`~mlops_ops.core.evaluation.decision`) and permutation importance
(:mod:`~mlops_ops.core.evaluation.importance`); every public name is exported here.
"""

from mlops_ops.core.bootstrap import MAX_INVALID_RESAMPLES, BootstrapResult, paired_bootstrap
from mlops_ops.core.evaluation.decision import GateDecision, decide
from mlops_ops.core.evaluation.importance import importance_scorer, permutation_importance_report
from mlops_ops.core.evaluation.rules import (
    HoldoutPredictions,
    RuleResult,
    Verdict,
    bootstrap_rule,
    change_rules,
    higher_is_better,
    slice_rules,
    value_rules,
)
from mlops_ops.core.metrics import (
    PROBABILITY_METRICS,
    GateError,
    MetricKernel,
    compute_metrics,
    metric_kernel,
    metric_value,
    positive_label,
    score_model,
    undefined_reason,
)

__all__ = [
    "MAX_INVALID_RESAMPLES",
    "PROBABILITY_METRICS",
    "BootstrapResult",
    "GateDecision",
    "GateError",
    "HoldoutPredictions",
    "MetricKernel",
    "RuleResult",
    "Verdict",
    "bootstrap_rule",
    "change_rules",
    "compute_metrics",
    "decide",
    "higher_is_better",
    "importance_scorer",
    "metric_kernel",
    "metric_value",
    "paired_bootstrap",
    "permutation_importance_report",
    "positive_label",
    "score_model",
    "slice_rules",
    "undefined_reason",
    "value_rules",
]
