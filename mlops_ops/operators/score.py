"""Batch scoring: pin the champion's version, then score a snapshot with exactly that version."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from mlops_ops import settings
from mlops_ops.artifacts import TRAINING_SPEC_ARTIFACT, TrainingSpec
from mlops_ops.assets import predictions_asset
from mlops_ops.core.model_uri import model_version_uri
from mlops_ops.links import MlflowModelVersionLink, ReportLink
from mlops_ops.operators.base import MlopsBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

PREDICTIONS_FILE = "predictions.parquet"
_TMP_MARK = ".tmp-"  # as mlops_ops.hooks.storage names temporaries, so remove_temporaries finds them
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
            self.skip(_no_model_message(self.pipeline, self.alias))
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
    ``x-mlops://<pipeline>/predictions`` asset event with extra ``version``, ``rows``,
    ``interval`` and ``uri``.

    :param snapshot: the ingest task's result or a snapshot URI (templated).
    :param model: the version to score with (templated): a result with ``version`` (from
        :class:`ResolveChampionOperator` or the training task), or a version number. ``None``
        resolves the ``champion`` alias when the task starts, and skips if there is none.
    :param id_columns: input columns copied into the predictions, first, e.g. a customer id.
    :param explain_top_k: add each row's ``k`` largest SHAP contributions (``top<i>_feature``,
        ``top<i>_contribution``, in the version's explainer output space, see
        docs/explanations.md); 0: none.
    :param explain_max_rows: only the first this many rows are explained; later rows get nulls.
    """

    template_fields: Sequence[str] = ("snapshot", "model")
    template_fields_renderers = {"model": "json"}
    operator_extra_links = (MlflowModelVersionLink(), ReportLink())

    def __init__(
        self,
        *,
        snapshot: Any,
        model: Any = None,
        id_columns: Sequence[str] | None = None,
        explain_top_k: int = 0,
        explain_max_rows: int = 10_000,
        **kwargs: Any,
    ) -> None:
        if "outlets" not in kwargs and "pipeline" in kwargs:
            kwargs["outlets"] = [predictions_asset(kwargs["pipeline"])]
        super().__init__(**kwargs)
        self.snapshot = snapshot
        self.model = model
        self.id_columns = id_columns
        self.explain_top_k = explain_top_k
        self.explain_max_rows = explain_max_rows

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops.core.scoring import interval_doc, interval_key

        hook = self.mlflow_hook
        name = self.pipeline
        version = self._version(hook)
        training, run_id = self._training_spec(hook, version)
        ids = list(self.id_columns or ())
        data_path, snapshot = self._verified_snapshot()
        input_sha = str(snapshot["sha256"])
        model_uri = model_version_uri(name, version)
        start, end = _utc(context.get("data_interval_start")), _utc(context.get("data_interval_end"))
        lineage = self.lineage(context)
        directory = self.storage.predictions_dir(interval_key(start, lineage["airflow.run_id"]))
        path, scored = self._score(
            hook, directory, data_path, training, run_id, version, input_sha, ids, start, end
        )
        self._log_summary(scored, training.task, version, input_sha)
        manifest_path, document = self._write_manifest(
            directory,
            path,
            scored,
            pipeline=name,
            model_version=version,
            model_uri=model_uri,
            task=training.task,
            rows=scored.rows,
            columns=scored.columns,
            input_sha256=input_sha,
            input_uri=str(snapshot.get("uri", "")),
            interval_start=start,
            interval_end=end,
            positive=scored.positive,
            lineage=lineage,
        )
        report_uri = self._report(context, document, snapshot)
        interval: dict[str, Any] | None = interval_doc(start, end)
        extra: dict[str, Any] = {
            "version": version,
            "rows": scored.rows,
            "interval": interval,
            "uri": str(path),
        }
        for asset in self.outlets:
            if getattr(asset, "uri", "").endswith("/predictions"):
                context["outlet_events"][asset].extra = extra
        return {
            "uri": str(path),
            "manifest_uri": str(manifest_path),
            "rows": scored.rows,
            "model_name": name,
            "version": version,
            "input_sha256": input_sha,
            "interval": interval,
            "created": document["created"],
            "report_uri": report_uri,
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
            self.skip(_no_model_message(self.pipeline, settings.CHAMPION_ALIAS))
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

    def _verified_snapshot(self) -> tuple[Any, dict[str, Any]]:
        """The snapshot's data file, its bytes checked against the manifest, and the manifest.

        Missing or damaged: the task fails once, naming the snapshot and the fix.
        """
        from mlops_ops.hooks.storage import verify_snapshot_file

        try:
            return verify_snapshot_file(self.snapshot, self.storage.conn_id)
        except (FileNotFoundError, ValueError) as err:
            raise AirflowFailException(str(err)) from None

    def _score(
        self,
        hook: Any,
        directory: Any,
        data_path: Any,
        training: TrainingSpec,
        run_id: str | None,
        version: str,
        input_sha: str,
        ids: list[str],
        start: dt.datetime | None,
        end: dt.datetime | None,
    ) -> tuple[Any, Any]:
        """Score the snapshot batch by batch into the interval's ``predictions.parquet``.

        The row groups go to a temporary file that is moved into place once every batch is
        scored: a data verdict (fails the task), an unusable model (:class:`ModelError`) or a
        storage error (retried) leaves the previous predictions as they were.
        """
        from mlops_ops.core.data import DataError, FeatureSet
        from mlops_ops.core.scoring import check_columns
        from mlops_ops.core.scoring_stream import open_parquet, score_parquet
        from mlops_ops.errors import ModelError

        name = self.pipeline
        features = FeatureSet(training.numeric, training.categorical)
        schema = self.version_schema(run_id, training.raw)
        where = f"snapshot {input_sha[:12]}"

        def verdict(err: Exception) -> AirflowFailException:
            return AirflowFailException(f"batch scoring of pipeline {name!r} ({where}) cannot proceed: {err}")

        with data_path.open("rb") as source:
            file = open_parquet(source)
            try:
                check_columns(
                    file.schema_arrow.names, features=features.all, id_columns=ids, model=f"{name} v{version}"
                )
            except DataError as err:
                raise verdict(err) from None
            model = hook.load_sklearn_model(model_version_uri(name, version))
            background = self._explain_background(hook, run_id) if self.explain_top_k else None

            def write(sink: Any) -> Any:
                try:
                    return score_parquet(
                        file,
                        sink,
                        model=model,
                        task=training.task,
                        schema=schema,
                        id_columns=ids,
                        model_version=version,
                        input_sha256=input_sha,
                        interval_start=start,
                        interval_end=end,
                        where=where,
                        explain_top_k=self.explain_top_k,
                        explain_max_rows=self.explain_max_rows,
                        explain_background=background,
                    )
                except DataError as err:
                    raise verdict(err) from None
                except (AttributeError, TypeError, ValueError) as err:  # an estimator that cannot predict
                    raise ModelError(
                        f"{name} v{version} cannot score {where} ({type(err).__name__}: {err}); "
                        "score with another version, or retrain this one"
                    ) from None

            return self._write_streamed(directory, write)

    def _explain_background(self, hook: Any, run_id: str | None) -> Any:
        """The version's stored SHAP background rows (None: each batch is its own background)."""
        from mlops_ops.artifacts import SHAP_IMPORTANCE_ARTIFACT
        from mlops_ops.core.explain import stored_background

        profile = hook.load_dict(run_id, SHAP_IMPORTANCE_ARTIFACT) if run_id else None
        return stored_background(profile) if profile else None

    def _write_streamed(self, directory: Any, write: Any) -> tuple[Any, Any]:
        """Run ``write(file)`` on a temporary sibling of ``predictions.parquet``, then move it in place."""
        import uuid

        from mlops_ops.hooks.storage import remove_temporaries

        stale = remove_temporaries(directory)
        if stale:
            self.log.info(
                "removed %d temporary file(s) left by an interrupted attempt in %s", stale, directory
            )
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / PREDICTIONS_FILE
        tmp = directory / f"{PREDICTIONS_FILE}{_TMP_MARK}{uuid.uuid4().hex}"
        try:
            with tmp.open("wb") as fh:
                scored = write(fh)
            tmp.move(path)
        except BaseException:
            try:
                if tmp.exists():
                    tmp.unlink()
            except OSError:  # the original error matters more; remove_temporaries cleans up later
                self.log.warning("could not remove %s", tmp)
            raise
        return path, scored

    def _log_summary(self, scored: Any, task: str, version: str, input_sha: str) -> None:
        if scored.explained:
            self.log.info(
                "top-%d SHAP contributions for the first %d row(s) (%s explainer, %s; budget %d rows)",
                scored.explained["k"],
                scored.explained["rows"],
                scored.explained["explainer"],
                scored.explained["output"],
                scored.explained["max_rows"],
            )
        if task == "classification" and scored.probability_rows:
            self.log.info(
                "scored %d rows of snapshot %s with %s v%s: mean probability %.4f",
                scored.rows,
                input_sha[:12],
                self.pipeline,
                version,
                scored.probability_sum / scored.probability_rows,
            )
        else:
            self.log.info(
                "scored %d rows of snapshot %s with %s v%s",
                scored.rows,
                input_sha[:12],
                self.pipeline,
                version,
            )
            if task == "classification":
                self.log.warning("the estimator has no predict_proba: the probability column is empty")

    def _report(self, context: Context, manifest: dict[str, Any], snapshot: dict[str, Any]) -> str:
        """The scoring report (JSON and HTML) under reports/: the predictions' manifest and the
        data interval scored; returns its URI."""
        from mlops_ops.core.reports import render_html

        judged = manifest.get("data_interval")
        if judged:  # the interval the predictions are stored under
            judged = {**judged, "how": "the run's data interval"}
        doc = {**manifest, "data_interval": judged or self.judged_interval(context, snapshot)}
        summary = {
            "model version": manifest.get("model_version"),
            "rows scored": manifest.get("rows"),
            "input snapshot": manifest.get("input_sha256"),
            "predictions": manifest.get("predictions_uri"),
        }
        html = render_html(f"Batch scoring of {self.pipeline}", "success", summary, document=doc)
        return self.write_report(context, doc, html)

    def _write_manifest(
        self, directory: Any, path: Any, scored: Any, **manifest_fields: Any
    ) -> tuple[Any, dict[str, Any]]:
        """Replace the interval's manifest atomically (after its predictions file)."""
        from mlops_ops.core.scoring import predictions_manifest
        from mlops_ops.hooks.storage import write_json_atomic

        manifest_path = directory / MANIFEST_FILE
        replacing = manifest_path.exists()
        document = predictions_manifest(
            predictions_uri=str(path),
            predictions_sha256=scored.sha256,
            created=dt.datetime.now(dt.UTC),
            **manifest_fields,
        )
        write_json_atomic(manifest_path, document)
        self.log.info("%s %s (%d rows)", "replaced" if replacing else "wrote", path, document["rows"])
        return manifest_path, document


def _utc(value: Any) -> dt.datetime | None:
    """A context datetime (pendulum, or None for a run without a data interval) as a UTC datetime."""
    if value is None:
        return None
    return dt.datetime.fromtimestamp(value.timestamp(), tz=dt.UTC)
