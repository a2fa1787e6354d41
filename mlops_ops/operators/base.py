"""What every mlops-ops operator shares: the pipeline name, the hooks, lineage and reports."""

from __future__ import annotations

import functools
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from mlops_ops.hooks.mlflow import MlflowHook
from mlops_ops.hooks.storage import PipelineStorage

if TYPE_CHECKING:
    from airflow.sdk import Context


def parse_bool(value: Any) -> bool:
    """A templated flag: ``True``/``"True"``/``"true"``/``"1"`` are true."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def fail_on_verdicts(execute: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an operator's ``execute``: a verdict fails the task once, anything else propagates.

    The one place where mlops-ops maps its errors to Airflow outcomes. A ``ValueError`` (every
    :class:`~mlops_ops.errors.MlopsError` verdict: ``DataError``, ``SpecError``,
    ``SnapshotIntegrityError``, ``StoredDocumentError``...; and a library's plain ``ValueError``
    about the input) becomes ``AirflowFailException``: no retry can change it. Transient errors
    (:class:`~mlops_ops.errors.TransientError`, network and storage errors) propagate, so
    Airflow's retries apply. Airflow's own exceptions pass through unchanged.
    """

    @functools.wraps(execute)
    def wrapper(self: MlopsBaseOperator, context: Any, *args: Any, **kwargs: Any) -> Any:
        from airflow.sdk.exceptions import AirflowException, AirflowFailException

        from mlops_ops.errors import MlopsError, is_verdict

        try:
            return execute(self, context, *args, **kwargs)
        except AirflowException:
            raise
        except Exception as err:
            if not is_verdict(err):
                raise
            if not isinstance(err, MlopsError):  # a library's ValueError: keep where it came from
                self.log.exception("%s failed on its input", self.task_id)
            raise AirflowFailException(
                f"{self.task_id} of pipeline {self.pipeline!r} failed, and no retry can change that: "
                f"{type(err).__name__}: {err}"
            ) from None

    wrapper.__mlops_verdicts__ = True  # type: ignore[attr-defined]
    return wrapper


