"""The deployment ledger on object storage, and the exclusive create its claims rely on.

The rules over the ledger's records and claims are in :mod:`mlops_ops.core.registry`; the layout is
docs/architecture.md, "Storage layout" and "The claim on S3".
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING, Any

from mlops_ops.hooks import storage as _storage
from mlops_ops.hooks.storage import (
    _STALE_TMP_SECONDS,
    _TMP_MARK,
    PipelineStorage,
    _unlink_quietly,
    json_bytes,
    read_json,
    remove_temporaries,
)

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


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
        # through the module: one place to stand in for storage (tests replace it there)
        if not _storage.write_once(path, json_bytes(dict(claim.record))):
            existing = parse_record(path.name, self._read(path))
            if existing.seq != claim.seq or existing.version != claim.version:
                raise LedgerError(
                    f"ledger record {path} already exists for seq {existing.seq} v{existing.version}, "
                    f"not for {claim}; refusing to overwrite history"
                )
        return path


class ReleaseLedger:
    """The release ledger of one pipeline (``<root>/<pipeline>/deployments/releases/``).

    Records are ``<seq:08d>.json``, each created exclusively (:func:`create_exclusive`): the
    compare-and-set of the ``challenger`` alias. The rules are in
    :mod:`mlops_ops.core.registry.releases`.

    :param storage: the pipeline's storage layout.
    """

    def __init__(self, storage: PipelineStorage) -> None:
        self.storage = storage

    @property
    def directory(self) -> ObjectStoragePath:
        from mlops_ops.core.registry.releases import RELEASES_DIR

        return self.storage.deployments_dir() / RELEASES_DIR

    def record_path(self, seq: int) -> ObjectStoragePath:
        from mlops_ops.core.registry.releases import release_record_name

        return self.directory / release_record_name(seq)

    def read(self) -> Any:
        """The ledger as a :class:`~mlops_ops.core.registry.releases.ReleaseState`, as stored now."""
        from mlops_ops.core.registry import releases

        records = []
        _forget_listings(self.directory)
        if self.directory.exists():
            for path in self.directory.iterdir():
                if releases.release_record_seq(path.name) is not None and path.is_file():
                    records.append(releases.parse_release_record(path.name, DeploymentLedger._read(path)))
        return releases.ReleaseState.build(records)

    def append(self, document: dict[str, Any]) -> bool:
        """Create record ``document["seq"]``; False if another writer took that seq first."""
        remove_temporaries(self.directory, older_than_seconds=_STALE_TMP_SECONDS)
        return create_exclusive(self.record_path(int(document["seq"])), json_bytes(document))
