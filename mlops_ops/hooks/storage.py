"""Object storage over Airflow's ObjectStoragePath: layout of DESIGN.md and atomic writes.

Every final name is written by writing a temporary sibling and moving it into place, so a task
killed half-way never leaves a half-written file under a final name. Write-once files (snapshot
manifests, ledger records) are never overwritten.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from typing import TYPE_CHECKING, Any

from mlops_ops import settings

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)

_TMP_MARK = ".tmp-"


def to_path(uri: str, conn_id: str | None = None) -> ObjectStoragePath:
    """An ObjectStoragePath for a URI or a local path (``~`` and ``${VARS}`` expanded)."""
    from airflow.sdk import ObjectStoragePath

    uri = os.path.expanduser(os.path.expandvars(uri))
    if "://" not in uri:
        uri = "file://" + os.path.abspath(uri)
    return ObjectStoragePath(uri, conn_id=conn_id)


class PipelineStorage:
    """The storage layout of one pipeline under ``MLOPS_STORAGE``.

    :param pipeline: pipeline name (first path segment under the root).
    :param root: storage root URI; default from ``MLOPS_STORAGE`` / ``MLOPS_HOME``.
    :param conn_id: Airflow connection with the object store's credentials.
    """

    def __init__(self, pipeline: str, *, root: str | None = None, conn_id: str | None = None) -> None:
        self.pipeline = pipeline
        self.root_uri = (root or settings.storage_root_uri()).rstrip("/")
        self.conn_id = conn_id if conn_id is not None else settings.storage_conn_id()

    @property
    def base(self) -> ObjectStoragePath:
        return to_path(f"{self.root_uri}/{self.pipeline}", self.conn_id)

    def snapshot_dir(self, sha256: str) -> ObjectStoragePath:
        return self.base / "snapshots" / sha256

    def report_path(self, dag_id: str, run_id: str, task_id: str, ext: str) -> ObjectStoragePath:
        return self.base / "reports" / _safe(dag_id) / _safe(run_id) / f"{_safe(task_id)}.{ext}"

    def deployments_dir(self) -> ObjectStoragePath:
        return self.base / "deployments"


def _safe(part: str) -> str:
    """A run id like ``manual__2024-01-01T00:00:00+00:00`` as one safe path segment."""
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in part)


def write_atomic(path: ObjectStoragePath, data: bytes) -> ObjectStoragePath:
    """Write ``data`` to ``path`` through a temporary sibling and a move."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{path.name}{_TMP_MARK}{uuid.uuid4().hex}"
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
        tmp.move(path)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return path


def write_once(path: ObjectStoragePath, data: bytes) -> bool:
    """Write ``data`` to ``path`` unless it exists. Returns False (and writes nothing) if it does.

    On local disk the final name is claimed with an exclusive create, so two writers cannot both
    win; on object stores the existence check and the atomic move give the same result unless two
    writers race within one request.
    """
    if path.exists():
        return False
    if path.protocol in ("file", "local", ""):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f"{path.name}{_TMP_MARK}{uuid.uuid4().hex}"
        try:
            with tmp.open("wb") as fh:
                fh.write(data)
            try:
                os.link(tmp.path, path.path)  # atomic, fails if the name exists
            except FileExistsError:
                return False
        finally:
            _unlink_quietly(tmp)
        return True
    write_atomic(path, data)
    return True


def write_json_atomic(path: ObjectStoragePath, document: Any) -> ObjectStoragePath:
    return write_atomic(path, json_bytes(document))


def json_bytes(document: Any) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")


def read_json(path: ObjectStoragePath) -> Any:
    with path.open("rb") as fh:
        return json.loads(fh.read().decode("utf-8"))


def _unlink_quietly(path: ObjectStoragePath) -> None:
    try:
        if path.exists():
            path.unlink()
    except Exception:  # pragma: no cover - best effort clean-up of a temporary name
        log.warning("could not remove temporary file %s", path)


def expand_source(uri: str, conn_id: str | None = None) -> list[ObjectStoragePath]:
    """The files a source URI names: one file, or the sorted matches of a glob."""
    path = to_path(uri, conn_id)
    text = str(path)
    if any(ch in text for ch in "*?["):
        # glob relative to the longest wildcard-free prefix
        raw = path.path
        cut = min(i for i, ch in enumerate(raw) if ch in "*?[")
        base_raw = raw[: raw.rfind("/", 0, cut) + 1] or "/"
        pattern = raw[len(base_raw) :]
        base = to_path(text.replace(raw, base_raw.rstrip("/") or "/", 1), conn_id)
        if not base.exists():
            return []
        return sorted((p for p in base.glob(pattern) if p.is_file() and not p.name.startswith(".")), key=str)
    if path.is_dir():
        # skip hidden files and markers such as Spark's _SUCCESS
        return sorted(
            (p for p in path.iterdir() if p.is_file() and not p.name.startswith((".", "_"))), key=str
        )
    return [path] if path.exists() else []


def snapshot_uri_of(snapshot: Any) -> str:
    """A snapshot reference (the ingest task's XCom dict, or its URI) as a URI."""
    if isinstance(snapshot, dict):
        uri = snapshot.get("uri")
    else:
        uri = snapshot
    if not uri or not isinstance(uri, str):
        raise ValueError(f"expected a snapshot (the ingest task's result or its URI), got {snapshot!r}")
    return uri.rstrip("/")


def read_snapshot(snapshot: Any, conn_id: str | None = None) -> tuple[Any, dict[str, Any]]:
    """Read a snapshot's data frame and manifest. Raises FileNotFoundError naming the URI."""
    from mlops_ops.core.data import from_parquet_bytes

    base = to_path(snapshot_uri_of(snapshot), conn_id)
    manifest_path = base / "manifest.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"no snapshot at {base} (manifest.json missing); run the ingest task first")
    manifest = read_json(manifest_path)
    with (base / "data.parquet").open("rb") as fh:
        frame = from_parquet_bytes(fh.read())
    return frame, manifest
