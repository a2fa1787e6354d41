"""The model sections of a pipeline spec: ``model`` and ``evaluation`` (gate thresholds, bootstrap, slices)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from mlops_ops.config.base import (
    _IMPORT_PATH_RE,
    _SEED_PARAMS,
    CLASSIFICATION_METRICS,
    MAX_SEED,
    METRIC_DIRECTIONS,
    REGRESSION_METRICS,
    Seed,
    _Model,
)
from mlops_ops.config.errors import FieldError


class ModelSpec(_Model):
    """The scikit-learn estimator, wrapped at training time in an automatic preprocessing Pipeline."""

    estimator: str = Field(description="Import path of a scikit-learn estimator class.")
    params: dict[str, Any] = Field(default_factory=dict)
    task: Literal["auto", "classification", "regression"] = "auto"
    holdout_fraction: float = Field(default=0.25, gt=0.0, lt=0.9)
    max_training_rows: int | None = Field(
        default=None,
        ge=100,
        description="Train on at most this many rows of the training side of the split: a seeded "
        "sample, stratified by the target, recorded in the run's lineage. Training holds its rows in "
        "memory (docs/architecture.md, 'Training memory'); the holdout is never sampled.",
    )
    seed: Seed = 42

    @field_validator("params")
    @classmethod
    def _seed_params(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in _SEED_PARAMS:
            seed = value.get(key)
            if isinstance(seed, int) and not isinstance(seed, bool) and not 0 <= seed <= MAX_SEED:
                raise FieldError(key, f"a seed must be an integer in [0, 2**32 - 1], got {seed}")
        return value

    @field_validator("estimator")
    @classmethod
    def _import_path(cls, value: str) -> str:
        if not _IMPORT_PATH_RE.match(value):
            raise ValueError(
                f"expected an import path like 'sklearn.linear_model.LogisticRegression', got {value!r}"
            )
        return value


class ValueThreshold(_Model):
    """The challenger's metric must lie in ``[lower, upper]``."""

    lower: float | None = None
    upper: float | None = None

    @model_validator(mode="after")
    def _order(self) -> ValueThreshold:
        if self.lower is None and self.upper is None:
            raise ValueError("give 'lower', 'upper' or both")
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise ValueError(f"lower ({self.lower}) is above upper ({self.upper})")
        return self


class ChangeThreshold(_Model):
    """Minimum improvement of the challenger over the champion, in the metric's better direction.

    ``absolute: -0.01`` allows the challenger to be up to 0.01 worse; ``relative: 0.0`` requires it
    to be no worse relative to the champion's value. Direction comes from the metric (AUC: higher
    is better, RMSE: lower is better) unless ``higher_is_better`` says otherwise.
    """

    absolute: float | None = None
    relative: float | None = None
    higher_is_better: bool | None = None

    @model_validator(mode="after")
    def _some(self) -> ChangeThreshold:
        if self.absolute is None and self.relative is None:
            raise ValueError("give 'absolute', 'relative' or both")
        return self


class BootstrapSpec(_Model):
    """Evidence that the challenger is not worse (or is better) than the champion.

    A paired bootstrap over the holdout rows gives a confidence interval of
    ``challenger - champion`` for ``metric`` (sign-adjusted so that positive is better).
    ``non_inferiority`` passes when the interval's lower bound is above ``-margin``;
    ``superiority`` when it is above ``margin`` (default 0: strictly better).
    """

    enabled: bool = True
    metric: str | None = Field(default=None, description="Default: the primary metric.")
    resamples: int = Field(default=1000, ge=100, le=100_000)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    require: Literal["non_inferiority", "superiority"] = "non_inferiority"
    margin: float = Field(default=0.01, ge=0.0, description="In the metric's units.")
    seed: Seed = 0


class SliceSpec(_Model):
    """Apply the gate's rules within each value of a categorical column, too."""

    column: str
    min_rows: int = Field(
        default=50, ge=1, description="Smaller slices are reported but not gated (too few rows)."
    )
    values: list[str] | None = Field(default=None, description="Only these values (default: all).")


class EvaluationSpec(_Model):
    primary_metric: str = "roc_auc"
    thresholds: dict[str, ValueThreshold] = Field(default_factory=dict)
    change_thresholds: dict[str, ChangeThreshold] = Field(default_factory=dict)
    bootstrap: BootstrapSpec = Field(default_factory=BootstrapSpec)
    slices: list[SliceSpec] = Field(default_factory=list)
    permutation_importance: bool = Field(
        default=True, description="Compute permutation importance on the holdout and log it."
    )

    def used_metrics(self) -> set[str]:
        used = {self.primary_metric, *self.thresholds, *self.change_thresholds}
        if self.bootstrap.enabled and self.bootstrap.metric:
            used.add(self.bootstrap.metric)
        return used

    def misapplied_metrics(self, task: str) -> tuple[list[str], tuple[str, ...]]:
        """Metrics this evaluation uses that a ``task`` model does not have, and those it has."""
        allowed = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
        return sorted(self.used_metrics() - set(allowed)), allowed

    @model_validator(mode="after")
    def _known_metrics(self) -> EvaluationSpec:
        names = self.used_metrics()
        unknown = sorted(n for n in names if n not in METRIC_DIRECTIONS)
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; known: {sorted(METRIC_DIRECTIONS)}")
        return self
