"""Pipeline specs: one YAML file per pipeline, validated when it is loaded.

A bad spec fails at DAG parse time with a message that names the file, the field and what was
expected, so it is noticed when it is committed rather than when a worker first runs it.
This module imports only pydantic and PyYAML: DAG files import it at parse time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mlops_ops.url_credentials import split_credentials

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
    # allow_inf_nan=False: every float field refuses NaN and +-inf (a NaN floor would switch its
    # check off, since every comparison with NaN is false)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


#: Largest seed numpy and scikit-learn accept (``random_state`` is a 32-bit unsigned integer).
MAX_SEED = 2**32 - 1

Seed = Annotated[
    int,
    Field(ge=0, le=MAX_SEED, description="Random seed: an integer in [0, 2**32 - 1] (numpy's range)."),
]

#: Estimator parameters that are seeds, checked against numpy's range at parse time.
_SEED_PARAMS = ("random_state", "seed")


def _as_utc_datetime(value: Any) -> Any:
    """A YAML date (``2026-01-01``) means midnight UTC; a naive datetime is UTC; no numbers."""
    if isinstance(value, int | float):  # pydantic would read seconds since 1970
        raise ValueError(f"expected a date like 2026-01-31 or a datetime with a time zone, got {value!r}")
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    return value


#: Default ``schedules.start_date``: the date the DAGs start from when a spec gives none.
DEFAULT_START_DATE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


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
        return _day_format(value)


def _day_format(value: str) -> str:
    if sorted(re.findall(r"%[A-Za-z]", value)) != ["%Y", "%d", "%m"]:
        raise ValueError(
            f"expected a date format using exactly %Y, %m and %d (e.g. '%Y-%m-%d'), got {value!r}"
        )
    return value


class CsvSpec(_Model):
    """How to read CSV files: the options of :func:`pandas.read_csv` that differ between exports.

    A ``;``-separated file with decimal commas (``1,5``) needs ``sep: ";"`` and ``decimal: ","``.
    """

    sep: str | None = Field(
        default=None, min_length=1, description="Field separator; default ',' ('\\t' for .tsv files)."
    )
    decimal: str = Field(default=".", min_length=1, max_length=1, description="Decimal mark.")
    thousands: str | None = Field(default=None, min_length=1, max_length=1, description="Thousands mark.")
    encoding: str = Field(default="utf-8", description="Text encoding, e.g. 'latin-1', 'utf-8-sig'.")
    quotechar: str = Field(default='"', min_length=1, max_length=1, description="Quote character.")
    na_values: list[str] | None = Field(
        default=None, description="Extra strings that mean 'missing' (e.g. ['-', 'n/a'])."
    )
    keep_default_na: bool = Field(
        default=True,
        description="Also treat pandas' default missing markers ('', 'NA', 'NaN'...) as missing.",
    )

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown text encoding {value!r} (e.g. 'utf-8', 'latin-1')") from None
        return value

    @model_validator(mode="after")
    def _distinct_marks(self) -> CsvSpec:
        if self.sep is not None and self.sep == self.decimal:
            raise ValueError(f"sep and decimal are both {self.sep!r}; a decimal comma needs sep ';'")
        if self.thousands is not None and self.thousands == self.decimal:
            raise ValueError(f"thousands and decimal are both {self.decimal!r}")
        return self

    def reader_options(self) -> dict[str, Any]:
        """The options as :func:`pandas.read_csv` keyword arguments (unset ones left out)."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


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
    csv: CsvSpec | None = Field(
        default=None, description="How to read CSV files: sep, decimal, encoding, quotechar, na_values."
    )

    @field_validator("uri")
    @classmethod
    def _no_credentials(cls, value: str | None) -> str | None:
        if value and split_credentials(value)[2] is not None:
            raise ValueError(
                "the URI has a password written in it, which would reach logs and XCom; remove it "
                "and put the credentials in an Airflow connection named by 'conn_id_storage'"
            )
        return value

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
        if self.csv and not self.uri:
            raise ValueError("'csv' only applies to a file source ('uri')")
        if self.csv and self.format == "parquet":
            raise ValueError("'csv' options were given but format is 'parquet'")
        return self


