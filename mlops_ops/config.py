"""Pipeline specs: one YAML file per pipeline, validated when it is loaded.

A bad spec fails at DAG parse time with a message that names the file, the field and what was
expected, so it is noticed when it is committed rather than when a worker first runs it.
This module imports only pydantic and PyYAML: DAG files import it at parse time.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Severity = Literal["error", "warn"]
InferredSeverity = Literal["error", "warn", "off"]

_PRESETS = {"@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly"}
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_IMPORT_PATH_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$")

#: Metric name -> True if higher is better. Shared with ``core.evaluation`` (which computes them).
METRIC_DIRECTIONS: dict[str, bool] = {
    "roc_auc": True,
    "accuracy": True,
    "balanced_accuracy": True,
    "f1": True,
    "precision": True,
    "recall": True,
    "log_loss": False,
    "brier": False,
    "r2": True,
    "rmse": False,
    "mae": False,
}
CLASSIFICATION_METRICS = (
    "roc_auc",
    "accuracy",
    "balanced_accuracy",
    "f1",
    "precision",
    "recall",
    "log_loss",
    "brier",
)
REGRESSION_METRICS = ("r2", "rmse", "mae")


class SpecError(ValueError):
    """A pipeline spec is invalid. The message names the file, the field and the fix."""


class FieldError(ValueError):
    """A check across fields, reported at the field it is about."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WindowSpec(_Model):
    """Read only the most recent dated partitions of a file source (a rolling training window).

    A partition's date is read from its path (file or folder name), e.g. ``2026-01-31.parquet`` or
    ``dt=2026-01-31/part-0.parquet``. The window ends at the run's logical date (or, for a run
    started by an asset event, the day it was queued) and spans ``days`` days back, that day
    included.
    """

    days: int = Field(ge=1, le=3660, description="Number of days of partitions to read.")
    date_format: str = Field(
        default="%Y-%m-%d", description="strftime format of the date in partition paths."
    )

    @field_validator("date_format")
    @classmethod
    def _fmt(cls, value: str) -> str:
        if sorted(re.findall(r"%[A-Za-z]", value)) != ["%Y", "%d", "%m"]:
            raise ValueError(
                f"expected a date format using exactly %Y, %m and %d (e.g. '%Y-%m-%d'), got {value!r}"
            )
        return value


