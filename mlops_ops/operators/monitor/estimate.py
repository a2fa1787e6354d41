"""EstimatePerformanceOperator: the champion's performance estimated before labels arrive (CBPE)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.artifacts import ESTIMATION_REFERENCE_ARTIFACT, TRAINING_SPEC_ARTIFACT, TRAINING_SPEC_KEYS
from mlops_ops.core.model_uri import model_version_uri
from mlops_ops.hooks.pushgateway import push_metrics
from mlops_ops.links import MlflowRunLink, ReportLink
from mlops_ops.operators.base import MonitoringOperator, short_number

if TYPE_CHECKING:
    from airflow.sdk import Context

#: what the report says about retraining: the estimate never requests one by itself
RETRAIN_NOTE = (
    "a leading indicator: this task does not request retraining (check_performance does, on labels)"
)


class EstimatePerformanceOperator(MonitoringOperator):
    """The champion's metric on a batch estimated from its own calibrated confidence (CBPE).

    Scores the champion on every row of the batch (labels are not needed) and estimates ``metric``
    (and ROC AUC, accuracy and F1 beside it) with :func:`mlops_ops.core.estimation.estimate_performance`,
    from the holdout probabilities and labels that training logged (``estimation/reference.json``),
    with the interval where the realised metric should fall. When the batch has labels, their
    realised metric is reported beside the estimate. A report (JSON + HTML) and an MLflow run
    (``mlops.kind`` = ``monitoring.estimate``) record it; metrics are pushed as ``mlops_estimate_*``.

    Status: ``ok``; ``estimated_drop`` when the estimate is more than ``tolerance`` worse than the
    holdout's realised value (a warning: this task never requests a retrain, see
    ``docs/estimation.md``); ``insufficient_data`` for fewer than ``min_rows`` rows. Skipped: no
    champion, a regression model, a model without ``predict_proba`` or with more than two classes,
    and versions trained before references were logged (retrain to get estimates).

    :param snapshot: the batch's ingest result or snapshot URI (templated).
    :param metric: the metric to estimate (the pipeline's performance metric).
    :param target: target column; when the batch has it, the realised metric is reported too.
    :param tolerance: an estimate worse than the holdout's value by more than this is flagged.
    :param min_rows: fewer rows are not estimated.
    :param level: nominal coverage of the interval.
    :param resamples: simulated label draws behind the interval.
    :param seed: seed of the draws (the same batch and seed give the same report).
    """

    template_fields: Sequence[str] = ("snapshot",)
    operator_extra_links = (ReportLink(), MlflowRunLink())

    def __init__(
        self,
        *,
        snapshot: Any,
        metric: str,
        target: str | None = None,
        tolerance: float = 0.05,
        min_rows: int = 100,
        level: float = 0.95,
        resamples: int = 400,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.snapshot = snapshot
        self.metric = metric
        self.target = target
        self.tolerance = tolerance
        self.min_rows = min_rows
        self.level = level
        self.resamples = resamples
        self.seed = seed

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops.core.estimation import EstimationError, EstimationReference, check_metric

        champion = self.champion()
        hook = self.mlflow_hook
        spec = hook.load_dict(champion.run_id, TRAINING_SPEC_ARTIFACT, required=TRAINING_SPEC_KEYS)
        if spec is None:
            raise AirflowFailException(f"champion v{champion.version} has no {TRAINING_SPEC_ARTIFACT}")
        if spec["task"] != "classification":
            self.skip(
                f"champion v{champion.version} is a {spec['task']} model: CBPE estimates classifiers only"
            )
        try:
            check_metric(self.metric)
        except EstimationError as err:
            raise AirflowFailException(f"{err}; set monitoring.performance.metric") from None
        ref_doc = hook.load_dict(champion.run_id, ESTIMATION_REFERENCE_ARTIFACT)
        if ref_doc is None:
            self.skip(
                f"champion v{champion.version} has no {ESTIMATION_REFERENCE_ARTIFACT} (trained before "
                "estimation references were logged, or a model without probabilities): no estimate. "
                f"Retrain {self.pipeline} to get estimates"
            )
        where = f"{ESTIMATION_REFERENCE_ARTIFACT} of run {champion.run_id}"
        try:
            reference = EstimationReference.from_dict(ref_doc, where=where)
        except EstimationError as err:
            raise AirflowFailException(str(err)) from None
        frame, manifest = self.read_snapshot(self.snapshot)
        scores = self._score(champion, spec, frame, manifest)
        result = self._estimate(champion, reference, scores, frame)
        doc = {
            "pipeline": self.pipeline,
            "champion_version": str(champion.version),
            "snapshot_sha256": manifest["sha256"],
            "data_interval": self.judged_interval(context, manifest),
            **result,
            **self.lineage(context),
        }
        html = self._html(champion, doc)
        uri = self.write_report(context, doc, html)
        push_metrics("estimate", self.pipeline, context, doc)
        metrics = {
            f"estimate.{self.metric}": doc["estimate"],
            f"estimate.{self.metric}.lower": doc["lower"],
            f"estimate.{self.metric}.upper": doc["upper"],
            "estimate.rows": doc["rows"],
        }
        _, run_url = self.log_monitoring_run(
            context, "estimate", champion, {k: v for k, v in metrics.items() if v is not None}, doc, html
        )
        self.log.info(
            "estimate %s: %s = %s [%s, %s] (%d%% interval) on %d row(s) vs %s on the holdout (tolerance %s)%s",
            doc["status"],
            self.metric,
            short_number(doc["estimate"]),
            short_number(doc["lower"]),
            short_number(doc["upper"]),
            round(100 * self.level),
            doc["rows"],
            short_number(doc["reference"]),
            self.tolerance,
            f"; realised on the batch's labels: {short_number(doc['realised'])}"
            if doc.get("realised") is not None
            else "",
        )
        return {**doc, "report_uri": uri, "run_url": run_url}

    def _score(
        self, champion: Any, spec: dict[str, Any], frame: Any, manifest: dict[str, Any]
    ) -> dict[str, Any]:
        """The champion's ``score_model`` output on every row; skips a model without probabilities."""
        from mlops_ops.core.evaluation import score_model

        model = self.mlflow_hook.load_sklearn_model(model_version_uri(self.pipeline, champion.version))
        if not hasattr(model, "predict_proba"):
            self.skip(f"champion v{champion.version} has no predict_proba: CBPE needs probabilities")
        classes = getattr(model, "classes_", None)
        if classes is not None and len(classes) != 2:
            self.skip(
                f"champion v{champion.version} has {len(classes)} classes: CBPE estimates binary classifiers"
            )
        if len(frame) == 0:
            return {"pred": [], "proba": [], "classes": classes}
        try:
            x = self.version_schema(champion.run_id, spec).coerce(
                frame, where=f"snapshot {manifest['sha256'][:12]}"
            )
            scores: dict[str, Any] = score_model(model, x, "classification")
        except (KeyError, ValueError, AttributeError, TypeError) as err:
            raise AirflowFailException(
                f"champion v{champion.version} could not be scored on the batch "
                f"({type(err).__name__}: {err}); check the batch's columns or retrain the champion"
            ) from None
        return scores

    def _estimate(self, champion: Any, reference: Any, scores: dict[str, Any], frame: Any) -> dict[str, Any]:
        """The report's body: the estimate of ``metric`` (and the default metrics) on the batch."""
        import numpy as np

        from mlops_ops.config import METRIC_DIRECTIONS
        from mlops_ops.core.estimation import (
            CAVEAT,
            DEFAULT_METRICS,
            EstimationError,
            estimate_performance,
            needs_calibration,
            realised_metrics,
        )

        classes = scores.get("classes")
        if classes is not None and len(classes) == 2 and str(classes[1]) != reference.positive_label:
            raise AirflowFailException(
                f"champion v{champion.version}'s positive class is {str(classes[1])!r} but its estimation "
                f"reference's is {reference.positive_label!r}; retrain the champion"
            )
        rows = len(frame)
        body: dict[str, Any] = {
            "status": "ok",
            "metric": self.metric,
            "estimate": None,
            "lower": None,
            "upper": None,
            "level": self.level,
            "rows": rows,
            "reference": reference.metrics.get(self.metric),
            "realised": None,
            "labelled_rows": 0,
            "calibrated": None,
            "tolerance": self.tolerance,
            "metrics": {},
            "method": "CBPE (confidence-based performance estimation, after NannyML), docs/estimation.md",
            "caveat": CAVEAT,
            "retrain": RETRAIN_NOTE,
            "reasons": [],
        }
        if rows < self.min_rows:
            body["status"] = "insufficient_data"
            body["reasons"].append(f"{rows} row(s), fewer than min_rows={self.min_rows}: not estimated")
            return body
        score = np.asarray(scores["proba"], dtype="float64")
        predicted = np.asarray(scores["pred"]).astype(str) == reference.positive_label
        names = list(dict.fromkeys([self.metric, *DEFAULT_METRICS]))
        try:
            calibrate, checks = needs_calibration(reference.proba, reference.positive, seed=self.seed)
            estimates = estimate_performance(
                reference,
                score,
                predicted,
                metrics=names,
                level=self.level,
                resamples=self.resamples,
                seed=self.seed,
                calibrate=calibrate,
            )
        except EstimationError as err:
            raise AirflowFailException(f"champion v{champion.version}: {err}") from None
        body["calibration_checks"] = checks
        main = estimates[self.metric]
        body.update(
            estimate=main.to_dict()["estimate"],
            lower=main.lower,
            upper=main.upper,
            calibrated=main.calibrated,
        )
        body["metrics"] = {name: e.to_dict() for name, e in estimates.items()}
        if self.target and self.target in frame.columns:
            labels = frame[self.target]
            known = labels.notna().to_numpy()
            body["labelled_rows"] = int(known.sum())
            if known.sum() >= self.min_rows:
                if labels.dtype.kind == "f" and bool((labels[known] == labels[known].round()).all()):
                    labels = labels.astype("Int64")
                positive = labels.astype(str).to_numpy() == reference.positive_label
                value = float(
                    realised_metrics(self.metric, score[known], predicted[known], positive[known])[0]
                )
                body["realised"] = value if np.isfinite(value) else None
        if body["estimate"] is not None and body["reference"] is not None:
            sign = 1.0 if METRIC_DIRECTIONS[self.metric] else -1.0
            drop = sign * (body["reference"] - body["estimate"])
            body["estimated_drop"] = drop
            if drop > self.tolerance:
                body["status"] = "estimated_drop"
                body["reasons"].append(
                    f"estimated {self.metric} {body['estimate']:.4g} is {drop:.4g} worse than on the holdout "
                    f"({body['reference']:.4g}), beyond the tolerance {self.tolerance}"
                )
        return body

    def _html(self, champion: Any, doc: dict[str, Any]) -> str:
        from mlops_ops.core.reports import render_html

        rows = [
            [name, e["estimate"], e["lower"], e["upper"], e["reference"], e["standard_error"]]
            for name, e in doc["metrics"].items()
        ]
        return render_html(
            f"Estimated performance of {self.pipeline} champion v{champion.version} (before labels)",
            doc["status"],
            {
                "status": doc["status"],
                "metric": doc["metric"],
                "estimate": doc["estimate"],
                f"{round(100 * self.level)}% interval": f"[{doc['lower']}, {doc['upper']}]",
                "value on the training holdout": doc["reference"],
                "realised on this batch's labels": doc["realised"],
                "rows": doc["rows"],
                "isotonic calibration applied": doc["calibrated"],
                "retrain": doc["retrain"],
                "caveat": doc["caveat"],
                "reasons": "; ".join(doc["reasons"]),
            },
            [("Estimates", ["metric", "estimate", "lower", "upper", "holdout", "standard error"], rows, [])],
            document=doc,
        )