class MlopsBaseOperator(BaseOperator):
    """Base of the mlops-ops operators.

    Every subclass's ``execute`` is wrapped by :func:`fail_on_verdicts`: data, spec and stored
    document problems fail the task once; transient faults are retried.

    :param pipeline: the pipeline's name: storage prefix, MLflow experiment and registered model.
    :param mlflow_conn_id: Airflow connection of the MLflow server (conn type ``mlflow``).
    :param storage_conn_id: Airflow connection with credentials for ``MLOPS_STORAGE``.
    """

    ui_color = "#e8f1fb"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        execute = cls.__dict__.get("execute")
        if callable(execute) and not getattr(execute, "__mlops_verdicts__", False):
            setattr(cls, "execute", fail_on_verdicts(execute))  # noqa: B010 - assigning a method

    def __init__(
        self,
        *,
        pipeline: str,
        mlflow_conn_id: str = MlflowHook.default_conn_name,
        storage_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.mlflow_conn_id = mlflow_conn_id
        self.storage_conn_id = storage_conn_id

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        """Render as Airflow does, with ``ds``/``ds_nodash`` also on runs without a logical date.

        Airflow 3 runs started by an asset event, or triggered without a logical date, have no
        ``ds``: a source such as ``.../{{ ds }}.parquet`` would fail to render. For those runs the
        day the run was queued for (``dag_run.run_after``) stands in.
        """
        if "ds" not in context:
            when = getattr(context.get("dag_run"), "run_after", None)
            if when is not None:
                ds = when.strftime("%Y-%m-%d")
                context["ds"] = ds
                context["ds_nodash"] = ds.replace("-", "")
        super().render_template_fields(context, jinja_env)

    def pre_execute(self, context: Context) -> Any:
        """Refuse a run dated before the task's start date (the spec's ``schedules.start_date``).

        The DAG factory gives such runs their tasks (``dag_factory.common.fail_runs_before_start``)
        and a backfill runs every task whatever its date: there would be no data to replay.

        :raises AirflowFailException: naming the run's date and the start date.
        """
        from airflow.sdk.exceptions import AirflowFailException

        logical_date = context.get("logical_date")
        dag_start = self.dag.start_date if self.has_dag() else None
        starts = [d for d in (dag_start, self.start_date) if d is not None]
        start = max(starts) if starts else None
        if logical_date is not None and start is not None and logical_date < start:
            raise AirflowFailException(
                f"this run is dated {logical_date.isoformat()}, before the start date "
                f"{start.isoformat()} of DAG {self.dag_id!r} (the pipeline spec's schedules.start_date): "
                "trigger the run for a date on or after it, or move schedules.start_date earlier"
            )
        return super().pre_execute(context)

    @cached_property
    def mlflow_hook(self) -> MlflowHook:
        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    @cached_property
    def storage(self) -> PipelineStorage:
        from airflow.sdk.exceptions import AirflowFailException

        from mlops_ops.settings import SettingsError

        try:
            return PipelineStorage(self.pipeline, conn_id=self.storage_conn_id)
        except SettingsError as err:  # a setting no retry can change
            raise AirflowFailException(str(err)) from None

    def read_snapshot(self, snapshot: Any) -> tuple[Any, dict[str, Any]]:
        """A snapshot's frame and manifest, read with the storage connection and verified.

        Missing, or failing its integrity check (:class:`~mlops_ops.errors.SnapshotIntegrityError`):
        the task fails once, naming the snapshot and the fix. Storage errors propagate (retried).
        """
        from airflow.sdk.exceptions import AirflowFailException

        from mlops_ops.hooks.storage import read_snapshot

        try:
            return read_snapshot(snapshot, self.storage.conn_id)
        except (FileNotFoundError, ValueError) as err:
            raise AirflowFailException(str(err)) from None

    def version_schema(self, run_id: str | None, training: dict[str, Any] | None) -> Any:
        """The frozen schema of a model version (its ``schema.json``); for a version trained before
        schemas were stored, the plain schema of its recorded feature lists."""
        from mlops_ops.core.features import FeatureSet
        from mlops_ops.core.schema import SCHEMA_ARTIFACT, Schema

        doc = self.mlflow_hook.load_dict(run_id, SCHEMA_ARTIFACT) if run_id else None
        if doc is not None:
            return Schema.from_dict(doc)
        if training is None:
            raise ValueError(f"run {run_id} has neither a schema nor a training spec")
        features = FeatureSet(
            tuple(training["features"]["numeric"]), tuple(training["features"]["categorical"])
        )
        return Schema.from_feature_set(features, training.get("target"))

    @staticmethod
    def lineage(context: Context) -> dict[str, str]:
        ti = context["ti"]
        return {"airflow.dag_id": ti.dag_id, "airflow.run_id": ti.run_id, "airflow.task_id": ti.task_id}

    def write_report(self, context: Context, document: dict[str, Any], html: str | None) -> str:
        """Store a decision document (JSON, plus its HTML view) under reports/; returns the JSON URI."""
        from mlops_ops.hooks.storage import json_bytes, remove_temporaries, write_atomic

        ti = context["ti"]
        path = self.storage.report_path(ti.dag_id, ti.run_id, ti.task_id, "json")
        # a killed attempt's temporary files; tasks of one run share the folder, so only old ones
        remove_temporaries(path.parent, older_than_seconds=3600)
        if html is not None:
            write_atomic(self.storage.report_path(ti.dag_id, ti.run_id, ti.task_id, "html"), html.encode())
        write_atomic(path, json_bytes(document))
        # for the Report link, which Airflow also resolves when the task then fails
        context["ti"].xcom_push(key="report_uri", value=str(path))
        return str(path)


class MonitoringOperator(MlopsBaseOperator):
    """Base of the monitoring checks: the serving champion, resolved once per task (a promotion
    mid-task cannot mix versions), and one MLflow run per check."""

    def champion(self) -> Any:
        """The champion's model version. No champion: the task is skipped (nothing to monitor)."""
        from airflow.sdk.exceptions import AirflowSkipException

        version = self.mlflow_hook.get_alias_version(self.pipeline)
        if version is None:
            raise AirflowSkipException(
                f"{self.pipeline} has no champion yet: nothing to monitor. Run {self.pipeline}_training first"
            )
        return version

    def log_monitoring_run(
        self,
        context: Context,
        kind: str,
        champion: Any,
        metrics: dict[str, Any],
        document: dict[str, Any],
        html: str | None,
    ) -> tuple[str, str]:
        """One MLflow run per check, in the pipeline's experiment, tagged ``mlops.kind``
        (``monitoring.<kind>``); pushes ``mlflow_run_url``. Returns ``(run_id, run_url)``."""
        ds = context.get("ds") or str(context["dag_run"].run_after)[:10]
        tags = {
            **self.lineage(context),
            "mlops.pipeline": self.pipeline,
            "mlops.kind": f"monitoring.{kind}",
            "mlops.champion_version": str(champion.version),
            "mlops.status": str(document.get("status")),
        }
        run_id, run_url = self.mlflow_hook.log_monitoring_run(
            self.pipeline,
            kind=kind,
            run_name=f"{kind}-{ds}",
            tags=tags,
            metrics=metrics,
            document=document,
            html=html,
        )
        context["ti"].xcom_push(key="mlflow_run_url", value=run_url)
        return run_id, run_url


def short_number(value: Any) -> str:
    """A float to 4 significant digits for a log line; anything else as ``str``."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
