"""Scoring one request: route each row to an arm, check it against that version, score, log, count.

No HTTP here (:mod:`mlops_ops.serving.app` is the FastAPI layer): :meth:`ScoringService.score` takes
a parsed request and the :class:`~mlops_ops.serving.models.Models` serving now, and returns the
status and the answer body, or raises :class:`~mlops_ops.serving.protocol.RequestError`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlops_ops.core.schema import SchemaError, canonical_label
from mlops_ops.serving.metrics import ServingMetrics
from mlops_ops.serving.models import Models, ServedModel, json_value
from mlops_ops.serving.prediction_log import PredictionLogWriter
from mlops_ops.serving.protocol import ParsedRequest, RequestError
from mlops_ops.serving.routing import Arm, Routing

log = logging.getLogger(__name__)


@dataclass
class _Scored:
    """One model's scores of some of the request's rows (``rows``: positions in the request)."""

    model: ServedModel
    arm: Arm
    rows: np.ndarray
    latency_ms: float
    coerced: Any = None  # the checked input, until scored (until explained, when asked)
    explainer: Any = None  # the version's VersionExplainer, when the request asks
    contributions: list[list[dict[str, Any]]] | None = None
    explained: dict[str, Any] | None = None
    scores: dict[str, Any] | None = None
    error: str | None = None
    status: int = 200


class ScoringService:
    """Routes, checks, scores and records the rows of scoring requests.

    :param routing: the pipeline's routing settings.
    :param metrics: where requests and predictions are counted.
    :param log_writer: the prediction log (None: not logged).
    :param explain_max_rows: most rows one request may ask explanations for (more: 413).
    :param explain_fallback_max_rows: the same for a version only the model-agnostic (permutation)
        explainer can explain, which costs hundreds of model calls per row.
    """

    def __init__(
        self,
        routing: Routing,
        metrics: ServingMetrics,
        log_writer: PredictionLogWriter | None,
        *,
        explain_max_rows: int = 100,
        explain_fallback_max_rows: int = 10,
    ) -> None:
        self.routing = routing
        self.metrics = metrics
        self.log_writer = log_writer
        self.explain_max_rows = explain_max_rows
        self.explain_fallback_max_rows = explain_fallback_max_rows

    def score(self, request: ParsedRequest, models: Models) -> tuple[int, dict[str, Any]]:
        """Answer one request: ``(status, body)``, body ``{"predictions": [row, ...]}`` in request order.

        Each row: ``prediction``, ``probability`` (positive class; null if none), ``probabilities``
        (``{class: p}``, classifiers with probabilities), ``model_version``, ``arm``, ``prediction_id``.

        :raises RequestError: 503 when no champion serves; 422 when a row does not fit the schema
            of the version routed to answer it (the message names the column); 500 when that
            version fails to score (never for a bad request: those are checked first).
        """
        champion = models.champion
        if champion is None:
            raise RequestError(503, "no champion is serving yet; retry shortly", "TEMPORARILY_UNAVAILABLE")
        started = dt.datetime.now(dt.UTC)
        request_id = uuid.uuid4().hex
        frame = request.frame
        n = len(frame)
        k = request.explain
        if k is not None and n > self.explain_max_rows:
            self.metrics.request("", "none", 413)
            raise RequestError(
                413,
                f"the request asks explanations for {n} rows; at most {self.explain_max_rows} per "
                "request (the service's --explain-max-rows): split it, or ask without 'explain'",
                "PAYLOAD_TOO_LARGE",
            )
        ids = [uuid.uuid4().hex for _ in range(n)]
        keys = self._sticky_keys(request, ids)
        challenger = models.challenger
        has_challenger = challenger is not None
        arms = np.array(
            [
                self.routing.arm(k if k is not None else pid, has_challenger=has_challenger)
                for k, pid in zip(keys, ids, strict=True)
            ]
        )
        parts = [(champion, Arm.CHAMPION, np.flatnonzero(arms == Arm.CHAMPION))]
        if challenger is not None:
            parts.append((challenger, Arm.CHALLENGER, np.flatnonzero(arms == Arm.CHALLENGER)))
        served = [p for p in (self._checked(*part, request) for part in parts) if p is not None]
        if k is not None:
            for part in served:
                self._explainable(part, k)
        shadow = None
        if challenger is not None and self.routing.shadows(has_challenger=True):
            shadow = self._shadow(challenger, request)
        for part in served:
            self._predict(part, request)
            if k is not None and part.error is None:
                self._explain(part, k)
        failed = [p for p in served if p.error is not None]
        status = 500 if failed else 200
        answers: list[dict[str, Any] | None] = [None] * n
        if not failed:
            for part in served:
                self._answer(part, answers, ids)
        self._record(request, started, request_id, ids, keys, served, shadow, status)
        if failed:
            first = failed[0]
            error = first.error or ""
            verb = "explain" if error.startswith("explaining: ") else "score"
            raise RequestError(
                500,
                f"{first.model.label} ({first.arm}) failed to {verb}: {error.removeprefix('explaining: ')}",
                "INTERNAL_ERROR",
            )
        if k is None:
            return status, {"predictions": answers}
        explained = {p.model.version: p.explained for p in served if p.explained is not None}
        return status, {"predictions": answers, "explanations": explained}

    # -- steps ---------------------------------------------------------------------------------
    def _sticky_keys(self, request: ParsedRequest, ids: list[str]) -> list[str | None]:
        """Each row's sticky key as a canonical label (``101``, ``101.0`` and ``"101"`` are one key),
        None where the column is absent or the value missing (then the prediction id routes)."""
        column = self.routing.sticky_key
        if column is None or column not in request.frame.columns:
            return [None] * len(ids)
        return [canonical_label(r[column]) for r in request.records]

    def _allowed(self, model: ServedModel) -> set[str]:
        allowed = {c.name for c in model.schema.columns}
        if model.schema.target:
            allowed.add(model.schema.target)
        if self.routing.sticky_key:
            allowed.add(self.routing.sticky_key)
        return allowed

    def _checked(
        self, model: ServedModel, arm: Arm, rows: np.ndarray, request: ParsedRequest
    ) -> _Scored | None:
        """The rows an arm answers, checked against its version; 422 naming the column if they do not fit."""
        if not len(rows):
            return None
        frame = request.frame
        unknown = [c for c in frame.columns if c not in self._allowed(model)]
        try:
            if unknown:
                raise SchemaError(
                    f"request: column(s) {unknown} are not in the schema of {model.label}; it takes "
                    f"{model.schema.features[:30]}: remove them or fix their names"
                )
            coerced = model.check(frame.iloc[rows] if len(rows) != len(frame) else frame)
        except SchemaError as err:
            self.metrics.request(model.version, arm.value, 422)
            raise RequestError(422, str(err), "INVALID_PARAMETER_VALUE") from None
        return _Scored(model=model, arm=arm, rows=rows, latency_ms=0.0, coerced=coerced)

    def _explainable(self, part: _Scored, k: int) -> None:
        """Refuse before scoring what cannot be explained: ``k`` beyond the version's features, a
        version shap cannot explain (422 naming it), rows beyond the fallback's budget (413).
        Builds the version's explainer on its first explained request."""
        from mlops_ops.core.explain import ExplanationError

        model, status = part.model, 0
        features = len(model.schema.features)
        try:
            if k > features:
                status = 422
                raise RequestError(
                    422,
                    f"explain={k} asks more contributions per row than the {features} features of "
                    f"{model.label}: ask 1 to {features}",
                    "INVALID_PARAMETER_VALUE",
                )
            try:
                part.explainer = model.explainer()
            except ExplanationError as err:
                status = 422
                raise RequestError(
                    422, f"{err}; send the request without 'explain'", "INVALID_PARAMETER_VALUE"
                ) from None
            if part.explainer.kind == "permutation" and len(part.rows) > self.explain_fallback_max_rows:
                status = 413
                raise RequestError(
                    413,
                    f"{model.label} is explained by the model-agnostic (permutation) explainer: at most "
                    f"{self.explain_fallback_max_rows} explained rows per request (the service's "
                    f"--explain-fallback-max-rows), this request routes {len(part.rows)} to it: split it",
                    "PAYLOAD_TOO_LARGE",
                )
        finally:
            if status:
                self.metrics.request(model.version, part.arm.value, status)

    def _explain(self, part: _Scored, k: int) -> None:
        """The top-``k`` contributions of the part's rows; a failure is the version's (a 500)."""
        from mlops_ops.serving.explain import row_contributions

        coerced, part.coerced = part.coerced, None
        t0 = time.perf_counter()
        try:
            explanation = part.explainer.explain(coerced)
            part.contributions = row_contributions(explanation, coerced, k)
            part.explained = {
                "explainer": explanation.explainer,
                "output": explanation.output,
                "expected_value": explanation.expected_value,
                "k": k,
            }
        except Exception as err:  # shap's own failure: a 5xx for its arm, recorded
            log.exception("%s (%s) failed to explain", part.model.label, part.arm)
            part.error, part.status = f"explaining: {type(err).__name__}: {err}", 500
        log.debug(
            "%s explained %d row(s) in %.1f ms",
            part.model.label,
            len(part.rows),
            (time.perf_counter() - t0) * 1e3,
        )

    def _shadow(self, model: ServedModel, request: ParsedRequest) -> _Scored:
        """The challenger's score of every row; its failures are recorded, never answered."""
        rows = np.arange(len(request.frame))
        part = _Scored(model=model, arm=Arm.SHADOW, rows=rows, latency_ms=0.0)
        try:
            part.coerced = model.check(request.frame)
        except SchemaError as err:
            part.error, part.status = str(err), 422
            return part
        self._predict(part, request)
        return part

    def _predict(self, part: _Scored, request: ParsedRequest) -> None:
        coerced = part.coerced
        if part.explainer is None:
            part.coerced = None  # kept only until explained
        t0 = time.perf_counter()
        try:
            part.scores = part.model.predict(coerced)
            if len(part.scores["pred"]) != len(part.rows):
                raise ValueError(f"returned {len(part.scores['pred'])} predictions for {len(part.rows)} rows")
        except Exception as err:  # the model's own failure: a 5xx for its arm, recorded
            log.exception("%s (%s) failed to score", part.model.label, part.arm)
            part.scores, part.error, part.status = None, f"{type(err).__name__}: {err}", 500
        part.latency_ms = (time.perf_counter() - t0) * 1000.0
        self.metrics.model_latency.labels(self.metrics.pipeline, part.model.version, part.arm.value).observe(
            part.latency_ms / 1000.0
        )

    def _answer(self, part: _Scored, answers: list[dict[str, Any] | None], ids: list[str]) -> None:
        scores = part.scores or {}
        pred, proba, classes, proba_all = (scores.get(k) for k in ("pred", "proba", "classes", "proba_all"))
        assert pred is not None  # a part that failed is never answered
        binary = classes is not None and len(classes) == 2
        for j, i in enumerate(part.rows):
            row: dict[str, Any] = {"prediction": json_value(pred[j])}
            row["probability"] = json_value(proba[j]) if binary and proba is not None else None
            if proba_all is not None and classes is not None:
                row["probabilities"] = {
                    str(json_value(c)): json_value(p) for c, p in zip(classes, proba_all[j], strict=True)
                }
            row.update(model_version=part.model.version, arm=part.arm.value, prediction_id=ids[i])
            if part.contributions is not None:
                row["contributions"] = part.contributions[j]
            answers[i] = row

    def _record(
        self,
        request: ParsedRequest,
        started: dt.datetime,
        request_id: str,
        ids: list[str],
        keys: list[str | None],
        served: list[_Scored],
        shadow: _Scored | None,
        status: int,
    ) -> None:
        """Count the request per arm, and append one log row per scored row per model."""
        rows: list[dict[str, Any]] = []
        inputs = [json.dumps(r, default=str) for r in request.records]
        for part in [*served, *([shadow] if shadow is not None else [])]:
            is_shadow = part.arm is Arm.SHADOW
            part_status = part.status if is_shadow else status
            self.metrics.request(part.model.version, part.arm.value, part_status)
            scores = part.scores or {}
            pred, proba, classes = scores.get("pred"), scores.get("proba"), scores.get("classes")
            binary = classes is not None and len(classes) == 2
            for j, i in enumerate(part.rows):
                label = str(json_value(pred[j])) if pred is not None else None
                value = json_value(proba[j]) if binary and proba is not None else None
                if value is None and pred is not None and part.model.task == "regression":
                    value = json_value(pred[j])
                if pred is not None and not is_shadow:
                    self.metrics.prediction(
                        part.model.version,
                        part.arm.value,
                        label if part.model.task == "classification" else None,
                        value,
                    )
                rows.append(
                    {
                        "prediction_id": ids[i],
                        "request_id": request_id,
                        "sticky_key": keys[i],
                        "ts": started,
                        "model_version": part.model.version,
                        "arm": part.arm.value,
                        "served": status == 200 and not is_shadow,
                        "status": part_status,
                        "error": part.error,
                        "latency_ms": part.latency_ms,
                        "prediction": label,
                        "probability": value if binary else None,
                        "input": inputs[i],
                    }
                )
        if self.log_writer is not None and rows:
            self.log_writer.append(rows)
            self.metrics.log_rows.labels(self.metrics.pipeline).inc(len(rows))
