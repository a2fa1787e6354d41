"""Snapshot integrity: a snapshot is read only after its bytes and content are checked.

A snapshot ``snapshots/<sha256>/`` holds ``data.parquet`` and ``manifest.json``. Its name is the
hash of its *normalised content* (:func:`mlops_ops.core.data.content_sha256`; the manifest's
``content_hash`` says which version of that hash: 2, batch-independent, since streaming ingest;
absent means 1, :func:`mlops_ops.core.data.content_sha256_v1`). Ingest also records in the
manifest the SHA-256 of the stored *file bytes* of ``data.parquet`` (``files``).

Every read checks, in this order, before a single value is used:

1. the manifest parses and names this snapshot (``manifest["sha256"]`` equals the folder name);
2. the SHA-256 of the data file's bytes equals the one in the manifest (streamed; as cheap as
   reading the file). This catches bit flips, truncated copies and a replaced data file before
   the Parquet decoder sees them: Parquet has no checksum of its own over values, so a flipped
   bit in a value page decodes silently to a different value;
3. for readers that decode the whole frame, the content hash of the decoded frame equals the
   name. This also catches a data file replaced *together with* a rewritten manifest.

Cost (measured by ``benchmarks/ingest``, see docs/architecture.md): check 2 reads the file once
and runs at the speed of SHA-256 (about 1.5-2 GB/s on one core), so it adds little to any read
of the file; check 3 costs about as much as the decoding it follows.

Threat model: accidental damage (bit rot, partial copies, a killed writer) and a replaced or edited
data file, with or without its manifest, are detected. A writer with full write access to the
storage could still forge a snapshot under a new name; that is what object-store permissions and
versioning are for.

Pure logic over bytes; storage I/O is in :mod:`mlops_ops.hooks.storage`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from mlops_ops.errors import DAMAGED_FILE_ERRORS, SnapshotIntegrityError

DATA_FILE = "data.parquet"
MANIFEST_FILE = "manifest.json"
#: manifest layout that records the data file's bytes hash
MANIFEST_VERSION = 2
#: the manifest key naming the content hash's version (absent: version 1)
CONTENT_HASH_KEY = "content_hash"

#: what decoding bytes already in memory may raise: no I/O happens then, so every error is the file's
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    *DAMAGED_FILE_ERRORS,
    AttributeError,
    TypeError,
    KeyError,
    IndexError,
)

_FIX = "re-ingest the source (run the ingest task again: it rewrites a damaged snapshot)"


def bytes_sha256(chunks: Iterable[bytes]) -> tuple[str, int]:
    """SHA-256 (hex) and length of a byte stream given as chunks."""
    h, n = hashlib.sha256(), 0
    for chunk in chunks:
        h.update(chunk)
        n += len(chunk)
    return h.hexdigest(), n


def file_entry(raw: bytes) -> dict[str, Any]:
    """The manifest's record of one stored file: ``{"sha256": <hex>, "bytes": <int>}``."""
    digest, size = bytes_sha256([raw])
    return {"sha256": digest, "bytes": size}


def parse_manifest(raw: bytes, *, name: str, uri: str) -> dict[str, Any]:
    """The manifest of snapshot ``name`` from its bytes, checked to describe that snapshot.

    Strict JSON: a key written twice (only the last would count), ``NaN`` or ``Infinity`` and
    nesting too deep to parse are refused like any other damage.

    :raises SnapshotIntegrityError: not strict JSON, not an object, written for another snapshot, or
        its ``rows``, ``columns``, ``manifest_version``, ``content_verifiable`` or ``files`` record
        has the wrong type.
    """
    try:
        manifest = json.loads(
            raw.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=_no_constant
        )
    except DAMAGED_FILE_ERRORS as err:
        raise _error(
            uri, f"its {MANIFEST_FILE} is not readable JSON ({type(err).__name__}: {str(err)[:200]})"
        ) from None
    if not isinstance(manifest, dict):
        raise _error(uri, f"its {MANIFEST_FILE} is not a JSON object")
    if manifest.get("sha256") != name:
        raise _error(
            uri,
            f"its {MANIFEST_FILE} describes snapshot {str(manifest.get('sha256'))[:16]!r}, not {name[:16]!r}",
        )
    for key in ("rows", "columns"):
        if not _is_count(manifest.get(key)):
            raise _error(uri, f"its {MANIFEST_FILE} has no valid {key!r}")
    version = manifest.get("manifest_version", 1)
    if not _is_count(version) or version < 1:
        raise _error(uri, f"its {MANIFEST_FILE} has an invalid 'manifest_version' ({version!r})")
    if not _is_count(manifest.get(CONTENT_HASH_KEY, 1)) or manifest.get(CONTENT_HASH_KEY, 1) not in (1, 2):
        raise _error(uri, f"its {MANIFEST_FILE} has an unknown {CONTENT_HASH_KEY!r} version")
    if not isinstance(manifest.get("content_verifiable", True), bool):
        raise _error(uri, f"its {MANIFEST_FILE} has a non-boolean 'content_verifiable'")
    return manifest


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise ValueError(f"key {key!r} is written twice")
        document[key] = value
    return document


