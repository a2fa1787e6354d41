"""MlflowHook: the tracking server and the model registry, behind one Airflow connection.

Tracking URI, in order: the Airflow connection ``mlflow_default`` (conn type ``mlflow``), the
``MLFLOW_TRACKING_URI`` environment variable, the embedded ``sqlite:///<MLOPS_HOME>/mlflow.db``.
mlflow is imported inside methods: importing this module costs nothing at DAG parse time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from mlops_ops import settings
from mlops_ops.core.jsonsafe import json_safe
from mlops_ops.core.model_uri import model_version_uri
from mlops_ops.core.registry import ChampionChangedError
from mlops_ops.errors import MlflowUnavailableError, StoredDocumentError, damaged
from mlops_ops.hooks.mlflow_connection import MlflowConnectionMixin
from mlops_ops.services.promotion import Promotion

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from mlops_ops.artifacts import TrainingSpec
    from mlops_ops.core.registry import Claimant
    from mlops_ops.hooks.ledger import DeploymentLedger

__all__ = ["ChampionChangedError", "MlflowHook", "MlflowUnavailableError", "Promotion"]

log = logging.getLogger(__name__)

#: MLflow 3's UI lays an experiment out by this tag; ours are classic (tabular) model development.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


class MlflowHook(MlflowConnectionMixin, BaseHook):
    """Talks to an MLflow tracking server and model registry.

    Connection fields: ``host`` holds the tracking URI (``http://mlflow:5000``) or a host name
    (then ``schema`` is the scheme and ``port`` the port); ``login``/``password`` for basic auth;
    extras ``tracking_uri``, ``registry_uri``, ``ui_url`` (base URL for links in the Airflow UI)
    and ``token`` (bearer token). The connection form's labels and placeholders are provider
    metadata (``mlops_ops.provider``), which Airflow 3.2+ reads instead of hook methods.

    :param mlflow_conn_id: Airflow connection id; when it does not exist the hook falls back to
        ``MLFLOW_TRACKING_URI`` and then to the embedded SQLite store.
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "mlflow"
    hook_name = "MLflow"

    def __init__(self, mlflow_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id

    # -- experiments and runs --------------------------------------------------------------------

    def ensure_experiment(self, name: str) -> str:
        """The experiment's id, creating it (with a local artifact root when embedded).

        The experiment is marked as classic model development (the tag ``mlflow.experimentKind``),
        so that MLflow 3's UI opens it on its runs and models, not in GenAI mode; an experiment
        someone else created keeps the kind it was given.
        """
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            if EXPERIMENT_KIND_TAG not in (exp.tags or {}):
                self.client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
            return exp.experiment_id
        location = None
        if self.embedded:
            location = (settings.embedded_artifact_root() / name).as_uri()
        try:
            return self.client.create_experiment(
                name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
            )
        except Exception:
            exp = self.client.get_experiment_by_name(name)  # created concurrently
            if exp is None:
                raise
            return exp.experiment_id

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return f"{self.ui_url}/#/experiments/{experiment_id}/runs/{run_id}"

    def model_version_url(self, name: str, version: str) -> str:
        return f"{self.ui_url}/#/models/{name}/versions/{version}"

    # -- registry ------------------------------------------------------------------------------

    def get_alias_version(self, name: str, alias: str = settings.CHAMPION_ALIAS) -> ModelVersion | None:
        """The version an alias points at, or None if the model or the alias does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(name, alias)
        except MlflowException as err:
            code = getattr(err, "error_code", "")
            if "RESOURCE_DOES_NOT_EXIST" in str(code) or "INVALID_PARAMETER_VALUE" in str(code):
                return None
            raise

    def set_champion(
        self, name: str, version: str, *, expected: str | None, alias: str = settings.CHAMPION_ALIAS
    ) -> str | None:
        """Move ``alias`` to ``version`` if it still points at ``expected`` (None: no champion).

        Returns the version it pointed at before. Raises :class:`ChampionChangedError` when the
        alias moved since the evaluation that justified this promotion. This is a re-read and a
        set, with a window between them: the operators use the strict :meth:`promote` instead.
        """
        current = self.get_alias_version(name, alias)
        current_v = str(current.version) if current is not None else None  # int on SQLite, str over REST
        if str(current_v) != str(expected):
            raise ChampionChangedError(
                f"champion changed since evaluation: expected {_v(expected)}, found {_v(current_v)}; "
                "re-run the evaluation against the new champion"
            )
        self.client.set_registered_model_alias(name, alias, str(version))
        after = self.get_alias_version(name, alias)
        if after is None or str(after.version) != str(version):
            raise ChampionChangedError(
                f"champion changed while promoting v{version}: the alias now points at "
                f"{_v(after.version if after else None)}"
            )
        return current_v

    def promote(
        self,
        name: str,
        version: str,
        *,
        expected: str | None,
        ledger: DeploymentLedger,
        claimant: Claimant,
        alias: str = settings.CHAMPION_ALIAS,
        **kwargs: Any,
    ) -> Promotion:
        """Strict compare-and-set of ``alias`` over ``ledger``: :meth:`PromotionService.promote
        <mlops_ops.services.promotion.PromotionService.promote>` (its keyword arguments)."""
        from mlops_ops.services.promotion import PromotionService

        return PromotionService(self, ledger, alias=alias).promote(
            name, version, expected=expected, claimant=claimant, **kwargs
        )

    def complete_pending(
        self, name: str, ledger: DeploymentLedger, alias: str = settings.CHAMPION_ALIAS
    ) -> list[int]:
        """Record a promotion whose alias move happened but whose record is missing:
        :meth:`PromotionService.complete_pending <mlops_ops.services.promotion.PromotionService.complete_pending>`."""
        from mlops_ops.services.promotion import PromotionService

        return PromotionService(self, ledger, alias=alias).complete_pending(name)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point ``alias`` of ``name`` at ``version`` (no check: :meth:`promote` does the checking)."""
        self.client.set_registered_model_alias(name, alias, str(version))

    def delete_alias(self, name: str, alias: str) -> bool:
        """Remove ``alias`` of ``name``; False if it did not exist (deleting twice is harmless)."""
        if self.get_alias_version(name, alias) is None:
            return False
        self.client.delete_registered_model_alias(name, alias)
        return True

    def tag_promoted(self, name: str, record: Any) -> None:
        """Tag a version with its ledger record (``mlops.promoted_at``, ``previous_champion``, ...)."""
        from mlflow.exceptions import MlflowException

        version = str(record["version"])
        tags = {
            "mlops.promoted_at": str(record.get("deployed_at") or ""),
            "mlops.previous_champion": str(record.get("previous_version") or ""),
            "mlops.ledger_seq": str(record.get("seq") or ""),
            "mlops.deploy_action": str(record.get("action") or "promote"),
        }
        for key, value in tags.items():
            try:
                self.client.set_model_version_tag(name, version, key, value)
            except MlflowException:
                # Completing a claim may race its own claimant writing the same tags; MLflow's
                # tag upsert is not atomic (a unique-key violation on PostgreSQL). Same value: done.
                if (self.client.get_model_version(name, version).tags or {}).get(key) != value:
                    self.client.set_model_version_tag(name, version, key, value)

    def find_versions(self, name: str, tags: dict[str, str]) -> list[ModelVersion]:
        """Versions of ``name`` carrying all of ``tags``, oldest first ([] if the model does not exist).

        Errors other than "does not exist" propagate (an outage is not "no version").
        """
        from mlflow.exceptions import MlflowException

        try:
            versions = self.client.search_model_versions(f"name = '{_quote(name)}'", max_results=10_000)
        except MlflowException as err:
            if _is_not_found(err):
                return []
            raise
        hits = [v for v in versions if all((v.tags or {}).get(k) == val for k, val in tags.items())]
        return sorted(hits, key=lambda v: int(v.version))

    def find_own_version(self, name: str, experiment: str, lineage: dict[str, str]) -> ModelVersion | None:
        """The version registered from a run carrying all of ``lineage``'s tags, if any.

        The run's tags are set when the run starts, before its model is registered, so this finds
        a version whose registering task was killed before it could tag the version. The version's
        missing tags are copied from ``lineage`` before it is returned.
        """
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            return None
        query = " and ".join(f"tags.`{k}` = '{_quote(v)}'" for k, v in lineage.items())
        runs = self.client.search_runs([exp.experiment_id], filter_string=query, max_results=100)
        found: list[ModelVersion] = []
        for run in runs:
            found += self.client.search_model_versions(
                f"name = '{_quote(name)}' and run_id = '{run.info.run_id}'", max_results=100
            )
        if not found:
            return None
        version = max(found, key=lambda v: int(v.version))
        self._tag_version(name, str(version.version), {**lineage, "mlops.run_id": str(version.run_id)})
        return self.client.get_model_version(name, str(version.version))

    def _tag_version(self, name: str, version: str, tags: dict[str, str]) -> None:
        """Set ``tags`` on a version, skipping those it already has with the same value."""
        have = self.client.get_model_version(name, version).tags or {}
        for key, value in tags.items():
            if have.get(key) != value:
                self.client.set_model_version_tag(name, version, key, value)

    def load_sklearn_model(self, uri: str) -> Any:
        """The scikit-learn model at ``uri`` (``models:/<name>/<version>``), in memory.

        Downloaded into a temporary directory that is removed once the model is loaded (MLflow's
        own default is a temporary directory it never removes, which would pile up on a worker).
        """
        import tempfile

        import mlflow.sklearn

        self._configure()
        with tempfile.TemporaryDirectory(prefix="mlops-model-") as local:
            return mlflow.sklearn.load_model(uri, dst_path=local)

    def load_pyfunc_model(self, uri: str) -> Any:
        """The model at ``uri`` as an MLflow pyfunc, in memory (as :meth:`load_sklearn_model`, for
        the online service, which serves any flavor)."""
        import tempfile

        import mlflow.pyfunc

        self._configure()
        with tempfile.TemporaryDirectory(prefix="mlops-model-") as local:
            return mlflow.pyfunc.load_model(uri, dst_path=local)

    def load_dict(self, run_id: str, artifact: str, *, required: Sequence[str] = ()) -> dict[str, Any] | None:
        """A JSON artifact of a run as a dict; None only when the artifact does not exist.

        :param required: keys the document must have.
        :raises StoredDocumentError: the artifact exists but is not a JSON object, or lacks a
            ``required`` key (a verdict naming the artifact and the run).
        Any other error (the server or the artifact store did not answer) propagates, so Airflow
        retries: an outage must not read as "no such document".
        """
        import json

        import mlflow.artifacts

        self._configure()
        uri = f"runs:/{run_id}/{artifact}"
        try:
            text = mlflow.artifacts.load_text(uri)
        except Exception as err:
            if _is_not_found(err):
                log.info("no %s in run %s: %s", artifact, run_id, err)
                return None
            raise
        try:
            doc = json.loads(text)
        except ValueError as err:
            raise damaged(f"MLflow artifact {artifact} of run {run_id}", err, _RETRAIN_FIX) from None
        if not isinstance(doc, dict):
            raise StoredDocumentError(
                f"MLflow artifact {artifact} of run {run_id} is not a JSON object; {_RETRAIN_FIX}"
            )
        missing = [k for k in required if k not in doc]
        if missing:
            raise StoredDocumentError(
                f"MLflow artifact {artifact} of run {run_id} has no {missing}; {_RETRAIN_FIX}"
            )
        return doc

    # -- reads and writes of one run or version: operators call these, never ``client`` --------

    def load_training_spec(self, run_id: str, *, split: bool = False) -> TrainingSpec | None:
        """The run's ``training_spec.json`` as a :class:`~mlops_ops.artifacts.TrainingSpec`.

        :param split: require the split's keys too (``TRAINING_SPLIT_KEYS``, for evaluation).
        :returns: None only when the run has no such artifact.
        :raises StoredDocumentError: the document is damaged or lacks a key its reader needs.
        """
        from mlops_ops.artifacts import (
            TRAINING_SPEC_ARTIFACT,
            TRAINING_SPEC_KEYS,
            TRAINING_SPLIT_KEYS,
            TrainingSpec,
        )

        required = TRAINING_SPLIT_KEYS if split else TRAINING_SPEC_KEYS
        doc = self.load_dict(run_id, TRAINING_SPEC_ARTIFACT, required=required)
        if doc is None:
            return None
        return TrainingSpec.from_dict(
            doc, required=required, where=f"MLflow artifact {TRAINING_SPEC_ARTIFACT} of run {run_id}"
        )

    def get_version(self, name: str, version: str) -> ModelVersion | None:
        """A registered version; None when the model or the version does not exist.

        Other errors (the server did not answer) propagate.
        """
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version(name, str(version))
        except MlflowException as err:
            if _is_not_found(err):
                return None
            raise

    def model_version(self, name: str, version: str) -> ModelVersion:
        """A registered version; the registry's errors (including "does not exist") propagate."""
        return self.client.get_model_version(name, str(version))

    def version_numbers(self, name: str) -> list[str]:
        """The version numbers of ``name``, ascending; [] when they cannot be listed (for messages)."""
        from mlflow.exceptions import MlflowException

        try:
            versions = self.client.search_model_versions(f"name = '{_quote(name)}'")
        except MlflowException:
            return []
        return sorted((str(v.version) for v in versions), key=int)

    def run_experiment_id(self, run_id: str) -> str:
        """The id of the experiment that holds run ``run_id``."""
        return str(self.client.get_run(run_id).info.experiment_id)

    def log_document(self, run_id: str, document: dict[str, Any], artifact: str) -> None:
        """Log ``document`` (made JSON-safe) as the artifact ``artifact`` of run ``run_id``."""
        self.client.log_dict(run_id, json_safe(document), artifact)

    def log_text(self, run_id: str, text: str, artifact: str) -> None:
        """Log ``text`` (an HTML report, say) as the artifact ``artifact`` of run ``run_id``."""
        self.client.log_text(run_id, text, artifact)

    def set_version_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        """Set ``tags`` on version ``version`` of ``name``, in order."""
        for key, value in tags.items():
            self.client.set_model_version_tag(name, str(version), key, value)

    def log_metrics(self, run_id: str, metrics: dict[str, float]) -> None:
        """Log ``metrics`` (key: value, step 0, now) to run ``run_id``, in batches of MLflow's limit."""
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        entries = [Metric(key, value, now, 0) for key, value in metrics.items()]
        for start in range(0, len(entries), 1000):  # MLflow's limit per batch
            self.client.log_batch(run_id, metrics=entries[start : start + 1000])

    def log_training_run(
        self,
        *,
        experiment: str,
        model_name: str,
        model: Any,
        params: dict[str, Any],
        metrics: dict[str, float],
        tags: dict[str, str],
        dataset: Any,
        dataset_source: str,
        dataset_name: str,
        target: str,
        input_example: Any,
        signature_output: Any,
        artifacts: dict[str, dict[str, Any]],
        signature: Any = None,
        run_name: str | None = None,
        pip_requirements: list[str] | None = None,
        figures: dict[str, Any] | None = None,
        run_metrics: dict[str, float] | None = None,
    ) -> dict[str, Any]:
        """Log one training run and register its model as a new version.

        ``figures``: matplotlib figures by artifact name (``explain/shap_importance.png``);
        ``run_metrics``: metrics logged as named (``shap.<column>``), not as holdout metrics.

        Registration is the last step, so a run that fails half-way registers nothing. Returns
        run id, experiment id, version and model URI.

        ``pip_requirements`` (``name==version`` strings) default to the installed versions of
        what the model's pickle refers to (:func:`mlops_ops.core.requirements.model_requirements`,
        milliseconds), so MLflow does not infer them by loading the model in a subprocess
        (seconds per model).
        """
        import mlflow
        import mlflow.sklearn
        from mlflow.data.pandas_dataset import from_pandas
        from mlflow.models import infer_signature

        from mlops_ops.core.requirements import model_requirements

        if pip_requirements is None:
            pip_requirements = model_requirements(model)

        experiment_id = self.ensure_experiment(experiment)
        # MLflow's own source tag would name the worker's entry-point script (a local path):
        # name the Airflow task instead, which any worker and any reader can resolve
        task = "/".join(str(tags[k]) for k in ("airflow.dag_id", "airflow.task_id") if tags.get(k))
        source = {
            "mlflow.source.type": "JOB",
            "mlflow.source.name": f"airflow:{task}" if task else "mlops-ops",
        }
        run_tags = {**source, **tags}
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=run_tags) as run:
            mlflow.log_params({k: _param(v) for k, v in params.items()})
            ds = from_pandas(dataset, source=dataset_source, targets=target, name=dataset_name)
            mlflow.log_input(ds, context="training")
            mlflow.log_metrics({f"holdout_{k}": v for k, v in metrics.items()})
            for name, doc in artifacts.items():
                mlflow.log_dict(json_safe(doc), name)
            for name, figure in (figures or {}).items():
                mlflow.log_figure(figure, name)
            if run_metrics:
                mlflow.log_metrics(run_metrics)
            if signature is None:
                signature = infer_signature(input_example, signature_output)
            info = mlflow.sklearn.log_model(
                sk_model=model,
                name="model",
                signature=signature,
                input_example=input_example,
                serialization_format="cloudpickle",
                pip_requirements=pip_requirements,
            )
            run_id = run.info.run_id
        version_tags = {
            **tags,
            **{f"mlops.metric.{metric}": f"{number:.6g}" for metric, number in metrics.items()},
            "mlops.run_id": run_id,
        }
        version = self.register_version(model_name, info.model_uri, run_id, version_tags)
        return {
            "run_id": run_id,
            "experiment_id": experiment_id,
            "version": version,
            "model_uri": model_version_uri(model_name, version),
        }

    def register_version(self, name: str, model_uri: str, run_id: str, tags: dict[str, str]) -> str:
        """Register ``model_uri`` (logged by run ``run_id``) as a new version of ``name``, with ``tags``.

        The tags are given to MLflow in the same call that creates the version
        (``mlflow.register_model(..., tags=...)``), so a version never exists without its lineage.
        Idempotent per run: a version already registered from ``run_id`` (an earlier attempt killed
        after registering) is returned, its missing tags completed, not duplicated. Returns the
        version number as a string.
        """
        import mlflow

        existing = self.client.search_model_versions(
            f"name = '{_quote(name)}' and run_id = '{run_id}'", max_results=10
        )
        if existing:
            version = str(max(int(v.version) for v in existing))
            log.warning("run %s already registered %s v%s: not registering it again", run_id, name, version)
            self._tag_version(name, version, tags)
            return version
        self._configure()
        return str(mlflow.register_model(model_uri, name, tags=tags).version)

    # -- monitoring reads (R3)

    def get_run_metrics(self, run_id: str) -> dict[str, float]:
        """The latest value of each metric logged by run ``run_id`` (``{name: value}``)."""
        return dict(self.client.get_run(run_id).data.metrics)

    def log_monitoring_run(
        self,
        experiment: str,
        *,
        kind: str,
        run_name: str,
        tags: dict[str, str],
        metrics: dict[str, Any],
        document: dict[str, Any],
        html: str | None,
    ) -> tuple[str, str]:
        """One finished MLflow run of a monitoring check in ``experiment`` (created if missing).

        Logs each non-None metric, ``document`` (JSON-safe) as ``monitoring/<kind>.json`` and
        ``html`` as ``monitoring/<kind>.html``; the run is terminated even when a log call fails.
        Returns ``(run_id, run_url)``.
        """
        client = self.client
        experiment_id = self.ensure_experiment(experiment)
        run_id = client.create_run(experiment_id, tags=tags, run_name=run_name).info.run_id
        try:
            for key, value in metrics.items():
                if value is not None:
                    client.log_metric(run_id, key, float(value))
            client.log_dict(run_id, json_safe(document), f"monitoring/{kind}.json")
            if html is not None:
                client.log_text(run_id, html, f"monitoring/{kind}.html")
        finally:
            client.set_terminated(run_id)
        return run_id, self.run_url(experiment_id, run_id)


_RETRAIN_FIX = "it was changed after training: retrain the model version (trigger training with force=true)"


def _is_not_found(err: BaseException) -> bool:
    """Whether ``err`` says a run, version or artifact does not exist (and nothing else)."""
    from mlflow.exceptions import MlflowException

    if isinstance(err, FileNotFoundError):
        return True
    if isinstance(err, MlflowException):
        return "RESOURCE_DOES_NOT_EXIST" in str(getattr(err, "error_code", ""))
    return False


def _quote(value: str) -> str:
    """A value inside a single-quoted MLflow search filter."""
    return str(value).replace("\\", "\\\\").replace("'", "\\'")


def _v(version: Any) -> str:
    return "no champion" if version is None else f"v{version}"


def _param(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text[:6000]
