"""Batch scoring: pin the champion's version, then score a snapshot with exactly that version."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from mlops_ops import settings
from mlops_ops.artifacts import TRAINING_SPEC_ARTIFACT, TrainingSpec
from mlops_ops.assets import predictions_asset
from mlops_ops.core.model_uri import model_version_uri
from mlops_ops.links import MlflowModelVersionLink
from mlops_ops.operators.base import MlopsBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

PREDICTIONS_FILE = "predictions.parquet"
MANIFEST_FILE = "manifest.json"


def _no_model_message(pipeline: str, alias: str) -> str:
    return (
        f"no {alias} for {pipeline}: run {pipeline}_training first. Nothing was scored or written; "
        "once a model is promoted, clear this run to score its interval"
    )


class ResolveChampionOperator(MlopsBaseOperator):
    """Read which version the ``champion`` alias points at, once, and return it.

    Tasks downstream use the returned concrete version (``models:/<pipeline>/<version>``), never
    the alias, so a promotion while the DAG run is going cannot mix two versions in one run, and a
    retry of a downstream task uses the same version as its first attempt.

    Skips when the alias does not exist yet (no model was promoted): there is nothing to score
    with, which is a state of the registry rather than an error in the data or the settings.

    :param alias: the registered-model alias to resolve (templated); default ``champion``.
    """

    template_fields: Sequence[str] = ("alias",)
    operator_extra_links = (MlflowModelVersionLink(),)

    def __init__(self, *, alias: str = settings.CHAMPION_ALIAS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.alias = alias

    def execute(self, context: Context) -> dict[str, Any]:
        hook = self.mlflow_hook
        current = hook.get_alias_version(self.pipeline, self.alias)
        if current is None:
            raise AirflowSkipException(_no_model_message(self.pipeline, self.alias))
        version = str(current.version)
        self.log.info(
            "%s@%s is v%s: this run scores with models:/%s/%s",
            self.pipeline,
            self.alias,
            version,
            self.pipeline,
            version,
        )
        return {
            "model_name": self.pipeline,
            "alias": self.alias,
            "version": version,
            "run_id": current.run_id,
            "model_uri": model_version_uri(self.pipeline, version),
            "model_url": hook.model_version_url(self.pipeline, version),
        }


class BatchScoreOperator(MlopsBaseOperator):
    """Score a snapshot with one model version and store the predictions for the data interval.

    Writes ``<MLOPS_STORAGE>/<pipeline>/predictions/<key>/predictions.parquet``, then
    ``manifest.json`` next to it, each through a temporary file and a move. ``<key>`` is the
    run's data interval start in UTC (``2026-01-05T000000Z``), or ``run=<run_id>`` for a run
    without a data interval. Re-running an interval replaces its files; it never adds a second
    copy. Columns: ``id_columns…``, ``prediction``, ``probability`` (classifiers: of the positive
    class), ``model_version``, ``input_sha256``, ``data_interval_start``, ``data_interval_end``.

    The input must hold every feature column the model was trained on (from its
    ``training_spec.json``); extra columns, the target among them, are ignored. Emits the
    ``mlops://<pipeline>/predictions`` asset event with extra ``version``, ``rows``,
    ``interval`` and ``uri``.

    :param snapshot: the ingest task's result or a snapshot URI (templated).
    :param model: the version to score with (templated): a result with ``version`` (from
        :class:`ResolveChampionOperator` or the training task), or a version number. ``None``
        resolves the ``champion`` alias when the task starts, and skips if there is none.
    :param id_columns: input columns copied into the predictions, first, e.g. a customer id.
    """

    template_fields: Sequence[str] = ("snapshot", "model")
    template_fields_renderers = {"model": "json"}
    operator_extra_links = (MlflowModelVersionLink(),)

    def __init__(
        self,
        *,
        snapshot: Any,
        model: Any = None,
        id_columns: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if "outlets" not in kwargs and "pipeline" in kwargs:
            kwargs["outlets"] = [predictions_asset(kwargs["pipeline"])]
        super().__init__(**kwargs)
        self.snapshot = snapshot
        self.model = model
        self.id_columns = id_columns

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops.core.data import to_parquet_bytes
        from mlops_ops.core.scoring import assemble_predictions, interval_doc, interval_key, positive_class

        hook = self.mlflow_hook
        name = self.pipeline
        version = self._version(hook)
        training, run_id = self._training_spec(hook, version)
        ids = list(self.id_columns or ())
        frame, snapshot = self.read_snapshot(self.snapshot)
        input_sha = str(snapshot["sha256"])
        model_uri = model_version_uri(name, version)
        scores = self._score(hook, frame, training, run_id, version, input_sha, ids)
        start, end = _utc(context.get("data_interval_start")), _utc(context.get("data_interval_end"))
        out = assemble_predictions(
            frame,
            scores,
            task=training.task,
            id_columns=ids,
            model_version=version,
            input_sha256=input_sha,
            interval_start=start,
            interval_end=end,
        )
        self._log_summary(out, training.task, version, input_sha)

        lineage = self.lineage(context)
        directory = self.storage.predictions_dir(interval_key(start, lineage["airflow.run_id"]))
        path, manifest_path, document = self._write(
            directory,
            to_parquet_bytes(out),
            pipeline=name,
            model_version=version,
            model_uri=model_uri,
            task=training.task,
            rows=len(out),
            columns=[str(c) for c in out.columns],
            input_sha256=input_sha,
            input_uri=str(snapshot.get("uri", "")),
            interval_start=start,
            interval_end=end,
            positive=positive_class(scores),
            lineage=lineage,
        )
        interval: dict[str, Any] | None = interval_doc(start, end)
        extra: dict[str, Any] = {"version": version, "rows": len(out), "interval": interval, "uri": str(path)}
        for asset in self.outlets:
            if getattr(asset, "uri", "").endswith("/predictions"):
                context["outlet_events"][asset].extra = extra
        return {
            "uri": str(path),
            "manifest_uri": str(manifest_path),
            "rows": len(out),
            "model_name": name,
            "version": version,
            "input_sha256": input_sha,
            "interval": interval,
            "created": document["created"],
            "model_url": hook.model_version_url(name, version),
        }

    # -- steps -----------------------------------------------------------------------------------

    def _version(self, hook: Any) -> str:
        """The concrete version to score with: given, or the champion's, read once."""
        model = self.model
        if isinstance(model, dict):
            if model.get("version") in (None, ""):
                raise AirflowFailException(
                    f"model must be a result with a 'version' (e.g. the champion task's), got {model!r}"
                )
            return str(model["version"])
        if model not in (None, ""):
            if isinstance(model, bool) or not str(model).strip().isdigit():
                raise AirflowFailException(
                    f"model must be a version number or a result with 'version', got {model!r}"
                )
            return str(model).strip()
        current = hook.get_alias_version(self.pipeline)
        if current is None:
            raise AirflowSkipException(_no_model_message(self.pipeline, settings.CHAMPION_ALIAS))
        self.log.info("%s@%s is v%s", self.pipeline, settings.CHAMPION_ALIAS, current.version)
        return str(current.version)

    def _training_spec(self, hook: Any, version: str) -> tuple[TrainingSpec, str | None]:
        """The feature lists and task recorded when ``version`` was trained, and its run id."""
        mv = hook.get_version(self.pipeline, version)
        if mv is None:
            raise AirflowFailException(
                f"model {self.pipeline} v{version} does not exist in the registry; "
                "score with an existing version, or leave model unset to use the champion"
            )
        training = hook.load_training_spec(mv.run_id) if mv.run_id else None
        if training is None:
            raise AirflowFailException(
                f"{self.pipeline} v{version} has no {TRAINING_SPEC_ARTIFACT}, so its feature columns are "
                "unknown; was it trained by mlops-ops?"
            )
        return training, mv.run_id

    def _score(
        self,
        hook: Any,
        frame: Any,
        training: TrainingSpec,
        run_id: str | None,
        version: str,
        input_sha: str,
        ids: list[str],
    ) -> Any:
        """The model version's scores on ``frame``: a data verdict or an unusable model fails the task."""
        from mlops_ops.core.data import DataError, FeatureSet
        from mlops_ops.core.evaluation import score_model
        from mlops_ops.core.scoring import check_columns
        from mlops_ops.core.training import prepare_features
        from mlops_ops.errors import ModelError

        name = self.pipeline
        features = FeatureSet(training.numeric, training.categorical)
        schema = self.version_schema(run_id, training.raw)
        try:
            check_columns(
                list(frame.columns), features=features.all, id_columns=ids, model=f"{name} v{version}"
            )
            x = prepare_features(frame, features, schema, where=f"snapshot {input_sha[:12]}")
        except DataError as err:
            raise AirflowFailException(
                f"batch scoring of pipeline {name!r} (snapshot {input_sha[:12]}) cannot proceed: {err}"
            ) from None
        model = hook.load_sklearn_model(model_version_uri(name, version))
        try:
            return score_model(model, x, training.task)
        except (AttributeError, TypeError, ValueError) as err:  # e.g. an estimator that cannot predict
            raise ModelError(
                f"{name} v{version} cannot score snapshot {input_sha[:12]} ({type(err).__name__}: {err}); "
                "score with another version, or retrain this one"
            ) from None

    def _log_summary(self, out: Any, task: str, version: str, input_sha: str) -> None:
        if task == "classification" and out["probability"].notna().any():
            self.log.info(
                "scored %d rows of snapshot %s with %s v%s: mean probability %.4f",
                len(out),
                input_sha[:12],
                self.pipeline,
                version,
                float(out["probability"].mean()),
            )
        else:
            self.log.info(
                "scored %d rows of snapshot %s with %s v%s", len(out), input_sha[:12], self.pipeline, version
            )
            if task == "classification":
                self.log.warning("the estimator has no predict_proba: the probability column is empty")

    def _write(self, directory: Any, data: bytes, **manifest_fields: Any) -> tuple[Any, Any, dict[str, Any]]:
        """Replace the interval's predictions, then its manifest, each atomically."""
        import hashlib

        from mlops_ops.core.scoring import predictions_manifest
        from mlops_ops.hooks.storage import remove_temporaries, write_atomic, write_json_atomic

        stale = remove_temporaries(directory)
        if stale:
            self.log.info(
                "removed %d temporary file(s) left by an interrupted attempt in %s", stale, directory
            )
        path, manifest_path = directory / PREDICTIONS_FILE, directory / MANIFEST_FILE
        replacing = manifest_path.exists() or path.exists()
        write_atomic(path, data)
        document = predictions_manifest(
            predictions_uri=str(path),
            predictions_sha256=hashlib.sha256(data).hexdigest(),
            created=dt.datetime.now(dt.UTC),
            **manifest_fields,
        )
        write_json_atomic(manifest_path, document)
        self.log.info("%s %s (%d rows)", "replaced" if replacing else "wrote", path, document["rows"])
        return path, manifest_path, document


def _utc(value: Any) -> dt.datetime | None:
    """A context datetime (pendulum, or None for a run without a data interval) as a UTC datetime."""
    if value is None:
        return None
    return dt.datetime.fromtimestamp(value.timestamp(), tz=dt.UTC)
