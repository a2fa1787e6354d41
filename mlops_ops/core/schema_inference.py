"""Inferring a version's frozen schema from its training snapshot, once (see :mod:`mlops_ops.core.schema`).

Every later read is coerced to the stored schema and never re-inferred; this module is used at
training only (and by validation's "empty in every row" check).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

from mlops_ops.core.schema import (
    _COMMA_HINT,
    _COMMA_NUMBER,
    _INT64_MAX,
    BOOLEAN,
    CATEGORICAL,
    DATETIME,
    FALSE_TEXT,
    ID,
    IGNORED,
    LOGICAL_TYPES,
    NUMBER_TYPES,
    NUMERIC,
    TRUE_TEXT,
    ColumnSchema,
    Schema,
    SchemaError,
    coerce_column,
)


def _beyond_int64(values: pd.Series) -> bool:
    """Integers that do not fit int64 (uint64 >= 2**63, or text of such integers)."""
    if pd.api.types.is_unsigned_integer_dtype(values.dtype):
        present = values.dropna()
        return bool(len(present)) and int(present.max()) > _INT64_MAX
    if pd.api.types.is_string_dtype(values.dtype) or values.dtype == object:
        present = values.dropna().astype(str).str.strip()
        if not len(present) or not present.str.fullmatch(r"[+-]?\d+").all():
            return False
        return any(abs(int(v)) > _INT64_MAX for v in present.unique()[:10_000])
    return False


def _looks_like_dates(values: pd.Series) -> bool:
    if not (pd.api.types.is_string_dtype(values.dtype) or values.dtype == object):
        return False
    present = values.dropna()
    if not len(present) or not all(isinstance(v, str) for v in present.iloc[:1000]):
        return False
    sample = present.astype(str).str.strip().unique()[:2000]
    if not pd.Series(sample).str.match(r"^\d{4}-\d{2}-\d{2}").all():
        return False
    parsed = pd.to_datetime(pd.Series(sample), format="ISO8601", errors="coerce", utc=True)
    return bool(parsed.notna().all())


#: the words of a flag written as text (digits are numbers, read as such by the readers)
_FLAG_WORDS = (TRUE_TEXT | FALSE_TEXT) - {"1", "0", "1.0", "0.0"}


def _looks_like_flags(values: pd.Series) -> bool:
    """Text holding only flag words, both true and false ones (``yes``/``no``, ``Y``/``N``...)."""
    if not (pd.api.types.is_string_dtype(values.dtype) or values.dtype == object):
        return False
    present = values.dropna()
    if not len(present) or not all(isinstance(v, str) for v in present.iloc[:1000]):
        return False
    words = {str(v).strip().lower() for v in present.unique()[:20]}
    return words <= _FLAG_WORDS and bool(words & TRUE_TEXT) and bool(words & FALSE_TEXT)


def _comma_numbers(values: pd.Series) -> bool:
    """Text of which every value is a number written with a comma (``1,5``, ``1,234``)."""
    if not (pd.api.types.is_string_dtype(values.dtype) or values.dtype == object):
        return False
    present = values.dropna()
    if not len(present) or not all(isinstance(v, str) for v in present.iloc[:1000]):
        return False
    sample = present.astype(str).str.strip().unique()[:2000]
    return bool(pd.Series(sample).str.match(_COMMA_NUMBER).all())


def infer_column(values: pd.Series) -> tuple[str, str | None]:
    """The logical type of an undeclared column, and why it is not a feature (if it is not)."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return DATETIME, "timestamps: not a feature unless declared in features.types (drift skips it)"
    if _beyond_int64(values):
        return ID, "integers beyond int64: kept exactly as an id; declare it in features.types to use it"
    if (
        pd.api.types.is_bool_dtype(values.dtype)
        or pd.api.types.is_numeric_dtype(values.dtype)
        or pd.api.types.is_timedelta64_dtype(values.dtype)
    ):
        return NUMERIC, None
    if _comma_numbers(values):  # ambiguous: 1,234 is 1234 or 1.234; never a category silently
        present = values.dropna().astype(str).str.strip()
        raise SchemaError(
            f"column {values.name!r} holds numbers written with a comma, e.g. {present.unique()[:3].tolist()}; "
            f"{_COMMA_HINT}, or declare it in features.types"
        )
    if _looks_like_flags(values):  # so the same flag spelled True/False in a later file is the same
        return BOOLEAN, None
    if _looks_like_dates(values):
        return DATETIME, "ISO 8601 dates: not a feature unless declared in features.types (drift skips it)"
    return CATEGORICAL, None


