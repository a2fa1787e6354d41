"""Batch scoring: input checks, the predictions frame, its folder name and its manifest.

Pure logic over pandas; the operator reads the snapshot and the model and writes the results.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlops_ops.core.data import DataError

#: Columns the scoring step writes itself; an id column may not take one of these names.
OUTPUT_COLUMNS = (
    "prediction",
    "probability",
    "model_version",
    "input_sha256",
    "data_interval_start",
    "data_interval_end",
)

MANIFEST_VERSION = 1

_RUN_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.=-]")


class ScoringError(DataError):
    """The input cannot be scored by this model. The message names the columns and the fix."""


def interval_key(start: dt.datetime | None, run_id: str) -> str:
    """The folder name of a run's predictions.

    With a data interval: its start in UTC, ``2026-01-05T000000Z`` (no ``:``, which object stores
    and some file systems handle badly; sorts by time). Without one (a manual run triggered with
    no logical date): ``run=<run_id>``, so re-running that run replaces its own folder and two such
    runs never overwrite each other.
    """
    if start is None:
        return "run=" + _RUN_ID_UNSAFE.sub("_", run_id)
    if start.tzinfo is None:
        raise ValueError(f"data interval start {start!r} has no time zone")
    return start.astimezone(dt.UTC).strftime("%Y-%m-%dT%H%M%SZ")


def check_columns(
    columns: Sequence[str],
    *,
    features: Sequence[str],
    id_columns: Sequence[str],
    model: str,
) -> None:
    """The input must have every feature the model was trained on, and every id column.

    Extra columns (the target, anything else) are fine: the model selects its features by name.
    Raises :class:`ScoringError` naming every missing column at once.
    """
    have = set(columns)
    problems = []
    missing = [c for c in features if c not in have]
    if missing:
        problems.append(
            f"feature column(s) {missing} that {model} was trained on are missing; "
            "fix the export of this partition, or train a model without them"
        )
    clash = [c for c in id_columns if c in OUTPUT_COLUMNS]
    if clash:
        problems.append(
            f"id column(s) {clash} clash with output columns {list(OUTPUT_COLUMNS)}; "
            "rename them in the source or drop them from scoring.id_columns"
        )
    missing_ids = [c for c in id_columns if c not in have]
    if missing_ids:
        problems.append(f"id column(s) {missing_ids} are missing; fix the source or scoring.id_columns")
    if problems:
        raise ScoringError("; ".join(problems) + f". The input has {list(columns)}")


def assemble_predictions(
    frame: pd.DataFrame,
    scores: Mapping[str, Any],
    *,
    task: str,
    id_columns: Sequence[str],
    model_version: str,
    input_sha256: str,
    interval_start: dt.datetime | None,
    interval_end: dt.datetime | None,
) -> pd.DataFrame:
    """One row per input row, in input order.

    Columns: ``id_columns…``, ``prediction``, ``probability`` (classifiers: of the positive class,
    the second of the model's sorted classes; null when the estimator has no ``predict_proba``),
    ``model_version``, ``input_sha256``, ``data_interval_start``, ``data_interval_end`` (UTC,
    null for a run without a data interval).
    """
    n = len(frame)
    pred = np.asarray(scores["pred"])
    if len(pred) != n:
        raise ValueError(f"the model returned {len(pred)} predictions for {n} rows")
    out = frame.loc[:, list(id_columns)].reset_index(drop=True)
    out["prediction"] = pred if task == "classification" else pred.astype("float64")
    if task == "classification":
        proba = scores.get("proba")
        out["probability"] = (
            np.asarray(proba, dtype="float64") if proba is not None else np.full(n, np.nan, dtype="float64")
        )
    out["model_version"] = pd.array([str(model_version)] * n, dtype="string")
    out["input_sha256"] = pd.array([input_sha256] * n, dtype="string")
    for name, value in (("data_interval_start", interval_start), ("data_interval_end", interval_end)):
        stamp = pd.Timestamp(value).tz_convert("UTC") if value is not None else pd.NaT
        out[name] = pd.Series([stamp] * n, dtype="datetime64[ns, UTC]")
    return out


def positive_class(scores: Mapping[str, Any]) -> Any:
    """The class whose probability the ``probability`` column holds (JSON-safe), or None."""
    classes = scores.get("classes")
    if classes is None or scores.get("proba") is None or len(classes) != 2:
        return None
    value = classes[1]
    return value.item() if hasattr(value, "item") else value


def predictions_manifest(
    *,
    pipeline: str,
    model_version: str,
    model_uri: str,
    task: str,
    rows: int,
    columns: Sequence[str],
    input_sha256: str,
    input_uri: str,
    predictions_uri: str,
    predictions_sha256: str,
    interval_start: dt.datetime | None,
    interval_end: dt.datetime | None,
    positive: Any,
    lineage: Mapping[str, str],
    created: dt.datetime,
) -> dict[str, Any]:
    """The manifest written next to ``predictions.parquet`` (after it)."""
    return {
        "pipeline": pipeline,
        "model_name": pipeline,
        "model_version": str(model_version),
        "model_uri": model_uri,
        "task": task,
        "positive_class": positive,
        "rows": int(rows),
        "columns": list(columns),
        "input_sha256": input_sha256,
        "input_uri": input_uri,
        "predictions_uri": predictions_uri,
        "predictions_sha256": predictions_sha256,
        "data_interval": interval_doc(interval_start, interval_end),
        "run_id": lineage.get("airflow.run_id"),
        "dag_id": lineage.get("airflow.dag_id"),
        "task_id": lineage.get("airflow.task_id"),
        "created": created.astimezone(dt.UTC).isoformat(),
        "manifest_version": MANIFEST_VERSION,
    }


def interval_doc(start: dt.datetime | None, end: dt.datetime | None) -> dict[str, str] | None:
    """A data interval as JSON (ISO 8601, UTC), or None for a run without one."""
    if start is None or end is None:
        return None
    return {"start": start.astimezone(dt.UTC).isoformat(), "end": end.astimezone(dt.UTC).isoformat()}
