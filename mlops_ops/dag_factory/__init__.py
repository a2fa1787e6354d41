"""PipelineSpec -> DAGs. Runs at DAG parse time: builds operators, imports nothing heavy.

One module per DAG kind: ``training``, ``monitoring``, ``rollback``, ``scoring``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from mlops_ops.config import PipelineSpec, SpecError, load_pipeline_spec
from mlops_ops.dag_factory.common import DEFAULT_ARGS, START_DATE
from mlops_ops.dag_factory.monitoring import build_monitoring_dag
from mlops_ops.dag_factory.rollback import build_rollback_dag
from mlops_ops.dag_factory.scoring import build_batch_scoring_dag
from mlops_ops.dag_factory.training import build_training_dag

__all__ = [
    "DEFAULT_ARGS",
    "START_DATE",
    "build_dags",
    "build_monitoring_dag",
    "build_pipeline_dags",
    "build_training_dag",
]


def _builders() -> list[Callable[..., Any]]:
    return [
        build_training_dag,
        build_monitoring_dag,
        build_batch_scoring_dag,
        build_rollback_dag,
    ]


def build_pipeline_dags(spec: PipelineSpec, *, default_args: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every DAG of one pipeline, by dag_id."""
    dags = {}
    for builder in _builders():
        dag = builder(spec, default_args=default_args)
        if dag is not None:
            dags[dag.dag_id] = dag
    return dags


def iter_spec_files(folder: Path) -> Iterable[Path]:
    return sorted(p for p in folder.glob("*.y*ml") if p.suffix in (".yaml", ".yml"))


def build_dags(folder: str | Path, *, default_args: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every DAG of every spec in ``folder``, by dag_id. Raises SpecError listing every bad spec."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SpecError(f"pipelines folder {folder} does not exist; set MLOPS_PIPELINES or create it")
    dags: dict[str, Any] = {}
    errors: list[str] = []
    for path in iter_spec_files(folder):
        try:
            spec = load_pipeline_spec(path)
        except SpecError as err:
            errors.append(str(err))
            continue
        dags.update(build_pipeline_dags(spec, default_args=default_args))
    if errors:
        raise SpecError("\n".join(errors))
    return dags
