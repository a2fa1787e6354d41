"""The online service: FastAPI routes speaking MLflow's scoring protocol, run by uvicorn.

``GET /ping`` and ``GET /health`` (200 once a champion is loaded, else 503), ``GET /version``,
``POST /invocations``, ``GET /metrics`` (Prometheus). See docs/serving.md.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from mlops_ops.hooks.storage import PipelineStorage
from mlops_ops.serving.metrics import ServingMetrics
from mlops_ops.serving.models import Models, ModelSet
from mlops_ops.serving.prediction_log import PredictionLogWriter
from mlops_ops.serving.protocol import CSV, JSON, RequestError, parse_body
from mlops_ops.serving.routing import Routing
from mlops_ops.serving.service import ScoringService

log = logging.getLogger(__name__)

_CONTENT_TYPES = {JSON: JSON, CSV: CSV, "application/csv": CSV}
_DECOMPRESS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


@dataclass(frozen=True)
class ServeConfig:
    """Settings of one service (``mlops-ops serve`` builds them from the spec and its options).

    :param pipeline: the pipeline (and registered model) name.
    :param routing: strategy, traffic share and sticky key.
    :param mlflow_conn_id: Airflow connection of the registry (falls back as ``MlflowHook`` does).
    :param storage_root: storage root URI of the prediction log (default ``MLOPS_STORAGE``).
    :param storage_conn_id: connection with the object store's credentials.
    :param poll_seconds: how often the registry's aliases are read.
    :param max_body_bytes: largest request body (more: 413).
    :param max_rows: most rows per request (more: 413).
    :param prediction_log: write the prediction log.
    :param log_max_rows: the log's crash bound in rows.
    :param log_max_seconds: the log's crash bound in seconds.
    :param log_max_buffered_rows: while the log cannot be written, rows buffered beyond this make
        ``/invocations`` and ``/ping`` answer 503: no answer the log could not record.
    :param explain_max_rows: most rows one request may ask explanations for (more: 413).
    :param explain_fallback_max_rows: the same when the version needs the model-agnostic
        (permutation) explainer.
    :param scoring_threads: requests scored at once; the others wait their turn in arrival order
        (scoring holds the GIL most of the time: more threads than cores only lengthen the tail).
    """

    pipeline: str
    routing: Routing = field(default_factory=Routing)
    mlflow_conn_id: str = "mlflow_default"
    storage_root: str | None = None
    storage_conn_id: str | None = None
    poll_seconds: float = 5.0
    max_body_bytes: int = 8 << 20
    max_rows: int = 10_000
    prediction_log: bool = True
    log_max_rows: int = 5000
    log_max_seconds: float = 5.0
    log_max_buffered_rows: int = 100_000
    explain_max_rows: int = 100
    explain_fallback_max_rows: int = 10
    scoring_threads: int = field(default_factory=lambda: max(1, min(4, os.cpu_count() or 1)))


def create_app(config: ServeConfig, *, hook: Any = None) -> FastAPI:
    """The FastAPI application of one pipeline's service.

    :param hook: an :class:`~mlops_ops.hooks.mlflow.MlflowHook` (default: on ``config.mlflow_conn_id``).
    """
    if hook is None:
        from mlops_ops.hooks.mlflow import MlflowHook

        hook = MlflowHook(config.mlflow_conn_id)
    metrics = ServingMetrics(config.pipeline)
    models = ModelSet(
        hook,
        config.pipeline,
        poll_seconds=config.poll_seconds,
        on_change=lambda m: metrics.serving(_versions(m)),
    )
    writer = None
    if config.prediction_log:
        storage = PipelineStorage(config.pipeline, root=config.storage_root, conn_id=config.storage_conn_id)
        writer = PredictionLogWriter(
            storage, max_rows=config.log_max_rows, max_seconds=config.log_max_seconds
        )
    service = ScoringService(
        config.routing,
        metrics,
        writer,
        explain_max_rows=config.explain_max_rows,
        explain_fallback_max_rows=config.explain_fallback_max_rows,
    )
    # FIFO: a request waits for a scoring thread in the order it arrived (anyio's limiter queues
    # its waiters), instead of every request contending for the GIL at once
    scoring = anyio.CapacityLimiter(config.scoring_threads)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(models.poll_once)  # a registry not up yet: the poll keeps trying
        models.start()
        if writer is not None:
            writer.start()
        try:
            yield
        finally:  # uvicorn's graceful stop (SIGTERM) runs this after the requests in flight
            models.stop()
            if writer is not None:
                await run_in_threadpool(_close_log, writer, config.pipeline)

    app = FastAPI(
        title=f"mlops-ops serving: {config.pipeline}", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.state.models, app.state.metrics, app.state.log_writer = models, metrics, writer

    @app.exception_handler(RequestError)
    async def refused(request: Request, err: RequestError) -> JSONResponse:
        return JSONResponse({"error_code": err.error_code, "message": err.message}, status_code=err.status)

    @app.get("/ping")
    @app.get("/health")
    async def health() -> Response:
        current = models.current
        body = {
            "pipeline": config.pipeline,
            "champion": current.champion.version if current.champion else None,
            "challenger": current.challenger.version if current.challenger else None,
            "strategy": config.routing.strategy.value,
            "registry_error": models.last_error,
            "prediction_log_error": writer.last_error if writer is not None else None,
        }
        ready = current.champion is not None and _log_refusal() is None
        return JSONResponse(body, status_code=200 if ready else 503)

    def _log_refusal() -> str | None:
        """Why requests are refused while the prediction log cannot be written; None if they are not."""
        if writer is None or writer.buffered < config.log_max_buffered_rows:
            return None
        why = writer.last_error or "its write is still under way"
        return (
            f"the prediction log cannot be written ({why}); {writer.buffered} rows wait "
            "in memory, so no more predictions are answered until it can: retry shortly"
        )

    @app.get("/version")
    async def version() -> PlainTextResponse:
        from importlib.metadata import version as dist_version

        return PlainTextResponse(dist_version("mlflow"))

    @app.get("/metrics")
    async def prometheus() -> Response:
        if writer is not None:
            metrics.log_buffered.labels(config.pipeline).set(writer.buffered)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            try:
                body, ctype = await _read_body(request, config.max_body_bytes)
                refusal = _log_refusal()
                if refusal is not None:
                    raise RequestError(503, refusal, "TEMPORARILY_UNAVAILABLE")
            except RequestError as err:
                status = err.status
                metrics.request("", "none", err.status)
                raise
            # parsing, scoring and the answer's JSON run in a scoring thread, in arrival order: the
            # event loop only reads bodies and writes answers
            explain = request.query_params.get("explain")
            status, content = await anyio.to_thread.run_sync(answer, body, ctype, explain, limiter=scoring)
            return Response(content, status_code=status, media_type="application/json")
        except RequestError as err:
            status = err.status
            raise
        finally:
            metrics.duration.labels(config.pipeline, str(status)).observe(time.perf_counter() - started)

    def answer(body: bytes, ctype: str, explain: str | None) -> tuple[int, bytes]:
        """One request, parsed and scored; a refusal before routing is counted here."""
        try:
            parsed = parse_body(body, max_rows=config.max_rows, content_type=ctype, explain=explain)
            current = models.current
            if current.champion is None:
                raise RequestError(
                    503, "no champion is serving yet; retry shortly", "TEMPORARILY_UNAVAILABLE"
                )
        except RequestError as err:
            metrics.request("", "none", err.status)
            raise
        status, document = service.score(parsed, current)  # counted per arm by the service
        return status, json.dumps(document, allow_nan=False).encode()

    return app


async def _read_body(request: Request, limit: int) -> tuple[bytes, str]:
    """The body (gunzipped or inflated per ``Content-Encoding``) and its content type (JSON or CSV);
    415 for another type or encoding, 413 beyond ``limit`` bytes, compressed or not (read no further).
    """
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in _CONTENT_TYPES:
        raise RequestError(
            415,
            f"Content-Type {ctype or '(none)'!r} is not supported; send application/json (or text/csv)",
            "UNSUPPORTED_MEDIA_TYPE",
        )
    encoding = request.headers.get("content-encoding", "identity").strip().lower() or "identity"
    if encoding != "identity" and encoding not in _DECOMPRESS:
        raise RequestError(
            415,
            f"Content-Encoding {encoding!r} is not supported; send gzip, deflate or an uncompressed body",
            "UNSUPPORTED_MEDIA_TYPE",
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(
            413, f"the body has {declared} bytes; at most {limit}: split the request", "PAYLOAD_TOO_LARGE"
        )
    inflate = zlib.decompressobj(_DECOMPRESS[encoding]) if encoding in _DECOMPRESS else None
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            if inflate is not None:  # bounded, so a small bomb never inflates past the limit
                chunk = inflate.decompress(chunk, limit + 1 - size)
                if inflate.unconsumed_tail:
                    size = limit + 1
            size += len(chunk)
            if size > limit:
                raise RequestError(
                    413, f"the body exceeds {limit} bytes; split the request", "PAYLOAD_TOO_LARGE"
                )
            chunks.append(chunk)
        if inflate is not None and not inflate.eof:
            raise zlib.error("the compressed stream ends early")
        if inflate is not None and inflate.unused_data:  # a second gzip member would be dropped
            raise zlib.error("data follows the end of the compressed stream; send one stream")
    except zlib.error as err:
        raise RequestError(400, f"the body is not valid {encoding} data: {err}") from None
    return b"".join(chunks), _CONTENT_TYPES[ctype]


def _close_log(writer: PredictionLogWriter, pipeline: str) -> None:
    """Write the buffered rows at shutdown; if the log's storage fails, save them under
    ``<MLOPS_HOME>/prediction_log_unsent`` (same layout) and say so loudly, never drop them."""
    try:
        log.info("prediction log closed: %d row(s) written at shutdown", writer.close())
        return
    except Exception as err:
        reason = f"{type(err).__name__}: {err}"
    from mlops_ops import settings

    aside = settings.mlops_home() / "prediction_log_unsent"
    saved = writer.spill(PipelineStorage(pipeline, root=aside.as_uri()))
    log.error(
        "prediction log: its storage failed at shutdown (%s); %d row(s) saved under %s instead: "
        "copy %s into the log's storage",
        reason,
        saved,
        aside,
        aside / pipeline / "prediction_log",
    )


def _versions(models: Models) -> dict[str, str | None]:
    return {
        "champion": models.champion.version if models.champion else None,
        "challenger": models.challenger.version if models.challenger else None,
    }
