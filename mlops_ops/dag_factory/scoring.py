"""The ``<name>_batch_scoring`` DAG."""

from __future__ import annotations

from typing import Any

from mlops_ops.config import PipelineSpec
from mlops_ops.dag_factory.common import dag_kwargs, fail_runs_before_start, ingest_task

SCORING_DOC = """\
### {name}: batch scoring

`champion -> ingest -> score`

* **champion** reads which version the `champion` alias of the MLflow model `{name}` points at,
  once. The rest of the run uses that concrete version, so a promotion during the run cannot mix
  two versions. With no champion yet the run is skipped (run `{name}_training` first; then clear
  a skipped run to score its interval).
* **ingest** reads `{source}` into a content-addressed snapshot; its SHA-256 is recorded with
  every prediction. A missing, empty or unreadable partition fails here and nothing is written.
* **score** checks that the partition has the model's feature columns, predicts, and replaces
  `predictions/<data interval start>/predictions.parquet` and `manifest.json` under the
  pipeline's storage, each atomically. It emits the `x-mlops://{name}/predictions` asset event.

Columns: {ids}`prediction`, {proba}`model_version`, `input_sha256`, `data_interval_start`,
`data_interval_end`. Re-running an interval replaces its predictions; it never adds a copy.
"""


def build_batch_scoring_dag(spec: PipelineSpec, *, default_args: dict[str, Any] | None = None) -> Any:
    """The ``<name>_batch_scoring`` DAG of a pipeline, or None when the spec has no ``scoring``."""
    if spec.scoring is None:
        return None
    from airflow.sdk import DAG

    from mlops_ops.operators.score import BatchScoreOperator, ResolveChampionOperator

    src = spec.scoring.source
    ids = list(spec.scoring.id_columns)
    common: dict[str, Any] = {"pipeline": spec.name}
    with DAG(
        dag_id=f"{spec.name}_batch_scoring",
        description=f"Score each partition with the {spec.name} champion",
        schedule=spec.schedules.scoring,
        # one run at a time (dag_kwargs): runs of one interval must not write its folder concurrently
        **dag_kwargs(spec, "scoring", default_args=default_args),
        doc_md=SCORING_DOC.format(
            name=spec.name,
            source=src.uri or f"SQL on {src.conn_id}",
            ids="".join(f"`{c}`, " for c in ids),
            proba="`probability` (classifiers), ",
        ),
    ) as dag:
        champion = ResolveChampionOperator(task_id="champion", **common)
        # a partition to score is not training data: no x-mlops://<name>/dataset event
        ingest = ingest_task(src, task_id="ingest", pipeline=spec.name, min_rows=1, outlets=[])
        score = BatchScoreOperator(
            task_id="score",
            snapshot=ingest.output,
            model=champion.output,
            id_columns=ids,
            explain_top_k=spec.scoring.explain_top_k,
            explain_max_rows=spec.scoring.explain_max_rows,
            **common,
        )
        champion >> ingest >> score
    return fail_runs_before_start(dag, spec)
