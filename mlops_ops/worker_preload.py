"""Imported once by each Celery worker, so that its task processes start with the heavy libraries loaded.

Airflow 3 runs every task in a process forked from a Celery pool process. Each task would
otherwise import pandas, scikit-learn, SciPy, PyArrow, MLflow and Great Expectations again: tens
of seconds per task on a busy 2-core worker, more than most tasks then spend working. The
topology (``mlops_ops/topology.py``) names this module in ``[celery] extra_celery_config``
(``{"imports": ["mlops_ops.worker_preload"]}``); the Celery worker imports it in its main process,
before it forks its pool, and every fork shares the loaded modules.

Importing only: no thread, connection or file is opened, so forking afterwards is safe. A module
that is not installed (an optional back-end) is skipped with a warning; the task that needs it
then fails with its own import error. Never imported by a DAG file (parse time stays light).
"""

from __future__ import annotations

import importlib
import logging

log = logging.getLogger(__name__)

#: What the operators' ``execute()`` import, directly or through ``mlops_ops.core``.
MODULES = (
    "mlops_ops.dag_factory",
    "mlops_ops.core.training",
    "mlops_ops.core.validation",
    "mlops_ops.core.drift",
    "mlops_ops.core.evaluation",
    "mlops_ops.core.monitoring",
    "mlops_ops.core.scoring",
    "mlops_ops.hooks.mlflow",
    "mlflow.sklearn",
    "s3fs",
)


def preload(modules: tuple[str, ...] = MODULES) -> list[str]:
    """Import ``modules``; returns the names that could not be imported (each logged)."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as err:
            log.warning("worker preload: %s not imported (%s); tasks import it when they need it", name, err)
            missing.append(name)
    return missing


preload()
