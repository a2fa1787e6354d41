"""The DAGs of every pipeline spec in pipelines/*.yaml (or the folder in $MLOPS_PIPELINES).

A spec that does not validate fails this file's import with a message naming the file and the
field, so a broken spec shows up in the Airflow UI's import errors as soon as it is deployed.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlops_ops.dag_factory import build_dags

PIPELINES = Path(os.environ.get("MLOPS_PIPELINES") or Path(__file__).resolve().parent.parent / "pipelines")

globals().update(build_dags(PIPELINES))
