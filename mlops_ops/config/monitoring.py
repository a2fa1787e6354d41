"""The monitoring sections of a pipeline spec: ``validation``, ``monitoring`` (reference, drift,
performance, retrain, feedback)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from mlops_ops.config.base import InferredSeverity, Severity, _Model
from mlops_ops.config.data import SourceSpec, _day_format
from mlops_ops.config.errors import FieldError


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


class AttributionSpec(_Model):
    """Attribution drift: the champion's mean |SHAP| profile on the batch vs on its holdout.

    Reported (JSON, HTML, MLflow), never a retrain trigger: a reliance that moved says where to
    look, not that the model got worse (the performance check says that). See docs/explanations.md.
    """

    enabled: bool = True
    delta: float = Field(
        default=0.1, gt=0.0, lt=1.0, description="Share of the total attribution whose move is drift."
    )
    alpha: float = Field(default=0.05, gt=0.0, lt=0.5, description="One-sided level of the bootstrap bound.")
    min_rows: int = Field(default=100, ge=1, description="Fewer batch rows: insufficient data.")
    max_rows: int = Field(default=1000, ge=1, description="Batch rows explained at most (seeded sample).")
    n_boot: int = Field(default=500, ge=50, le=10000)


class RetrainSpec(_Model):
    """When monitoring asks for a retrain (the x-mlops://<pipeline>/retrain asset event)."""

    on_drift: bool = True
    on_performance: bool = True
    cooldown_hours: float = Field(
        default=72.0,
        ge=0.0,
        description="After a request, no new request for this long: one incident, one retrain.",
    )


class EntitySpec(_Model):
    """How outcomes keyed by an entity find their prediction (``monitoring.feedback.entity``).

    ``key`` names the entity column in the outcome rows; the same name must be a column of the
    requests the online service logged (its ``input``) and of the batch-scoring output (list it in
    ``scoring.id_columns``). An outcome joins the prediction for that entity made last before the
    outcome's event time (``time``), if that prediction is at most ``window_days`` older.
    """

    key: str = Field(min_length=1, description="Entity column, e.g. customer_id, in outcomes and inputs.")
    time: str = Field(min_length=1, description="Event-time column of the outcome (when it happened).")


class FeedbackSpec(_Model):
    """Outcomes (labels) that arrive after the prediction they answer (``monitoring.feedback``).

    Each monitoring run ingests the outcome rows of its interval from ``source`` (a snapshot, as
    every ingest) and joins them to the predictions they answer: the online service's prediction
    log and the batch-scoring outputs. Rows are matched by ``prediction_id`` (the id the service
    returned, or ``batch:<interval key>:<row number>`` for batch scoring) or by ``entity``. Late,
    duplicate, orphan, out-of-window and invalid rows are counted and reported, never dropped
    silently; the joined rows are stored under ``outcomes/joined/`` and the performance check uses
    them (docs/outcomes.md).
    """

    source: SourceSpec = Field(
        description="The outcome rows that arrived in a run's interval (templated, e.g. "
        ".../outcomes/{{ ds }}.csv): a file, a glob or a SQL query."
    )
    label: str = Field(min_length=1, description="The outcome column (the label the model predicted).")
    prediction_id: str | None = Field(
        default=None, min_length=1, description="Column holding the id of the prediction an outcome answers."
    )
    entity: EntitySpec | None = Field(
        default=None, description="Join by entity key and event time instead of a prediction id."
    )
    time: str | None = Field(
        default=None,
        min_length=1,
        description="Event-time column of the outcome, with prediction_id (optional: without it an "
        "outcome counts as happening when its run's interval starts and is never late).",
    )
    window_days: int = Field(
        default=14,
        ge=1,
        le=3660,
        description="Largest delay from prediction to outcome that still joins, in days; older "
        "matches count as out_of_window. Also the performance check's window over joined outcomes.",
    )
    lookback_days: int | None = Field(
        default=None,
        ge=1,
        le=7320,
        description="How far before an outcome's event time predictions are searched, in days "
        "(default twice window_days): a match older than window_days but within it counts as "
        "out_of_window, one beyond it as orphan.",
    )

    @model_validator(mode="after")
    def _one_key(self) -> FeedbackSpec:
        if (self.prediction_id is None) == (self.entity is None):
            raise ValueError(
                "give exactly one of 'prediction_id' (the column with the prediction's id) or "
                "'entity' (with 'key' and 'time') to say how outcomes find their prediction"
            )
        if self.entity is not None and self.time is not None:
            raise FieldError("time", "with 'entity' the event time is 'entity.time'; remove 'time'")
        if self.source.prediction_log:
            raise FieldError("source", "outcomes are not in the prediction log: give a 'uri' or 'sql'")
        if self.lookback_days is not None and self.lookback_days < self.window_days:
            raise FieldError(
                "lookback_days",
                f"lookback_days ({self.lookback_days}) must be at least window_days ({self.window_days})",
            )
        keys = (
            (self.entity.key, self.entity.time)
            if self.entity is not None
            else (self.prediction_id, self.time)
        )
        named = [c for c in (self.label, *keys) if c is not None]
        if len(set(named)) != len(named):
            raise ValueError(f"the label, key and time columns must differ, got {named}")
        return self

    @property
    def event_time(self) -> str | None:
        """The event-time column, wherever it was given."""
        return self.entity.time if self.entity is not None else self.time

    @property
    def lookback(self) -> int:
        """``lookback_days``, default twice ``window_days``."""
        return self.lookback_days if self.lookback_days is not None else 2 * self.window_days


class MonitoringSpec(_Model):
    """The <name>_monitoring DAG: one batch per run, checked against the champion."""

    source: SourceSpec | None = Field(
        default=None, description="The batch of a run (templated, e.g. .../{{ ds }}.parquet)."
    )
    drift: DriftSpec = Field(default_factory=DriftSpec)
    performance: PerformanceSpec = Field(default_factory=PerformanceSpec)
    attribution: AttributionSpec = Field(default_factory=AttributionSpec)
    retrain: RetrainSpec = Field(default_factory=RetrainSpec)
    feedback: FeedbackSpec | None = Field(
        default=None,
        description="Delayed outcomes joined to the predictions they answer (docs/outcomes.md).",
    )

    @model_validator(mode="after")
    def _feedback_needs_batches(self) -> MonitoringSpec:
        if self.feedback is not None and self.source is None:
            raise FieldError(
                "feedback", "feedback runs in the monitoring DAG, which needs 'monitoring.source'"
            )
        return self
