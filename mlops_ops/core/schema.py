"""The frozen, typed schema of a model version: what each column means, decided once at training.

A column's meaning must not depend on the pandas dtype a reader happens to produce on a given
day: an integer category with one missing value is read as float (``101.0``), a flag with one
empty cell in a CSV is read as text. So every feature and id column gets a **logical type** at
training, from the spec where it declares one (``features.types``), else inferred once from the
training snapshot; the schema is stored with the model version, and every later read (monitoring
batch, scoring partition, the champion re-scored in the gate, a served request) is *coerced* to
it, never re-inferred.

Logical types and what coercion makes of a value (the model's input):

=============  =====================================================================================
``numeric``    float64. Numbers of any dtype, booleans (1/0), numeric text ("3.5"), the text
               ``true``/``false`` (any case), durations (timedelta) as seconds. Empty text is
               missing. Infinite values are refused.
``integer``    float64 holding whole numbers (the imputer needs float for gaps): as ``numeric``,
               but 3.5 or a value beyond +-2**53 (not exact as float) is refused.
``boolean``    float64 1.0 / 0.0 / NaN. True/False, the numbers 1 and 0, and the text ``true``,
               ``false``, ``t``, ``f``, ``yes``, ``no``, ``y``, ``n``, ``1``, ``0`` (any case).
``categorical``  canonical text labels (object dtype, NaN for missing): a whole number is written
               without a decimal part whatever its dtype (``101``, ``101.0``, ``Int64`` 101 ->
               ``"101"``), another float by its shortest repr (``"1.5"``), True/False as
               ``"1"``/``"0"`` (the snapshot stores flags as 0/1), text exactly as it is
               (``"00101"`` stays ``"00101"``).
``datetime``   not a feature unless declared; declared, float64 days since 1970-01-01 (ISO 8601
               text or timestamps; time zones converted to UTC).
``id``         copied exactly, never converted (e.g. uint64 ids at or above 2**63), never a feature.
``ignored``    not used.
=============  =====================================================================================

A value that cannot be coerced raises :class:`~mlops_ops.core.data.DataError` naming the column,
the value, the expected type and where the data came from.

Inference (no ``features.types`` entry, no ``features.numeric``/``categorical`` lists): numbers,
booleans and durations are ``numeric``; text of flag words only, true and false ones (``yes``/``no``,
``Y``/``N``, ``t``/``f``), is ``boolean``, so a later file spelling the flag True/False or 1/0
reads the same; timestamps and text that parses entirely as ISO 8601 dates are
``datetime`` (excluded, and the drift report says so); integers beyond int64 (kept exactly by
ingest as uint64 or text) are ``id``; other text is ``categorical``. When the spec lists
features, the listed ones take the listed kind and every other column is ``ignored``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from mlops_ops.artifacts import SCHEMA_ARTIFACT  # noqa: F401  (re-exported: readers import it from here)
from mlops_ops.core.data import DataError, FeatureSet

SCHEMA_VERSION = 1

NUMERIC, INTEGER, BOOLEAN, CATEGORICAL, DATETIME, ID, IGNORED = (
    "numeric",
    "integer",
    "boolean",
    "categorical",
    "datetime",
    "id",
    "ignored",
)
LOGICAL_TYPES = (NUMERIC, INTEGER, BOOLEAN, CATEGORICAL, DATETIME, ID, IGNORED)
#: logical types that enter the model as float64 (the numeric branch of the preprocessing)
NUMBER_TYPES = (NUMERIC, INTEGER, BOOLEAN, DATETIME)

TRUE_TEXT = frozenset({"true", "t", "yes", "y", "1", "1.0"})
FALSE_TEXT = frozenset({"false", "f", "no", "n", "0", "0.0"})
_NUMERIC_BOOL_TEXT = {"true": 1.0, "false": 0.0}
_EXACT_FLOAT = 2**53
_INT64_MAX = 2**63 - 1
_EPOCH = pd.Timestamp("1970-01-01")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")
#: numbers written with a comma: a decimal comma (1,5) or thousands separators (1,234 or 1,234.5)
_COMMA_NUMBER = re.compile(r"^[+-]?(\d+,\d+|\d{1,3}(,\d{3})+(\.\d+)?)$")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_COMMA_HINT = (
    "the numbers are written with a comma: set source.csv.decimal to ',' for decimal commas (1,5), "
    "or source.csv.thousands to ',' for thousands separators (1,234)"
)
_DAY = pd.Timedelta(days=1)


class SchemaError(DataError):
    """A value or a column does not fit the model version's schema. Names column, value and type."""


