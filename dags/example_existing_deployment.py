"""Airflow DAG file: the hand-written example DAG ``example_existing_deployment``.

Its code is in ``mlops_ops/example/existing_deployment.py``, packaged so that ``mlops-ops up``
installs the same DAG in its own DAGs folder.
"""

from mlops_ops.example.existing_deployment import dag

__all__ = ["dag"]
