"""mlops-ops: Apache Airflow 3 operators and DAG builders for the whole life of a tabular model."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
