"""DeployModelOperator: move the champion alias (compare-and-set) and write the ledger."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from mlops_ops.assets import model_asset
from mlops_ops.links import MlflowModelVersionLink
from mlops_ops.operators.base import MlopsBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class DeployModelOperator(MlopsBaseOperator):
    """Promote the challenger when the gate said so; otherwise skip with the gate's reasons.

    Promotion re-reads the ``champion`` alias and refuses if it no longer points at the version
    the gate compared against (compare-and-set), then moves it, writes a write-once record to
    ``deployments/<utc>-v<version>.json`` and emits the ``mlops://<pipeline>/model`` asset event.

    :param decision: the evaluation task's result (templated).
    """

    template_fields: Sequence[str] = ("decision",)
    operator_extra_links = (MlflowModelVersionLink(),)

    def __init__(self, *, decision: Any, **kwargs: Any) -> None:
        if "outlets" not in kwargs and "pipeline" in kwargs:
            kwargs["outlets"] = [model_asset(kwargs["pipeline"])]
        super().__init__(**kwargs)
        self.decision = decision

    def execute(self, context: Context) -> dict[str, Any]:
        from datetime import datetime

        from mlops_ops.hooks.mlflow import ChampionChangedError
        from mlops_ops.hooks.storage import json_bytes, write_once

        decision = self.decision
        if not isinstance(decision, dict) or "promote" not in decision:
            raise AirflowFailException(f"decision must be the evaluation task's result, got {decision!r}")
        version = str(decision["challenger_version"])
        if not decision["promote"]:
            raise AirflowSkipException(
                f"gate rejected {self.pipeline} v{version}; the champion stays "
                f"{'v' + str(decision.get('baseline_version')) if decision.get('baseline_version') else 'unset'}. "
                f"Reasons: {'; '.join(decision.get('reasons') or [])}"
            )
        hook = self.mlflow_hook
        expected = decision.get("baseline_version")
        current = hook.get_alias_version(self.pipeline)
        if current is not None and str(current.version) == version:
            # A retry of this task after the alias moved but before the record was written:
            # finish that attempt instead of failing the compare-and-set against ourselves.
            self.log.info("%s v%s is already champion: completing an earlier attempt", self.pipeline, version)
            previous = expected
        else:
            try:
                previous = hook.set_champion(self.pipeline, version, expected=expected)
            except ChampionChangedError as err:
                raise AirflowFailException(
                    f"promotion of {self.pipeline} v{version} refused: {err}"
                ) from None

        path = self._existing_record(version, context)
        now = datetime.now(UTC)
        record = {
            "pipeline": self.pipeline,
            "model_name": self.pipeline,
            "version": version,
            "previous_version": previous,
            "action": "promote",
            "decision": {k: decision.get(k) for k in ("status", "reasons", "metrics", "champion_metrics")},
            "evidence_uri": decision.get("report_uri"),
            "deployed_at": now.isoformat(),
            **self.lineage(context),
        }
        if path is None:
            path = self.storage.deployments_dir() / f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}-v{version}.json"
            if not write_once(path, json_bytes(record)):
                raise AirflowFailException(
                    f"ledger record {path} already exists; refusing to overwrite history"
                )
        client = hook.client
        client.set_model_version_tag(self.pipeline, version, "mlops.promoted_at", now.isoformat())
        client.set_model_version_tag(self.pipeline, version, "mlops.previous_champion", str(previous or ""))
        for asset in self.outlets:
            if getattr(asset, "uri", "").endswith("/model"):
                context["outlet_events"][asset].extra = {"version": version}
        self.log.info(
            "%s v%s is champion (was %s); ledger %s",
            self.pipeline,
            version,
            f"v{previous}" if previous else "none",
            path,
        )
        return {
            "version": version,
            "previous_version": previous,
            "ledger_uri": str(path),
            "model_url": hook.model_version_url(self.pipeline, version),
        }

    def _existing_record(self, version: str, context: Context) -> Any:
        """The ledger record this DAG run already wrote for ``version`` (on a retry), if any."""
        from mlops_ops.hooks.storage import read_json

        directory = self.storage.deployments_dir()
        if not directory.exists():
            return None
        run_id = context["ti"].run_id
        for path in sorted(directory.glob(f"*-v{version}.json"), key=str):
            if read_json(path).get("airflow.run_id") == run_id:
                return path
        return None
