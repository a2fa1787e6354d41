"""PipelineSpec -> DAGs. Runs at DAG parse time: builds operators, imports nothing heavy.

One module per DAG kind: ``training``, ``monitoring``, ``rollback``, ``scoring``, ``release``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

from mlops_ops.config import PipelineSpec, SpecError, load_pipeline_spec, spec_files
from mlops_ops.dag_factory.common import DEFAULT_ARGS, START_DATE
from mlops_ops.dag_factory.monitoring import build_monitoring_dag
from mlops_ops.dag_factory.release import build_release_dag
from mlops_ops.dag_factory.rollback import build_rollback_dag
from mlops_ops.dag_factory.scoring import build_batch_scoring_dag
from mlops_ops.dag_factory.training import build_training_dag

__all__ = [
    "DEFAULT_ARGS",
    "INVALID_SPECS_DAG_ID",
    "START_DATE",
    "build_dags",
    "build_monitoring_dag",
    "build_pipeline_dags",
    "build_release_dag",
    "build_training_dag",
    "invalid_specs_dag",
]

log = logging.getLogger(__name__)


def _builders() -> list[Callable[..., Any]]:
    return [
        build_training_dag,
        build_monitoring_dag,
        build_batch_scoring_dag,
        build_rollback_dag,
        build_release_dag,
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
    return spec_files(folder)


def build_dags(
    folder: str | Path,
    *,
    default_args: dict[str, Any] | None = None,
    on_invalid: Literal["report", "raise"] = "report",
) -> dict[str, Any]:
    """Every DAG of every valid spec in ``folder``, by dag_id.

    A spec that fails (invalid, unreadable, or its DAGs cannot be built) costs only its own DAGs.
    With ``on_invalid="report"`` (for a DAG file) the result also holds one
    :class:`InvalidSpecsDag` listing every failed spec: Airflow's DagBag records it as the DAG
    file's import error (shown in the UI, naming each file and field) and keeps the other DAGs.
    With ``on_invalid="raise"`` a :class:`SpecError` listing every failed spec is raised instead.

    :raises SpecError: when ``folder`` does not exist (then there is nothing to build).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SpecError(f"pipelines folder {folder} does not exist; set MLOPS_PIPELINES or create it")
    dags: dict[str, Any] = {}
    errors: list[str] = []
    owners: dict[str, Path] = {}
    for path in iter_spec_files(folder):
        try:
            spec = load_pipeline_spec(path)
            if spec.name in owners:
                raise SpecError(
                    f"{path}: pipeline {spec.name!r} is already defined by {owners[spec.name].name}; "
                    "keep one of the two files"
                )
            built = build_pipeline_dags(spec, default_args=default_args)
        except SpecError as err:
            errors.append(str(err))
            continue
        except Exception as err:  # one spec's failure must not cost the other pipelines' DAGs
            log.exception("building the DAGs of %s failed", path)
            errors.append(f"{path}: its DAGs could not be built: {type(err).__name__}: {err}")
            continue
        owners[spec.name] = path
        dags.update(built)
    if errors:
        message = (
            f"{len(errors)} pipeline spec(s) in {folder} failed; their DAGs are not built "
            f"(the other pipelines' DAGs are):\n" + "\n".join(errors)
        )
        if on_invalid == "raise":
            raise SpecError(message)
        log.error("%s", message)
        placeholder = invalid_specs_dag(message)
        dags[placeholder.dag_id] = placeholder
    return dags


#: dag_id of the placeholder that carries the failed specs into Airflow's import errors.
INVALID_SPECS_DAG_ID = "mlops_ops_invalid_pipeline_specs"


def invalid_specs_dag(message: str) -> Any:
    """A DAG object that Airflow's DagBag refuses with ``message``, recorded as an import error.

    Airflow 3.3's DagBag validates each DAG found in a file (``dag.validate()``) and records a
    failure as the file's import error, while the file's other DAGs are still bagged
    (``airflow.dag_processing.dagbag.DagBag.process_file``). Raising in the DAG file instead
    would lose every DAG of the file.
    """
    from airflow.sdk import DAG

    class InvalidSpecsDag(DAG):
        """Never scheduled: its validation always fails with the failed specs' messages."""

        def validate(self) -> None:
            raise SpecError(message)

    return InvalidSpecsDag(dag_id=INVALID_SPECS_DAG_ID, schedule=None, doc_md=message)
