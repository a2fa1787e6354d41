"""mlops_ops/worker_preload.py: what a Celery worker imports once, before it forks its pool."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mlops_ops import topology


@pytest.mark.slow  # imports pandas, scikit-learn, MLflow and GX in a fresh interpreter
def test_every_preloaded_module_imports_and_a_missing_one_is_skipped():
    code = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.WARNING, stream=sys.stdout)\n"
        "from mlops_ops import worker_preload\n"
        "print('missing:', worker_preload.preload(('mlops_ops_no_such_module',)))\n"
        "print('loaded:', all(m in sys.modules for m in worker_preload.MODULES))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "loaded: True" in out.stdout, out.stdout
    assert "missing: ['mlops_ops_no_such_module']" in out.stdout
    assert "mlops_ops_no_such_module not imported" in out.stdout


def test_the_topology_preloads_it_in_every_worker():
    env = topology.airflow_environment(topology.COMPOSE, topology.COMPOSE_LAYOUT)
    assert topology.PRELOAD_MODULE in env["AIRFLOW__CELERY__EXTRA_CELERY_CONFIG"]
    assert topology.PRELOAD_MODULE == "mlops_ops.worker_preload"
