"""Data validation with Great Expectations 1.x on an ephemeral context.

Three groups of expectations, each with a severity (``error`` fails, ``warn`` is recorded):

- schema, from the spec: target and feature columns exist, the target has no missing values,
  numeric features hold finite numbers;
- the spec's own expectations;
- a suite inferred from the reference profile (the champion's training data): columns present,
  types, nullability, numeric ranges, category domains.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from mlops_ops.core.drift import OTHER, ReferenceProfile
from mlops_ops.core.jsonsafe import json_safe
from mlops_ops.core.reports import FINITE_BOUND, SOME_VALUE
from mlops_ops.errors import SpecError

log = logging.getLogger(__name__)

#: at most this many items of a list in a check's details (e.g. sample unexpected values)
_SAMPLE_ITEMS = 50

NUMERIC_TYPES = [
    "int8",
    "int16",
    "int32",
    "int64",
    "Int64",
    "float32",
    "float64",
    "Float64",
    "uint8",
    "uint32",
    "uint64",
]
_FINITE = FINITE_BOUND
_SOME_VALUE = SOME_VALUE


class ValidationConfigError(SpecError):
    """An expectation in the spec cannot be built (unknown type or bad arguments)."""


@dataclass(frozen=True)
class Check:
    """One expectation to run: GX type (snake_case), its kwargs, severity and which group made it."""

    type: str
    kwargs: dict[str, Any]
    severity: str
    origin: str  # "schema" | "spec" | "inferred:<kind>"


@dataclass
class CheckResult:
    type: str
    column: str | None
    severity: str
    origin: str
    success: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class ValidationReport:
    rows: int
    results: list[CheckResult]
    reference: str | None

    @property
    def errors(self) -> list[CheckResult]:
        return [r for r in self.results if not r.success and r.severity == "error"]

    @property
    def warnings(self) -> list[CheckResult]:
        return [r for r in self.results if not r.success and r.severity == "warn"]

    @property
    def status(self) -> str:
        if self.errors:
            return "failed"
        return "passed_with_warnings" if self.warnings else "passed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "rows": self.rows,
            "reference": self.reference,
            "evaluated": len(self.results),
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "results": [asdict(r) for r in self.results],
        }


# -- building the checks -----------------------------------------------------------------------


def schema_checks(
    target: str | None, numeric: list[str], categorical: list[str], min_rows: int = 1
) -> list[Check]:
    """Row count, columns present, target complete, numeric features finite. ``target=None``:
    an unlabelled batch (monitoring), whose target is not checked."""
    checks = [Check("expect_table_row_count_to_be_between", {"min_value": min_rows}, "error", "schema")]
    for col in [*([target] if target else []), *numeric, *categorical]:
        checks.append(Check("expect_column_to_exist", {"column": col}, "error", "schema"))
    if target:
        checks.append(Check("expect_column_values_to_not_be_null", {"column": target}, "error", "schema"))
    for col in [*numeric, *categorical]:  # a feature empty in every row teaches the model nothing
        checks.append(
            Check(
                "expect_column_values_to_not_be_null",
                {"column": col, "mostly": _SOME_VALUE},
                "error",
                "schema",
            )
        )
    for col in numeric:
        checks.append(
            Check(
                "expect_column_values_to_be_in_type_list",
                {"column": col, "type_list": NUMERIC_TYPES},
                "error",
                "schema",
            )
        )
        checks.append(
            Check(
                "expect_column_values_to_be_between",
                {"column": col, "min_value": -_FINITE, "max_value": _FINITE},
                "error",
                "schema",
            )
        )
    return checks


def spec_checks(expectations: list[Any]) -> list[Check]:
    out = []
    for e in expectations:
        data = e if isinstance(e, dict) else e.model_dump()
        out.append(Check(data["type"], dict(data.get("kwargs") or {}), data.get("severity", "error"), "spec"))
    return out


def infer_checks(profile: ReferenceProfile, severities: Any) -> list[Check]:
    """A suite inferred from the reference profile; ``off`` severities are left out."""

    def sev(kind: str) -> str:
        value = severities.get(kind) if isinstance(severities, dict) else getattr(severities, kind)
        return value or "off"

    checks: list[Check] = []
    for col in profile.columns:
        checks.append(Check("expect_column_to_exist", {"column": col}, sev("columns"), "inferred:columns"))
    for col, p in profile.numeric.items():
        checks.append(
            Check(
                "expect_column_values_to_be_in_type_list",
                {"column": col, "type_list": NUMERIC_TYPES},
                sev("types"),
                "inferred:types",
            )
        )
        checks.append(_null_check(col, p.missing_rate, sev("nullability")))
        if p.n and p.min is not None and p.max is not None:
            pad = 0.1 * (p.max - p.min) or 0.1 * abs(p.max) or 1.0
            checks.append(
                Check(
                    "expect_column_values_to_be_between",
                    {"column": col, "min_value": p.min - pad, "max_value": p.max + pad, "mostly": 0.99},
                    sev("ranges"),
                    "inferred:ranges",
                )
            )
    for col, c in profile.categorical.items():
        checks.append(_null_check(col, c.missing_rate, sev("nullability")))
        if OTHER not in c.counts and c.counts:
            checks.append(
                Check(
                    "expect_column_values_to_be_in_set",
                    {"column": col, "value_set": sorted(c.counts), "mostly": 0.99},
                    sev("categories"),
                    "inferred:categories",
                )
            )
    return [c for c in checks if c.severity != "off"]


def _null_check(col: str, rate: float, severity: str) -> Check:
    if rate == 0:
        return Check("expect_column_values_to_not_be_null", {"column": col}, severity, "inferred:nullability")
    allowed = min(1.0, max(2 * rate, rate + 0.05))
    return Check(
        "expect_column_values_to_not_be_null",
        {"column": col, "mostly": round(1 - allowed, 6)},
        severity,
        "inferred:nullability",
    )


# -- running them --------------------------------------------------------------------------------


def merge_checks(checks: list[Check]) -> list[Check]:
    """One check per (type, kwargs), keeping the most severe.

    GX runs an expectation once per suite even when two differ only in their meta, so an
    ``error`` check must not hide behind an identical ``warn`` one.
    """
    merged: dict[str, Check] = {}
    for check in checks:
        key = json.dumps([check.type, check.kwargs], sort_keys=True, default=str)
        kept = merged.get(key)
        if kept is None or (kept.severity != "error" and check.severity == "error"):
            merged[key] = check
    return list(merged.values())


def _expectation_class(snake: str) -> type:
    import great_expectations.expectations as gxe

    camel = "".join(part.capitalize() for part in snake.split("_"))
    cls = getattr(gxe, camel, None)
    if cls is None:
        raise ValidationConfigError(
            f"unknown expectation {snake!r} (no great_expectations.expectations.{camel}); "
            "see https://greatexpectations.io/expectations for the names"
        )
    return cls


def _build(check: Check) -> Any:
    cls = _expectation_class(check.type)
    try:
        return cls(**check.kwargs, meta={"severity": check.severity, "origin": check.origin})
    except Exception as err:
        raise ValidationConfigError(
            f"expectation {check.type} with {check.kwargs} is invalid: {err}"
        ) from None


def run_checks(frame: pd.DataFrame, checks: list[Check], *, reference: str | None = None) -> ValidationReport:
    """Run the checks in one GX validation; errors in building a check raise ValidationConfigError."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx

    checks = merge_checks(checks)
    expectations = [_build(c) for c in checks]  # fail on a bad spec before touching data
    context = gx.get_context(mode="ephemeral")
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # pragma: no cover - cosmetic only
        pass
    source = context.data_sources.add_pandas("mlops")
    batch = source.add_dataframe_asset("snapshot").add_batch_definition_whole_dataframe("whole")
    suite = gx.ExpectationSuite(name="mlops")
    for e in expectations:
        suite.add_expectation(e)
    suite = context.suites.add(suite)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="mlops", data=batch, suite=suite)
    )
    outcome = definition.run(batch_parameters={"dataframe": frame}, result_format="SUMMARY")

    results = []
    for r in outcome.results:
        cfg = r.expectation_config
        if cfg is None:  # pragma: no cover - GX always echoes the configuration
            continue
        meta = cfg.meta or {}
        column = cfg.kwargs.get("column")
        if column is not None and column not in frame.columns and cfg.kwargs.get("mostly") == _SOME_VALUE:
            continue  # a missing feature is reported once, by expect_column_to_exist
        results.append(
            _result(
                frame,
                cfg.type,
                dict(cfg.kwargs),
                column,
                meta.get("severity", "error"),
                meta.get("origin", "spec"),
                bool(r.success),
                dict(r.result or {}),
                dict(r.exception_info or {}),
            )
        )
    order = {"error": 0, "warn": 1}
    results.sort(key=lambda x: (x.success, order.get(x.severity, 2)))
    return ValidationReport(rows=int(len(frame)), results=results, reference=reference)


