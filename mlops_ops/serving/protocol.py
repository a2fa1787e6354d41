"""MLflow's scoring protocol: a request body read into rows, or a 4xx that says what is wrong.

Accepted bodies (``Content-Type: application/json``), as ``mlflow models serve`` takes them::

    {"dataframe_split": {"columns": ["a", "b"], "data": [[1, "x"], [2, "y"]]}}
    {"dataframe_records": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]}
    {"instances": [{"a": 1, "b": "x"}]}            (or columnar: {"instances": {"a": [1], "b": ["x"]}})
    {"inputs": ...}                                 (the same shapes as "instances")

A JSON body may carry MLflow's ``"params"`` beside the data; the one parameter taken is
``{"explain": k}`` (each row's ``k`` largest SHAP contributions, see docs/serving.md); any other
key is refused, naming it. The query parameter ``?explain=k`` is the same (for CSV bodies too).

Every cell must be a JSON scalar (text, number, true/false, null). Nothing here knows a model:
checking the rows against a version's schema is :meth:`mlops_ops.serving.models.ServedModel.check`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
JSON, CSV = "application/json", "text/csv"
_SCALARS = (str, int, float, bool, type(None))
# a \uD800-\uDFFF escape, or such a code point encoded raw (json.loads decodes with surrogatepass)
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


class RequestError(ValueError):
    """A request the service refuses: ``status`` (4xx), an MLflow ``error_code`` and a message."""

    def __init__(self, status: int, message: str, error_code: str = "BAD_REQUEST") -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message


@dataclass(frozen=True)
class ParsedRequest:
    """The request's rows: a frame (columns as sent), each row as a dict (for the log), and
    ``explain``: the ``k`` of the top-k contributions asked per row (None: not asked)."""

    frame: pd.DataFrame
    records: list[dict[str, Any]]
    explain: int | None = None


#: the inference parameters a request may carry in ``params`` (or the query string)
PARAMS = ("explain",)


def explain_value(value: Any, where: str) -> int:
    """The ``k`` of an ``explain`` parameter: a whole number >= 1 (JSON number or text of one).

    The upper bound (the version's number of features) is checked by the service.

    :raises RequestError: 400 naming ``where`` and the value.
    """
    k: Any = value
    if isinstance(value, str) and value.strip().lstrip("+").isdigit():
        k = int(value)
    elif isinstance(value, float) and value.is_integer():
        k = int(value)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise RequestError(
            400,
            f"{where} must be a whole number of contributions per row (1 up to the model's number of "
            f"features), got {value!r}",
        )
    return k


def parse_body(
    body: bytes, *, max_rows: int, content_type: str = JSON, explain: str | None = None
) -> ParsedRequest:
    """Read a scoring request.

    :param body: the raw body (already bounded in size and decompressed by the caller).
    :param max_rows: most rows one request may carry (more: 413).
    :param content_type: :data:`JSON` or :data:`CSV` (a header line, then one line per row, as
        ``mlflow models serve`` takes it; an empty field is a missing value).
    :param explain: the query parameter ``explain`` as sent (None: absent).
    :raises RequestError: 400 for an ``explain`` that is not a whole number >= 1, a query and a
        body asking different ``explain``, or a ``params`` key other than ``explain``; 400 for an empty body, text that is not JSON (or CSV), an object with a
        key twice, text with an unpaired UTF-16 surrogate, nesting deeper than Python's recursion
        limit, or a shape the protocol does not have; 413 for too many rows; 422 for a cell that is
        not a scalar or a row that lacks a column others have.
    """
    if not body.strip():
        raise RequestError(400, f"the request body is empty; send a JSON object with one of {list(FORMATS)}")
    asked = explain_value(explain, "the query parameter 'explain'") if explain is not None else None
    if content_type == CSV:
        columns, rows = _csv(body)
        return _frame(columns, rows, "text/csv", max_rows, asked)
    try:
        doc = json.loads(body, object_pairs_hook=_unique_keys)
    except RequestError:
        raise
    except UnicodeDecodeError:
        raise RequestError(400, "the request body is not UTF-8 text; send JSON") from None
    except ValueError as err:
        raise RequestError(400, f"the request body is not valid JSON: {err}") from None
    except RecursionError:
        raise RequestError(
            400, "the request body nests lists or objects too deeply; rows are objects or lists of values"
        ) from None
    if _SURROGATE.search(body):
        _refuse_lone_surrogates(doc)
    if not isinstance(doc, dict):
        raise RequestError(
            400,
            f"the request body must be a JSON object with one of {list(FORMATS)}, got {type(doc).__name__}",
        )
    params = doc.get("params")
    if params is not None and not isinstance(params, dict):
        raise RequestError(400, f"'params' must be an object of parameters {list(PARAMS)}, got {params!r}")
    unknown_params = sorted(set(params or {}) - set(PARAMS))
    if unknown_params:
        raise RequestError(
            400,
            f"'params' {unknown_params} are not supported: the served models take no inference "
            f"parameters; the service takes {list(PARAMS)}",
        )
    if params and params.get("explain") is not None:
        in_body = explain_value(params["explain"], "'params.explain'")
        if asked is not None and asked != in_body:
            raise RequestError(
                400, f"the query asks explain={asked} and 'params' explain={in_body}; send one of them"
            )
        asked = in_body
    keys = [k for k in doc if k != "params"]
    given = [k for k in keys if k in FORMATS]
    unknown = [k for k in keys if k not in FORMATS]
    if unknown or len(given) != 1:
        raise RequestError(
            400,
            f"the request body must have exactly one of {list(FORMATS)}"
            + (f"; unknown key(s) {unknown}" if unknown else f"; got {given or 'none'}"),
        )
    fmt = given[0]
    payload = doc[fmt]
    if fmt == "dataframe_split":
        columns, rows = _split(payload)
    elif fmt == "dataframe_records":
        columns, rows = _records(payload, fmt)
    elif isinstance(payload, dict):
        columns, rows = _columnar(payload, fmt)
    else:
        columns, rows = _records(payload, fmt)
    return _frame(columns, rows, fmt, max_rows, asked)


def _frame(
    columns: list[str], rows: list[list[Any]], fmt: str, max_rows: int, explain: int | None = None
) -> ParsedRequest:
    if not rows:
        raise RequestError(400, f"'{fmt}' holds no rows; send at least one")
    if len(rows) > max_rows:
        raise RequestError(
            413,
            f"the request holds {len(rows)} rows; at most {max_rows} per request: split it",
            "PAYLOAD_TOO_LARGE",
        )
    for i, row in enumerate(rows):
        for col, value in zip(columns, row, strict=True):
            if not isinstance(value, _SCALARS):
                raise RequestError(
                    422,
                    f"column {col!r} in row {i} holds a {type(value).__name__}; each value must be a "
                    "single text, number, true/false or null",
                    "INVALID_PARAMETER_VALUE",
                )
    frame = pd.DataFrame(rows, columns=columns)
    if frame.columns.has_duplicates:  # pragma: no cover - refused by _split and dict keys
        raise RequestError(400, "duplicate column names")
    return ParsedRequest(
        frame=frame, records=[dict(zip(columns, row, strict=True)) for row in rows], explain=explain
    )


def _split(payload: Any) -> tuple[list[str], list[list[Any]]]:
    if not isinstance(payload, dict) or "columns" not in payload or "data" not in payload:
        raise RequestError(
            400,
            "'dataframe_split' must be an object with 'columns' (a list of names) and 'data' (a list of rows)",
        )
    extra = sorted(set(payload) - {"columns", "data", "index"})
    if extra:
        raise RequestError(
            400, f"'dataframe_split' has unknown key(s) {extra}; it takes columns, data, index"
        )
    columns, data = payload["columns"], payload["data"]
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise RequestError(400, "'dataframe_split.columns' must be a list of column names (text)")
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise RequestError(400, f"'dataframe_split.columns' names {duplicated} more than once")
    if not isinstance(data, list):
        raise RequestError(400, "'dataframe_split.data' must be a list of rows (lists of values)")
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            got = f"{len(row)} values" if isinstance(row, list) else type(row).__name__
            raise RequestError(
                400,
                f"'dataframe_split.data' row {i} must be a list of {len(columns)} values (one per column), got {got}",
            )
    return columns, data


def _records(payload: Any, fmt: str) -> tuple[list[str], list[list[Any]]]:
    if not isinstance(payload, list) or not all(isinstance(r, dict) for r in payload):
        raise RequestError(
            400,
            f"'{fmt}' must be a list of objects, one per row, keyed by column name"
            + (
                " (or an object of columns); for lists of values use 'dataframe_split'"
                if fmt != "dataframe_records"
                else ""
            ),
        )
    if not payload:
        return [], []
    columns = list(payload[0])
    names = set(columns)
    for i, record in enumerate(payload):
        if set(record) != names:
            missing, extra = sorted(names - set(record)), sorted(set(record) - names)
            raise RequestError(
                422,
                f"row {i} of '{fmt}' does not have the columns of row 0: "
                + (f"missing {missing}" if missing else "")
                + ("; " if missing and extra else "")
                + (f"extra {extra}" if extra else "")
                + "; send every column in every row (null for a missing value)",
                "INVALID_PARAMETER_VALUE",
            )
    return columns, [[record[c] for c in columns] for record in payload]


def _columnar(payload: dict[str, Any], fmt: str) -> tuple[list[str], list[list[Any]]]:
    columns = list(payload)
    if not all(isinstance(v, list) for v in payload.values()):
        raise RequestError(400, f"'{fmt}' as an object must map each column to a list of values")
    lengths = {len(v) for v in payload.values()}
    if len(lengths) > 1:
        raise RequestError(400, f"the columns of '{fmt}' have different lengths {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    return columns, [[payload[c][i] for c in columns] for i in range(n)]


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a key given twice (JSON would keep the last one silently)."""
    doc = dict(pairs)
    if len(doc) != len(pairs):
        keys = [k for k, _ in pairs]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        raise RequestError(
            400, f"a JSON object in the request names {twice} more than once; send each key once"
        )
    return doc


def _refuse_lone_surrogates(doc: Any) -> None:
    """400 for text (a key or a value) holding an unpaired UTF-16 surrogate: it is not Unicode, and
    could be neither answered nor logged."""
    stack = [doc]
    while stack:
        item = stack.pop()
        texts: list[Any] = []
        if isinstance(item, dict):
            texts = list(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        else:
            texts = [item]
        for text in texts:
            if isinstance(text, str):
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    raise RequestError(
                        400,
                        f"the request holds text with an unpaired UTF-16 surrogate escape: {ascii(text)[:80]}; "
                        "send valid Unicode",
                    ) from None


def _csv(body: bytes) -> tuple[list[str], list[list[Any]]]:
    """A CSV body: the header's column names and each line's values (text; empty: missing)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RequestError(400, "the CSV body is not UTF-8 text") from None
    try:
        lines = [line for line in csv.reader(io.StringIO(text, newline="")) if line]
    except csv.Error as err:
        raise RequestError(400, f"the CSV body cannot be read: {err}") from None
    columns, data = lines[0], lines[1:]
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated or "" in columns:
        raise RequestError(
            400,
            f"the CSV header must name each column once, got {columns[:30]}"
            + ("; write the frame without its index (to_csv(index=False))" if "" in columns else ""),
        )
    for i, row in enumerate(data):
        if len(row) != len(columns):
            raise RequestError(
                400, f"CSV line {i + 2} has {len(row)} values; the header names {len(columns)} columns"
            )
    return columns, [[v if v.strip() else None for v in row] for row in data]
