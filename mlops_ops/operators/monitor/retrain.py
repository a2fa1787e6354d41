"""RequestRetrainOperator: the retrain policy over the monitoring results, and the request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.assets import retrain_asset
from mlops_ops.hooks.pushgateway import push_metrics
from mlops_ops.links import ReportLink
from mlops_ops.operators.base import MlopsBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class RequestRetrainOperator(MlopsBaseOperator):
    """Apply the retrain policy to the monitoring results; request a retrain by an asset event.

    A trigger (data or prediction drift, a performance drop) requests a retrain unless one was
    requested less than ``cooldown_hours`` before this batch (one incident, one retrain). A request
    is a write-once record under ``retrain_requests/`` and the ``x-mlops://<pipeline>/retrain`` asset
    event (extra: ``reason``, ``summary``), on which the training DAG is scheduled. Time is the
    batch's logical date, so a backfill behaves as the live schedule would. No request: skipped.

    :param drift: the drift task's result (templated); None if not checked.
    :param performance: the performance task's result (templated); None if not checked.
    :param on_drift: drift triggers a retrain.
    :param on_performance: a performance drop triggers a retrain.
    :param cooldown_hours: no new request this long after the last one.
    """

    template_fields: Sequence[str] = ("drift", "performance")
    operator_extra_links = (ReportLink(),)

    def __init__(
        self,
        *,
        drift: Any = None,
        performance: Any = None,
        on_drift: bool = True,
        on_performance: bool = True,
        cooldown_hours: float = 72.0,
        **kwargs: Any,
    ) -> None:
        if "outlets" not in kwargs and "pipeline" in kwargs:
            kwargs["outlets"] = [retrain_asset(kwargs["pipeline"])]
        super().__init__(**kwargs)
        self.drift = drift
        self.performance = performance
        self.on_drift = on_drift
        self.on_performance = on_performance
        self.cooldown_hours = cooldown_hours

    def execute(self, context: Context) -> dict[str, Any]:
        import datetime as dt

        from mlops_ops.core.monitoring import decide_retrain

        now = context.get("logical_date") or context["dag_run"].run_after
        now = now.astimezone(dt.UTC)
        last, own = self._earlier_requests(context, now)
        decision = decide_retrain(
            drift=_as_dict(self.drift),
            performance=_as_dict(self.performance),
            on_drift=self.on_drift,
            on_performance=self.on_performance,
            cooldown_hours=float(self.cooldown_hours),
            now=now,
            last_request_at=last,
        )
        uri = self._report(context, decision, now)
        if own is not None:
            self.log.info(
                "this run already requested a retrain at %s; keeping that request", own["requested_at"]
            )
            decision.retrain = True
            decision.reason = own["reason"]
        push_metrics("retrain", self.pipeline, context, {"retrain": decision.retrain})
        if not decision.retrain:
            self.skip(f"no retrain requested: {decision.reason}")
        if own is None:
            self._write_request(context, decision, now, uri)
        self._emit_event(context, decision, now)
        self.log.info("retrain requested for %s: %s", self.pipeline, decision.reason)
        return {
            "retrain": True,
            "reason": decision.reason,
            "requested_at": now.isoformat(),
            "report_uri": uri,
        }

    def _earlier_requests(self, context: Context, now: Any) -> tuple[Any, dict[str, Any] | None]:
        """The time of the latest request at or before ``now``, and this run's own request (a
        retry of this run: its request stands), from the records under ``retrain_requests/``."""
        import datetime as dt

        from mlops_ops.hooks.storage import read_json

        requests = self.storage.base / "retrain_requests"
        ti = context["ti"]
        last, own = None, None
        if requests.exists():
            for path in sorted(requests.glob("*.json"), key=str):
                doc = read_json(path)
                at = dt.datetime.fromisoformat(doc["requested_at"])
                if doc.get("airflow.run_id") == ti.run_id and doc.get("airflow.dag_id") == ti.dag_id:
                    own = doc  # a retry of this run: its request stands
                elif at <= now and (last is None or at > last):
                    last = at
        return last, own

    def _report(self, context: Context, decision: Any, now: Any) -> str:
        """The decision as a report (JSON and HTML); returns its URI."""
        from mlops_ops.core.reports import render_html

        doc = {
            "pipeline": self.pipeline,
            **decision.to_dict(),
            "at": now.isoformat(),
            "data_interval": self.judged_interval(context),
            **self.lineage(context),
        }
        html = render_html(
            f"Retrain decision for {self.pipeline}",
            "retrain requested" if decision.retrain else "no retrain",
            {
                "decision": "retrain requested" if decision.retrain else "no retrain",
                "reason": decision.reason,
                "triggers": "; ".join(decision.triggers) or "none",
                "batch time": now.isoformat(),
                "cooldown (hours)": self.cooldown_hours,
            },
            document=doc,
        )
        return self.write_report(context, doc, html)

    def _write_request(self, context: Context, decision: Any, now: Any, uri: str) -> None:
        """The write-once request record ``retrain_requests/<utc>.json``."""
        from mlops_ops.hooks.storage import json_bytes, write_once

        record = {
            "pipeline": self.pipeline,
            "requested_at": now.isoformat(),
            "reason": decision.reason,
            "summary": decision.summary,
            "report_uri": uri,
            **self.lineage(context),
        }
        path = self.storage.base / "retrain_requests" / f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}.json"
        if not write_once(path, json_bytes(record)):
            raise AirflowFailException(
                f"a retrain request for {now.isoformat()} already exists at {path}; refusing a second one"
            )

    def _emit_event(self, context: Context, decision: Any, now: Any) -> None:
        """The ``x-mlops://<pipeline>/retrain`` asset event, its extra naming the reason."""
        from mlops_ops.core.monitoring import short_summary

        summary = short_summary(decision.summary)
        for asset in self.outlets:
            if getattr(asset, "uri", "").endswith("/retrain"):
                context["outlet_events"][asset].extra = {
                    "reason": decision.reason,
                    "summary": summary,
                    "requested_at": now.isoformat(),
                    "monitoring_run_id": context["ti"].run_id,
                }


def _as_dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None
