"""Object storage over Airflow's ObjectStoragePath: the storage layout and atomic writes.

The layout is the contract of docs/architecture.md, "Storage layout".

Every final name is written by writing a temporary sibling and moving it into place, so a task
killed half-way never leaves a half-written file under a final name. Write-once files (snapshot
manifests, ledger records) are never overwritten.
"""

from __future__ import annotations

import contextlib
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
    """Strict, stable JSON (sorted keys): non-finite numbers become null (:mod:`mlops_ops.core.jsonsafe`)."""
    return (json_dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")


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
    """Read a snapshot's data frame and manifest, verified (see :mod:`mlops_ops.core.snapshot`).

    :raises FileNotFoundError: no manifest (the snapshot does not exist); the message names the URI.
    :raises SnapshotIntegrityError: the files do not match the snapshot's hashes (never read past).
    Storage I/O errors propagate unchanged (transient: Airflow's retries apply).
    """
    from mlops_ops.core import snapshot as snap

    base, manifest_path, data_path = _snapshot_files(snapshot, conn_id)
    with manifest_path.open("rb") as fh:
        manifest_raw = fh.read()
    with data_path.open("rb") as fh:
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
    tmp.move(path)
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
    with manifest_path.open("rb") as fh:
        manifest = snap.parse_manifest(fh.read(), name=base.name, uri=str(base))
    if snap.expected_data_digest(manifest, uri=str(base)) is None:
        # a manifest older than v2 records no bytes hash: only the content hash can vouch for the file
        with data_path.open("rb") as fh:
            data_raw = fh.read()
        table = snap.decode_table(data_raw, uri=str(base))
        snap.check_content(table, manifest, name=base.name, uri=str(base))
        return data_path, manifest
    with data_path.open("rb") as fh:
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


def create_exclusive(path: ObjectStoragePath, data: bytes) -> bool:
    """Create ``path`` holding ``data`` only if no file has that name. Returns False if one has.

    Unlike :func:`write_once`, two writers racing for the same name cannot both win: this is the
    primitive the deployment ledger's claims rely on. On local disk the name is taken with an
    exclusive hard link of a fully written temporary file (so a reader never sees a partial file).
    On object stores it is fsspec's exclusive mode ``"xb"``: a conditional put on S3
    (``If-None-Match: *``, s3fs >= 2025.7), GCS and Azure. There:

    * a refused conditional put means someone else holds the name and returns False: HTTP 412
      ``PreconditionFailed``, and 409 ``ConditionalRequestConflict`` (a concurrent write to the
      name; the caller re-reads, and claims again if nobody turns out to hold it);
    * before the put, a probe checks that the store honours the condition (see
      :func:`check_conditional_writes`), and after it the name is read back: it must hold
      ``data``. A store that does not (HTTP 501, or a header dropped on the way) would let two
      writers both win, so it raises instead of returning;
    * any other fault (connection refused, 5xx, timeouts) propagates unchanged, so Airflow retries.

    :raises ConditionalWriteUnsupportedError: the store cannot create a name exclusively (also a
        ``NotImplementedError``); the message names the store and what to use instead.
    """
    if path.protocol in ("file", "local", ""):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f"{path.name}{_TMP_MARK}{uuid.uuid4().hex}"
        try:
            with tmp.open("wb") as fh:
                fh.write(data)
            try:
                os.link(tmp.path, path.path)  # atomic; fails if the name exists
            except FileExistsError:
                return False
        finally:
            _unlink_quietly(tmp)
        return True
    check_conditional_writes(path.parent)
    if not _put_if_absent(path, data):
        return False
    with path.open("rb") as fh:
        stored = fh.read()
    if stored != data:
        raise _unsupported(
            path,
            "another writer replaced the file right after this one created it exclusively, so the "
            "store accepted two exclusive creates of one name",
        )
    return True


def check_conditional_writes(directory: ObjectStoragePath) -> None:
    """Check that an object store refuses a second exclusive create of one name.

    Writes a probe file ``.conditional-write-probe.tmp-<uuid>`` in ``directory`` exclusively,
    twice: the first must succeed and the second be refused. A store that answers HTTP 501, or
    accepts the second (an S3-compatible server, or a proxy in front of one, that ignores
    ``If-None-Match``), fails here, before any claim is written. The probe is then deleted (if
    that fails, :func:`remove_temporaries` removes it later).

    :raises ConditionalWriteUnsupportedError: the store does not honour exclusive creates.
    """
    probe = directory / f".conditional-write-probe{_TMP_MARK}{uuid.uuid4().hex}"
    try:
        if not _put_if_absent(probe, b"probe\n"):
            raise _unsupported(probe, "the store refused to create a new, unique name exclusively")
        if _put_if_absent(probe, b"probe\n"):
            raise _unsupported(
                probe,
                "the store accepted a second exclusive create of the same name: it ignores the "
                "condition (If-None-Match: * on S3)",
            )
    finally:
        _unlink_quietly(probe)


#: S3 error codes of a conditional put refused because the name is (being) taken
_NAME_TAKEN_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
#: S3 error codes of a server without conditional writes
_UNSUPPORTED_CODES = frozenset({"NotImplemented"})


def _put_if_absent(path: ObjectStoragePath, data: bytes) -> bool:
    """One exclusive create on an object store: True if written, False if the name is taken."""
    try:
        with path.open("xb") as fh:
            fh.write(data)
    except Exception as err:
        refusal = conditional_put_refusal(err)
        if refusal == "taken":
            return False
        if refusal == "unsupported":
            code, status = _s3_error(err)
            answer = f"HTTP {status} {code}" if code else f"{type(err).__name__}: {str(err)[:200]}"
            raise _unsupported(path, f"the store answered the exclusive create with {answer}") from err
        raise
    return True


def conditional_put_refusal(err: BaseException) -> str | None:
    """What an exclusive create's exception means: ``"taken"``, ``"unsupported"`` or None.

    ``"taken"``: ``FileExistsError`` (s3fs's translation of HTTP 412 on ``If-None-Match``; gcsfs,
    adlfs), or an S3 error (on the exception or its causes) with code ``PreconditionFailed`` (412,
    also when the server omits which condition failed) or ``ConditionalRequestConflict`` (409).
    ``"unsupported"``: an S3 error ``NotImplemented`` or HTTP 501, or fsspec refusing mode ``"x"``
    (``ValueError``, ``NotImplementedError``). None: anything else, a fault to propagate.
    """
    code, status = _s3_error(err)
    if code is not None:
        if code in _NAME_TAKEN_CODES or status == 412:
            return "taken"
        if code in _UNSUPPORTED_CODES or status == 501:
            return "unsupported"
        return None
    if isinstance(err, FileExistsError):
        return "taken"
    if isinstance(err, (ValueError, NotImplementedError)):
        return "unsupported"
    return None


def _s3_error(err: BaseException) -> tuple[str | None, int | None]:
    """The S3 error code and HTTP status behind ``err`` (botocore's ``ClientError``, found by its
    shape on ``err`` or its causes: s3fs keeps it as the cause); ``(None, None)`` if there is none."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        response = getattr(current, "response", None)
        if isinstance(response, dict) and isinstance(response.get("Error"), dict):
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return str(response["Error"].get("Code", "")), status if isinstance(status, int) else None
        current = current.__cause__
    return None, None


def _unsupported(path: ObjectStoragePath, why: str) -> Exception:
    from mlops_ops.errors import ConditionalWriteUnsupportedError

    return ConditionalWriteUnsupportedError(
        f"{path.protocol}:// storage cannot create {path} exclusively ({why}). The deployment ledger "
        "needs conditional writes, or two promotions could both win: use local disk, AWS S3 or an "
        "S3-compatible store that honours If-None-Match: * (with s3fs >= 2025.7), GCS or Azure"
    )


def _forget_listings(*directories: ObjectStoragePath) -> None:
    """Drop the folder listings the filesystem cached for ``directories`` (s3fs keeps them for the
    life of the process), so the next listing shows what other processes wrote since."""
    for directory in directories:
        invalidate = getattr(directory.fs, "invalidate_cache", None)
        if invalidate is not None:
            invalidate(directory.path)


class DeploymentLedger:
    """The write-once deployment ledger of one pipeline (``<root>/<pipeline>/deployments/``).

    Records are ``<utc-timestamp>-v<version>.json``; promotion claims are
    ``claims/<seq:08d>.json`` (created exclusively) and released claims
    ``claims/<seq:08d>.released.json``. The rules over them are in :mod:`mlops_ops.core.registry`.

    :param storage: the pipeline's storage layout.
    """

    def __init__(self, storage: PipelineStorage) -> None:
        self.storage = storage

    @property
    def directory(self) -> ObjectStoragePath:
        return self.storage.deployments_dir()

    @property
    def claims_dir(self) -> ObjectStoragePath:
        from mlops_ops.core.registry import CLAIMS_DIR

        return self.directory / CLAIMS_DIR

    def record_path(self, name: str) -> ObjectStoragePath:
        return self.directory / name

    def read(self) -> Any:
        """The ledger as a :class:`~mlops_ops.core.registry.LedgerState`, as stored now (never from
        a listing the filesystem cached: other processes claim and record concurrently)."""
        from mlops_ops.core import registry

        records, claims, released = [], [], []
        _forget_listings(self.directory, self.claims_dir)
        if self.directory.exists():
            for path in self.directory.iterdir():
                if path.name.endswith(".json") and _TMP_MARK not in path.name and path.is_file():
                    records.append(registry.parse_record(path.name, self._read(path)))
        if self.claims_dir.exists():
            for path in self.claims_dir.iterdir():
                if registry.claim_seq(path.name) is not None:
                    claims.append(registry.parse_claim(path.name, self._read(path)))
                elif (seq := registry.release_seq(path.name)) is not None:
                    released.append(seq)
        return registry.LedgerState.build(records, claims, released)

    @staticmethod
    def _read(path: ObjectStoragePath) -> Any:
        from mlops_ops.core.registry import LedgerError

        try:
            return read_json(path)
        except (ValueError, RecursionError) as err:  # JSON and Unicode errors are ValueErrors
            raise LedgerError(
                f"{path} is not valid JSON ({type(err).__name__}: {str(err)[:200]}); the deployment "
                "ledger is damaged"
            ) from None

    def claim(self, document: dict[str, Any]) -> bool:
        """Take sequence ``document["seq"]``; False if another promotion already took it."""
        from mlops_ops.core.registry import claim_file_name

        # a killed writer's temporary files; a live writer's exist for milliseconds
        remove_temporaries(self.claims_dir, older_than_seconds=_STALE_TMP_SECONDS)
        remove_temporaries(self.directory, older_than_seconds=_STALE_TMP_SECONDS)
        return create_exclusive(self.claims_dir / claim_file_name(int(document["seq"])), json_bytes(document))

    def release(self, claim: Any, why: str) -> bool:
        """Give up a claim whose alias move did not happen, so the next promotion need not wait."""
        from datetime import UTC, datetime

        from mlops_ops.core.registry import release_file_name

        doc = {"seq": claim.seq, "released_at": datetime.now(UTC).isoformat(), "why": why}
        return create_exclusive(self.claims_dir / release_file_name(claim.seq), json_bytes(doc))

    def write_record(self, claim: Any) -> ObjectStoragePath:
        """Write the record a claim holds (write-once; writing it again is a no-op)."""
        from mlops_ops.core.registry import LedgerError, parse_record

        path = self.record_path(claim.record_name)
        if not write_once(path, json_bytes(dict(claim.record))):
            existing = parse_record(path.name, self._read(path))
            if existing.seq != claim.seq or existing.version != claim.version:
                raise LedgerError(
                    f"ledger record {path} already exists for seq {existing.seq} v{existing.version}, "
                    f"not for {claim}; refusing to overwrite history"
                )
        return path