LogicalType = Literal["numeric", "integer", "boolean", "categorical", "datetime", "id", "ignored"]


class FeaturesSpec(_Model):
    """Feature columns by kind. Omit both lists to infer them from the data (all but the target).

    ``types`` declares a column's logical type (see docs/concepts.md, "Schema"): it wins over the
    lists and over inference, and is frozen with each model version. ``id_columns`` are kept
    exactly and never used as features.
    """

    numeric: list[str] | None = None
    categorical: list[str] | None = None
    types: dict[str, LogicalType] = Field(
        default_factory=dict,
        description="Logical type by column: numeric, integer, boolean, categorical, datetime, id, ignored.",
    )
    id_columns: list[str] = Field(
        default_factory=list, description="Columns kept exactly (e.g. uint64 ids), never features."
    )

    @model_validator(mode="after")
    def _no_overlap(self) -> FeaturesSpec:
        both = set(self.numeric or ()) & set(self.categorical or ())
        if both:
            raise ValueError(f"columns listed as both numeric and categorical: {sorted(both)}")
        listed_ids = sorted(set(self.id_columns) & {*(self.numeric or ()), *(self.categorical or ())})
        if listed_ids:
            raise ValueError(f"id columns are never features, but {listed_ids} are also listed as features")
        numberish = ("numeric", "integer", "boolean", "datetime")
        clash = sorted(
            c
            for c, t in self.types.items()
            if (c in (self.numeric or ()) and t not in numberish)
            or (c in (self.categorical or ()) and t != "categorical")
            or (c in self.id_columns and t != "id")
        )
        if clash:
            raise ValueError(
                f"column(s) {clash} have a type in 'types' that contradicts the list they are in "
                "(numeric takes numeric/integer/boolean/datetime, categorical takes categorical, "
                "id_columns take id)"
            )
        return self

    def declared_types(self) -> dict[str, str]:
        """``types`` plus ``id`` for every id column."""
        return {**{c: "id" for c in self.id_columns}, **self.types}

    @property
    def inferred(self) -> bool:
        return self.numeric is None and self.categorical is None


class ModelSpec(_Model):
    """The scikit-learn estimator, wrapped at training time in an automatic preprocessing Pipeline."""

    estimator: str = Field(description="Import path of a scikit-learn estimator class.")
    params: dict[str, Any] = Field(default_factory=dict)
    task: Literal["auto", "classification", "regression"] = "auto"
    holdout_fraction: float = Field(default=0.25, gt=0.0, lt=0.9)
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


#: How column verdicts make the dataset verdict (``monitoring.drift.rule``).
DriftRule = Literal["any", "share", "importance"]


class ReferenceSpec(_Model):
    """What a batch is compared with (``monitoring.drift.reference``).

    ``training`` (default): the champion's training data (its reference profile). ``seasonal``:
    the same period ``lag_days`` earlier (and ``seasons`` periods back, pooled), ``days`` long and
    centred on the batch's period shifted back (default: as long as the batch). ``rolling``: the
    ``days`` days just before the batch. Seasonal and rolling references are read from the dated
    partitions of ``uri`` (default: the pipeline's training ``source.uri``).
    """

    kind: Literal["training", "seasonal", "rolling"] = "training"
    lag_days: int = Field(default=365, ge=1, le=3660, description="seasonal: the season's length in days.")
    seasons: int = Field(
        default=1, ge=1, le=50, description="seasonal: pool the same period of this many past seasons."
    )
    days: int | None = Field(
        default=None,
        ge=1,
        le=3660,
        description="Length of the reference window in days (rolling: required; seasonal: default "
        "the batch's own length).",
    )
    uri: str | None = Field(
        default=None, description="Dated partitions to read the reference from (default: source.uri)."
    )
    format: Literal["auto", "csv", "parquet"] = "auto"
    conn_id_storage: str | None = None
    date_format: str | None = Field(
        default=None, description="strftime format of the partition dates (default: source.window's)."
    )

    @field_validator("date_format")
    @classmethod
    def _fmt(cls, value: str | None) -> str | None:
        return value if value is None else _day_format(value)

    @model_validator(mode="after")
    def _fits_kind(self) -> ReferenceSpec:
        given = self.model_fields_set
        if self.kind == "rolling" and self.days is None:
            raise FieldError("days", "a rolling reference needs 'days': how many days before the batch")
        if self.kind != "seasonal":
            extra = sorted(given & {"lag_days", "seasons"})
            if extra:
                raise FieldError(extra[0], f"{extra[0]!r} only applies to kind 'seasonal', not {self.kind!r}")
        if self.kind == "training":
            extra = sorted(given & {"days", "uri", "format", "conn_id_storage", "date_format"})
            if extra:
                raise FieldError(
                    extra[0],
                    f"{extra[0]!r} only applies to a 'seasonal' or 'rolling' reference read from files",
                )
        return self


