"""Verified snapshots: every read checks the bytes and the content against the snapshot's name.

Snapshots are written by the real IngestDatasetOperator (execute() with a minimal task context) on
the local disk, then damaged the ways storage damages files: single-bit flips, a data file
replaced by a valid Parquet file with other values (with and without a rewritten manifest), a
manifest of another snapshot, truncation. Every read path is exercised: ``read_snapshot``
(training, evaluation, scoring), the streamed check of the drift check, and ingest's reuse.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from mlops_ops.core import data
from mlops_ops.core import snapshot as snap
from mlops_ops.errors import DataError, MlopsError, SnapshotIntegrityError
from mlops_ops.example.churn import generate
from mlops_ops.hooks.storage import read_snapshot, verify_snapshot_file
from mlops_ops.operators.ingest import IngestDatasetOperator

FLIPS = 200


class _TI(SimpleNamespace):
    def xcom_push(self, key, value):
        pass


def _context():
    return {
        "ti": _TI(dag_id="churn_training", run_id="manual__test", task_id="ingest"),
        "outlet_events": defaultdict(SimpleNamespace),
        "logical_date": None,
    }


def _ingest(source: Path) -> dict:
    op = IngestDatasetOperator(task_id="ingest", pipeline="churn", source_uri=str(source))
    return op.execute(_context())


@pytest.fixture
def source(mlops_home: Path) -> Path:
    path = mlops_home / "data" / "churn.parquet"
    path.parent.mkdir(parents=True)
    generate(400, seed=3).to_parquet(path, index=False)
    return path


@pytest.fixture
def stored(source: Path) -> dict:
    return _ingest(source)


def _dir(result: dict) -> Path:
    return Path(result["uri"].removeprefix("file://"))


def test_a_snapshot_reads_back_verified_and_its_manifest_records_the_file_hash(stored):
    frame, manifest = read_snapshot(stored["uri"])
    assert data.content_sha256(frame) == stored["sha256"] == manifest["sha256"]
    raw = (_dir(stored) / "data.parquet").read_bytes()
    assert manifest["files"]["data.parquet"] == snap.file_entry(raw)
    assert manifest["content_verifiable"] is True
    assert verify_snapshot_file(stored["uri"])[1]["sha256"] == stored["sha256"]


def test_every_single_bit_flip_in_the_data_file_is_refused(stored):
    """Parquet has no checksum over values: without the check, most flips decode as other values."""
    path = _dir(stored) / "data.parquet"
    good = path.read_bytes()
    manifest_raw = (_dir(stored) / "manifest.json").read_bytes()
    rng = random.Random(20261201)
    refused = 0
    for _ in range(FLIPS):
        bit = rng.randrange(len(good) * 8)
        flipped = bytearray(good)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(SnapshotIntegrityError) as err:
            snap.load(manifest_raw, bytes(flipped), name=stored["sha256"], uri=stored["uri"])
        assert stored["uri"] in str(err.value)
        assert "re-ingest" in str(err.value)
        refused += 1
    assert refused == FLIPS
    # and through storage: one flip on disk
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x10
    path.write_bytes(bytes(flipped))
    with pytest.raises(SnapshotIntegrityError, match="SHA-256 of its data.parquet"):
        read_snapshot(stored["uri"])
    with pytest.raises(SnapshotIntegrityError):
        verify_snapshot_file(stored["uri"])


def _inverted_labels(stored: dict) -> bytes:
    frame, _ = read_snapshot(stored["uri"])
    frame["churned"] = 1 - frame["churned"]
    return data.to_parquet_bytes(frame)


def test_a_valid_parquet_file_with_other_values_is_refused(stored):
    """The issue's tampering: every label inverted, a perfectly valid Parquet file."""
    (_dir(stored) / "data.parquet").write_bytes(_inverted_labels(stored))
    with pytest.raises(SnapshotIntegrityError) as err:
        read_snapshot(stored["uri"])
    message = str(err.value)
    assert stored["sha256"] in message
    assert "changed or damaged after ingest" in message
    assert "It was not used" in message
    assert "re-ingest" in message
    assert isinstance(err.value, DataError)
    assert isinstance(err.value, ValueError)


def test_a_data_file_replaced_together_with_its_manifest_hash_is_refused(stored):
    """A consistent rewrite of the bytes hash is caught by the content hash of the decoded frame."""
    raw = _inverted_labels(stored)
    (_dir(stored) / "data.parquet").write_bytes(raw)
    manifest_path = _dir(stored) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["data.parquet"] = snap.file_entry(raw)
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(SnapshotIntegrityError, match="content hash of its data"):
        read_snapshot(stored["uri"])


