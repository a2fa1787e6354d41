"""Reading the pipeline page's documents and the reports from storage (``MLOPS_STORAGE``).

The layout is docs/architecture.md, "Storage layout". Every name that comes from a URL is checked
to be one safe path segment before it touches storage, so ``..`` and ``/`` never reach a path.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import TYPE_CHECKING, Any

from mlops_ops.hooks.storage import PipelineStorage, _safe, read_json, to_path
from mlops_ops.settings import storage_conn_id, storage_root_uri
from mlops_ops.ui.history import PipelineHistory, ReportRef, StoredReport, build_history, parse_time

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)

#: the report files served: a report's JSON document and its HTML view
REPORT_EXTENSIONS = ("html", "json")
_TMP_MARK = ".tmp-"


class UnsafeNameError(ValueError):
    """A name from a request that is not one safe path segment (``..``, ``/``, ``%2F``...)."""


def safe_segment(name: str, what: str) -> str:
    """``name`` if it is one safe path segment (as storage writes them), else UnsafeNameError."""
    if not name or name != _safe(name) or name.startswith("."):
        raise UnsafeNameError(f"{what} {name!r} is not a valid name")
    return name


def list_pipelines(root: str | None = None) -> list[str]:
    """The pipelines with documents under the storage root (a folder holding ``reports/`` or
    ``deployments/``), sorted."""
    base = to_path(root or storage_root_uri(), storage_conn_id())
    if not base.exists():
        return []
    return sorted(
        p.name
        for p in base.iterdir()
        if p.is_dir()
        and not p.name.startswith(".")
        and any((p / d).exists() for d in ("reports", "deployments"))
    )


def report_path(pipeline: str, dag_id: str, run_id: str, file_name: str) -> ObjectStoragePath:
    """The stored report ``<pipeline>/reports/<dag_id>/<run_id>/<task_id>.<html|json>``.

    :raises UnsafeNameError: a part is not a safe segment, or the extension is not html or json.
    """
    task_id, _, ext = file_name.rpartition(".")
    if ext not in REPORT_EXTENSIONS:
        raise UnsafeNameError(f"only {', '.join(REPORT_EXTENSIONS)} reports are served, not {file_name!r}")
    storage = PipelineStorage(safe_segment(pipeline, "pipeline"))
    return storage.report_path(
        safe_segment(dag_id, "DAG id"), safe_segment(run_id, "run id"), safe_segment(task_id, "task id"), ext
    )


def read_history(pipeline: str) -> PipelineHistory:
    """The page model of ``pipeline`` from its reports, ledger records and retrain requests.

    A document that cannot be read is listed in ``problems`` (named by its path), not skipped
    silently; storage faults propagate.
    """
    storage = PipelineStorage(safe_segment(pipeline, "pipeline"))
    problems: list[str] = []
    reports: list[StoredReport] = []
    reports_dir = storage.base / "reports"
    for path in _files(reports_dir, depth=3):
        dag_dir, run_dir = path.parent.parent.name, path.parent.name
        doc = _read(path, problems)
        if isinstance(doc, dict):
            ref = ReportRef(dag_dir, run_dir, path.name[: -len(".json")])
            reports.append(StoredReport(ref, doc, _written_at(path, doc), _modified_at(path)))
    ledger = [
        d for p in _files(storage.deployments_dir(), depth=1) if isinstance(d := _read(p, problems), dict)
    ]
    releases = [
        d
        for p in _files(storage.deployments_dir() / "releases", depth=1)
        if isinstance(d := _read(p, problems), dict)
    ]
    requests = [
        d
        for p in _files(storage.base / "retrain_requests", depth=1)
        if isinstance(d := _read(p, problems), dict)
    ]
    return build_history(
        pipeline,
        reports=reports,
        ledger=ledger,
        retrain_requests=requests,
        releases=releases,
        problems=problems,
    )


def _files(directory: ObjectStoragePath, *, depth: int) -> list[ObjectStoragePath]:
    """The ``*.json`` files ``depth`` levels under ``directory`` (temporary files left out)."""
    if not directory.exists():
        return []
    found: list[ObjectStoragePath] = []
    for path in directory.iterdir():
        if path.name.startswith("."):
            continue
        if depth > 1 and path.is_dir():
            found.extend(_files(path, depth=depth - 1))
        elif depth == 1 and path.name.endswith(".json") and _TMP_MARK not in path.name and path.is_file():
            found.append(path)
    return found


def _read(path: ObjectStoragePath, problems: list[str]) -> Any:
    try:
        return read_json(path)
    except (ValueError, RecursionError) as err:  # JSON and Unicode errors
        problems.append(f"{path}: not valid JSON ({type(err).__name__}: {str(err)[:120]})")
        return None


def _written_at(path: ObjectStoragePath, doc: dict[str, Any]) -> dt.datetime:
    """When a report's data was judged: the end of the data interval it states, else the time
    the file was written."""
    interval = doc.get("data_interval")
    stated = parse_time(interval.get("end") if isinstance(interval, dict) else doc.get("data_interval_end"))
    return stated if stated is not None else _modified_at(path)


def _modified_at(path: ObjectStoragePath) -> dt.datetime:
    """When the file was written (UTC), from its storage's metadata; now when none says."""
    info: dict[str, Any] = dict(path.stat())
    modified = info.get("mtime", info.get("LastModified", info.get("last_modified")))
    if isinstance(modified, dt.datetime):
        return modified if modified.tzinfo else modified.replace(tzinfo=dt.UTC)
    if isinstance(modified, int | float):
        return dt.datetime.fromtimestamp(modified, dt.UTC)
    return dt.datetime.now(dt.UTC)


def dumps(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, default=str)