def _no_constant(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON number")


def expected_data_digest(manifest: dict[str, Any], *, uri: str) -> tuple[str, int] | None:
    """The recorded bytes hash and size of the data file; None for manifests older than v2.

    A manifest without that record must leave the content checkable (``content_verifiable`` not
    false): otherwise nothing would tie the data to the snapshot's name.

    :raises SnapshotIntegrityError: a v2 manifest without a well-formed record, or a manifest with
        neither the record nor a checkable content.
    """
    files = manifest.get("files")
    if files is None and manifest.get("manifest_version", 1) < MANIFEST_VERSION:
        if manifest.get("content_verifiable") is False:
            raise _error(
                uri,
                f"its {MANIFEST_FILE} records no hash of {DATA_FILE} and says its content cannot be "
                "checked: nothing ties the data to the snapshot's name",
            )
        return None
    entry = files.get(DATA_FILE) if isinstance(files, dict) else None
    if (
        not isinstance(entry, dict)
        or not isinstance(entry.get("sha256"), str)
        or not _is_count(entry.get("bytes"))
    ):
        raise _error(uri, f"its {MANIFEST_FILE} records no valid hash and size of {DATA_FILE}")
    return str(entry["sha256"]), int(entry["bytes"])


def check_data_digest(manifest: dict[str, Any], digest: str, size: int, *, uri: str) -> None:
    """Compare the data file's bytes hash with the manifest's record of it.

    :raises SnapshotIntegrityError: the bytes differ from what ingest wrote.
    """
    expected = expected_data_digest(manifest, uri=uri)
    if expected is None:
        return
    want, want_size = expected
    if digest != want:
        detail = f"{size} bytes, expected {want_size}" if size != want_size else f"{size} bytes"
        raise _error(
            uri,
            f"the SHA-256 of its {DATA_FILE} is {digest[:16]}…, but ingest recorded {want[:16]}… "
            f"({detail}): the file was changed or damaged after ingest",
        )


def decode(raw: bytes, *, uri: str) -> Any:
    """The data frame of already-verified data bytes; a decoder error is a damaged file."""
    from mlops_ops.core.canonical import frame_of_table

    return frame_of_table(decode_table(raw, uri=uri))


def decode_table(raw: bytes, *, uri: str) -> Any:
    """The Arrow table of already-verified data bytes; a decoder error is a damaged file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(pa.BufferReader(raw))
    except _DECODE_ERRORS as err:
        # decoding bytes already in memory: no I/O here, every error is the file's
        raise _error(uri, f"its {DATA_FILE} cannot be decoded ({type(err).__name__}: {err})") from None


def check_content(data: Any, manifest: dict[str, Any], *, name: str, uri: str) -> None:
    """The decoded content hash must be the snapshot's name (and its shape the manifest's).

    :param data: the decoded data file, as an Arrow table (hashed as stored) or a pandas frame.
    Skipped for manifests that say the content is not reproducible from the stored file
    (``content_verifiable: false``, written by ingest before hash version 2 when a dtype did
    not round-trip Parquet).
    :raises SnapshotIntegrityError: the shape or the content hash differs.
    """
    from mlops_ops.core import canonical
    from mlops_ops.core.data import content_sha256, content_sha256_v1

    shape = (data.num_rows, data.num_columns) if hasattr(data, "num_rows") else data.shape
    if shape != (manifest["rows"], manifest["columns"]):
        raise _error(
            uri,
            f"its {DATA_FILE} has {shape[0]} rows x {shape[1]} columns, the manifest says "
            f"{manifest['rows']} x {manifest['columns']}",
        )
    if manifest.get("content_verifiable") is False:
        return
    version = manifest.get(CONTENT_HASH_KEY, 1)
    try:
        if hasattr(data, "num_rows"):
            actual = (
                canonical.table_sha256(data)
                if version >= 2
                else content_sha256_v1(canonical.frame_of_table(data))
            )
        else:
            actual = content_sha256(data) if version >= 2 else content_sha256_v1(data)
    except _DECODE_ERRORS as err:  # a column a snapshot cannot hold: not what ingest wrote
        raise _error(uri, f"its {DATA_FILE} holds data ingest never writes ({err})") from None
    if actual != name:
        raise _error(
            uri,
            f"the content hash of its data is {actual[:16]}…, not its name {name[:16]}…: the data was "
            "changed after ingest",
        )


def load(manifest_raw: bytes, data_raw: bytes, *, name: str, uri: str) -> tuple[Any, dict[str, Any]]:
    """Frame and manifest of snapshot ``name`` from the bytes of its two files, all checks done.

    :param manifest_raw: bytes of ``manifest.json``.
    :param data_raw: bytes of ``data.parquet``.
    :param name: the snapshot's folder name (the content SHA-256).
    :param uri: the snapshot's URI, for messages.
    :raises SnapshotIntegrityError: any check fails; the message names the snapshot and the fix.
    """
    from mlops_ops.core.canonical import frame_of_table

    manifest = parse_manifest(manifest_raw, name=name, uri=uri)
    digest, size = bytes_sha256([data_raw])
    check_data_digest(manifest, digest, size, uri=uri)
    table = decode_table(data_raw, uri=uri)
    check_content(table, manifest, name=name, uri=uri)
    try:
        return frame_of_table(table), manifest
    except _DECODE_ERRORS as err:
        raise _error(uri, f"its {DATA_FILE} cannot be decoded ({type(err).__name__}: {err})") from None


def missing_data(uri: str) -> SnapshotIntegrityError:
    """The error for a snapshot whose manifest exists but whose data file does not."""
    return _error(uri, f"its {DATA_FILE} is missing although its {MANIFEST_FILE} exists")


def damaged_entry(uri: str, file_name: str) -> SnapshotIntegrityError:
    """The error for a snapshot whose ``file_name`` exists but is not a file (e.g. a folder)."""
    return _error(uri, f"its {file_name} is not a file")


def _error(uri: str, what: str) -> SnapshotIntegrityError:
    return SnapshotIntegrityError(
        f"snapshot {uri} failed its integrity check: {what}. It was not used. To fix it, {_FIX}"
    )