class DriftSpec(_Model):
    """Drift of the batch against a reference: by default the champion's training data.

    ``rule`` turns column verdicts into the dataset's: ``any`` drifted column (default),
    a ``share`` of the columns (``drift_share``) or of the champion's permutation importance
    (``importance``, ``importance_share``). A share given without a rule selects its rule. See docs/monitoring.md.
    """

    enabled: bool = True
    alpha: float = Field(default=0.01, gt=0.0, lt=0.5, description="After Holm/BH correction.")
    delta: float = Field(default=0.1, ge=0.0, description="Numeric effect: Wasserstein / reference std.")
    categorical_delta: float = Field(default=0.05, ge=0.0, le=1.0, description="Jensen-Shannon distance.")
    missing_delta: float = Field(
        default=0.05, ge=0.0, le=1.0, description="Absolute change of the missing rate."
    )
    correction: Literal["holm", "bh"] = "holm"
    rule: DriftRule = Field(default="any", description="How column verdicts make the dataset verdict.")
    drift_share: float = Field(
        default=0.3, gt=0.0, le=1.0, description="rule share: the share of columns that must drift."
    )
    importance_share: float = Field(
        default=0.2,
        gt=0.0,
        le=1.0,
        description="rule importance: the share of the champion's permutation importance that must drift.",
    )
    critical_columns: list[str] = Field(default_factory=list)
    min_rows: int = Field(default=100, ge=1)
    prediction: bool = Field(
        default=True,
        description="Also test the champion's predictions on the batch against its predictions on the reference.",
    )
    reference: ReferenceSpec = Field(default_factory=ReferenceSpec)

    @model_validator(mode="before")
    @classmethod
    def _rule_of_share(cls, data: Any) -> Any:
        """A share without a rule selects its rule; a share of another rule is a mistake."""
        if not isinstance(data, dict):
            return data
        owner = {"drift_share": "share", "importance_share": "importance"}
        given = [k for k in owner if k in data]
        if "rule" not in data:
            if len(given) == 2:
                raise FieldError("rule", "both drift_share and importance_share are given: choose a rule")
            if given:
                return {**data, "rule": owner[given[0]]}
            return data
        for key in given:
            if owner[key] != data["rule"]:
                raise FieldError(key, f"{key!r} only applies to rule {owner[key]!r}, not {data['rule']!r}")
        return data


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
    start_date: Annotated[dt.datetime, BeforeValidator(_as_utc_datetime)] = Field(
        default=DEFAULT_START_DATE,
        description="First date the DAGs run for (a date is midnight UTC). A run dated before it "
        "fails, naming it.",
    )
    catchup: bool = Field(
        default=False,
        description="Let the scheduler create every missed run since start_date (Airflow's catchup).",
    )

    @field_validator("start_date")
    @classmethod
    def _utc(cls, value: dt.datetime) -> dt.datetime:
        return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)

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
        if self.target in self.features.declared_types():
            raise FieldError(
                "features.types", f"the target column {self.target!r} cannot have a feature type"
            )
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
        listed += [
            c for c, t in self.features.types.items() if t not in ("id", "ignored") and c not in listed
        ]
        if listed:
            for where, columns in (
                ("monitoring.drift.critical_columns", self.monitoring.drift.critical_columns),
                ("evaluation.slices", [s.column for s in self.evaluation.slices]),
            ):
                unknown = [c for c in columns if c not in listed]
                if unknown:
                    raise FieldError(where, f"column(s) {unknown} are not features; features are {listed}")
        reference = self.monitoring.drift.reference
        if reference.kind != "training" and reference.uri is None and self.source.uri is None:
            raise FieldError(
                "monitoring.drift.reference.uri",
                f"a {reference.kind} reference is read from dated files, and source is a SQL query; "
                "give the URI of the dated partitions (e.g. s3://bucket/daily/*.parquet)",
            )
        if self.schedules.monitoring and self.monitoring.source is None:
            raise FieldError(
                "monitoring.source", "schedules.monitoring is set but there is no monitoring.source to read"
            )
        if self.schedules.scoring and self.scoring is None:
            raise FieldError("scoring", "schedules.scoring is set but there is no scoring section")
        return self

    @property
    def drift_reference(self) -> ReferenceSpec:
        """``monitoring.drift.reference`` with the training source's files and date format filled in."""
        ref = self.monitoring.drift.reference
        if ref.kind == "training":
            return ref
        if ref.uri is not None:
            return ref if ref.date_format else ref.model_copy(update={"date_format": "%Y-%m-%d"})
        src = self.source
        return ref.model_copy(
            update={
                "uri": src.uri,
                "format": src.format,
                "conn_id_storage": src.conn_id_storage,
                "date_format": ref.date_format or (src.window.date_format if src.window else "%Y-%m-%d"),
            }
        )

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
            types=self.training_types() or None,
        )

    def training_id_columns(self) -> list[str]:
        """Columns the training schema keeps as ids: ``features.id_columns`` and ``scoring.id_columns``."""
        ids = [*self.features.id_columns, *(self.scoring.id_columns if self.scoring else [])]
        return list(dict.fromkeys(ids))

    def training_types(self) -> dict[str, str]:
        """The declared logical types the training schema starts from (ids first, ``types`` win)."""
        return {**{c: "id" for c in self.training_id_columns()}, **self.features.types}


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
    types: dict[str, str] | None = None,
) -> str:
    """SHA-256 of a training configuration: the same snapshot and fingerprint give the same model.

    ``types`` (declared logical types) only enters the hash when given, so configurations without
    it keep their fingerprint.
    """
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
    if types:
        payload["types"] = dict(sorted(types.items()))
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


