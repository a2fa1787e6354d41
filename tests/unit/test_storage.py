"""Storage helpers on the local disk (file://): atomic and write-once writes, sources, the layout."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from airflow.sdk import ObjectStoragePath

from mlops_ops.hooks import storage
from mlops_ops.hooks.storage import (
    PipelineStorage,
    expand_source,
    read_json,
    to_path,
    write_atomic,
    write_json_atomic,
    write_once,
)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob("*") if ".tmp-" in p.name)


# -- atomic writes -------------------------------------------------------------------------------


def test_write_atomic_writes_the_content_and_leaves_no_temporary_file(tmp_path):
    path = to_path(f"file://{tmp_path}/a/b/report.json")
    assert write_atomic(path, b'{"ok": true}') == path
    assert (tmp_path / "a" / "b" / "report.json").read_bytes() == b'{"ok": true}'
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == ["report.json"]


def test_write_atomic_replaces_the_content(tmp_path):
    path = to_path(str(tmp_path / "report.json"))
    write_atomic(path, b"old")
    write_atomic(path, b"new")
    assert (tmp_path / "report.json").read_bytes() == b"new"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()], ids=["oserror", "killed"])
def test_a_failed_move_leaves_no_final_name_and_no_temporary_file(tmp_path, monkeypatch, error):
    moved = []

    def broken_move(src, dst):
        moved.append(str(src))
        assert Path(src.path).read_bytes() == b"complete content"  # the data was written first
        raise error

    monkeypatch.setattr(storage, "move_file", broken_move)
    path = to_path(str(tmp_path / "out" / "data.parquet"))
    with pytest.raises(type(error)):
        write_atomic(path, b"complete content")
    assert moved
    assert ".tmp-" in moved[0]
    assert not (tmp_path / "out" / "data.parquet").exists()
    assert list((tmp_path / "out").iterdir()) == []


def test_a_failed_write_keeps_the_previous_content(tmp_path, monkeypatch):
    path = to_path(str(tmp_path / "manifest.json"))
    write_atomic(path, b"version 1")

    def broken_move(src, dst):
        raise OSError("connection reset")

    monkeypatch.setattr(storage, "move_file", broken_move)
    with pytest.raises(OSError, match="connection reset"):
        write_atomic(path, b"version 2")
    assert (tmp_path / "manifest.json").read_bytes() == b"version 1"
    assert leftovers(tmp_path) == []


def test_a_write_failing_half_way_leaves_nothing(tmp_path):
    path = to_path(str(tmp_path / "data.bin"))
    with pytest.raises(TypeError):
        write_atomic(path, "not bytes")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_json_documents_round_trip(tmp_path):
    path = to_path(str(tmp_path / "doc.json"))
    write_json_atomic(path, {"b": 1, "a": [1.5, "x"], "when": Path("/x")})
    assert read_json(path) == {"a": [1.5, "x"], "b": 1, "when": "/x"}


# -- write once ----------------------------------------------------------------------------------


def test_write_once_never_overwrites(tmp_path):
    path = to_path(f"file://{tmp_path}/ledger/2024-v1.json")
    assert write_once(path, b"first") is True
    assert write_once(path, b"second") is False
    assert (tmp_path / "ledger" / "2024-v1.json").read_bytes() == b"first"
    assert leftovers(tmp_path) == []


def test_write_once_from_eight_threads_has_one_winner(tmp_path):
    path = to_path(str(tmp_path / "snapshots" / "abc" / "manifest.json"))
    start = threading.Barrier(8)
    results: dict[int, bool] = {}
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            start.wait()
            results[i] = write_once(path, f"writer {i}".encode())
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert len(results) == 8
    winners = [i for i, won in results.items() if won]
    assert len(winners) == 1, results
    assert path.read_bytes() == f"writer {winners[0]}".encode()
    assert leftovers(tmp_path) == []


def test_write_once_is_exclusive_even_when_every_writer_passed_the_existence_check(tmp_path, monkeypatch):
    # the worst interleaving, made deterministic: every writer saw "not there yet"
    path = to_path(str(tmp_path / "ledger" / "v1.json"))
    real_exists = ObjectStoragePath.exists
    monkeypatch.setattr(
        ObjectStoragePath, "exists", lambda self: False if str(self) == str(path) else real_exists(self)
    )
    assert [write_once(path, f"writer {i}".encode()) for i in range(3)] == [True, False, False]
    assert (tmp_path / "ledger" / "v1.json").read_bytes() == b"writer 0"
    assert leftovers(tmp_path) == []


# -- sources -------------------------------------------------------------------------------------


@pytest.fixture
def source_dir(tmp_path) -> Path:
    folder = tmp_path / "incoming"
    (folder / "nested").mkdir(parents=True)
    for name in ("2024-01-02.csv", "2024-01-01.csv", "2024-01-03.parquet", ".hidden.csv", "nested/x.csv"):
        (folder / name).write_text("a\n1\n")
    return folder


def names(paths) -> list[str]:
    return [p.name for p in paths]


def test_a_glob_gives_the_sorted_matches(source_dir):
    matches = expand_source(f"{source_dir}/2024-*.csv")
    assert names(matches) == ["2024-01-01.csv", "2024-01-02.csv"]
    assert all(isinstance(p, ObjectStoragePath) for p in matches)
    assert names(expand_source(f"file://{source_dir}/2024-01-0?.*")) == [
        "2024-01-01.csv",
        "2024-01-02.csv",
        "2024-01-03.parquet",
    ]


def test_a_glob_skips_dot_files_like_a_directory_does(source_dir):
    assert names(expand_source(f"{source_dir}/*.csv")) == ["2024-01-01.csv", "2024-01-02.csv"]


def test_a_directory_gives_its_files_without_dot_files(source_dir):
    assert names(expand_source(str(source_dir))) == ["2024-01-01.csv", "2024-01-02.csv", "2024-01-03.parquet"]
    assert names(expand_source(f"file://{source_dir}/")) == [
        "2024-01-01.csv",
        "2024-01-02.csv",
        "2024-01-03.parquet",
    ]


def test_a_single_file(source_dir):
    assert names(expand_source(f"{source_dir}/2024-01-01.csv")) == ["2024-01-01.csv"]


@pytest.mark.parametrize("pattern", ["missing.csv", "*.json", "missing_dir/*.csv", "missing_dir"])
def test_nothing_matches(source_dir, pattern):
    assert expand_source(f"{source_dir}/{pattern}") == []


def test_environment_variables_expand(source_dir, monkeypatch):
    monkeypatch.setenv("MY_DATA", str(source_dir))
    assert names(expand_source("${MY_DATA}/2024-*.csv")) == ["2024-01-01.csv", "2024-01-02.csv"]


# -- the storage layout (docs/architecture.md, "Storage layout") --------------------------------


@pytest.fixture
def store(tmp_path) -> PipelineStorage:
    return PipelineStorage("churn", root=f"file://{tmp_path}/root/")


def test_snapshot_layout(store, tmp_path):
    assert str(store.snapshot_dir("ab12" * 16)) == f"file://{tmp_path}/root/churn/snapshots/{'ab12' * 16}"


def test_report_layout_with_a_path_safe_run_id(store, tmp_path):
    path = store.report_path("churn_training", "manual__2024-01-01T00:00:00+00:00", "evaluate", "json")
    base = f"file://{tmp_path}/root/churn/reports/churn_training"
    run_segment = str(path).removeprefix(base + "/").split("/")[0]
    assert str(path) == f"{base}/{run_segment}/evaluate.json"
    assert run_segment.startswith("manual__2024-01-01T00")
    assert not set(run_segment) & set(":+/ ")


def test_run_ids_cannot_escape_their_folder(store, tmp_path):
    path = store.report_path("dag", "../../etc/passwd", "task", "html")
    assert str(path).startswith(f"file://{tmp_path}/root/churn/reports/dag/")
    assert str(path).endswith("/task.html")
    assert str(path).count("/") == str(store.report_path("dag", "run", "task", "html")).count("/")


@pytest.mark.parametrize("run_id", ["..", ".", "", "...", "../..", "/"])
def test_a_run_id_of_dots_names_its_own_folder_not_the_parent(store, tmp_path, run_id):
    """Airflow accepts ``..`` as a run id; it must not name the DAG's folder's parent."""
    base = f"file://{tmp_path}/root/churn/reports/dag/"
    path = store.report_path("dag", run_id, "task", "html")
    segment = str(path).removeprefix(base).split("/")[0]
    assert str(path) == f"{base}{segment}/task.html"
    assert segment.strip(".")
    assert store.report_path("..", "run", "..", "json").parent.parent.name not in ("", ".", "..")
    assert store.predictions_dir("..").name not in ("", ".", "..")


def test_deployments_layout(store, tmp_path):
    assert str(store.deployments_dir()) == f"file://{tmp_path}/root/churn/deployments"


def test_the_layout_is_writable(store, tmp_path):
    write_atomic(store.snapshot_dir("abc") / "manifest.json", b"{}")
    assert (tmp_path / "root" / "churn" / "snapshots" / "abc" / "manifest.json").exists()


def test_the_root_comes_from_mlops_storage(monkeypatch, tmp_path):
    monkeypatch.setenv("MLOPS_STORAGE", "s3://bucket/mlops/")
    monkeypatch.setenv("MLOPS_STORAGE_CONN_ID", "aws_mlops")
    s = PipelineStorage("churn")
    assert s.root_uri == "s3://bucket/mlops"
    assert s.conn_id == "aws_mlops"
    assert (s.base.protocol, s.base.path, s.base.conn_id) == ("s3", "bucket/mlops/churn", "aws_mlops")
    assert s.snapshot_dir("abc").path == "bucket/mlops/churn/snapshots/abc"


def test_the_default_root_is_under_mlops_home(monkeypatch, tmp_path):
    monkeypatch.delenv("MLOPS_STORAGE", raising=False)
    monkeypatch.delenv("MLOPS_STORAGE_CONN_ID", raising=False)
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    s = PipelineStorage("churn")
    assert s.root_uri == f"file://{tmp_path}/home/storage"
    assert s.conn_id is None
    assert str(s.deployments_dir()) == f"file://{tmp_path}/home/storage/churn/deployments"


def test_an_explicit_root_wins_over_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MLOPS_STORAGE", "s3://bucket/mlops")
    assert PipelineStorage("churn", root=f"file://{tmp_path}").root_uri == f"file://{tmp_path}"


def test_settings_are_read_at_call_time(monkeypatch, tmp_path):
    monkeypatch.delenv("MLOPS_STORAGE", raising=False)
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "one"))
    first = PipelineStorage("p").root_uri
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "two"))
    assert PipelineStorage("p").root_uri != first


def test_snapshot_uri_of_accepts_the_ingest_result():
    assert storage.snapshot_uri_of({"uri": "file:///x/snapshots/abc/"}) == "file:///x/snapshots/abc"
    with pytest.raises(ValueError, match="expected a snapshot"):
        storage.snapshot_uri_of({"sha256": "abc"})


@pytest.mark.parametrize(
    "raw",
    [b"{", b"\xff\xfe{}", b"[" * 100_000 + b"]" * 100_000, b'{"seq": NaN'],
    ids=["truncated", "not-utf8", "nested-too-deep", "nan-truncated"],
)
def test_a_damaged_ledger_record_is_a_verdict_naming_it(store, raw):
    """Never a RecursionError (retried, naming nothing): a LedgerError, which fails the task once."""
    from mlops_ops.core.registry import LedgerError
    from mlops_ops.errors import is_verdict
    from mlops_ops.hooks.storage import DeploymentLedger

    ledger = DeploymentLedger(store)
    path = ledger.record_path("20260101T000000.000000Z-v1.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        fh.write(raw)
    with pytest.raises(LedgerError, match="20260101T000000.000000Z-v1.json is not valid JSON") as err:
        ledger.read()
    assert is_verdict(err.value)


# -- hook lineage ----------------------------------------------------------------------------------


@pytest.fixture
def lineage_reader(monkeypatch):
    """A hook lineage reader registered, as a plugin (OpenLineage, ...) registers one; Airflow's
    collector and our check are cached per process, so both are reset around the test."""
    from airflow.sdk import plugins_manager
    from airflow.sdk.lineage import HookLineageReader, get_hook_lineage_collector

    monkeypatch.setattr(plugins_manager, "get_hook_lineage_readers_plugins", lambda: [HookLineageReader])
    get_hook_lineage_collector.cache_clear()
    storage._hook_lineage_read.cache_clear()
    yield get_hook_lineage_collector
    get_hook_lineage_collector.cache_clear()
    storage._hook_lineage_read.cache_clear()


def test_files_read_written_and_moved_report_hook_lineage_when_a_reader_records_it(tmp_path, lineage_reader):
    source = to_path(str(tmp_path / "in.bin"))
    source.write_bytes(b"rows")
    with storage.open_file(source, "rb") as fh:
        assert fh.read() == b"rows"
    target = to_path(str(tmp_path / "out" / "data.bin"))
    write_atomic(target, b"stored")  # written to a temporary name, then moved
    lineage = lineage_reader().collected_assets
    inputs = {info.asset.uri for info in lineage.inputs}
    outputs = {info.asset.uri for info in lineage.outputs}
    assert any(uri.endswith("/in.bin") for uri in inputs), inputs
    assert any(uri.endswith("/out/data.bin") for uri in outputs), outputs
    assert target.read_bytes() == b"stored"


def test_without_a_lineage_reader_files_skip_airflows_collector_and_read_and_write_the_same(tmp_path):
    from airflow.sdk import plugins_manager

    if plugins_manager.get_hook_lineage_readers_plugins():
        pytest.skip("a plugin registers a hook lineage reader here")
    storage._hook_lineage_read.cache_clear()
    path = to_path(str(tmp_path / "a" / "doc.json"))
    write_json_atomic(path, {"rows": 3})
    with storage.open_file(path, "rb") as fh:
        assert type(fh).__module__.startswith("fsspec")  # the filesystem's file, not Airflow's wrapper
    assert read_json(path) == {"rows": 3}
    assert leftovers(tmp_path) == []