@dataclass(frozen=True)
class ColumnSchema:
    """One column: its logical type, where the type came from, and the dtype it had at training.

    ``origin`` is ``declared`` (``features.types``/``id_columns``), ``listed``
    (``features.numeric``/``categorical``) or ``inferred``; ``note`` says why an inferred column
    is not a feature (e.g. a datetime).
    """

    name: str
    type: str
    origin: str = "inferred"
    dtype: str = ""
    note: str | None = None


@dataclass(frozen=True)
class Schema:
    """The logical types of a model version's columns (the target is not part of it)."""

    columns: tuple[ColumnSchema, ...]
    target: str | None = None
    version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    # -- views ---------------------------------------------------------------------------------
    def type_of(self, name: str) -> str:
        for c in self.columns:
            if c.name == name:
                return c.type
        raise KeyError(name)

    @property
    def features(self) -> list[str]:
        """Feature columns in model-input order: the number-typed ones, then the categorical ones."""
        return [*self.feature_set.numeric, *self.feature_set.categorical]

    @property
    def feature_set(self) -> FeatureSet:
        numeric = tuple(
            c.name
            for c in self.columns
            if c.type in NUMBER_TYPES and not (c.type == DATETIME and c.origin == "inferred")
        )
        categorical = tuple(c.name for c in self.columns if c.type == CATEGORICAL)
        return FeatureSet(numeric, categorical)

    @property
    def ids(self) -> list[str]:
        return [c.name for c in self.columns if c.type == ID]

    @property
    def excluded(self) -> dict[str, str]:
        """Columns that are not features, with the reason (datetimes, ids, ignored columns)."""
        out = {}
        for c in self.columns:
            if c.type in (ID, IGNORED) or (c.type == DATETIME and c.origin == "inferred"):
                out[c.name] = c.note or f"{c.type} column: not a feature"
        return out

    # -- persistence ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "target": self.target,
            "columns": [asdict(c) for c in self.columns],
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Schema:
        if doc.get("version") != SCHEMA_VERSION:
            raise ValueError(f"unsupported schema version {doc.get('version')!r}; expected {SCHEMA_VERSION}")
        columns = tuple(ColumnSchema(**c) for c in doc["columns"])
        bad = [c.name for c in columns if c.type not in LOGICAL_TYPES]
        if bad:
            raise ValueError(f"schema column(s) {bad} have an unknown type; known: {list(LOGICAL_TYPES)}")
        return cls(columns=columns, target=doc.get("target"))

    @classmethod
    def from_feature_set(cls, features: FeatureSet, target: str | None = None) -> Schema:
        """The schema of a version trained before schemas were stored: its recorded feature lists."""
        cols = [ColumnSchema(c, NUMERIC, "listed") for c in features.numeric]
        cols += [ColumnSchema(c, CATEGORICAL, "listed") for c in features.categorical]
        return cls(columns=tuple(cols), target=target)

    # -- coercion ------------------------------------------------------------------------------
    def coerce(self, frame: pd.DataFrame, *, where: str | None = None) -> pd.DataFrame:
        """The model's input frame: every feature column coerced to its logical type.

        :param frame: rows as read (any dtypes); extra columns are ignored.
        :param where: the data's origin for error messages (a file or snapshot).
        :returns: a frame with the :attr:`features` columns, in that order, on ``frame``'s index:
            float64 for number types, object text (NaN missing) for categorical ones.
        :raises SchemaError: a feature column is missing, or a value cannot be coerced.
        """
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise SchemaError(
                f"{_at(where)}feature column(s) {missing} of the model's schema are missing; the data has "
                f"{list(frame.columns)[:30]}. Fix the export, or train a model without them"
            )
        out = pd.DataFrame(index=frame.index)
        types = {c.name: c.type for c in self.columns}
        for name in self.features:
            out[name] = coerce_column(frame[name], types[name], column=name, where=where)
        return out


# -- coercion of one column ----------------------------------------------------------------------


def _at(where: str | None) -> str:
    return f"{where}: " if where else ""


def _fail(column: str, value: Any, expected: str, where: str | None, count: int, hint: str) -> SchemaError:
    samples = value if isinstance(value, list) else [value]
    what = "text" if all(isinstance(v, str) for v in samples) else "values"
    shown = [str(v) for v in samples[:3]]
    return SchemaError(
        f"{_at(where)}column {column!r} should be {expected} but holds {what} in {count} row(s), "
        f"e.g. {shown}; {hint}"
    )