def _result(
    frame: pd.DataFrame,
    etype: str,
    kwargs: dict[str, Any],
    column: str | None,
    severity: str,
    origin: str,
    success: bool,
    result: dict[str, Any],
    exc: dict[str, Any],
) -> CheckResult:
    details: dict[str, Any] = {
        k: json_safe(result[k], max_items=_SAMPLE_ITEMS)
        for k in (
            "observed_value",
            "unexpected_count",
            "unexpected_percent",
            "partial_unexpected_list",
            "element_count",
            "missing_count",
        )
        if k in result and result[k] is not None
    }
    # what was checked, whole (a value set cut to a sample would misstate it); samples of the data stay cut
    kw = {k: json_safe(v) for k, v in kwargs.items() if k not in ("batch_id",)}
    details["kwargs"] = kw
    where = f"column {column!r}" if column else "the table"
    if success:
        return CheckResult(etype, column, severity, origin, True, f"{etype} on {where}: ok", details)
    if exc.get("raised_exception") and column is not None and column not in frame.columns:
        msg = f"{where} is missing; the data has {list(frame.columns)[:20]}"
    elif etype == "expect_column_to_exist":
        msg = f"{where} is missing; the data has {list(frame.columns)[:20]}"
    elif etype == "expect_column_values_to_be_in_type_list" and column in frame.columns:
        s = frame[column]
        bad = s[pd.to_numeric(s, errors="coerce").isna() & s.notna()].astype(str).head(3).tolist()
        found = details.get("observed_value") or str(s.dtype)
        msg = (
            f"{where} should be numeric but has type {found}"
            + (f", e.g. {bad}" if bad else "")
            + "; fix the source or list it as categorical"
        )
    elif etype == "expect_column_values_to_be_between" and kw.get("min_value") == -_FINITE:
        if details.get("unexpected_count") is None:
            msg = f"{where} could not be checked for infinite values: it does not hold numbers"
        else:
            msg = f"{where} holds {details['unexpected_count']} infinite value(s); replace them or leave them empty"
    elif etype == "expect_column_values_to_not_be_null" and kw.get("mostly") == _SOME_VALUE:
        msg = (
            f"{where} is a listed feature but is empty in every row: the model cannot learn from it; "
            "fix the export, or remove it from features"
        )
    elif etype == "expect_table_row_count_to_be_between":
        msg = f"the table has {details.get('observed_value')} rows, needs {kw}"
    elif exc.get("raised_exception"):
        msg = f"{etype} on {where} could not run: {str(exc.get('exception_message'))[:300]}"
    else:
        n, pct = details.get("unexpected_count"), details.get("unexpected_percent")
        sample = details.get("partial_unexpected_list")
        parts = [f"{etype} failed on {where}"]
        if n is not None:
            parts.append(f"{n} unexpected value(s)" + (f" ({pct:.2f}%)" if isinstance(pct, float) else ""))
        if sample:
            parts.append(f"e.g. {sample[:5]}")
        if "observed_value" in details:
            parts.append(f"observed {details['observed_value']}")
        limits = {k: kw[k] for k in ("min_value", "max_value", "mostly") if k in kw}
        if limits:
            parts.append(f"expected {limits}")
        msg = "; ".join(parts)
    return CheckResult(etype, column, severity, origin, False, msg, details)
