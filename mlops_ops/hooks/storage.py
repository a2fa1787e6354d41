"""Object storage over Airflow's ObjectStoragePath: the storage layout and atomic writes.

The layout is the contract of docs/architecture.md, "Storage layout".

Every final name is written by writing a temporary sibling and moving it into place, so a task
killed half-way never leaves a half-written file under a final name. Write-once files (snapshot
manifests, ledger records) are never overwritten.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mlops_ops import settings
from mlops_ops.core.jsonsafe import json_dumps

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)

_TMP_MARK = ".tmp-"
#: age after which a temporary file in a folder with concurrent writers counts as a killed writer's
_STALE_TMP_SECONDS = 3600.0


def to_path(uri: str, conn_id: str | None = None) -> ObjectStoragePath:
    """An ObjectStoragePath for a URI or a local path (``~`` and ``${VARS}`` expanded)."""
    from airflow.sdk import ObjectStoragePath

    uri = os.path.expanduser(os.path.expandvars(uri))
    if "://" not in uri:
        uri = "file://" + os.path.abspath(uri)
    if conn_id is None and uri.startswith("file://"):
        _attach_local_disk()
    return ObjectStoragePath(uri, conn_id=conn_id)


def open_file(path: ObjectStoragePath, mode: str = "rb") -> Any:
    """Open ``path`` (a file object for ``with``), as ``path.open(mode)`` does.

    Airflow's ``ObjectStoragePath.open`` wraps the file to report each read and write to its hook
    lineage collector. Without a hook lineage reader registered by a plugin (OpenLineage, ...)
    that collector is Airflow's no-op one, whose creation still imports every installed
    provider's asset module (the Amazon provider's brings boto3 and the S3 hook): about 0.2 s of
    imports in every task opening a file (benchmarks/ingest). So the file is opened through the
    same filesystem without the wrapper then, and through ``path.open`` when a reader is there:
    lineage is reported exactly when Airflow would record it.
    """
    if _hook_lineage_read():
        return path.open(mode)
    return path.fs.open(path.path, mode=mode)


def move_file(src: ObjectStoragePath, dst: ObjectStoragePath) -> None:
    """Move a file, as ``src.move(dst)`` does (a rename on local disk, a server-side copy and a
    delete on object stores); the lineage it reports only when a reader records it (see
    :func:`open_file`)."""
    if _hook_lineage_read() or not src.samestore(dst):
        src.move(dst)
    else:
        src.fs.move(src.path, dst.path)


@functools.cache
def _hook_lineage_read() -> bool:
    """Whether a plugin registers a hook lineage reader (Airflow decides it once per process too:
    ``airflow.sdk.lineage.get_hook_lineage_collector`` is cached)."""
    from airflow.sdk import plugins_manager

    return bool(plugins_manager.get_hook_lineage_readers_plugins())


@functools.cache
def _attach_local_disk() -> None:
    """Give Airflow's ``file`` store its filesystem (fsspec's local one, Airflow's built-in for
    ``file://``) before its first use.

    Otherwise the first file opened makes Airflow register every installed provider's filesystem
    module to resolve the scheme (the Amazon provider's imports boto3 and the S3 hook): about
    0.2 s of imports in every task on local storage (benchmarks/ingest). Paths are unchanged: the
    same filesystem, opened through ``ObjectStoragePath`` (so hook lineage still sees every file);
    other schemes and ``file://`` with a connection resolve as before. A provider that overrode
    the ``file`` scheme would be bypassed: none of the installed ones does.
    """
    from airflow.sdk.io import attach
    from fsspec.implementations.local import LocalFileSystem

    attach(protocol="file", fs=LocalFileSystem())


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

    def snapshots_dir(self) -> ObjectStoragePath:
        """``snapshots/``: one folder per snapshot, and the temporary files of ingests under way."""
        return self.base / "snapshots"

    def report_path(self, dag_id: str, run_id: str, task_id: str, ext: str) -> ObjectStoragePath:
        return self.base / "reports" / _safe(dag_id) / _safe(run_id) / f"{_safe(task_id)}.{ext}"

    def deployments_dir(self) -> ObjectStoragePath:
        return self.base / "deployments"

    def predictions_dir(self, key: str) -> ObjectStoragePath:
        """``predictions/<key>/``: one folder per data interval (``key`` from ``core.scoring``)."""
        return self.base / "predictions" / _safe(key)

    def prediction_log_dir(self) -> ObjectStoragePath:
        """``prediction_log/``: the online service's log, ``date=YYYY-MM-DD/hour=HH/part-*.parquet``
        (:mod:`mlops_ops.serving.prediction_log`)."""
        return self.base / "prediction_log"

    def outcomes_dir(self) -> ObjectStoragePath:
        """``outcomes/``: outcomes joined to their predictions, ``joined/date=YYYY-MM-DD/part-<key>.parquet``
        (:mod:`mlops_ops.hooks.outcomes`)."""
        return self.base / "outcomes"


def _safe(part: str) -> str:
    """A run id like ``manual__2024-01-01T00:00:00+00:00`` as one safe path segment.

    Never empty, ``.`` or ``..`` (Airflow accepts ``..`` as a run id): those would name this folder
    or its parent.
    """
    safe = "".join(c if c.isalnum() or c in "-_.=" else "_" for c in part)
    return safe if safe.strip(".") else f"_{safe}"


def write_atomic(path: ObjectStoragePath, data: bytes) -> ObjectStoragePath:
    """Write ``data`` to ``path`` through a temporary sibling and a move."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{path.name}{_TMP_MARK}{uuid.uuid4().hex}"
    try:
        with open_file(tmp, "wb") as fh:
            fh.write(data)
        move_file(tmp, path)
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
            with open_file(tmp, "wb") as fh:
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
    """Strict, stable JSON (sorted keys): non-finite numbers become null (:mod:`mlops_ops.core.jsonsafe`)."""
    return (json_dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")


def read_json(path: ObjectStoragePath) -> Any:
    with open_file(path, "rb") as fh:
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
    """Read a snapshot's data frame and manifest, verified (see :mod:`mlops_ops.core.snapshot`).

    :raises FileNotFoundError: no manifest (the snapshot does not exist); the message names the URI.
    :raises SnapshotIntegrityError: the files do not match the snapshot's hashes (never read past).
    Storage I/O errors propagate unchanged (transient: Airflow's retries apply).
    """
    from mlops_ops.core import snapshot as snap

    base, manifest_path, data_path = _snapshot_files(snapshot, conn_id)
    with open_file(manifest_path, "rb") as fh:
        manifest_raw = fh.read()
    with open_file(data_path, "rb") as fh:
        data_raw = fh.read()
    return snap.load(manifest_raw, data_raw, name=base.name, uri=str(base))


@contextlib.contextmanager
def staged_file(directory: ObjectStoragePath, stem: str) -> Iterator[ObjectStoragePath]:
    """A temporary file name ``<stem>.tmp-<uuid>`` in ``directory``, deleted on exit if still there.

    For a file written as it is produced (a snapshot streamed from its source) and then moved to
    its final name with :func:`commit_file`: whatever happens in between (a bad row, a killed
    connection), no half-written file remains under a final name, and none under the temporary
    one unless the process itself is killed (then the next ingest removes it, see
    :func:`remove_temporaries`).
    """
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f"{stem}{_TMP_MARK}{uuid.uuid4().hex}"
    try:
        yield tmp
    finally:
        _unlink_quietly(tmp)


def commit_file(tmp: ObjectStoragePath, path: ObjectStoragePath) -> ObjectStoragePath:
    """Move a fully written temporary file to its final name (a rename on local disk; a server-side
    copy on object stores, so the final name appears only complete)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    move_file(tmp, path)
    return path


def _snapshot_files(
    snapshot: Any, conn_id: str | None
) -> tuple[ObjectStoragePath, ObjectStoragePath, ObjectStoragePath]:
    """A snapshot's folder, manifest and data file, each checked to exist as a file."""
    from mlops_ops.core import snapshot as snap

    base = to_path(snapshot_uri_of(snapshot), conn_id)
    manifest_path = base / snap.MANIFEST_FILE
    if not manifest_path.exists():
        raise FileNotFoundError(f"no snapshot at {base} (manifest.json missing); run the ingest task first")
    data_path = base / snap.DATA_FILE
    if not data_path.exists():
        raise snap.missing_data(str(base))
    _require_files(base, manifest_path, data_path)
    return base, manifest_path, data_path


def _require_files(base: ObjectStoragePath, *paths: ObjectStoragePath) -> None:
    """A snapshot's manifest and data file must be files (a folder in their place is damage)."""
    from mlops_ops.core import snapshot as snap

    for path in paths:
        if not path.is_file():
            raise snap.damaged_entry(str(base), path.name)


def verify_snapshot_file(
    snapshot: Any, conn_id: str | None = None
) -> tuple[ObjectStoragePath, dict[str, Any]]:
    """Check a snapshot's manifest and its data file's bytes hash without decoding the data.

    For readers that stream the Parquet file themselves: the file's bytes are hashed in 8 MiB
    chunks. A manifest older than v2 records no bytes hash: then the file is decoded and its content
    hash checked instead (as :func:`read_snapshot` does). Returns the data file's path and the
    manifest.

    :raises FileNotFoundError: no manifest.
    :raises SnapshotIntegrityError: the manifest or the file's bytes do not match.
    """
    from mlops_ops.core import snapshot as snap

    base, manifest_path, data_path = _snapshot_files(snapshot, conn_id)
    with open_file(manifest_path, "rb") as fh:
        manifest = snap.parse_manifest(fh.read(), name=base.name, uri=str(base))
    if snap.expected_data_digest(manifest, uri=str(base)) is None:
        # a manifest older than v2 records no bytes hash: only the content hash can vouch for the file
        with open_file(data_path, "rb") as fh:
            data_raw = fh.read()
        table = snap.decode_table(data_raw, uri=str(base))
        snap.check_content(table, manifest, name=base.name, uri=str(base))
        return data_path, manifest
    with open_file(data_path, "rb") as fh:
        digest, size = snap.bytes_sha256(iter(lambda: fh.read(8 << 20), b""))
    snap.check_data_digest(manifest, digest, size, uri=str(base))
    return data_path, manifest


def remove_temporaries(directory: ObjectStoragePath, *, older_than_seconds: float = 0.0) -> int:
    """Delete temporary files that a killed writer left in ``directory``; returns how many.

    With ``older_than_seconds=0`` only for folders with a single writer at a time (one DAG with
    ``max_active_runs=1``, or content-addressed files that every writer writes identically): a
    concurrent writer's temporary file would be removed before its move. In folders with
    concurrent writers (the ledger) pass an age no live writer's temporary file reaches.
    """
    import time

    if not directory.exists():
        return 0
    removed = 0
    now = time.time()
    for path in directory.iterdir():
        if _TMP_MARK not in path.name or not path.is_file():
            continue
        if older_than_seconds > 0:
            try:
                if now - float(path.stat().st_mtime) < older_than_seconds:
                    continue
            except (OSError, AttributeError, TypeError, ValueError):
                continue  # no modification time: keep it
        _unlink_quietly(path)
        removed += 1
    return removed


_MOVED_TO_LEDGER = frozenset(
    {"DeploymentLedger", "create_exclusive", "check_conditional_writes", "conditional_put_refusal"}
)


def __getattr__(name: str) -> Any:
    """The ledger's names, moved to :mod:`mlops_ops.hooks.ledger`, still import from here."""
    if name in _MOVED_TO_LEDGER:
        from mlops_ops.hooks import ledger

        return getattr(ledger, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