class SourceSpec(_Model):
    """Where the pipeline's data comes from: files (CSV/Parquet, a glob) or a SQL query."""

    uri: str | None = Field(
        default=None,
        description="File or glob URI read through ObjectStoragePath (file://, s3://, gs://, or a "
        "local path). Jinja-templated ({{ ds }}); ${VARS} expand from the worker's environment.",
    )
    format: Literal["auto", "csv", "parquet"] = "auto"
    sql: str | None = Field(default=None, description="SQL query (templated); use bound parameters.")
    conn_id: str | None = Field(default=None, description="Airflow connection the query runs on.")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="Bound query parameters (templated)."
    )
    conn_id_storage: str | None = Field(
        default=None, description="Airflow connection with credentials for the file URI's object store."
    )
    window: WindowSpec | None = Field(
        default=None, description="Read only the last N days of dated partitions (file sources)."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> SourceSpec:
        if bool(self.uri) == bool(self.sql):
            raise ValueError("give exactly one of 'uri' (files) or 'sql' (a query with 'conn_id')")
        if self.sql and not self.conn_id:
            raise ValueError("'sql' needs 'conn_id', the Airflow connection to run the query on")
        if self.parameters and not self.sql:
            raise ValueError("'parameters' only apply to a 'sql' source")
        if self.window and not self.uri:
            raise ValueError("'window' only applies to a file source ('uri'); filter a query in its SQL")
        return self


class FeaturesSpec(_Model):
    """Feature columns by kind. Omit both lists to infer them from the data (all but the target)."""

    numeric: list[str] | None = None
    categorical: list[str] | None = None

    @model_validator(mode="after")
    def _no_overlap(self) -> FeaturesSpec:
        both = set(self.numeric or ()) & set(self.categorical or ())
        if both:
            raise ValueError(f"columns listed as both numeric and categorical: {sorted(both)}")
        return self

    @property
    def inferred(self) -> bool:
        return self.numeric is None and self.categorical is None


class ModelSpec(_Model):
    """The scikit-learn estimator, wrapped at training time in an automatic preprocessing Pipeline."""

    estimator: str = Field(description="Import path of a scikit-learn estimator class.")
    params: dict[str, Any] = Field(default_factory=dict)
    task: Literal["auto", "classification", "regression"] = "auto"
    holdout_fraction: float = Field(default=0.25, gt=0.0, lt=0.9)
    seed: int = 42

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
    seed: int = 0


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


class ExpectationSpec(_Model):
    """One Great Expectations expectation, by its snake_case name, with a severity."""

    type: str = Field(description="e.g. expect_column_values_to_be_between")
    kwargs: dict[str, Any] = Field(default_factory=dict)
    severity: Severity = "error"

    @field_validator("type")
    @classmethod
    def _snake(cls, value: str) -> str:
        if not value.startswith("expect_") or not re.fullmatch(r"[a-z0-9_]+", value):
            raise ValueError(f"expected a GX expectation name like 'expect_column_to_exist', got {value!r}")
        return value


class InferredSeverities(_Model):
    """Severities of the suite inferred from the reference snapshot; ``off`` disables a check."""

    columns: InferredSeverity = "error"
    types: InferredSeverity = "error"
    nullability: InferredSeverity = "warn"
    ranges: InferredSeverity = "warn"
    categories: InferredSeverity = "warn"


class ValidationSpec(_Model):
    expectations: list[ExpectationSpec] = Field(default_factory=list)
    inferred: InferredSeverities = Field(default_factory=InferredSeverities)
    min_rows: int = Field(default=1, ge=1)


class DriftSpec(_Model):
    """Drift of the batch against the champion's training data (see docs/monitoring.md)."""

    enabled: bool = True
    alpha: float = Field(default=0.01, gt=0.0, lt=0.5, description="After Holm/BH correction.")
    delta: float = Field(default=0.1, ge=0.0, description="Numeric effect: Wasserstein / reference std.")
    categorical_delta: float = Field(default=0.05, ge=0.0, le=1.0, description="Jensen-Shannon distance.")
    missing_delta: float = Field(
        default=0.05, ge=0.0, le=1.0, description="Absolute change of the missing rate."
    )
    correction: Literal["holm", "bh"] = "holm"
    drift_share: float = Field(default=0.3, gt=0.0, le=1.0)
    critical_columns: list[str] = Field(default_factory=list)
    min_rows: int = Field(default=100, ge=1)
    prediction: bool = Field(
        default=True,
        description="Also test the champion's predictions on the batch against its training data.",
    )


class PerformanceSpec(_Model):
    """The champion's metric on labelled batches vs the value recorded when it was promoted."""

    enabled: bool = True
    metric: str | None = Field(default=None, description="Default: the primary metric.")
    tolerance: float = Field(
        default=0.05, ge=0.0, description="Largest allowed drop from the promotion-time value."
    )
    floor: float | None = Field(default=None, description="The metric must not fall past this value.")
    min_rows: int = Field(default=200, ge=1)


class RetrainSpec(_Model):
    """When monitoring asks for a retrain (the mlops://<pipeline>/retrain asset event)."""

    on_drift: bool = True
    on_performance: bool = True
    cooldown_hours: float = Field(
        default=72.0,
        ge=0.0,
        description="After a request, no new request for this long: one incident, one retrain.",
    )


class MonitoringSpec(_Model):
    """The <name>_monitoring DAG: one batch per run, checked against the champion."""

    source: SourceSpec | None = Field(
        default=None, description="The batch of a run (templated, e.g. .../{{ ds }}.parquet)."
    )
    drift: DriftSpec = Field(default_factory=DriftSpec)
    performance: PerformanceSpec = Field(default_factory=PerformanceSpec)
    retrain: RetrainSpec = Field(default_factory=RetrainSpec)


class ScoringSpec(_Model):
    """The <name>_batch_scoring DAG: score a partition with the champion."""

    source: SourceSpec = Field(description="The partition of a run (templated, e.g. .../{{ ds }}.parquet).")
    id_columns: list[str] = Field(
        default_factory=list, description="Columns copied into the predictions (default: none)."
    )


class SchedulesSpec(_Model):
    """Cron expressions or presets (``@daily``); ``null``: no timetable. The training DAG also runs
    on the retrain asset (so ``training: null`` means "on retrain requests and by hand"); the
    others then run by hand only."""

    training: str | None = None
    monitoring: str | None = None
    scoring: str | None = None

    @field_validator("training", "monitoring", "scoring")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if value.startswith("@"):
            if value not in _PRESETS:
                raise ValueError(
                    f"unknown preset {value!r}; use one of {sorted(_PRESETS)} or a cron expression"
                )
            return value
        from croniter import croniter  # light; Airflow depends on it

        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a valid cron expression (e.g. '0 3 * * 1')")
        return value


Name = Annotated[str, Field(description="Pipeline name: lowercase letters, digits, underscores.")]


class PipelineSpec(_Model):
    """One pipeline: its data, target, model, gate, validation and schedules."""

    name: Name
    description: str = ""
    source: SourceSpec
    target: str
    features: FeaturesSpec = Field(default_factory=FeaturesSpec)
    model: ModelSpec
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    schedules: SchedulesSpec = Field(default_factory=SchedulesSpec)
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec)
    scoring: ScoringSpec | None = None
    tags: list[str] = Field(default_factory=list)
    owner: str = "mlops"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(
                f"expected lowercase letters, digits and underscores, starting with a letter, got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PipelineSpec:
        listed = [*(self.features.numeric or ()), *(self.features.categorical or ())]
        if self.target in listed:
            kind = "numeric" if self.target in (self.features.numeric or ()) else "categorical"
            raise FieldError(
                f"features.{kind}", f"the target column {self.target!r} is also listed as a feature"
            )
        task = self.model.task
        if task != "auto":
            wrong, allowed = self.evaluation.misapplied_metrics(task)
            if wrong:
                raise FieldError(
                    "evaluation", f"metric(s) {wrong} do not apply to a {task} model; use {list(allowed)}"
                )
        perf = self.monitoring.performance.metric
        if perf is not None:
            if perf not in METRIC_DIRECTIONS:
                raise FieldError(
                    "monitoring.performance.metric",
                    f"unknown metric {perf!r}; known: {sorted(METRIC_DIRECTIONS)}",
                )
            if task != "auto":
                allowed = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
                if perf not in allowed:
                    raise FieldError(
                        "monitoring.performance.metric",
                        f"{perf!r} does not apply to a {task} model; use one of {list(allowed)}",
                    )
        if listed:
            for where, columns in (
                ("monitoring.drift.critical_columns", self.monitoring.drift.critical_columns),
                ("evaluation.slices", [s.column for s in self.evaluation.slices]),
            ):
                unknown = [c for c in columns if c not in listed]
                if unknown:
                    raise FieldError(where, f"column(s) {unknown} are not features; features are {listed}")
        if self.schedules.monitoring and self.monitoring.source is None:
            raise FieldError(
                "monitoring.source", "schedules.monitoring is set but there is no monitoring.source to read"
            )
        if self.schedules.scoring and self.scoring is None:
            raise FieldError("scoring", "schedules.scoring is set but there is no scoring section")
        return self

    @property
    def performance_metric(self) -> str:
        return self.monitoring.performance.metric or self.evaluation.primary_metric

    # -- derived names (docs/architecture.md, "MLflow lineage") ------------------------------------
    @property
    def experiment_name(self) -> str:
        return self.name

    @property
    def registered_model_name(self) -> str:
        return self.name

    def training_config_sha256(self) -> str:
        """Hash of everything that changes what training produces from a given snapshot."""
        return training_fingerprint(
            target=self.target,
            numeric=self.features.numeric,
            categorical=self.features.categorical,
            estimator=self.model.estimator,
            params=self.model.params,
            task=self.model.task,
            holdout_fraction=self.model.holdout_fraction,
            seed=self.model.seed,
        )


def training_fingerprint(
    *,
    target: str,
    numeric: list[str] | None,
    categorical: list[str] | None,
    estimator: str,
    params: dict[str, Any] | None,
    task: str,
    holdout_fraction: float,
    seed: int,
) -> str:
    """SHA-256 of a training configuration: the same snapshot and fingerprint give the same model."""
    payload = {
        "target": target,
        "numeric": numeric,
        "categorical": categorical,
        "estimator": estimator,
        "params": params or {},
        "task": task,
        "holdout_fraction": float(holdout_fraction),
        "seed": int(seed),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _format_errors(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        got = e.get("input")
        shown = "" if isinstance(got, dict | list) or got is None or repr(got) in msg else f" (got {got!r})"
        error = (e.get("ctx") or {}).get("error")
        if isinstance(error, FieldError):
            loc = ".".join(filter(None, [".".join(str(p) for p in e["loc"]), error.field]))
            msg = str(error)
        lines.append(f"  - {loc}: {msg}{shown}")
    return "\n".join(lines)


def parse_pipeline_spec(data: Any, *, origin: str = "<spec>") -> PipelineSpec:
    """Validate an already-loaded mapping. Raises :class:`SpecError` naming every bad field."""
    if not isinstance(data, dict):
        raise SpecError(f"{origin}: a pipeline spec must be a YAML mapping, got {type(data).__name__}")
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(f"{origin}: invalid pipeline spec\n{_format_errors(err)}") from None


def load_pipeline_spec(path: str | Path) -> PipelineSpec:
    """Load and validate one pipeline spec from a YAML file."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SpecError(f"{path}: cannot read the pipeline spec: {err.strerror or err}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: not valid YAML: {err}") from None
    spec = parse_pipeline_spec(data, origin=str(path))
    if spec.name != path.stem:
        raise SpecError(f"{path}: name {spec.name!r} must match the file name {path.stem!r}")
    return spec


def pipeline_json_schema() -> dict[str, Any]:
    """JSON schema of a pipeline spec, for editors (``mlops-ops schema``)."""
    return PipelineSpec.model_json_schema()
