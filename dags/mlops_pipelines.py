"""The DAGs of every pipeline spec in pipelines/*.yaml (or the folder in $MLOPS_PIPELINES).

A spec that does not validate costs only its own DAGs: the other pipelines' DAGs are built, and
the failed specs show up in the Airflow UI's import errors for this file, each naming its file
and field (``build_dags`` adds a placeholder DAG that Airflow's DagBag refuses with that message).
"""

from __future__ import annotations

import os
from pathlib import Path

from mlops_ops.dag_factory import build_dags

PIPELINES = Path(os.environ.get("MLOPS_PIPELINES") or Path(__file__).resolve().parent.parent / "pipelines")

globals().update(build_dags(PIPELINES))