def _edit(raw: bytes, **changes) -> bytes:
    return json.dumps({**json.loads(raw), **changes}).encode()


def _entry(raw: bytes) -> dict:
    return json.loads(raw)["files"]["data.parquet"]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda m: b"\xff\xfe" + m[2:], "not readable JSON"),
        (lambda m: m[: len(m) // 2], "not readable JSON"),
        (lambda m: b"[1, 2]", "not a JSON object"),
        (lambda m: _edit(m, sha256="0" * 64), "describes snapshot"),
        (lambda m: _edit(m, rows=json.loads(m)["rows"] + 1), "rows x"),
        (lambda m: _edit(m, columns=json.loads(m)["columns"] - 1), "columns, the manifest says"),
        (lambda m: _edit(m, files={"data.parquet": {**_entry(m), "bytes": None}}), "no valid hash and size"),
        (lambda m: _edit(m, files={"data.parquet": {**_entry(m), "bytes": "x"}}), "no valid hash and size"),
        (lambda m: _edit(m, files={"data.parquet": {**_entry(m), "bytes": True}}), "no valid hash and size"),
        (lambda m: _edit(m, files=[]), "no valid hash and size"),
        (lambda m: _edit(m, files=None), "no valid hash and size"),
        (lambda m: _edit(m, manifest_version="abc"), "invalid 'manifest_version'"),
        (lambda m: _edit(m, manifest_version=[2]), "invalid 'manifest_version'"),
        (lambda m: _edit(m, content_verifiable="no"), "non-boolean 'content_verifiable'"),
        (lambda m: _edit(m, rows=None), "no valid 'rows'"),
        (lambda m: m.replace(b'"rows": ', b'"rows": NaN, "x": '), "not readable JSON"),
        (lambda m: m.rstrip()[:-1] + b', "files": null}', "written twice"),
        (lambda m: b"[" * 100_000 + b"]" * 100_000, "not readable JSON"),
        (lambda m: b"", "not readable JSON"),
    ],
    ids=[
        "not-utf8",
        "truncated",
        "not-an-object",
        "another-snapshot",
        "wrong-row-count",
        "wrong-column-count",
        "size-null",
        "size-text",
        "size-bool",
        "files-a-list",
        "files-null",
        "version-text",
        "version-list",
        "verifiable-text",
        "rows-null",
        "nan",
        "duplicate-key",
        "nested-too-deep",
        "empty",
    ],
)
def test_a_damaged_manifest_is_refused_naming_the_snapshot(stored, damage, message):
    path = _dir(stored) / "manifest.json"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(SnapshotIntegrityError, match=message) as err:
        read_snapshot(stored["uri"])
    assert stored["uri"] in str(err.value)
    assert "re-ingest" in str(err.value)
    assert isinstance(err.value, MlopsError)


def test_a_missing_data_file_is_refused_and_rewritten_by_the_next_ingest(source, stored):
    (_dir(stored) / "data.parquet").unlink()
    with pytest.raises(SnapshotIntegrityError, match="data.parquet is missing"):
        read_snapshot(stored["uri"])
    with pytest.raises(SnapshotIntegrityError, match="data.parquet is missing"):
        verify_snapshot_file(stored["uri"])
    assert _ingest(source)["created"] is True
    assert read_snapshot(stored["uri"])[1]["sha256"] == stored["sha256"]


def test_a_truncated_data_file_is_refused(stored):
    path = _dir(stored) / "data.parquet"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(SnapshotIntegrityError, match="expected"):
        read_snapshot(stored["uri"])


def test_ingest_never_reuses_a_damaged_snapshot_it_rewrites_it_and_keeps_the_damaged_copy(source, stored):
    directory = _dir(stored)
    good = (directory / "data.parquet").read_bytes()
    (directory / "data.parquet").write_bytes(_inverted_labels(stored))
    again = _ingest(source)
    assert again["sha256"] == stored["sha256"]
    assert again["created"] is True
    frame, _ = read_snapshot(again["uri"])  # verified again
    assert data.content_sha256(frame) == stored["sha256"]
    assert (directory / "data.parquet").read_bytes() == good
    quarantined = list((directory.parent / ".damaged").glob(f"{stored['sha256']}-*"))
    assert len(quarantined) == 1
    assert (quarantined[0] / "data.parquet").exists()
    assert _ingest(source)["created"] is False  # now reused, verified


def test_a_temporary_file_of_a_killed_writer_is_removed_by_the_next_ingest(source, stored):
    directory = _dir(stored)
    (directory / "data.parquet.tmp-0123456789abcdef").write_bytes(b"half a file")
    _ingest(source)
    assert not list(directory.glob("*.tmp-*"))


