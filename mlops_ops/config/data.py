"""The data sections of a pipeline spec: ``source`` (files, CSV dialect, window) and ``features``."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from mlops_ops.config.base import _Model
from mlops_ops.url_credentials import split_credentials


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
    prediction_log: bool = Field(
        default=False,
        description="Read the online service's prediction log (the rows it answered in the run's data "
        "interval; docs/serving.md) instead of files or a query: drift on live traffic. "
        "monitoring.source only.",
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
        if self.prediction_log:
            given = [k for k in ("uri", "sql", "conn_id", "window", "csv") if getattr(self, k)]
            if given or self.parameters:
                raise ValueError(
                    f"'prediction_log' reads the online service's log: remove {given or ['parameters']}"
                )
            return self
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