def coerce_column(values: pd.Series, logical: str, *, column: str, where: str | None = None) -> pd.Series:
    """One column coerced to ``logical`` (see the module docstring); index kept."""
    if logical in (NUMERIC, INTEGER):
        return _to_number(values, logical, column, where)
    if logical == BOOLEAN:
        return _to_boolean(values, column, where)
    if logical == CATEGORICAL:
        return _to_labels(values)
    if logical == DATETIME:
        return _to_days(values, column, where)
    if logical in (ID, IGNORED):
        return values
    raise ValueError(f"unknown logical type {logical!r}")


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _number_of(value: Any) -> float | None:
    """A scalar as a float; None when it is not a number (text is parsed, durations are seconds)."""
    if isinstance(value, dt.timedelta | np.timedelta64):
        return float(pd.Timedelta(value).total_seconds())
    if isinstance(value, bool | np.bool_):
        return 1.0 if value else 0.0
    if isinstance(value, numbers.Number | decimal.Decimal):
        try:
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            return None
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _NUMERIC_BOOL_TEXT:
            return _NUMERIC_BOOL_TEXT[text.lower()]
        try:
            return float(text)
        except ValueError:
            return None
    return None


def _exact_int(value: Any) -> int | None:
    """The exact integer an integer-valued scalar or integer text holds; None otherwise."""
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, decimal.Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    return None


def _to_number(values: pd.Series, logical: str, column: str, where: str | None) -> pd.Series:
    dtype = values.dtype
    if pd.api.types.is_timedelta64_dtype(dtype):
        values = values.dt.total_seconds()
        dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype) or (
        pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_object_dtype(dtype)
    ):
        if pd.api.types.is_integer_dtype(dtype) and logical == INTEGER:
            big = values.dropna()
            inexact = (big > _EXACT_FLOAT) | (big < -_EXACT_FLOAT)  # compared as integers, exactly
            if len(big) and inexact.any():
                bad = big[inexact]
                raise _fail(
                    column,
                    bad.iloc[0],
                    "integer",
                    where,
                    len(bad),
                    "integers beyond 2**53 are not exact as numbers; declare the column as id",
                )
        out = values.to_numpy(dtype="float64", na_value=np.nan)
    else:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        distinct = list(uniques)
        converted = [None if _is_missing(v) else _number_of(v) for v in distinct]
        bad_at = [i for i, c in enumerate(converted) if c is None and not _is_missing(distinct[i])]
        if bad_at:
            count = int(np.isin(codes, bad_at).sum())
            sample = [distinct[i] for i in bad_at[:3]]
            comma = any(isinstance(v, str) and _COMMA_NUMBER.match(v.strip()) for v in sample)
            thousands = any(isinstance(v, str) and _THOUSANDS.match(v.strip()) for v in sample)
            raise _fail(
                column,
                sample,
                logical,
                where,
                count,
                _COMMA_HINT
                if thousands
                else "a decimal comma: set source.csv.decimal to ','"
                if comma
                else "fix the source, or list the column under features.categorical",
            )
        if logical == INTEGER:  # 9007199254740993 parses to 2**53 as a float: check the exact value
            inexact = [v for v in distinct if (n := _exact_int(v)) is not None and abs(n) > _EXACT_FLOAT]
            if inexact:
                raise _fail(
                    column,
                    inexact[:3],
                    "integer",
                    where,
                    int(np.isin(codes, [distinct.index(v) for v in inexact]).sum()),
                    "integers beyond 2**53 are not exact as numbers; declare the column as id",
                )
        lookup = np.array([np.nan if c is None else c for c in converted] + [np.nan], dtype="float64")
        out = lookup[np.where(codes >= 0, codes, len(converted))]
    out = np.asarray(out, dtype="float64")
    if np.isinf(out).any():
        n = int(np.isinf(out).sum())
        raise SchemaError(
            f"{_at(where)}column {column!r} holds {n} infinite value(s); replace them or leave them empty"
        )
    if logical == INTEGER:
        finite = out[np.isfinite(out)]
        frac = finite[finite != np.round(finite)]
        if len(frac):
            raise _fail(
                column, float(frac[0]), "integer", where, len(frac), "integer columns hold whole numbers"
            )
        if len(finite) and np.abs(finite).max() > _EXACT_FLOAT:
            raise _fail(
                column,
                float(finite[np.abs(finite) > _EXACT_FLOAT][0]),
                "integer",
                where,
                1,
                "integers beyond 2**53 are not exact as numbers; declare the column as id",
            )
    return pd.Series(out, index=values.index, name=values.name, dtype="float64")


def _bool_of(value: Any) -> float | None:
    if isinstance(value, bool | np.bool_):
        return 1.0 if value else 0.0
    if isinstance(value, numbers.Number | decimal.Decimal):
        number = float(value)  # type: ignore[arg-type]
        return number if number in (0.0, 1.0) else None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in TRUE_TEXT:
            return 1.0
        if text in FALSE_TEXT:
            return 0.0
    return None


