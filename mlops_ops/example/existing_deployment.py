"""How a team with its own Airflow deployment uses mlops-ops: operators imported one by one.

No pipeline spec: every setting is an operator argument. The pipeline is called
``churn_custom`` (its own MLflow experiment, registered model and storage prefix).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from mlops_ops.operators import (
    DeployModelOperator,
    EvaluateModelOperator,
    IngestDatasetOperator,
    TrainModelOperator,
    ValidateDataOperator,
)

PIPELINE = "churn_custom"
NUMERIC = ["tenure_months", "monthly_charges", "support_calls", "data_usage_gb"]
CATEGORICAL = ["contract", "region", "payment_method"]

with DAG(
    dag_id="example_existing_deployment",
    description="Churn model trained by individual mlops-ops operators",
    schedule=None,
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    tags=["mlops-ops", "example"],
    default_args={"owner": "data-science", "retries": 1},
) as dag:
    ingest = IngestDatasetOperator(
        task_id="ingest",
        pipeline=PIPELINE,
        source_uri="${MLOPS_HOME}/data/churn/daily/*.parquet",
        min_rows=200,
    )
    validate = ValidateDataOperator(
        task_id="validate",
        pipeline=PIPELINE,
        snapshot=ingest.output,
        target="churned",
        numeric_features=NUMERIC,
        categorical_features=CATEGORICAL,
        expectations=[
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "monthly_charges", "min_value": 0, "max_value": 1000},
                "severity": "warn",
            },
        ],
    )
    train = TrainModelOperator(
        task_id="train",
        pipeline=PIPELINE,
        snapshot=ingest.output,
        target="churned",
        estimator="sklearn.linear_model.LogisticRegression",
        estimator_params={"C": 0.5, "max_iter": 500},
        numeric_features=NUMERIC,
        categorical_features=CATEGORICAL,
    )
    evaluate = EvaluateModelOperator(
        task_id="evaluate",
        pipeline=PIPELINE,
        model=train.output,
        evaluation={"primary_metric": "roc_auc", "thresholds": {"roc_auc": {"lower": 0.65}}},
    )
    deploy = DeployModelOperator(task_id="deploy", pipeline=PIPELINE, decision=evaluate.output)

    validate >> train