def _non_finite(data: Any, where: str = "", seen: set[int] | None = None) -> list[str]:
    """Paths (``model.params.C``) of every NaN or infinite float in a loaded document.

    A mapping or list shared through YAML aliases is walked once (aliases can nest exponentially).
    """
    if isinstance(data, float):
        return [] if math.isfinite(data) else [where or "(top level)"]
    if not isinstance(data, dict | list | tuple):
        return []
    seen = set() if seen is None else seen
    if id(data) in seen:
        return []
    seen.add(id(data))
    items = data.items() if isinstance(data, dict) else enumerate(data)
    found: list[str] = []
    for key, value in items:
        found += _non_finite(value, f"{where}.{key}" if where else str(key), seen)
    return found


def parse_pipeline_spec(data: Any, *, origin: str = "<spec>") -> PipelineSpec:
    """Validate an already-loaded mapping. Raises :class:`SpecError` naming every bad field.

    NaN and infinite numbers are refused anywhere in the spec, also inside free-form mappings
    (``model.params``, expectation ``kwargs``): a NaN compares false with everything, so a NaN
    threshold would silently switch its check off.
    """
    if not isinstance(data, dict):
        raise SpecError(f"{origin}: a pipeline spec must be a YAML mapping, got {type(data).__name__}")
    bad = _non_finite(data)
    if bad:
        lines = "\n".join(
            f"  - {where}: NaN and infinite numbers are not allowed; give a finite number" for where in bad
        )
        raise SpecError(f"{origin}: invalid pipeline spec\n{lines}")
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(f"{origin}: invalid pipeline spec\n{_format_errors(err)}") from None


