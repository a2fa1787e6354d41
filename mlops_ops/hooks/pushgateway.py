"""The library's own metrics, pushed to a Prometheus Pushgateway (``docs/metrics.md``).

Airflow's ``Stats`` is a no-op inside task processes, so the operators push their decisions
themselves, one call at their decision point::

    push_metrics("drift", self.pipeline, context, doc)

Configured by environment variables, read at call time (as ``MLOPS_STORAGE`` is):
``MLOPS_PUSHGATEWAY_URL`` (unset: metrics are off and nothing is imported or sent),
``MLOPS_PUSHGATEWAY_JOB`` (default ``mlops_ops``) and ``MLOPS_PUSHGATEWAY_TIMEOUT`` (seconds,
default 5). A metric never changes a task's outcome: an invalid setting, a gateway that is down or
refuses, or a document missing a field is logged as a warning and the task goes on.

Every push is a POST (``pushadd_to_gateway``): it replaces the metrics of the same names in its
group and keeps the others. The group is ``{job, pipeline, dag_id, task_id}``, so one task's push
never erases another task's metrics; the champion's metrics, written by the training DAG's deploy
task and by the rollback DAG, share the group ``{job, pipeline, alias="champion"}`` so the latest
move wins.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)

#: Environment variables of the Pushgateway settings.
URL_VAR, JOB_VAR, TIMEOUT_VAR = "MLOPS_PUSHGATEWAY_URL", "MLOPS_PUSHGATEWAY_JOB", "MLOPS_PUSHGATEWAY_TIMEOUT"


class PushgatewaySettings(BaseModel):
    """Where metrics go. ``url`` is the Pushgateway's base URL (``http://pushgateway:9091``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: HttpUrl
    job: str = Field(default="mlops_ops", pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    timeout: float = Field(default=5.0, gt=0, le=60)

    @classmethod
    def from_env(cls) -> PushgatewaySettings | None:
        """The settings from the environment; ``None`` when ``MLOPS_PUSHGATEWAY_URL`` is unset.

        :raises ValueError: naming the variable, what it holds and the fix, when a value is invalid.
        """
        url = os.environ.get(URL_VAR, "").strip()
        if not url:
            return None
        values: dict[str, Any] = {"url": url}
        if os.environ.get(JOB_VAR, "").strip():
            values["job"] = os.environ[JOB_VAR].strip()
        if os.environ.get(TIMEOUT_VAR, "").strip():
            values["timeout"] = os.environ[TIMEOUT_VAR].strip()
        try:
            settings = cls(**values)
        except ValidationError as err:
            variables = {"url": URL_VAR, "job": JOB_VAR, "timeout": TIMEOUT_VAR}
            problems = "; ".join(
                f"{variables.get(str(e['loc'][0]), e['loc'][0])}={values.get(str(e['loc'][0]))!r}: {e['msg']}"
                for e in err.errors()
            )
            raise ValueError(
                f"invalid Pushgateway setting ({problems}); set {URL_VAR} to the gateway's base URL "
                f"(http://host:9091), {JOB_VAR} to a metric-style name, {TIMEOUT_VAR} to seconds in (0, 60]"
            ) from None
        if settings.url.username or settings.url.password:
            raise ValueError(
                f"{URL_VAR} has credentials written in it, which would reach logs; remove them "
                "(put an authenticating proxy in front of the Pushgateway)"
            )
        return settings


# -- the metrics of each decision (docs/metrics.md lists every name) ------------------------------


def _gauge(registry: CollectorRegistry, name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
    from prometheus_client import Gauge

    return Gauge(name, doc, labelnames=labels, registry=registry)


def _number(value: Any) -> float:
    """A value to push; NaN for none (a push must name every metric it replaces, see the module)."""
    return float("nan") if value is None else float(value)


def _ingest(reg: CollectorRegistry, doc: dict[str, Any], now: float) -> None:
    _gauge(reg, "mlops_ingest_rows", "Rows in the snapshot the last ingest stored.").set(doc["rows"])
    _gauge(
        reg, "mlops_ingest_last_success_timestamp_seconds", "Unix time of the last successful ingest."
    ).set(now)


def _validation(reg: CollectorRegistry, doc: dict[str, Any], now: float) -> None:
    failures = _gauge(
        reg, "mlops_validation_failures", "Failed expectations of the last validation.", ("severity",)
    )
    failures.labels("error").set(doc["errors"])
    failures.labels("warning").set(doc["warnings"])
    _gauge(reg, "mlops_validation_last_run_timestamp_seconds", "Unix time of the last validation.").set(now)


def _drift(reg: CollectorRegistry, doc: dict[str, Any], now: float) -> None:
    status = doc["status"]
    _gauge(reg, "mlops_drift_detected", "1 when the last batch drifted (the dataset verdict), else 0.").set(
        status == "drift"
    )
    one_hot = _gauge(reg, "mlops_drift_status", "1 for the status of the last drift check.", ("status",))
    for name in ("drift", "no_drift", "insufficient_data"):
        one_hot.labels(name).set(status == name)
    _gauge(reg, "mlops_drift_drifted_share", "Share of tested columns that drifted.").set(
        doc.get("drifted_share") or 0.0
    )
    _gauge(reg, "mlops_drift_rows", "Rows of the batch the last drift check judged.").set(doc["rows"])
    _gauge(reg, "mlops_drift_prediction_detected", "1 when the champion's predictions drifted.").set(
        bool(doc.get("prediction_drift"))
    )
    effect = _gauge(reg, "mlops_drift_effect", "Per-column drift effect size.", ("column", "test"))
    threshold = _gauge(
        reg, "mlops_drift_effect_threshold", "Effect size above which a column drifts.", ("column",)
    )
    drifted = _gauge(reg, "mlops_drift_column_drifted", "1 when the column drifted.", ("column",))
    for col in doc.get("columns") or []:  # NaN, not absent: a push keeps older values it does not name
        effect.labels(col["name"], col["test"]).set(_number(col.get("effect")))
        threshold.labels(col["name"]).set(col["effect_threshold"])
        drifted.labels(col["name"]).set(bool(col["drifted"]))
    _monitoring_success(reg, "drift", now)


def _performance(reg: CollectorRegistry, doc: dict[str, Any], now: float) -> None:
    metric = str(doc["metric"])
    for name, key, text in (
        ("mlops_performance_value", "value", "The champion's live metric on labelled outcomes."),
        ("mlops_performance_baseline", "baseline", "The champion's metric at promotion."),
    ):
        _gauge(reg, name, text, ("metric",)).labels(metric).set(_number(doc.get(key)))
    _gauge(reg, "mlops_performance_degraded", "1 when the last performance check found a degradation.").set(
        bool(doc.get("degraded"))
    )
    _gauge(reg, "mlops_performance_labelled_rows", "Labelled rows the last check scored.").set(
        doc.get("rows") or 0
    )
    _monitoring_success(reg, "performance", now)


def _estimate(reg: CollectorRegistry, doc: dict[str, Any], now: float) -> None:
    metric = str(doc["metric"])
    for name, key, text in (
        ("mlops_estimate_value", "estimate", "The champion's metric estimated before labels (CBPE)."),
        ("mlops_estimate_lower", "lower", "Lower bound of the estimate's interval."),
        ("mlops_estimate_upper", "upper", "Upper bound of the estimate's interval."),
        ("mlops_estimate_reference", "reference", "The metric realised on the training holdout."),
    ):
        _gauge(reg, name, text, ("metric",)).labels(metric).set(_number(doc.get(key)))
    _gauge(
        reg, "mlops_estimate_drop", "1 when the estimate fell beyond tolerance from the holdout's value."
    ).set(doc.get("status") == "estimated_drop")
    _gauge(reg, "mlops_estimate_rows", "Rows of the batch the last estimate scored.").set(
        doc.get("rows") or 0
    )
    _monitoring_success(reg, "estimate", now)


def _monitoring_success(reg: CollectorRegistry, check: str, now: float) -> None:
    _gauge(
        reg,
        "mlops_monitoring_last_success_timestamp_seconds",
        "Unix time of the last monitoring check that reached a verdict.",
        ("check",),
    ).labels(check).set(now)


def _gate(reg: CollectorRegistry, doc: dict[str, Any], now: float) -> None:
    promote = bool(doc["promote"])
    _gauge(reg, "mlops_gate_promote", "1 when the gate's last decision was to promote, else 0.").set(promote)
    _gauge(reg, "mlops_gate_challenger_version", "Model version the gate judged last.").set(
        int(doc["challenger_version"])
    )
    _gauge(reg, "mlops_gate_last_decision_timestamp_seconds", "Unix time of the gate's last decision.").set(
        now
    )
    if not promote and str(doc.get("baseline_version")) == str(doc["challenger_version"]):
        return  # the challenger already serves: nothing was rejected
    outcome = "promotion" if promote else "rejection"
    _gauge(
        reg, f"mlops_gate_last_{outcome}_timestamp_seconds", f"Unix time of the gate's last {outcome}."
    ).set(now)


def _champion(reg: CollectorRegistry, doc: dict[str, Any], now: float) -> None:
    _gauge(reg, "mlops_champion_version", "Model version the champion alias points to.").set(
        int(doc["version"])
    )
    _gauge(
        reg, "mlops_champion_last_change_timestamp_seconds", "Unix time the champion alias last moved."
    ).set(now)
    if doc.get("action") == "rollback":
        _gauge(reg, "mlops_champion_last_rollback_timestamp_seconds", "Unix time of the last rollback.").set(
            now
        )


def _retrain(reg: CollectorRegistry, doc: dict[str, Any], now: float) -> None:
    requested = bool(doc["retrain"])
    _gauge(reg, "mlops_retrain_requested", "1 when the last monitoring run requested a retrain.").set(
        requested
    )
    if requested:
        _gauge(
            reg, "mlops_retrain_last_request_timestamp_seconds", "Unix time of the last retrain request."
        ).set(now)


#: kind -> the builder of its metrics from the decision's document (the operator's result or report)
BUILDERS: dict[str, Callable[[Any, dict[str, Any], float], None]] = {
    "ingest": _ingest,
    "validation": _validation,
    "drift": _drift,
    "performance": _performance,
    "estimate": _estimate,
    "gate": _gate,
    "champion": _champion,
    "retrain": _retrain,
}


def grouping_key(kind: str, pipeline: str, context: Any) -> dict[str, str]:
    """The Pushgateway group of a push: per task, except the champion's (shared per pipeline)."""
    if kind == "champion":
        return {"pipeline": pipeline, "alias": "champion"}
    ti = context["ti"]
    return {"pipeline": pipeline, "dag_id": str(ti.dag_id), "task_id": str(ti.task_id)}


def build_registry(kind: str, document: dict[str, Any], now: float | None = None) -> CollectorRegistry:
    """A fresh registry holding the metrics of one decision.

    :param kind: one of :data:`BUILDERS`.
    :param document: the decision's JSON document (fields named in ``docs/metrics.md``).
    :raises KeyError: for an unknown kind or a document missing a field.
    """
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    BUILDERS[kind](registry, document, time.time() if now is None else now)
    return registry


def push_metrics(kind: str, pipeline: str, context: Any, document: dict[str, Any]) -> bool:
    """Push the metrics of one decision when a Pushgateway is configured; never raises.

    :param kind: ``ingest``, ``validation``, ``drift``, ``performance``, ``estimate``, ``gate``, ``champion`` or
        ``retrain``.
    :param pipeline: the pipeline's name (a label of every metric).
    :param context: the task's Airflow context (its ``ti`` gives the group).
    :param document: the decision's document (see :func:`build_registry`).
    :returns: True when the gateway accepted the push; False when metrics are off or it failed
        (then a warning says why).
    """
    try:
        settings = PushgatewaySettings.from_env()
    except ValueError as err:
        log.warning("metrics not pushed: %s", err)
        return False
    if settings is None:
        return False
    try:
        from prometheus_client import pushadd_to_gateway

        registry = build_registry(kind, document)
        group = grouping_key(kind, pipeline, context)
        pushadd_to_gateway(
            str(settings.url).rstrip("/"),
            job=settings.job,
            registry=registry,
            grouping_key=group,
            timeout=settings.timeout,
        )
    except Exception as err:  # a metric must never change the task's outcome
        log.warning(
            "%s metrics of %s not pushed to the Pushgateway %s (the task goes on): %s: %s",
            kind,
            pipeline,
            settings.url,
            type(err).__name__,
            err,
        )
        return False
    log.info("pushed %s metrics of %s to %s (group %s)", kind, pipeline, settings.url, group)
    return True
