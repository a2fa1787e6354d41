"""The service's Prometheus metrics (prometheus-client), one registry per service instance.

Names and labels (docs/serving.md, "Metrics"):

- ``mlops_serving_requests_total{pipeline,version,arm,status}``: requests, counted once per arm that
  took part (a request before routing, refused or failed, has ``version=""`` and ``arm="none"``).
- ``mlops_serving_errors_total{pipeline,version,arm,status}``: the same, for statuses >= 400.
- ``mlops_serving_request_duration_seconds{pipeline,status}``: whole request, read to answer.
- ``mlops_serving_model_latency_seconds{pipeline,version,arm}``: one model's scoring time per request.
- ``mlops_serving_predictions_total{pipeline,version,arm,prediction}``: answered labels (classifiers).
- ``mlops_serving_prediction_value{pipeline,version,arm}``: the positive-class probability
  (classifiers) or the predicted value (regressors).
- ``mlops_serving_model_info{pipeline,version,arm}``: 1 for each version serving now.
- ``mlops_serving_prediction_log_rows_total{pipeline}``, ``mlops_serving_prediction_log_buffered_rows{pipeline}``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_VALUE_BUCKETS = tuple(i / 10 for i in range(1, 11))
#: most distinct label values counted per (version, arm): a regressor's or a free-text label's
#: values would otherwise grow the series without bound
MAX_PREDICTION_LABELS = 50


class ServingMetrics:
    """The metrics of one service; :attr:`registry` is what ``/metrics`` exposes."""

    def __init__(self, pipeline: str) -> None:
        self.pipeline = pipeline
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "mlops_serving_requests",
            "Scoring requests by model version, arm and HTTP status",
            ["pipeline", "version", "arm", "status"],
            registry=r,
        )
        self.errors = Counter(
            "mlops_serving_errors",
            "Scoring requests answered with a status >= 400",
            ["pipeline", "version", "arm", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "mlops_serving_request_duration_seconds",
            "Scoring request duration, body read to answer",
            ["pipeline", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.model_latency = Histogram(
            "mlops_serving_model_latency_seconds",
            "One model's scoring time for one request",
            ["pipeline", "version", "arm"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "mlops_serving_predictions",
            "Answered predicted labels (classifiers)",
            ["pipeline", "version", "arm", "prediction"],
            registry=r,
        )
        self.values = Histogram(
            "mlops_serving_prediction_value",
            "Positive-class probability (classifiers) or predicted value (regressors)",
            ["pipeline", "version", "arm"],
            buckets=_VALUE_BUCKETS,
            registry=r,
        )
        self.model_info = Gauge(
            "mlops_serving_model_info",
            "1 for each model version serving now",
            ["pipeline", "version", "arm"],
            registry=r,
        )
        self.log_rows = Counter(
            "mlops_serving_prediction_log_rows",
            "Rows handed to the prediction log",
            ["pipeline"],
            registry=r,
        )
        self.log_buffered = Gauge(
            "mlops_serving_prediction_log_buffered_rows",
            "Prediction log rows not yet written",
            ["pipeline"],
            registry=r,
        )
        self._labels: dict[tuple[str, str], set[str]] = {}

    def request(self, version: str, arm: str, status: int) -> None:
        self.requests.labels(self.pipeline, version, arm, str(status)).inc()
        if status >= 400:
            self.errors.labels(self.pipeline, version, arm, str(status)).inc()

    def prediction(self, version: str, arm: str, label: str | None, value: float | None) -> None:
        if label is not None:
            seen = self._labels.setdefault((version, arm), set())
            if label in seen or len(seen) < MAX_PREDICTION_LABELS:
                seen.add(label)
                self.predictions.labels(self.pipeline, version, arm, label).inc()
        if value is not None:
            self.values.labels(self.pipeline, version, arm).observe(value)

    def serving(self, versions: dict[str, str | None]) -> None:
        """Set ``model_info`` to the versions serving now (``{arm: version}``)."""
        self.model_info.clear()
        for arm, version in versions.items():
            if version is not None:
                self.model_info.labels(self.pipeline, version, arm).set(1)