def infer_schema(
    frame: pd.DataFrame,
    target: str,
    *,
    numeric: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    types: Mapping[str, str] | None = None,
    id_columns: Iterable[str] = (),
) -> Schema:
    """The schema of a training snapshot, decided once.

    :param frame: the training snapshot.
    :param target: the target column (not part of the schema).
    :param numeric: the spec's numeric features (``None`` with ``categorical`` ``None``: infer).
    :param categorical: the spec's categorical features.
    :param types: declared logical types by column (``features.types``); they win.
    :param id_columns: columns kept exactly, never features (e.g. ``scoring.id_columns``).
    :raises SchemaError: a declared or listed column is missing, or a declared type is unknown.
    """
    types = dict(types or {})
    unknown = {c: t for c, t in types.items() if t not in LOGICAL_TYPES}
    if unknown:
        raise SchemaError(f"unknown logical type(s) {unknown}; use one of {list(LOGICAL_TYPES)}")
    listed_mode = numeric is not None or categorical is not None
    listed = {**{c: NUMERIC for c in numeric or ()}, **{c: CATEGORICAL for c in categorical or ()}}
    # an id column absent from the training data (only in scoring partitions) is not an error,
    # and a listed feature that is also copied into predictions stays a feature
    ids = [c for c in id_columns if c != target and c in frame.columns and c not in listed]
    declared = {**{c: ID for c in ids}, **types}
    wanted = [*listed, *types]
    absent = [c for c in dict.fromkeys(wanted) if c not in frame.columns]
    if absent:
        raise SchemaError(
            f"column(s) {absent} named in the spec's features are missing; the data has "
            f"{list(frame.columns)[:30]}. Fix the source or the spec's 'features'"
        )
    if target in types or target in listed:
        raise SchemaError(f"the target column {target!r} cannot also be a feature or an id")
    cols = []
    for name in frame.columns:
        if name == target:
            continue
        dtype = str(frame[name].dtype)
        if name in declared:
            cols.append(ColumnSchema(name, declared[name], "declared", dtype))
        elif name in listed:
            cols.append(ColumnSchema(name, listed[name], "listed", dtype))
        elif listed_mode:
            cols.append(ColumnSchema(name, IGNORED, "inferred", dtype, "not listed in features"))
        else:
            kind, note = infer_column(frame[name])
            cols.append(ColumnSchema(name, kind, "inferred", dtype, note))
    # the model's input order: the spec's lists first, in their order, then the frame's
    order = {c: i for i, c in enumerate([*listed, *frame.columns])}
    cols.sort(key=lambda c: order.get(c.name, len(order)))
    return Schema(columns=tuple(cols), target=target)


def empty_features(frame: pd.DataFrame, schema: Schema) -> list[str]:
    """Feature columns with no value in any row (a model cannot learn from them).

    A value is what coercion makes of it: a number-typed column of blank text (``" "``) is as
    empty as one of NaN, since the imputer drops both.
    """
    empty = []
    for name in schema.features:
        if name not in frame.columns or not len(frame):
            continue
        values = frame[name]
        if not values.isna().all() and schema.type_of(name) in NUMBER_TYPES:
            try:
                values = coerce_column(values, schema.type_of(name), column=name)
            except SchemaError:
                continue  # not empty: text that is no number, refused with its own message
        if values.isna().all():
            empty.append(name)
    return empty
