"""``mlops-ops serve PIPELINE``: the settings from the spec and the options, then uvicorn."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from mlops_ops.serving.routing import DEFAULT_TRAFFIC, Routing, Strategy

log = logging.getLogger(__name__)


def find_spec(pipeline: str, spec_path: str | None) -> Any:
    """The pipeline's spec: ``spec_path``, else ``<pipeline>.yaml``/``.yml`` in ``$MLOPS_PIPELINES``
    (default ``<MLOPS_HOME>/pipelines``); None when there is none (the service then serves
    ``direct``). A spec that exists but is broken raises :class:`~mlops_ops.config.SpecError`."""
    from mlops_ops import settings
    from mlops_ops.config import load_pipeline_spec

    if spec_path:
        return load_pipeline_spec(spec_path)
    folder = Path(os.environ.get("MLOPS_PIPELINES") or settings.mlops_home() / "pipelines")
    for suffix in (".yaml", ".yml"):
        path = folder / f"{pipeline}{suffix}"
        if path.exists():
            return load_pipeline_spec(path)
    return None


def routing_from_spec(
    spec: Any, *, strategy: str | None = None, traffic: float | None = None, sticky_key: str | None = None
) -> Routing:
    """Routing from the spec's ``deployment`` section, each option overriding its field.

    :raises ValueError: an unknown strategy or a traffic share outside [0, 1].
    """
    deployment = getattr(spec, "deployment", None)

    def field(name: str) -> Any:
        value = getattr(deployment, name, None)
        return getattr(value, "value", value)

    chosen = Strategy(strategy or field("strategy") or Strategy.DIRECT.value)
    share = traffic if traffic is not None else field("traffic")
    if share is None:
        share = DEFAULT_TRAFFIC[chosen]
    name = getattr(spec, "name", "")
    return Routing(
        strategy=chosen, traffic=float(share), sticky_key=sticky_key or field("sticky_key"), salt=name
    )


def run_service(args: argparse.Namespace) -> int:
    # One OpenMP thread per scoring call unless the environment says otherwise: requests are a few
    # rows and run side by side in uvicorn's thread pool, where gradient boosting's default (a pool
    # of one thread per core for every call) costs more in synchronisation than it scores. Set
    # before NumPy and scikit-learn load their runtimes.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import uvicorn

    from mlops_ops.serving.app import ServeConfig, create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spec = find_spec(args.pipeline, args.spec)
    routing = routing_from_spec(
        spec, strategy=args.strategy, traffic=args.traffic, sticky_key=args.sticky_key
    )
    if spec is not None and routing.salt != args.pipeline:
        raise SystemExit(f"the spec is pipeline {routing.salt!r}, not {args.pipeline!r}")
    routing = Routing(routing.strategy, routing.traffic, routing.sticky_key, salt=args.pipeline)
    config = ServeConfig(
        pipeline=args.pipeline,
        routing=routing,
        poll_seconds=args.poll_seconds,
        prediction_log=not args.no_prediction_log,
        log_max_rows=args.log_max_rows,
        log_max_seconds=args.log_max_seconds,
        log_max_buffered_rows=args.log_max_buffered_rows,
        explain_max_rows=args.explain_max_rows,
        explain_fallback_max_rows=args.explain_fallback_max_rows,
        **({"scoring_threads": args.scoring_threads} if args.scoring_threads else {}),
    )
    log.info(
        "serving %s on http://%s:%d: %s, traffic %.3f, sticky key %s",
        args.pipeline,
        args.host,
        args.port,
        routing.strategy.value,
        routing.traffic,
        routing.sticky_key,
    )
    # uvicorn's graceful stop on SIGTERM/SIGINT: stop accepting, finish the requests in flight, then
    # the app's shutdown writes the prediction log's buffer
    uvicorn.run(
        create_app(config),
        host=args.host,
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=30,
        access_log=False,
    )
    return 0
