"""The batch-scoring DAG end to end with dag.test(): real Airflow (SQLite), real MLflow, real storage.

A champion is trained once for the module through the training DAG; each test then scores daily
partitions written with the example generator (plus a ``customer_id`` column) and checks what
landed in storage. The pure pieces (folder names, column checks, the frame) are tested first,
without Airflow runs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlops_ops.core import scoring
from mlops_ops.example.churn import generate, write_training_data
from mlops_ops.runner import run_dag
from tests.conftest import ROOT, champion_version, load_dag, mlflow_client, seed_mlflow_store

DAG_ID = "churn_batch_scoring"
OUTPUT_COLUMNS = [
    "customer_id",
    "prediction",
    "probability",
    "model_version",
    "input_sha256",
    "data_interval_start",
    "data_interval_end",
]


def _utc(day: str) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)


def _write_spec(
    pipelines: Path, scoring_uri: str = "${MLOPS_HOME}/data/churn/daily/{{ ds }}.parquet"
) -> None:
    """The repository's churn spec: training data in train/, scoring over daily partitions."""
    data = yaml.safe_load((ROOT / "pipelines" / "churn.yaml").read_text())
    # training reads its own folder, so the partitions these tests score never become training data
    data["source"] = {"uri": "${MLOPS_HOME}/data/churn/train/*.parquet"}
    data.pop("monitoring", None)  # not under test here
    data.get("schedules", {}).pop("monitoring", None)
    data["scoring"] = {
        "source": {"uri": scoring_uri},
        "id_columns": ["customer_id"],
    }
    data.setdefault("schedules", {})["scoring"] = "@daily"
    pipelines.mkdir(parents=True, exist_ok=True)
    (pipelines / "churn.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def _partition(home: Path, day: str, *, rows: int = 300, seed: int = 1, drop: tuple[str, ...] = ()):
    frame = generate(rows, seed=seed)
    frame.insert(0, "customer_id", pd.array([f"c{seed}-{i:05d}" for i in range(rows)], dtype="string"))
    frame = frame.drop(columns=list(drop))
    path = home / "data" / "churn" / "daily" / f"{day}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return frame


def _predictions(home: Path) -> Path:
    return home / "storage" / "churn" / "predictions"


def _temporaries(home: Path) -> list[Path]:
    return [p for p in (home / "storage").rglob("*") if ".tmp-" in p.name]


def _score(day: str | None):
    return run_dag(load_dag(DAG_ID), logical_date=_utc(day) if day else None)


# -- pure logic: no Airflow run ------------------------------------------------------------------


def test_interval_key_is_the_utc_start_or_the_run():
    start = dt.datetime(2026, 1, 5, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert scoring.interval_key(start, "scheduled__x") == "2026-01-05T003000Z"
    assert scoring.interval_key(None, "manual__2026-01-05T10:00:00+00:00") == (
        "run=manual__2026-01-05T10_00_00_00_00"
    )
    with pytest.raises(ValueError, match="no time zone"):
        scoring.interval_key(dt.datetime(2026, 1, 5), "r")


def test_check_columns_names_every_missing_column_and_accepts_extras():
    scoring.check_columns(
        ["id", "a", "b", "target", "extra"], features=["a", "b"], id_columns=["id"], model="m v1"
    )
    with pytest.raises(scoring.ScoringError) as err:
        scoring.check_columns(["a", "x"], features=["a", "b", "c"], id_columns=["id"], model="churn v3")
    text = str(err.value)
    assert "feature column(s) ['b', 'c'] that churn v3 was trained on are missing" in text
    assert "id column(s) ['id'] are missing" in text
    assert "The input has ['a', 'x']" in text
    with pytest.raises(scoring.ScoringError, match=r"id column\(s\) \['prediction'\] clash"):
        scoring.check_columns(["prediction", "a"], features=["a"], id_columns=["prediction"], model="m v1")


def test_assemble_predictions_for_classifiers_and_regressors():
    frame = pd.DataFrame({"id": pd.array(["a", "b", "c"], dtype="string"), "x": [1.0, 2.0, 3.0]})
    start, end = _utc("2026-01-05"), _utc("2026-01-06")
    common = {"id_columns": ["id"], "model_version": "7", "input_sha256": "f" * 64}
    clf = scoring.assemble_predictions(
        frame,
        {"pred": np.array([0, 1, 1]), "proba": np.array([0.2, 0.7, 0.9]), "classes": np.array([0, 1])},
        task="classification",
        interval_start=start,
        interval_end=end,
        **common,
    )
    assert list(clf.columns) == ["id", *OUTPUT_COLUMNS[1:]]
    assert clf["probability"].tolist() == [0.2, 0.7, 0.9]
    assert (clf["model_version"] == "7").all()
    assert (clf["data_interval_start"] == pd.Timestamp(start)).all()
    reg = scoring.assemble_predictions(
        frame,
        {"pred": np.array([1, 2, 3])},
        task="regression",
        interval_start=None,
        interval_end=None,
        **common,
    )
    assert "probability" not in reg.columns
    assert reg["prediction"].dtype == "float64"
    assert reg["data_interval_start"].isna().all()
    assert str(reg["data_interval_start"].dtype) == "datetime64[ns, UTC]"
    no_proba = scoring.assemble_predictions(
        frame,
        {"pred": np.array([0, 1, 1])},
        task="classification",
        interval_start=start,
        interval_end=end,
        **common,
    )
    assert no_proba["probability"].isna().all()


def test_dag_shape_and_no_dag_without_a_scoring_section(tmp_path):
    from mlops_ops.config import load_pipeline_spec, parse_pipeline_spec
    from mlops_ops.dag_factory.scoring import build_batch_scoring_dag

    plain = yaml.safe_load((ROOT / "pipelines" / "churn.yaml").read_text())
    plain.pop("scoring", None)
    plain.get("schedules", {}).pop("scoring", None)
    assert build_batch_scoring_dag(parse_pipeline_spec(plain)) is None
    _write_spec(tmp_path)
    dag = build_batch_scoring_dag(load_pipeline_spec(tmp_path / "churn.yaml"))
    assert dag.dag_id == DAG_ID
    assert dag.max_active_runs == 1
    assert {"mlops-ops", "churn", "scoring"} <= set(dag.tags)
    assert dag.doc_md
    assert "`customer_id`" in dag.doc_md
    assert [t.task_id for t in dag.topological_sort()] == ["champion", "ingest", "score"]
    assert [a.uri for a in dag.get_task("score").outlets] == ["x-mlops://churn/predictions"]
    assert dag.get_task("ingest").outlets == []  # a partition to score is not training data


# -- end to end ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_home(airflow_db, tmp_path_factory):
    """An MLOPS_HOME whose churn model has a champion (v1), and a spec with a scoring section."""
    root = tmp_path_factory.mktemp("scoring")
    home, pipelines = root / "home", root / "pipelines"
    _write_spec(pipelines)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        mp.setenv("MLOPS_PIPELINES", str(pipelines))
        seed_mlflow_store(home)
        write_training_data(home / "data" / "churn" / "train", rows=1500, seed=0)
        result = run_dag(load_dag("churn_training"), conf={})
        assert result.state == "success", result.tasks
        assert champion_version(mlflow_client()) == "1"
    return home, pipelines


@pytest.fixture
def home(trained_home, monkeypatch):
    home, pipelines = trained_home
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.setenv("MLOPS_PIPELINES", str(pipelines))
    shutil.rmtree(_predictions(home), ignore_errors=True)
    shutil.rmtree(home / "data" / "churn" / "daily", ignore_errors=True)
    return home


@pytest.mark.slow
def test_scores_a_partition_then_a_rerun_replaces_it_and_a_failed_rerun_keeps_it(home, capfd):
    from sklearn.metrics import roc_auc_score

    from mlops_ops.core.data import content_sha256, normalise

    partition = _partition(home, "2026-01-05", rows=300, seed=1)
    result = _score("2026-01-05")
    assert result.state == "success", result.tasks
    assert result.tasks == {"champion": "success", "ingest": "success", "score": "success"}
    assert result.returned["champion"]["version"] == "1"

    folder = _predictions(home) / "2026-01-05T000000Z"
    assert sorted(p.name for p in _predictions(home).rglob("*") if p.is_file()) == [
        "manifest.json",
        "predictions.parquet",
    ]
    assert [p.name for p in _predictions(home).iterdir()] == [folder.name]
    out = pd.read_parquet(folder / "predictions.parquet")
    assert list(out.columns) == OUTPUT_COLUMNS
    assert len(out) == 300
    assert out["customer_id"].tolist() == partition["customer_id"].tolist()  # input order kept
    # the hash of the data actually scored: the partition as read, normalised
    sha = content_sha256(normalise(pd.read_parquet(home / "data" / "churn" / "daily" / "2026-01-05.parquet")))
    assert result.returned["ingest"]["sha256"] == sha
    assert set(out["input_sha256"]) == {sha}
    assert set(out["model_version"]) == {"1"}
    assert set(out["prediction"]) <= {0, 1}
    assert out["probability"].between(0, 1).all()
    assert ((out["probability"] >= 0.5).astype(int) == out["prediction"]).all()
    # rows line up with their customers: the probabilities rank the partition's real labels
    assert roc_auc_score(partition["churned"], out["probability"]) > 0.7
    assert (out["data_interval_start"] == pd.Timestamp("2026-01-05", tz="UTC")).all()

    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["model_version"] == "1"
    assert manifest["rows"] == 300
    assert manifest["input_sha256"] == sha
    assert manifest["run_id"] == result.run_id
    assert manifest["data_interval"]["start"] == "2026-01-05T00:00:00+00:00"
    assert manifest["positive_class"] == 1
    assert (
        manifest["predictions_sha256"]
        == hashlib.sha256((folder / "predictions.parquet").read_bytes()).hexdigest()
    )
    assert result.returned["score"]["uri"].endswith("/2026-01-05T000000Z/predictions.parquet")
    assert result.returned["score"]["interval"] == manifest["data_interval"]
    report = json.loads(Path(result.returned["score"]["report_uri"].removeprefix("file://")).read_text())
    assert report["data_interval"]["start"] == manifest["data_interval"]["start"]

    # the asset event of the predictions, and none for the dataset (scoring input is not training data)
    events = _asset_events(result.run_id)
    assert set(events) == {"x-mlops://churn/predictions"}
    assert events["x-mlops://churn/predictions"] == {
        "version": "1",
        "rows": 300,
        "interval": manifest["data_interval"],
        "uri": result.returned["score"]["uri"],
    }

    # a re-run of the interval replaces both files: one output, a new manifest, the same content;
    # a temporary file left by a killed attempt is cleaned up
    (folder / "predictions.parquet.tmp-deadbeef").write_bytes(b"half-written")
    rerun = _score("2026-01-05")
    assert rerun.state == "success", rerun.tasks
    assert sorted(p.name for p in _predictions(home).rglob("*") if p.is_file()) == [
        "manifest.json",
        "predictions.parquet",
    ]
    again = json.loads((folder / "manifest.json").read_text())
    assert again["created"] > manifest["created"]
    assert again["input_sha256"] == manifest["input_sha256"]
    assert again["predictions_sha256"] == manifest["predictions_sha256"]
    pd.testing.assert_frame_equal(pd.read_parquet(folder / "predictions.parquet"), out)
    assert not _temporaries(home)

    # a re-run on a broken partition fails at ingest and leaves the good output as it was
    before = (folder / "predictions.parquet").read_bytes(), (folder / "manifest.json").read_bytes()
    partition.head(0).to_parquet(home / "data" / "churn" / "daily" / "2026-01-05.parquet", index=False)
    capfd.readouterr()
    broken = _score("2026-01-05")
    text = "".join(capfd.readouterr())
    assert broken.state == "failed"
    assert broken.tasks["ingest"] == "failed"
    assert broken.tasks["score"] == "upstream_failed"
    assert "0 data row(s)" in text
    assert ((folder / "predictions.parquet").read_bytes(), (folder / "manifest.json").read_bytes()) == before
    assert not _temporaries(home)


@pytest.mark.slow
def test_another_interval_writes_its_own_folder(home):
    _partition(home, "2026-01-05", rows=200, seed=2)
    _partition(home, "2026-01-06", rows=250, seed=3)
    first, second = _score("2026-01-05"), _score("2026-01-06")
    assert first.state == second.state == "success", (first.tasks, second.tasks)
    folders = sorted(p.name for p in _predictions(home).iterdir())
    assert folders == ["2026-01-05T000000Z", "2026-01-06T000000Z"]
    one, two = (json.loads((_predictions(home) / f / "manifest.json").read_text()) for f in folders)
    assert (one["rows"], two["rows"]) == (200, 250)
    assert one["input_sha256"] != two["input_sha256"]
    assert two["data_interval"]["start"] == "2026-01-06T00:00:00+00:00"
    assert len(pd.read_parquet(_predictions(home) / folders[1] / "predictions.parquet")) == 250


@pytest.mark.slow
def test_a_missing_feature_column_fails_naming_it_and_writes_nothing(home, capfd):
    _partition(home, "2026-01-07", rows=200, seed=4, drop=("monthly_charges", "churned"))
    capfd.readouterr()
    result = _score("2026-01-07")
    text = "".join(capfd.readouterr())
    assert result.state == "failed"
    assert result.tasks == {"champion": "success", "ingest": "success", "score": "failed"}
    assert "feature column(s) ['monthly_charges'] that churn v1 was trained on are missing" in text
    assert not _predictions(home).exists()
    assert not _temporaries(home)


@pytest.mark.slow
def test_a_missing_partition_fails_at_ingest_and_writes_nothing(home, capfd):
    capfd.readouterr()
    result = _score("2026-01-08")
    text = "".join(capfd.readouterr())
    assert result.state == "failed"
    assert result.tasks["ingest"] == "failed"
    assert "no file matches" in text
    assert "/data/churn/daily/2026-01-08.parquet" in text
    assert not _predictions(home).exists()


@pytest.mark.slow
def test_a_run_without_a_data_interval_writes_a_folder_of_its_own(home, tmp_path, monkeypatch):
    # a manual run triggered with no logical date has no data interval ({{ ds }} falls back to run_after)
    pipelines = tmp_path / "pipelines"
    _write_spec(pipelines, scoring_uri="${MLOPS_HOME}/data/churn/daily/latest.parquet")
    monkeypatch.setenv("MLOPS_PIPELINES", str(pipelines))
    _partition(home, "latest", rows=120, seed=5)
    dag_run = load_dag(DAG_ID).test(logical_date=None)
    assert str(getattr(dag_run.state, "value", dag_run.state)) == "success"
    folders = [p.name for p in _predictions(home).iterdir()]
    assert len(folders) == 1
    assert folders[0].startswith("run=manual__")
    manifest = json.loads((_predictions(home) / folders[0] / "manifest.json").read_text())
    assert manifest["data_interval"] is None
    assert manifest["run_id"] == dag_run.run_id
    out = pd.read_parquet(_predictions(home) / folders[0] / "predictions.parquet")
    assert len(out) == 120
    assert out["data_interval_start"].isna().all()
    assert out["data_interval_end"].isna().all()


@pytest.mark.slow
def test_no_champion_skips_the_run_and_writes_nothing(airflow_db, tmp_path, monkeypatch, capfd):
    home, pipelines = tmp_path / "home", tmp_path / "pipelines"
    _write_spec(pipelines)
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.setenv("MLOPS_PIPELINES", str(pipelines))
    seed_mlflow_store(home)
    _partition(home, "2026-01-05")
    capfd.readouterr()
    result = _score("2026-01-05")
    text = "".join(capfd.readouterr())
    assert result.state == "success"  # a skipped run: nothing to score with yet
    assert result.tasks == {"champion": "skipped", "ingest": "skipped", "score": "skipped"}
    assert "no champion for churn: run churn_training first" in text
    assert not (home / "storage").exists()


def _asset_events(run_id: str) -> dict[str, dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetModel.uri, AssetEvent.extra)
            .join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
            .where(AssetEvent.source_run_id == run_id)
        ).all()
    return {uri: extra for uri, extra in rows}
