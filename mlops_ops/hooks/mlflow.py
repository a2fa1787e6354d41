"""MlflowHook: the tracking server and the model registry, behind one Airflow connection.

Tracking URI, in order: the Airflow connection ``mlflow_default`` (conn type ``mlflow``), the
``MLFLOW_TRACKING_URI`` environment variable, the embedded ``sqlite:///<MLOPS_HOME>/mlflow.db``.
mlflow is imported inside methods: importing this module costs nothing at DAG parse time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from mlops_ops import settings
from mlops_ops.core.jsonsafe import json_safe
from mlops_ops.core.model_uri import model_version_uri
from mlops_ops.core.registry import DEFAULT_CLAIM_LEASE_SECONDS, ChampionChangedError
from mlops_ops.errors import MlflowUnavailableError, StoredDocumentError, damaged
from mlops_ops.hooks.credentials import mask_credentials
from mlops_ops.url_credentials import split_credentials, without_credentials

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from mlops_ops.core.registry import Claim, Claimant
    from mlops_ops.hooks.storage import DeploymentLedger

__all__ = ["ChampionChangedError", "MlflowHook", "MlflowUnavailableError", "Promotion"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Promotion:
    """What :meth:`MlflowHook.promote` did.

    ``outcome`` is ``promoted`` (this call moved the alias), ``resumed`` (it completed this task's
    earlier, interrupted attempt), ``already_recorded`` (an earlier attempt of this task had
    finished) or ``already_champion`` (nothing to do: written nothing).
    """

    version: str
    previous_version: str | None
    seq: int | None
    ledger_uri: str | None
    outcome: str
    rolled_forward: tuple[int, ...] = ()

    @property
    def changed(self) -> bool:
        """This call moved the alias or wrote the record (False: an earlier attempt or nothing to do)."""
        return self.outcome in ("promoted", "resumed")


class MlflowHook(BaseHook):
    """Talks to an MLflow tracking server and model registry.

    Connection fields: ``host`` holds the tracking URI (``http://mlflow:5000``) or a host name
    (then ``schema`` is the scheme and ``port`` the port); ``login``/``password`` for basic auth;
    extras ``tracking_uri``, ``registry_uri``, ``ui_url`` (base URL for links in the Airflow UI)
    and ``token`` (bearer token).

    :param mlflow_conn_id: Airflow connection id; when it does not exist the hook falls back to
        ``MLFLOW_TRACKING_URI`` and then to the embedded SQLite store.
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "mlflow"
    hook_name = "MLflow"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": [],
            "relabeling": {
                "host": "Tracking URI or host",
                "schema": "Scheme (if host has none)",
                "login": "Username",
            },
            "placeholders": {
                "host": "http://mlflow:5000",
                "extra": '{"ui_url": "http://localhost:5000", "registry_uri": null}',
            },
        }

    def __init__(self, mlflow_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id

    # -- resolving where MLflow is --------------------------------------------------------------

    @cached_property
    def _connection(self) -> Any:
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            return self.get_connection(self.mlflow_conn_id)
        except AirflowNotFoundException:
            return None

    @cached_property
    def _configured_tracking_uri(self) -> str:
        """The tracking URI as configured, credentials in its userinfo included: never shown."""
        conn = self._connection
        if conn is not None:
            extra = conn.extra_dejson or {}
            if extra.get("tracking_uri"):
                return str(extra["tracking_uri"])
            host = (conn.host or "").strip()
            if host:
                if "://" in host:
                    return host.rstrip("/")
                scheme = conn.schema or "http"
                return f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
        env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
        return env or settings.embedded_tracking_uri()

    @cached_property
    def _uri_credentials(self) -> tuple[str, str | None, str | None]:
        """``(tracking URI without userinfo, user, password)``; the password is masked in logs."""
        uri = self._configured_tracking_uri
        mask_credentials(uri)
        return split_credentials(uri)

    @property
    def tracking_uri(self) -> str:
        """Where MLflow is, without any credentials written in the URL: safe to log and show.

        ``http://user:pw@host`` becomes ``http://host``; the user and password are passed to
        MLflow as ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` (its basic auth).
        """
        return self._uri_credentials[0]

    @property
    def _client_tracking_uri(self) -> str:
        """The URI MLflow connects to: an http(s) server without userinfo (its credentials go by
        MLflow's basic-auth variables); any other store (a database URL) as configured."""
        if self.tracking_uri.startswith(("http://", "https://")):
            return self.tracking_uri
        return self._configured_tracking_uri

    @property
    def registry_uri(self) -> str | None:
        conn = self._connection
        uri = (conn.extra_dejson or {}).get("registry_uri") if conn is not None else None
        mask_credentials(uri)
        return uri

    @property
    def ui_url(self) -> str:
        """Base URL of the MLflow UI for links: never with credentials in it."""
        conn = self._connection
        extra = (conn.extra_dejson or {}) if conn is not None else {}
        if extra.get("ui_url"):
            mask_credentials(str(extra["ui_url"]))
            return without_credentials(str(extra["ui_url"])).rstrip("/")
        if self.tracking_uri.startswith(("http://", "https://")):
            return self.tracking_uri.rstrip("/")
        return without_credentials(settings.mlflow_ui_url())

    @property
    def embedded(self) -> bool:
        return self.tracking_uri.startswith("sqlite:") or self.tracking_uri.startswith("file:")

    def _configure(self) -> None:
        """Point the mlflow library at this hook's server (process-wide, as mlflow requires).

        Credentials: the connection's ``login``/``password`` (or ``token``), else those written in
        an http(s) tracking URI's userinfo, go to MLflow's ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``.
        """
        import mlflow

        conn = self._connection
        _, url_user, url_password = self._uri_credentials
        from_url = self._client_tracking_uri != self._configured_tracking_uri
        login = (conn.login if conn is not None else None) or (url_user if from_url else None)
        password = (conn.password if conn is not None else None) or (url_password if from_url else None)
        if login:
            os.environ["MLFLOW_TRACKING_USERNAME"] = login
        if password:
            os.environ["MLFLOW_TRACKING_PASSWORD"] = password
        if conn is not None:
            token = (conn.extra_dejson or {}).get("token")
            if token:
                os.environ["MLFLOW_TRACKING_TOKEN"] = token
        # fail in seconds, not minutes, when the server is down; users can raise these
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        if self.embedded:
            settings.mlops_home().mkdir(parents=True, exist_ok=True)
        # mlflow.set_*_uri() also export the URI to the environment; put the environment back as
        # the user set it, or the next hook in this process would mistake ours for theirs.
        saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
        mlflow.set_tracking_uri(self._client_tracking_uri)
        if self.registry_uri:
            mlflow.set_registry_uri(self.registry_uri)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def get_conn(self) -> MlflowClient:
        """A client for this server, after checking that it answers."""
        from mlflow import MlflowClient

        self._configure()
        client = MlflowClient(tracking_uri=self._client_tracking_uri, registry_uri=self.registry_uri)
        try:
            client.search_experiments(max_results=1)
        except Exception as err:
            raise MlflowUnavailableError(
                f"MLflow tracking server at {self.tracking_uri} did not answer ({type(err).__name__}: "
                f"{str(err)[:300]}). Check the Airflow connection {self.mlflow_conn_id!r} or "
                "MLFLOW_TRACKING_URI, and that the server is running"
            ) from err
        return client

    @cached_property
    def client(self) -> MlflowClient:
        return self.get_conn()

    def test_connection(self) -> tuple[bool, str]:
        try:
            self.get_conn()
        except MlflowUnavailableError as err:
            return False, str(err)
        return True, f"MLflow at {self.tracking_uri} answers"

    # -- experiments and runs --------------------------------------------------------------------

    def ensure_experiment(self, name: str) -> str:
        """The experiment's id, creating it (with a local artifact root when embedded)."""
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        location = None
        if self.embedded:
            location = (settings.embedded_artifact_root() / name).as_uri()
        try:
            return self.client.create_experiment(name, artifact_location=location)
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
        action: str = "promote",
        force: bool = False,
        decision: dict[str, Any] | None = None,
        evidence_uri: str | None = None,
        reason: str | None = None,
        extra: dict[str, Any] | None = None,
        lease_seconds: float = DEFAULT_CLAIM_LEASE_SECONDS,
        alias: str = settings.CHAMPION_ALIAS,
    ) -> Promotion:
        """Strict compare-and-set of ``alias``, serialised by the deployment ledger.

        Moves ``alias`` to ``version`` only if the ledger's head (and the alias) is ``expected``:
        claims the next ledger sequence number exclusively, moves the alias, reads it back, writes
        the ledger record, tags the version. A retry of the same task instance (``claimant``)
        completes its own claim. ``force`` (rollback only) accepts an alias that was moved outside
        mlops-ops and records it. Raises :class:`ChampionChangedError` or
        :class:`~mlops_ops.core.registry.AliasDivergedError` (both ``PromotionRefusedError``) when
        the alias must not move; nothing is changed then.
        """
        from datetime import UTC, datetime

        from mlops_ops.core import registry

        rolled: list[int] = []
        for _ in range(10):
            state, champion = self._read_consistent(ledger, name, alias)
            plan = registry.plan_promotion(
                state,
                alias_version=champion.version if champion is not None else None,
                version=version,
                expected=expected,
                claimant=claimant,
                action=action,
                force=force,
                now=datetime.now(UTC),
                lease_seconds=lease_seconds,
                pipeline=name,
            )
            if plan.kind in ("done", "noop"):
                assert plan.record is not None
                if plan.kind == "done":
                    self._tag_promoted(name, plan.record.doc)
                return Promotion(
                    version=plan.record.version,
                    previous_version=plan.record.previous_version,
                    seq=plan.record.seq or None,
                    ledger_uri=str(ledger.record_path(plan.record.name)),
                    outcome="already_recorded" if plan.kind == "done" else "already_champion",
                    rolled_forward=tuple(rolled),
                )
            if plan.kind == "roll_forward":
                assert plan.claim is not None
                log.warning(
                    "%s moved the alias and stopped before writing its ledger record: writing it now",
                    plan.claim,
                )
                self._finish(name, plan.claim, ledger)
                rolled.append(plan.claim.seq)
                continue
            if plan.kind == "resume":
                assert plan.claim is not None
                claim, outcome = plan.claim, "resumed"
                log.info("completing this task's earlier attempt: %s", claim)
            else:
                assert plan.seq is not None
                now = datetime.now(UTC)
                record = registry.build_record(
                    pipeline=name,
                    version=registry.normalise_version(version) or str(version),
                    previous_version=plan.previous_version,
                    action=action,
                    seq=plan.seq,
                    deployed_at=now,
                    claimant=claimant,
                    decision=decision,
                    evidence_uri=evidence_uri,
                    reason=reason,
                    extra={
                        **(extra or {}),
                        **({"reconciled": plan.reconciled} if plan.reconciled else {}),
                        **({"superseded_claims": list(plan.superseded)} if plan.superseded else {}),
                    },
                )
                document = registry.build_claim(record=record, alias_before=plan.alias_before, claimed_at=now)
                if not ledger.claim(document):
                    log.info(
                        "ledger sequence %s was claimed by another promotion first; re-reading", plan.seq
                    )
                    continue  # the next plan sees the winner's claim and refuses
                claim = registry.parse_claim(registry.claim_file_name(plan.seq), document)
                outcome = "promoted"
                if plan.superseded:
                    log.warning(
                        "claims %s were abandoned (older than the lease, alias never moved): superseded",
                        list(plan.superseded),
                    )
            path = self._move_alias(name, claim, ledger, alias)
            return Promotion(
                version=claim.version,
                previous_version=claim.previous_version,
                seq=claim.seq,
                ledger_uri=str(path),
                outcome=outcome,
                rolled_forward=tuple(rolled),
            )
        raise ChampionChangedError(
            f"champion changed since evaluation: the deployment ledger of {name} kept changing while "
            f"promoting v{version}; re-run the evaluation"
        )

    def _read_consistent(self, ledger: DeploymentLedger, name: str, alias: str) -> tuple[Any, Any]:
        """The ledger and the alias as of one moment: the ledger read before and after the alias.

        A promotion claims its ledger sequence before it moves the alias and writes its record
        after, so if the ledger did not change around the alias read, the two belong together.
        Otherwise a promotion was in flight (e.g. its alias move was seen but not yet its claim,
        which would look like an alias moved by hand): read again.
        """
        state = ledger.read()
        champion = None
        for _ in range(20):
            champion = self.get_alias_version(name, alias)
            again = ledger.read()
            if again.fingerprint == state.fingerprint:
                return state, champion
            state = again
        return state, champion

    def _move_alias(self, name: str, claim: Claim, ledger: DeploymentLedger, alias: str) -> Any:
        """Move the alias for a claim this task holds, then record it. Returns the record's path."""
        from mlops_ops.core.registry import describe

        if not ledger.read().is_live(claim):
            raise ChampionChangedError(
                f"champion changed since evaluation: {claim} is no longer the live claim (another "
                "promotion superseded it after its lease ran out); nothing was changed"
            )
        current = self.get_alias_version(name, alias)
        found = str(current.version) if current is not None else None
        if found != claim.version:
            if found != claim.alias_before:
                ledger.release(claim, f"alias found at {describe(found)} before moving it")
                raise ChampionChangedError(
                    f"champion changed since evaluation: expected {describe(claim.alias_before)}, found "
                    f"{describe(found)} (moved outside mlops-ops while promoting v{claim.version}); "
                    "nothing was changed"
                )
            self.client.set_registered_model_alias(name, alias, claim.version)
            after = self.get_alias_version(name, alias)
            now_at = str(after.version) if after is not None else None
            if now_at != claim.version:
                ledger.release(claim, f"alias read back as {describe(now_at)}")
                raise ChampionChangedError(
                    f"champion changed while promoting v{claim.version}: the alias was moved to "
                    f"{describe(now_at)} by someone else at the same moment; no ledger record was written"
                )
        state = ledger.read()
        if not state.is_live(claim) and state.record_with_seq(claim.seq) is None:
            raise ChampionChangedError(
                f"{claim} was superseded while this task was paused past its lease, after it had moved "
                f"the alias to v{claim.version}. The alias and the ledger now disagree: run the "
                f"{name}_rollback DAG with force=true to record which version should serve"
            )
        return self._finish(name, claim, ledger)

    def _finish(self, name: str, claim: Claim, ledger: DeploymentLedger) -> Any:
        path = ledger.write_record(claim)
        self._tag_promoted(name, claim.record)
        return path

    def complete_pending(
        self, name: str, ledger: DeploymentLedger, alias: str = settings.CHAMPION_ALIAS
    ) -> list[int]:
        """Write the record of a claim whose alias move happened but whose task stopped before
        recording it (the same record its claimant would write). Returns the seqs completed."""
        done = []
        for _ in range(10):
            live = ledger.read().live_claim
            champion = self.get_alias_version(name, alias)
            if live is None or champion is None or str(champion.version) != live.version:
                break
            log.warning("%s moved the alias without a ledger record yet: writing it", live)
            self._finish(name, live, ledger)
            done.append(live.seq)
        return done

    def _tag_promoted(self, name: str, record: Any) -> None:
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
        import mlflow.sklearn

        self._configure()
        return mlflow.sklearn.load_model(uri)

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
    ) -> dict[str, Any]:
        """Log one training run and register its model as a new version.

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
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run:
            mlflow.log_params({k: _param(v) for k, v in params.items()})
            ds = from_pandas(dataset, source=dataset_source, targets=target, name=dataset_name)
            mlflow.log_input(ds, context="training")
            mlflow.log_metrics({f"holdout_{k}": v for k, v in metrics.items()})
            for name, doc in artifacts.items():
                mlflow.log_dict(json_safe(doc), name)
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
