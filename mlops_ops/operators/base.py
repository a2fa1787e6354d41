"""What every mlops-ops operator shares: the pipeline name, the hooks, lineage and reports."""

from __future__ import annotations

import functools
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

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

    def skip(self, reason: str) -> NoReturn:
        """End the task as skipped, ``reason`` first written to the task log where a reader sees it.

        Airflow logs an ``AirflowSkipException``'s message inside the collapsed "Post Execute" group
        of the log view; the reason is logged here, during ``execute()``, outside any group.

        :raises AirflowSkipException: always, with ``reason``.
        """
        from airflow.sdk.exceptions import AirflowSkipException

        self.log.info("Skipped: %s", reason)
        raise AirflowSkipException(reason)

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
    def run_name(context: Context, kind: str, detail: str | None = None) -> str:
        """The MLflow run name of this task attempt: ``<kind>-<ds>[-<detail>]-<HHMMSS>[-try<n>]``.

        ``HHMMSS`` is when the Airflow run was due (``run_after``) and ``n`` the try number from 2 on,
        so that two runs of one day (a manual run beside the scheduled one, a forced retrain on the
        same data, a retry) never share a name in MLflow's run list.
        """
        dag_run = context.get("dag_run")
        run_after = getattr(dag_run, "run_after", None)
        ds = context.get("ds") or (str(run_after)[:10] if run_after else "")
        parts = [kind, ds, detail or "", run_after.strftime("%H%M%S") if run_after else ""]
        try_number = int(getattr(context.get("ti"), "try_number", 1) or 1)
        if try_number > 1:
            parts.append(f"try{try_number}")
        return "-".join(p for p in parts if p)

    @staticmethod
    def lineage(context: Context) -> dict[str, str]:
        ti = context["ti"]
        return {"airflow.dag_id": ti.dag_id, "airflow.run_id": ti.run_id, "airflow.task_id": ti.task_id}

    def judged_interval(
        self, context: Context, manifest: dict[str, Any] | None = None, snapshot: Any = None
    ) -> dict[str, Any]:
        """The days of data a report judged, ``{"start": "YYYY-MM-DD", "end": ..., "how": why}``.

        From the snapshot's manifest (``manifest``, or read from ``snapshot``): its ingest window,
        else the dates in its file names, else the run's logical date; without a snapshot, the
        run's data interval. Start and end are None (and ``how`` says so) when nothing states it.
        """
        from mlops_ops.core.reference import data_interval
        from mlops_ops.hooks.storage import read_json, snapshot_uri_of, to_path

        if manifest is None and snapshot is not None:
            manifest = read_json(to_path(snapshot_uri_of(snapshot), self.storage.conn_id) / "manifest.json")
        when = context.get("logical_date") or getattr(context.get("dag_run"), "run_after", None)
        if manifest is not None:
            interval, how = data_interval(manifest.get("source"), default_day=when.date() if when else None)
            if interval is not None:
                return {"start": interval.start.isoformat(), "end": interval.end.isoformat(), "how": how}
        start, end = context.get("data_interval_start"), context.get("data_interval_end")
        if start is not None and end is not None:
            return {"start": start.isoformat(), "end": end.isoformat(), "how": "the run's data interval"}
        return {"start": None, "end": None, "how": "unknown: the run has no data interval"}

    def write_report(self, context: Context, document: dict[str, Any], html: str | None) -> str:
        """Store a decision document (JSON, plus its HTML view) under reports/; returns the JSON URI.

        A document that does not state the data it judged (``data_interval``) gets the run's.
        """
        from mlops_ops.hooks.storage import json_bytes, remove_temporaries, write_atomic

        document.setdefault("data_interval", self.judged_interval(context))
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
        version = self.mlflow_hook.get_alias_version(self.pipeline)
        if version is None:
            self.skip(
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
            run_name=self.run_name(context, kind),
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