def _strict_loader() -> type:
    """A safe YAML loader that refuses a key given twice in one mapping (at any depth).

    PyYAML keeps the last of two equal keys: a duplicated ``seed`` or a second, stricter
    ``thresholds`` block would silently replace the first. Merge keys (``<<: *base``) still
    override as YAML specifies.
    """
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class StrictSafeLoader(base):  # type: ignore[valid-type,misc]
        def construct_yaml_timestamp(self, node: Any) -> Any:
            # PyYAML raises a bare ValueError, with no position, for a date like 2026-02-30
            try:
                return super().construct_yaml_timestamp(node)
            except ValueError as err:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{node.value!r} is not a valid date or time: {err}", node.start_mark
                ) from None

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                seen: dict[Any, int] = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    line = key_node.start_mark.line + 1
                    try:
                        if key in seen:
                            raise DuplicateKeyError(key, line, seen[key])
                        seen[key] = line
                    except TypeError:  # an unhashable key: the constructor reports it below
                        continue
            return super().construct_mapping(node, deep=deep)

    StrictSafeLoader.add_constructor("tag:yaml.org,2002:timestamp", StrictSafeLoader.construct_yaml_timestamp)
    return StrictSafeLoader


class DuplicateKeyError(SpecError):
    """A YAML mapping gives the same key twice (``line`` and ``first_line`` are 1-based)."""

    def __init__(self, key: Any, line: int, first_line: int) -> None:
        super().__init__(
            f"line {line}: duplicate key {key!r} (first given at line {first_line}); "
            "YAML would silently keep only the last one: remove one of them"
        )
        self.key, self.line, self.first_line = key, line, first_line


def read_spec_document(path: str | Path) -> Any:
    """The YAML document of a spec file, read strictly: UTF-8 only, no duplicate keys.

    Every spec is read through this function (``mlops-ops check``, the DAG factory).

    :raises SpecError: naming the file and, for a bad byte, its offset and line; for a
        duplicate key, its line and the key.
    """
    import yaml

    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise SpecError(f"{path}: cannot read the pipeline spec: {err.strerror or err}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise SpecError(
            f"{path}: not UTF-8 text: byte 0x{raw[err.start]:02x} at offset {err.start} (line {line}) "
            f"cannot be decoded ({err.reason}); save the file as UTF-8"
        ) from None
    text = text.removeprefix("\ufeff")  # a byte-order mark is not content
    try:
        return yaml.load(text, Loader=_strict_loader())  # noqa: S506 - a SafeLoader subclass
    except DuplicateKeyError as err:
        raise SpecError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: not valid YAML: {err}") from None
    except RecursionError:
        raise SpecError(f"{path}: not valid YAML: nested too deeply") from None
    except (ValueError, TypeError, OverflowError) as err:  # a constructor's own error, no position
        raise SpecError(f"{path}: not valid YAML: {type(err).__name__}: {err}") from None


def load_pipeline_spec(path: str | Path) -> PipelineSpec:
    """Load and validate one pipeline spec from a YAML file (see :func:`read_spec_document`).

    :raises SpecError: naming the file, the line or field, and what was expected.
    """
    path = Path(path)
    spec = parse_pipeline_spec(read_spec_document(path), origin=str(path))
    if spec.name != path.stem:
        raise SpecError(f"{path}: name {spec.name!r} must match the file name {path.stem!r}")
    return spec


def spec_files(folder: str | Path) -> list[Path]:
    """The pipeline spec files of a folder (``*.yaml`` and ``*.yml``), sorted."""
    return sorted(p for p in Path(folder).glob("*.y*ml") if p.suffix in (".yaml", ".yml"))


def pipeline_json_schema() -> dict[str, Any]:
    """JSON schema of a pipeline spec, for editors (``mlops-ops schema``)."""
    return PipelineSpec.model_json_schema()
