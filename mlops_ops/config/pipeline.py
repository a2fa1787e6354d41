"""The whole pipeline spec (:class:`PipelineSpec`), its ``scoring`` and ``schedules`` sections, and
the training fingerprint."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)

from mlops_ops.config.base import (
    _NAME_RE,
    _PRESETS,
    CLASSIFICATION_METRICS,
    DEFAULT_START_DATE,
    METRIC_DIRECTIONS,
    REGRESSION_METRICS,
    _as_utc_datetime,
    _Model,
)
from mlops_ops.config.data import FeaturesSpec, SourceSpec
from mlops_ops.config.deployment import DeploymentSpec
from mlops_ops.config.errors import FieldError
from mlops_ops.config.model import EvaluationSpec, ModelSpec
from mlops_ops.config.monitoring import MonitoringSpec, ReferenceSpec, ValidationSpec
from mlops_ops.config.notifications import NotificationsSpec


class ScoringSpec(_Model):
    """The <name>_batch_scoring DAG: score a partition with the champion."""

    source: SourceSpec = Field(description="The partition of a run (templated, e.g. .../{{ ds }}.parquet).")
    id_columns: list[str] = Field(
        default_factory=list, description="Columns copied into the predictions (default: none)."
    )
    explain_top_k: int = Field(
        default=0,
        ge=0,
        le=20,
        description="Add each row's k largest SHAP contributions (top<i>_feature, top<i>_contribution); 0: none.",
    )
    explain_max_rows: int = Field(
        default=10_000, ge=1, description="Only the first this many rows are explained (later rows: null)."
    )


class SchedulesSpec(_Model):
    """Cron expressions or presets (``@daily``); ``null``: no timetable. The training DAG also runs
    on the retrain asset (so ``training: null`` means "on retrain requests and by hand"); the
    others then run by hand only."""

    training: str | None = None
    monitoring: str | None = None
    scoring: str | None = None
    release: str | None = Field(
        default="*/15 * * * *",
        description="The <name>_release DAG (only with deployment.strategy canary, shadow or ab); it "
        "also runs when the model asset is updated, and does nothing when there is nothing to judge.",
    )
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

    @field_validator("training", "monitoring", "scoring", "release")
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
    deployment: DeploymentSpec = Field(default_factory=DeploymentSpec)
    tags: list[str] = Field(default_factory=list)
    owner: str = "mlops"
    notifications: NotificationsSpec | None = None

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
        for where, src in (
            ("source", self.source),
            ("scoring.source", self.scoring.source if self.scoring else None),
        ):
            if src is not None and src.prediction_log:
                raise FieldError(
                    f"{where}.prediction_log",
                    "the prediction log holds the rows the service answered, without labels: use it as "
                    "monitoring.source (drift on live traffic)",
                )
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
            max_training_rows=self.model.max_training_rows,
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
    max_training_rows: int | None = None,
) -> str:
    """SHA-256 of a training configuration: the same snapshot and fingerprint give the same model.

    ``types`` (declared logical types) and ``max_training_rows`` (the training sample's cap) only
    enter the hash when given, so configurations without them keep their fingerprint.
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
    if max_training_rows is not None:
        payload["max_training_rows"] = int(max_training_rows)
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