def _to_boolean(values: pd.Series, column: str, where: str | None) -> pd.Series:
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    table: list[float] = []
    for u in list(uniques):
        b = None if _is_missing(u) else _bool_of(u)
        if b is None and not _is_missing(u):
            count = int((codes == len(table)).sum())
            raise _fail(
                column,
                u,
                "boolean",
                where,
                count,
                "booleans are True/False, 1/0 or the text true/false, t/f, yes/no, y/n, 1/0",
            )
        table.append(np.nan if b is None else b)
    lookup = np.asarray([*table, np.nan], dtype="float64")
    out = lookup[np.where(codes >= 0, codes, len(table))]
    return pd.Series(out, index=values.index, name=values.name, dtype="float64")


def canonical_label(value: Any) -> str | None:
    """The category label of one value (None: missing). See the module docstring."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, float | np.floating | decimal.Decimal):
        number = float(value)
        if math.isnan(number):
            return None
        if math.isfinite(number) and number == math.floor(number) and abs(number) < _EXACT_FLOAT:
            return str(int(number))
        if isinstance(value, decimal.Decimal):
            return str(value.normalize())
        if isinstance(value, np.floating) and value.dtype.itemsize < 8:
            return str(value)  # the shortest text of its own precision: float32 0.1 is "0.1"
        return repr(number)
    if isinstance(value, pd.Timestamp | dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def _to_labels(values: pd.Series) -> pd.Series:
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    labels = [canonical_label(u) for u in list(uniques)]
    lookup = np.array([np.nan if lab is None else lab for lab in labels] + [np.nan], dtype=object)
    out = lookup[np.where(codes >= 0, codes, len(labels))]
    return pd.Series(out, index=values.index, name=values.name, dtype=object)


def _to_days(values: pd.Series, column: str, where: str | None) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        stamps = values
    else:
        text = values.astype("string").str.strip().replace("", pd.NA)
        stamps = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
        bad = text.notna() & stamps.isna()
        if bad.any():
            raise _fail(
                column,
                text[bad].iloc[0],
                "datetime",
                where,
                int(bad.sum()),
                "write timestamps as ISO 8601 (2026-01-31 or 2026-01-31T08:00:00)",
            )
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    seconds = (stamps - _EPOCH).dt.total_seconds()
    return pd.Series(
        seconds.to_numpy(dtype="float64", na_value=np.nan) / 86400.0, index=values.index, name=values.name
    )


# -- the MLflow signature ------------------------------------------------------------------------


def mlflow_signature(schema: Schema, predictions: Any) -> Any:
    """An MLflow signature whose input is the schema's features as the raw rows carry them.

    Every input column is optional and typed ``any`` for the model's own coercion step to read
    (:class:`SchemaCoercion`), except ``categorical`` columns, which are strings after it; so
    ``mlflow.pyfunc`` accepts the raw rows the model was trained on (ints, flags, gaps) and the
    signature still lists every column the model needs.
    """
    from mlflow.models import ModelSignature
    from mlflow.models.signature import infer_signature
    from mlflow.types.schema import AnyType, ColSpec
    from mlflow.types.schema import Schema as MlflowSchema

    inputs = MlflowSchema([ColSpec(AnyType(), name, required=False) for name in schema.features])
    outputs = infer_signature(None, predictions).outputs if predictions is not None else None
    return ModelSignature(inputs=inputs, outputs=outputs)


class SchemaCoercion(TransformerMixin, BaseEstimator):
    """The model's first step: coerce raw rows to the version's schema (a scikit-learn transformer).

    Stateless: ``fit`` learns nothing (the schema was decided before training). Coercing an
    already coerced frame changes nothing, so callers may coerce first for clearer errors.

    :param schema: the schema as a dict (:meth:`Schema.to_dict`), so the step pickles plainly.
    """

    def __init__(self, schema: dict[str, Any] | None = None) -> None:
        self.schema = schema

    def fit(self, x: Any, y: Any = None) -> SchemaCoercion:
        return self

    def transform(self, x: Any) -> pd.DataFrame:
        if not isinstance(x, pd.DataFrame):
            x = pd.DataFrame(x)
        return Schema.from_dict(self.schema or {}).coerce(x)

    def __sklearn_is_fitted__(self) -> bool:
        return True


def __getattr__(name: str) -> Any:
    """Inference lives in :mod:`mlops_ops.core.schema_inference`; its public names are here too."""
    if name in ("infer_column", "infer_schema", "empty_features"):
        from mlops_ops.core import schema_inference

        return getattr(schema_inference, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
