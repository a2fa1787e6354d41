"""What every section of a pipeline spec shares: the strict base model, metric names, seeds, dates."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

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


def _number_kinds(annotation: Any) -> set[type]:
    """The number types (``int``, ``float``) an annotation admits, through Optional/Annotated."""
    import typing

    if annotation in (int, float):
        return {annotation}
    kinds: set[type] = set()
    for arg in typing.get_args(annotation):
        kinds |= _number_kinds(arg)
    return kinds


class _Model(BaseModel):
    # allow_inf_nan=False: every float field refuses NaN and +-inf (a NaN floor would switch its
    # check off, since every comparison with NaN is false)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """A number field takes a number as written: not ``true`` (pydantic would read 1), not
        quoted text (``"0.7"``), not a float with a fraction where an integer is expected."""
        field = cls.model_fields.get(info.field_name or "")
        kinds = _number_kinds(field.annotation) if field is not None else set()
        if not kinds or value is None:
            return value
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got the boolean {value!r}")
        if isinstance(value, str):
            if value.strip().lower().lstrip("+-") in ("nan", "inf", "infinity"):
                return value  # refused by allow_inf_nan: "Input should be a finite number"
            raise ValueError(f"expected a number, got the text {value!r}: write it without quotes")
        if kinds == {int} and isinstance(value, float):
            raise ValueError(f"expected a whole number, got {value!r}")
        return value


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
