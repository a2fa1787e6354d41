"""Monitoring operators: drift and performance of the serving champion, and the retrain request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from mlops_ops.artifacts import (
    DECISION_ARTIFACT,
    PREDICTION_PROFILE_ARTIFACT,
    PROFILE_ARTIFACT,
    TRAINING_SPEC_ARTIFACT,
)
from mlops_ops.assets import retrain_asset
from mlops_ops.links import MlflowRunLink, ReportLink
from mlops_ops.operators.base import MlopsBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class _ChampionMixin(MlopsBaseOperator):
    """Resolve the serving champion once per task (a promotion mid-task cannot mix versions)."""

    def champion(self) -> Any:
        version = self.mlflow_hook.get_alias_version(self.pipeline)
        if version is None:
            raise AirflowSkipException(
                f"{self.pipeline} has no champion yet: nothing to monitor. Run {self.pipeline}_training first"
            )
        return version

    def _log_monitoring_run(
        self,
        context: Context,
        kind: str,
        champion: Any,
        metrics: dict[str, Any],
        document: dict[str, Any],
        html: str | None,
    ) -> tuple[str, str]:
        """One MLflow run per check, in the pipeline's experiment, tagged ``mlops.kind``."""
        hook = self.mlflow_hook
        client = hook.client
        experiment_id = hook.ensure_experiment(self.pipeline)
        ds = context.get("ds") or str(context["dag_run"].run_after)[:10]
        tags = {
            **self.lineage(context),
            "mlops.pipeline": self.pipeline,
            "mlops.kind": f"monitoring.{kind}",
            "mlops.champion_version": str(champion.version),
            "mlops.status": str(document.get("status")),
        }
        run = client.create_run(experiment_id, tags=tags, run_name=f"{kind}-{ds}")
        run_id = run.info.run_id
        try:
            for key, value in metrics.items():
                if value is not None:
                    client.log_metric(run_id, key, float(value))
            client.log_dict(run_id, document, f"monitoring/{kind}.json")
            if html is not None:
                client.log_text(run_id, html, f"monitoring/{kind}.html")
        finally:
            client.set_terminated(run_id)
        context["ti"].xcom_push(key="mlflow_run_url", value=hook.run_url(experiment_id, run_id))
        return run_id, hook.run_url(experiment_id, run_id)


