"""TrainModelOperator: fit, log to MLflow with lineage, register a model version."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.artifacts import (
    ESTIMATION_REFERENCE_ARTIFACT,
    GATE_DECISIONS,
    PREDICTION_PROFILE_ARTIFACT,
    PROFILE_ARTIFACT,
    TRAINING_SPEC_ARTIFACT,
    TrainingSpec,
)
from mlops_ops.core.model_uri import model_version_uri
from mlops_ops.links import MlflowModelVersionLink, MlflowRunLink
from mlops_ops.operators.base import MlopsBaseOperator, parse_bool

if TYPE_CHECKING:
    from airflow.sdk import Context


class TrainModelOperator(MlopsBaseOperator):
    """Train the estimator in an automatic preprocessing Pipeline and register it in MLflow.

    Numeric features are median-imputed and scaled; categorical features are imputed and one-hot
    encoded, with unknown categories mapped to the infrequent bucket at prediction time. Rows are
    split into training and holdout by a seeded hash of their content (the same row always lands
    on the same side). The run records params, holdout metrics, the training snapshot
    (``log_input``), a signature and input example, the lineage tags (docs/architecture.md, "MLflow lineage") and the drift
    reference profile; the model is registered as a new version of ``<pipeline>``.

    When a version was already trained on the same snapshot with the same training configuration
    and gated, the task skips (training is deterministic: nothing new to learn), unless ``force``
    is true; when that version has no gate decision yet, the task returns it, so evaluate and
    deploy gate it. A retry after an attempt that registered a version returns that version:
    registration never duplicates. Feature names are checked against MLflow's name limits before
    anything is logged.

    :param snapshot: the ingest task's result or a snapshot URI (templated).
    :param target: target column.
    :param estimator: import path of a scikit-learn estimator class.
    :param estimator_params: constructor parameters of the estimator.
    :param numeric_features: numeric feature columns (both None: inferred).
    :param categorical_features: categorical feature columns.
    :param column_types: declared logical types by column (``features.types``): ``numeric``,
        ``integer``, ``boolean``, ``categorical``, ``datetime``, ``id``, ``ignored``.
    :param id_columns: columns kept exactly and never used as features (ids).
    :param task: ``auto``, ``classification`` or ``regression``.
    :param holdout_fraction: share of rows held out for evaluation.
    :param seed: seed of the split and of the estimator's ``random_state``.
    :param max_training_rows: fit on at most this many rows of the training side (a seeded sample
        stratified by the target; ``model.max_training_rows``), recorded in the run's params, its
        ``mlops.training_sample`` tag and ``training_spec.json``. Default: every row.
    :param force: train even when a version already learnt from this snapshot (templated).
    :param reason: why this training runs, recorded as a tag (templated).
    """

    template_fields: Sequence[str] = ("snapshot", "force", "reason")
    operator_extra_links = (MlflowRunLink(), MlflowModelVersionLink())

    def __init__(
        self,
        *,
        snapshot: Any,
        target: str,
        estimator: str,
        estimator_params: dict[str, Any] | None = None,
        numeric_features: list[str] | None = None,
        categorical_features: list[str] | None = None,
        column_types: dict[str, str] | None = None,
        id_columns: list[str] | None = None,
        task: str = "auto",
        holdout_fraction: float = 0.25,
        seed: int = 42,
        max_training_rows: int | None = None,
        force: bool | str = False,
        reason: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.snapshot = snapshot
        self.target = target
        self.estimator = estimator
        self.estimator_params = estimator_params
        self.numeric_features = numeric_features
        self.categorical_features = categorical_features
        self.column_types = column_types
        self.id_columns = id_columns
        self.task = task
        self.holdout_fraction = holdout_fraction
        self.seed = seed
        self.max_training_rows = max_training_rows
        self.force = force
        self.reason = reason

    def _config_sha256(self) -> str:
        from mlops_ops.config import training_fingerprint

        return training_fingerprint(
            target=self.target,
            numeric=self.numeric_features,
            categorical=self.categorical_features,
            estimator=self.estimator,
            params=self.estimator_params,
            task=self.task,
            holdout_fraction=self.holdout_fraction,
            seed=self.seed,
            types={**{c: "id" for c in self.id_columns or ()}, **(self.column_types or {})} or None,
            max_training_rows=self.max_training_rows,
        )

    def execute(self, context: Context) -> dict[str, Any]:
        frame, manifest = self.read_snapshot(self.snapshot)
        config_sha = self._config_sha256()
        hook = self.mlflow_hook
        existing = self._already_trained(hook, context, manifest["sha256"], config_sha)
        if existing is not None:
            return existing
        schema, result, coerced = self._fit(frame, f"snapshot {manifest['sha256'][:12]}")
        logged = self._log_run(hook, context, frame, manifest, config_sha, schema, result, coerced)
        self.log.info(
            "registered %s v%s (run %s); holdout %s",
            self.pipeline,
            logged["version"],
            logged["run_id"],
            {k: round(v, 4) for k, v in result.metrics.items()},
        )
        return {
            **logged,
            "model_name": self.pipeline,
            "metrics": result.metrics,
            "snapshot_sha256": manifest["sha256"],
            "run_url": hook.run_url(logged["experiment_id"], logged["run_id"]),
            "model_url": hook.model_version_url(self.pipeline, logged["version"]),
        }

    # -- steps -----------------------------------------------------------------------------------

    def _fit(self, frame: Any, where: str) -> tuple[Any, Any, Any]:
        """Infer the schema, check the names, fit; returns (schema, ``TrainingResult``, coerced features).

        A data or training verdict fails the task (no retry can change it).
        """
        from mlops_ops.core.data import DataError, resolve_features
        from mlops_ops.core.naming import check_mlflow_names
        from mlops_ops.core.schema_inference import infer_schema
        from mlops_ops.core.training import TrainingError, prepare_features, train_model

        try:
            resolve_features(frame, self.target, self.numeric_features, self.categorical_features)
            schema = infer_schema(
                frame,
                self.target,
                numeric=self.numeric_features,
                categorical=self.categorical_features,
                types=self.column_types,
                id_columns=self.id_columns or (),
            )
            features = schema.feature_set
            check_mlflow_names(features.all)
            for column, why in schema.excluded.items():
                self.log.info("column %r is not a feature: %s", column, why)
            result = train_model(
                frame,
                target=self.target,
                features=features,
                estimator=self.estimator,
                params=dict(self.estimator_params or {}),
                task=self.task,
                holdout_fraction=self.holdout_fraction,
                seed=self.seed,
                schema=schema,
                max_training_rows=self.max_training_rows,
            )
            coerced = prepare_features(frame, features, schema, where=where)
        except (DataError, TrainingError) as err:
            raise AirflowFailException(
                f"training of pipeline {self.pipeline!r} cannot proceed: {err}"
            ) from None
        return schema, result, coerced

    def _log_run(
        self,
        hook: Any,
        context: Context,
        frame: Any,
        manifest: dict[str, Any],
        config_sha: str,
        schema: Any,
        result: Any,
        coerced: Any,
    ) -> dict[str, Any]:
        """Log the run (params, metrics, lineage tags, profiles, schema, spec) and register the version."""
        from mlops_ops import __version__
        from mlops_ops.core.drift.profile_file import prediction_profile_parquet, profile_parquet
        from mlops_ops.core.schema import SCHEMA_ARTIFACT, mlflow_signature
        from mlops_ops.hooks.storage import verify_snapshot_file

        features = schema.feature_set
        # both profiles read the stored snapshot (verified again) a column or a row batch at a time
        data_path, _ = verify_snapshot_file(self.snapshot, self.storage.conn_id)
        where = f"snapshot {manifest['sha256'][:12]}"
        with data_path.open("rb") as fh:
            profile = profile_parquet(fh, schema, where=where)
            # the model's own outputs on its training snapshot: the reference of prediction drift
            prediction_profile = prediction_profile_parquet(
                result.model, fh, schema, result.task, where=where
            )
        tags = {
            **self.lineage(context),
            "mlops.pipeline": self.pipeline,
            "mlops.snapshot_uri": manifest["uri"],
            "mlops.snapshot_sha256": manifest["sha256"],
            "mlops.training_config_sha256": config_sha,
            "mlops.code_version": f"mlops-ops {__version__}",
            "mlops.task": result.task,
            "mlops.trigger_reason": self._reason(context),
            "mlops.forced": str(parse_bool(self.force)).lower(),
        }
        if result.sample:
            tags["mlops.training_sample"] = (
                f"{result.sample['rows']} of {result.sample['available']} training rows "
                f"(max_training_rows={result.sample['cap']}, seed {result.sample['seed']}, "
                f"stratified by {result.sample['stratified_by']!r})"
            )
        explained = self._explain(result, frame, schema, where)
        training_spec = TrainingSpec(
            target=self.target,
            numeric=tuple(features.numeric),
            categorical=tuple(features.categorical),
            task=result.task,
            holdout_fraction=self.holdout_fraction,
            seed=self.seed,
            snapshot_uri=manifest["uri"],
            raw={
                "schema": SCHEMA_ARTIFACT,
                "estimator": self.estimator,
                "snapshot_sha256": manifest["sha256"],
                "n_train": result.n_train,
                "n_holdout": result.n_holdout,
                **({"training_sample": result.sample} if result.sample else {}),
            },
        )
        return hook.log_training_run(  # type: ignore[no-any-return]
            experiment=self.pipeline,
            model_name=self.pipeline,
            model=result.model,
            params={
                "estimator": self.estimator,
                **result.params,
                "holdout_fraction": self.holdout_fraction,
                "seed": self.seed,
                "n_train": result.n_train,
                "n_holdout": result.n_holdout,
                **(
                    {
                        "max_training_rows": self.max_training_rows,
                        "n_train_available": result.sample["available"],
                    }
                    if result.sample
                    else {"max_training_rows": self.max_training_rows}
                    if self.max_training_rows
                    else {}
                ),
            },
            metrics=result.metrics,
            tags=tags,
            dataset=frame,
            dataset_source=manifest["uri"],
            dataset_name=f"{self.pipeline}@{manifest['sha256'][:12]}",
            target=self.target,
            input_example=frame[features.all].head(5),
            signature_output=result.predictions_example,
            signature=mlflow_signature(schema, result.predictions_example),
            artifacts={
                SCHEMA_ARTIFACT: schema.to_dict(),
                PROFILE_ARTIFACT: profile.to_dict(),
                PREDICTION_PROFILE_ARTIFACT: prediction_profile.to_dict(),
                TRAINING_SPEC_ARTIFACT: training_spec.to_dict(),
                **self._estimation_reference(result),
                **explained["artifacts"],
            },
            figures=explained["figures"],
            run_metrics=explained["metrics"],
            run_name=self.run_name(context, "train", manifest["sha256"][:8]),
        )

    def _estimation_reference(self, result: Any) -> dict[str, Any]:
        """The CBPE reference artifact (holdout probabilities, labels, metrics) of a binary
        classifier with probabilities; nothing for other models (their estimate then skips)."""
        from mlops_ops.core.estimation import reference_document

        doc = reference_document(
            result.task, result.holdout_target, result.holdout_scores, result.metrics, seed=self.seed
        )
        return {ESTIMATION_REFERENCE_ARTIFACT: doc} if doc is not None else {}

    def _explain(self, result: Any, frame: Any, schema: Any, where: str) -> dict[str, Any]:
        """SHAP profile of the model on a seeded sample of the holdout (``core.explain``): the
        artifact, its bar chart and ``shap.<column>`` metrics. A model shap cannot explain is
        logged without them (attribution drift then skips it), never refused."""
        import time

        from mlops_ops.artifacts import SHAP_IMPORTANCE_ARTIFACT, SHAP_IMPORTANCE_PLOT_ARTIFACT
        from mlops_ops.core.explain import ExplanationError, importance_figure, reference_profile
        from mlops_ops.core.naming import SHAP_PREFIX, mlflow_keys
        from mlops_ops.core.training import prepare_features, split

        started = time.perf_counter()
        _, holdout = split(frame, self.holdout_fraction, self.seed)
        try:
            x = prepare_features(holdout, schema.feature_set, schema, where=where)
            profile = reference_profile(result.model, x, task=result.task, seed=self.seed)
        except ExplanationError as err:
            self.log.warning("no SHAP explanation for this model: %s", err)
            return {"artifacts": {}, "figures": {}, "metrics": {}}
        except Exception:  # shap failing on an estimator it claims: the model is still worth logging
            self.log.warning("no SHAP explanation for this model: shap failed", exc_info=True)
            return {"artifacts": {}, "figures": {}, "metrics": {}}
        keys = mlflow_keys(SHAP_PREFIX, profile["mean_abs_shap"])  # long or odd names stay valid
        figure = importance_figure(
            profile,
            f"{self.pipeline}: mean |SHAP| on {profile['rows']} holdout rows ({profile['explainer']})",
        )
        self.log.info(
            "SHAP (%s explainer, %s) on %d holdout row(s) in %.2f s: %s",
            profile["explainer"],
            profile["output"],
            profile["rows"],
            time.perf_counter() - started,
            {k: round(v, 4) for k, v in profile["mean_abs_shap"].items()},
        )
        return {
            "artifacts": {SHAP_IMPORTANCE_ARTIFACT: profile},
            "figures": {SHAP_IMPORTANCE_PLOT_ARTIFACT: figure},
            "metrics": {keys[k]: v for k, v in profile["mean_abs_shap"].items()},
        }

    def _reason(self, context: Context) -> str:
        """The form's reason, else the retrain request's reason (asset-triggered runs), else the run type."""
        reason = str(self.reason or "")
        if reason.startswith("DagRunType."):  # the task SDK's enum renders with its class name
            reason = reason.removeprefix("DagRunType.").lower()
        if reason not in ("", "asset_triggered"):
            return reason
        events = context.get("triggering_asset_events") or {}
        try:
            for asset in events:
                if not str(getattr(asset, "uri", "")).endswith("/retrain"):
                    continue
                for event in reversed(list(events[asset])):
                    extra = getattr(event, "extra", None) or {}
                    if extra.get("reason"):
                        return f"retrain requested by monitoring: {extra['reason']}"[:5000]
        except (AttributeError, TypeError, KeyError) as err:  # no events to read: keep the run type
            self.log.info("could not read the triggering asset events: %s", err)
        return reason or "scheduled"

    def _already_trained(
        self, hook: Any, context: Context, snapshot_sha: str, config_sha: str
    ) -> dict[str, Any] | None:
        """The version this training already produced, when there is nothing new to learn.

        * A version registered by this very task instance (an attempt killed after registering,
          found through its run's lineage tags): returned, even with ``force``; never a duplicate.
        * Without ``force``, the latest version trained on the same snapshot with the same
          configuration (training is deterministic): if its gate decision is missing it is
          returned, so evaluate and deploy run on it; if it was gated, the task skips.
        """
        lineage = {
            **self.lineage(context),
            "mlops.snapshot_sha256": snapshot_sha,
            "mlops.training_config_sha256": config_sha,
        }
        own = hook.find_own_version(self.pipeline, self.pipeline, lineage)
        if own is not None:
            self.log.warning(
                "v%s was registered by an earlier attempt of this task (run %s): using it, not registering "
                "a duplicate",
                own.version,
                own.run_id,
            )
            return self._result(hook, own, snapshot_sha)
        if parse_bool(self.force):
            return None
        same = hook.find_versions(
            self.pipeline, {"mlops.snapshot_sha256": snapshot_sha, "mlops.training_config_sha256": config_sha}
        )
        if not same:
            return None
        v = same[-1]
        gate = (v.tags or {}).get("mlops.gate")
        if gate not in GATE_DECISIONS:
            self.log.warning(
                "v%s was trained on this snapshot (%s) with this configuration but has no gate decision: "
                "handing it to evaluation instead of training again",
                v.version,
                snapshot_sha[:12],
            )
            return self._result(hook, v, snapshot_sha)
        self.skip(
            f"v{v.version} was already trained on this snapshot ({snapshot_sha[:12]}) with this configuration "
            f"(gate: {gate}): nothing new to learn. Trigger with force=true to retrain anyway"
        )

    def _result(self, hook: Any, version: Any, snapshot_sha: str) -> dict[str, Any]:
        """The task's result for an existing version (the same keys as after training)."""
        experiment_id = hook.run_experiment_id(version.run_id)
        tags = version.tags or {}
        metrics = {
            k.removeprefix("mlops.metric."): float(v)
            for k, v in tags.items()
            if k.startswith("mlops.metric.")
        }
        number = str(version.version)
        return {
            "run_id": version.run_id,
            "experiment_id": experiment_id,
            "version": number,
            "model_uri": model_version_uri(self.pipeline, number),
            "model_name": self.pipeline,
            "metrics": metrics,
            "snapshot_sha256": snapshot_sha,
            "run_url": hook.run_url(experiment_id, version.run_id),
            "model_url": hook.model_version_url(self.pipeline, number),
            "existing": True,
        }