def test_snapshots_written_before_manifest_v2_are_still_read_by_their_content_hash(stored):
    path = _dir(stored) / "manifest.json"
    manifest = json.loads(path.read_text())
    for key in ("files", "content_verifiable"):
        manifest.pop(key)
    manifest["manifest_version"] = 1
    path.write_text(json.dumps(manifest))
    assert read_snapshot(stored["uri"])[1]["sha256"] == stored["sha256"]
    (_dir(stored) / "data.parquet").write_bytes(_inverted_labels(stored))
    with pytest.raises(SnapshotIntegrityError, match="content hash"):
        read_snapshot(stored["uri"])


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame({"a": [1, 2, 3], "b": ["x", None, "z"], "y": [0.5, float("nan"), 2.0]}),
        pd.DataFrame({"t": pd.to_datetime(["2026-01-01", "2026-01-02"]), "n": [True, False]}),
        pd.DataFrame({"t": pd.to_datetime(["2026-01-01", None]).tz_localize("UTC"), "c": ["a", "b"]}),
    ],
    ids=["mixed", "naive-datetime-bool", "utc-datetime"],
)
def test_normalised_content_round_trips_parquet_so_readers_can_check_it(frame):
    norm = data.normalise(frame)
    raw = data.to_parquet_bytes(norm)
    assert data.content_sha256(data.from_parquet_bytes(raw)) == data.content_sha256(norm)


@pytest.fixture
def other(mlops_home: Path) -> dict:
    """A second snapshot of the same pipeline (other rows), for swaps and links between snapshots."""
    path = mlops_home / "data" / "other.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    generate(300, seed=4).to_parquet(path, index=False)
    return _ingest(path)


def _downgrade(directory: Path, **changes) -> None:
    """The manifest rewritten as a pre-v2 one (no bytes record), with ``changes``."""
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.pop("files")
    manifest.update(manifest_version=1, **changes)
    path.write_text(json.dumps(manifest))


def _replace_dir(path: Path) -> None:
    path.unlink()
    path.mkdir()


_TAMPERING = {
    "truncated": lambda a, b, inv: (a / "data.parquet").write_bytes((a / "data.parquet").read_bytes()[:-10]),
    "appended": lambda a, b, inv: (a / "data.parquet").write_bytes(
        (a / "data.parquet").read_bytes() + b"\0\0"
    ),
    "emptied": lambda a, b, inv: (a / "data.parquet").write_bytes(b""),
    "data-of-another-snapshot": lambda a, b, inv: (a / "data.parquet").write_bytes(
        (b / "data.parquet").read_bytes()
    ),
    "symlink-to-another-snapshot": lambda a, b, inv: (
        (a / "data.parquet").unlink(),
        (a / "data.parquet").symlink_to(b / "data.parquet"),
    ),
    "manifest-of-another-snapshot": lambda a, b, inv: (a / "manifest.json").write_bytes(
        (b / "manifest.json").read_bytes()
    ),
    "downgraded-manifest-and-other-values": lambda a, b, inv: (
        _downgrade(a),
        (a / "data.parquet").write_bytes(inv),
    ),
    "downgraded-unverifiable-manifest-and-other-values": lambda a, b, inv: (
        _downgrade(a, content_verifiable=False),
        (a / "data.parquet").write_bytes(inv),
    ),
    "manifest-is-a-folder": lambda a, b, inv: _replace_dir(a / "manifest.json"),
    "data-is-a-folder": lambda a, b, inv: _replace_dir(a / "data.parquet"),
}


@pytest.mark.parametrize("tampering", sorted(_TAMPERING))
def test_every_kind_of_tampering_is_refused_by_every_reader(stored, other, tampering):
    inverted = _inverted_labels(stored)
    _TAMPERING[tampering](_dir(stored), _dir(other), inverted)
    for reader in (read_snapshot, verify_snapshot_file):
        with pytest.raises(SnapshotIntegrityError) as err:
            reader(stored["uri"])
        assert stored["uri"] in str(err.value), reader
        assert "re-ingest" in str(err.value)
    assert read_snapshot(other["uri"])[1]["sha256"] == other["sha256"]  # the other one untouched


def test_a_snapshot_folder_linked_under_another_name_is_refused(stored, other):
    link = _dir(stored).parent / ("f" * 64)
    link.symlink_to(_dir(other))
    for reader in (read_snapshot, verify_snapshot_file):
        with pytest.raises(SnapshotIntegrityError, match="describes snapshot"):
            reader("file://" + str(link))