class DetectDriftOperator(_ChampionMixin):
    """Compare a batch with the champion's training data, column by column, and its predictions.

    Reads the champion's reference profile (logged at training) and the batch snapshot one column
    at a time; per column a binned Kolmogorov-Smirnov test (numeric) or a chi-square test
    (categorical) and a missing-rate test, Holm-corrected, and an effect size that must also reach
    its threshold (see docs/monitoring.md). With ``prediction=True`` the champion also scores the
    batch and its outputs are tested against its outputs on its training data. The report is
    stored (JSON and HTML) and logged to MLflow. No champion: skipped.

    :param snapshot: the batch's ingest result or snapshot URI (templated).
    :param drift: drift settings: ``alpha``, ``delta``, ``categorical_delta``, ``missing_delta``,
        ``correction``, ``drift_share``, ``critical_columns``, ``min_rows``, ``prediction``.
    """

    template_fields: Sequence[str] = ("snapshot",)
    operator_extra_links = (ReportLink(), MlflowRunLink())

    def __init__(self, *, snapshot: Any, drift: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.snapshot = snapshot
        self.drift = drift

    def _config(self) -> tuple[Any, bool]:
        from pydantic import ValidationError

        from mlops_ops.config import DriftSpec
        from mlops_ops.core.drift import DriftConfig

        try:
            spec = DriftSpec.model_validate(self.drift or {})
            config = DriftConfig(
                alpha=spec.alpha,
                delta=spec.delta,
                categorical_delta=spec.categorical_delta,
                missing_delta=spec.missing_delta,
                correction=spec.correction,
                drift_share=spec.drift_share,
                critical_columns=tuple(spec.critical_columns),
                min_rows=spec.min_rows,
            )
        except (ValidationError, ValueError) as err:
            raise AirflowFailException(f"drift settings are invalid: {err}") from None
        return config, spec.prediction

    def execute(self, context: Context) -> dict[str, Any]:
        import dataclasses

        from mlops_ops.core.drift import ReferenceProfile, detect_drift
        from mlops_ops.core.drift_report import render_drift_html
        from mlops_ops.hooks.storage import snapshot_uri_of, to_path

        config, with_prediction = self._config()
        champion = self.champion()
        hook = self.mlflow_hook
        profile_doc = hook.load_dict(champion.run_id, PROFILE_ARTIFACT)
        if profile_doc is None:
            raise AirflowFailException(
                f"champion v{champion.version} of {self.pipeline} has no {PROFILE_ARTIFACT}; retrain it "
                "with this version of mlops-ops so monitoring has a reference"
            )
        profile = ReferenceProfile.from_dict(profile_doc)
        data_path = to_path(snapshot_uri_of(self.snapshot), self.storage.conn_id) / "data.parquet"
        if not data_path.exists():
            raise AirflowFailException(f"no snapshot data at {data_path}; run the ingest task first")
        import pyarrow.parquet as pq

        try:
            with data_path.open("rb") as fh:
                report = detect_drift(profile, pq.ParquetFile(fh), config)
        except ValueError as err:  # e.g. a profile column missing from the batch
            raise AirflowFailException(f"drift check of {self.pipeline} cannot run: {err}") from None
        for col in sorted(report.columns, key=lambda c: -(c.effect or 0.0)):
            self.log.info(
                "%-24s %-4s stat=%s p_adj=%s effect=%s (threshold %s)%s",
                col.name,
                col.test,
                _r(col.statistic),
                _r(col.p_adjusted),
                _r(col.effect),
                _r(col.effect_threshold),
                "  DRIFT" if col.drifted else "",
            )

        prediction = None
        if with_prediction and report.status != "insufficient_data":
            prediction = self._prediction_drift(champion, config, dataclasses)
        prediction_drift = bool(prediction and prediction.status == "drift")
        doc = {
            "pipeline": self.pipeline,
            "champion_version": str(champion.version),
            "snapshot_uri": snapshot_uri_of(self.snapshot),
            **report.to_dict(),
            "prediction": prediction.to_dict() if prediction is not None else None,
            "prediction_drift": prediction_drift,
            **self.lineage(context),
        }
        title = f"Drift of {self.pipeline} batch vs champion v{champion.version}"
        html = render_drift_html(report, title=title)
        if prediction is not None:
            html = _append_section(html, render_drift_html(prediction, title="Prediction drift"))
        uri = self.write_report(context, doc, html)
        metrics = {
            "drift.rows": report.rows,
            "drift.drifted_share": report.drifted_share,
            "drift.n_drifted": len(report.drifted_columns),
        }
        if prediction is not None and prediction.columns:
            metrics["drift.prediction_effect"] = prediction.columns[0].effect
        _, run_url = self._log_monitoring_run(context, "drift", champion, metrics, doc, html)
        self.log.info(
            "drift status %s: %d of %d column(s) drifted (share %.2f, threshold %.2f)%s; report %s",
            report.status,
            len(report.drifted_columns),
            len(report.columns),
            report.drifted_share,
            config.drift_share,
            "; PREDICTIONS DRIFTED" if prediction_drift else "",
            uri,
        )
        for reason in report.reasons:
            self.log.info("  %s", reason)
        return {
            "status": report.status,
            "drifted": report.drifted,
            "drifted_columns": list(report.drifted_columns),
            "drifted_share": report.drifted_share,
            "rows": report.rows,
            "prediction_drift": prediction_drift,
            "prediction_status": prediction.status if prediction is not None else None,
            "champion_version": str(champion.version),
            "reasons": list(report.reasons),
            "report_uri": uri,
            "run_url": run_url,
        }

    def _prediction_drift(self, champion: Any, config: Any, dataclasses: Any) -> Any:
        from mlops_ops.core.drift import ReferenceProfile, detect_drift
        from mlops_ops.core.monitoring import prediction_frame

        hook = self.mlflow_hook
        doc = hook.load_dict(champion.run_id, PREDICTION_PROFILE_ARTIFACT)
        spec = hook.load_dict(champion.run_id, TRAINING_SPEC_ARTIFACT)
        if doc is None or spec is None:
            self.log.warning(
                "champion v%s has no prediction profile: prediction drift not checked", champion.version
            )
            return None
        frame, _ = self.read_snapshot(self.snapshot)
        features = [*spec["features"]["numeric"], *spec["features"]["categorical"]]
        model = hook.load_sklearn_model(f"models:/{self.pipeline}/{champion.version}")
        try:
            predictions = prediction_frame(model, frame[features], spec["task"])
        except Exception as err:
            raise AirflowFailException(
                f"champion v{champion.version} could not score the batch for prediction drift: {err}"
            ) from None
        cfg = dataclasses.replace(config, critical_columns=(), drift_share=1.0, columns=None)
        return detect_drift(ReferenceProfile.from_dict(doc), predictions, cfg)


class CheckModelPerformanceOperator(_ChampionMixin):
    """The champion's metric on a labelled batch vs the metric recorded when it was promoted.

    Degraded when the metric dropped by more than ``tolerance`` (in the metric's better direction)
    or fell past ``floor``. Unlabelled batches (no target column, or fewer labelled rows than
    ``min_rows``) are reported as such, not judged. No champion: skipped.

    :param snapshot: the batch's ingest result or snapshot URI (templated).
    :param target: target column.
    :param metric: metric name (e.g. ``roc_auc``, ``rmse``).
    :param tolerance: largest allowed drop from the value at promotion.
    :param floor: the metric must not fall past this value.
    :param min_rows: fewer labelled rows are not judged.
    """

    template_fields: Sequence[str] = ("snapshot",)
    operator_extra_links = (ReportLink(), MlflowRunLink())

    def __init__(
        self,
        *,
        snapshot: Any,
        target: str,
        metric: str,
        tolerance: float = 0.05,
        floor: float | None = None,
        min_rows: int = 200,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.snapshot = snapshot
        self.target = target
        self.metric = metric
        self.tolerance = tolerance
        self.floor = floor
        self.min_rows = min_rows

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops.config import METRIC_DIRECTIONS
        from mlops_ops.core.evaluation import compute_metrics, score_model
        from mlops_ops.core.monitoring import PerformanceCheck, check_performance
        from mlops_ops.core.reports import render_html

        if self.metric not in METRIC_DIRECTIONS:
            raise AirflowFailException(f"unknown metric {self.metric!r}; known: {sorted(METRIC_DIRECTIONS)}")
        champion = self.champion()
        hook = self.mlflow_hook
        frame, manifest = self.read_snapshot(self.snapshot)
        spec = hook.load_dict(champion.run_id, TRAINING_SPEC_ARTIFACT)
        if spec is None:
            raise AirflowFailException(f"champion v{champion.version} has no {TRAINING_SPEC_ARTIFACT}")
        baseline = self._baseline(champion)
        if self.target not in frame.columns:
            check = PerformanceCheck(
                "unlabelled", self.metric, None, baseline, self.tolerance, self.floor, 0, self.min_rows
            )
            check.reasons.append(f"the batch has no {self.target!r} column: performance not judged")
        else:
            from mlops_ops.config import CLASSIFICATION_METRICS, REGRESSION_METRICS

            applicable = CLASSIFICATION_METRICS if spec["task"] == "classification" else REGRESSION_METRICS
            if self.metric not in applicable:
                raise AirflowFailException(
                    f"{self.metric!r} does not apply to champion v{champion.version}, a {spec['task']} model; "
                    f"set monitoring.performance.metric to one of {list(applicable)}"
                )
            labelled = frame[frame[self.target].notna()]
            value = None
            if len(labelled) >= self.min_rows:
                features = [*spec["features"]["numeric"], *spec["features"]["categorical"]]
                model = hook.load_sklearn_model(f"models:/{self.pipeline}/{champion.version}")
                try:
                    scores = score_model(model, labelled[features], spec["task"])
                    value = compute_metrics(spec["task"], labelled[self.target].to_numpy(), scores).get(
                        self.metric
                    )
                except (KeyError, ValueError) as err:
                    raise AirflowFailException(
                        f"champion v{champion.version} could not be scored on the batch: {err}"
                    ) from None
            check = check_performance(
                metric=self.metric,
                value=value,
                baseline=baseline,
                rows=len(labelled),
                tolerance=self.tolerance,
                floor=self.floor,
                min_rows=self.min_rows,
            )
        doc = {
            "pipeline": self.pipeline,
            "champion_version": str(champion.version),
            "snapshot_sha256": manifest["sha256"],
            **check.to_dict(),
            **self.lineage(context),
        }
        html = render_html(
            f"Performance of {self.pipeline} champion v{champion.version}",
            check.status,
            {
                "status": check.status,
                "metric": self.metric,
                "value on this batch": check.value,
                "value at promotion": check.baseline,
                "drop (positive = worse)": check.drop,
                "tolerance": self.tolerance,
                "floor": self.floor,
                "labelled rows": check.rows,
                "reasons": "; ".join(check.reasons),
            },
            document=doc,
        )
        uri = self.write_report(context, doc, html)
        metrics = {f"performance.{self.metric}": check.value, "performance.rows": check.rows}
        _, run_url = self._log_monitoring_run(context, "performance", champion, metrics, doc, html)
        self.log.info(
            "performance %s: %s = %s vs %s at promotion (tolerance %s, floor %s) on %d labelled row(s)",
            check.status,
            self.metric,
            _r(check.value),
            _r(check.baseline),
            self.tolerance,
            self.floor,
            check.rows,
        )
        return {**check.to_dict(), "report_uri": uri, "run_url": run_url}

    def _baseline(self, champion: Any) -> float | None:
        """The metric the champion was promoted with (its gate decision), else its holdout metric."""
        hook = self.mlflow_hook
        decision = hook.load_dict(champion.run_id, DECISION_ARTIFACT)
        for key in ("challenger_metrics", "metrics"):
            value = ((decision or {}).get(key) or {}).get(self.metric)
            if value is not None:
                return float(value)
        metrics = hook.client.get_run(champion.run_id).data.metrics
        value = metrics.get(f"holdout_{self.metric}", metrics.get(self.metric))
        return float(value) if value is not None else None


class RequestRetrainOperator(MlopsBaseOperator):
    """Apply the retrain policy to the monitoring results; request a retrain by an asset event.

    A trigger (data or prediction drift, a performance drop) requests a retrain unless one was
    requested less than ``cooldown_hours`` before this batch (one incident, one retrain). A request
    is a write-once record under ``retrain_requests/`` and the ``mlops://<pipeline>/retrain`` asset
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
        from mlops_ops.core.reports import render_html
        from mlops_ops.hooks.storage import json_bytes, read_json, write_once

        now = context.get("logical_date") or context["dag_run"].run_after
        now = now.astimezone(dt.UTC)
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
        decision = decide_retrain(
            drift=_as_dict(self.drift),
            performance=_as_dict(self.performance),
            on_drift=self.on_drift,
            on_performance=self.on_performance,
            cooldown_hours=float(self.cooldown_hours),
            now=now,
            last_request_at=last,
        )
        doc = {
            "pipeline": self.pipeline,
            **decision.to_dict(),
            "at": now.isoformat(),
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
        uri = self.write_report(context, doc, html)
        if own is not None:
            self.log.info(
                "this run already requested a retrain at %s; keeping that request", own["requested_at"]
            )
            decision.retrain = True
            decision.reason = own["reason"]
        if not decision.retrain:
            self.log.info("no retrain: %s", decision.reason)
            raise AirflowSkipException(f"no retrain requested: {decision.reason}")
        record = {
            "pipeline": self.pipeline,
            "requested_at": now.isoformat(),
            "reason": decision.reason,
            "summary": decision.summary,
            "report_uri": uri,
            **self.lineage(context),
        }
        if own is None:
            path = requests / f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}.json"
            if not write_once(path, json_bytes(record)):
                raise AirflowFailException(
                    f"a retrain request for {now.isoformat()} already exists at {path}; refusing a second one"
                )
        summary = _short_summary(decision.summary)
        for asset in self.outlets:
            if getattr(asset, "uri", "").endswith("/retrain"):
                context["outlet_events"][asset].extra = {
                    "reason": decision.reason,
                    "summary": summary,
                    "requested_at": now.isoformat(),
                    "monitoring_run_id": ti.run_id,
                }
        self.log.info("retrain requested for %s: %s", self.pipeline, decision.reason)
        return {
            "retrain": True,
            "reason": decision.reason,
            "requested_at": now.isoformat(),
            "report_uri": uri,
        }


def _as_dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _short_summary(summary: dict[str, Any]) -> str:
    parts = []
    drift = summary.get("drift") or {}
    if drift:
        cols = drift.get("drifted_columns") or []
        parts.append(f"drift {drift.get('status')}: {', '.join(cols[:8]) or 'no columns'}")
    perf = summary.get("performance") or {}
    if perf:
        parts.append(f"performance {perf.get('status')}: {perf.get('metric')} {_r(perf.get('value'))}")
    return "; ".join(parts)


def _r(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _append_section(page: str, other: str) -> str:
    """Put ``other``'s body at the end of ``page``'s body: one self-contained page."""
    start, end = other.find("<body>"), other.rfind("</body>")
    body = other[start + len("<body>") : end] if start >= 0 and end > start else other
    cut = page.rfind("</body>")
    return page[:cut] + "<hr>" + body + page[cut:] if cut >= 0 else page + body
