"""The production topology as data: which processes run, with which command and environment.

One description serves three readers, so they cannot drift apart:

* ``tests/integration/test_distributed.py`` launches it as plain processes on one machine
  (:func:`services` with a :class:`Placement` of free local ports, one home per process group);
* ``docker-compose.yaml`` is the same services as containers, and
  ``tests/unit/test_docker_compose.py`` checks the file against :func:`services` rendered with
  :data:`COMPOSE` (service names as hosts, fixed ports, the file's development secrets);
* ``deploy/`` (a KubernetesExecutor pod template, Helm values for the official chart) is checked
  against :func:`airflow_environment` by ``tests/unit/test_deploy.py``; ``deploy/serving/`` (the
  online service's image and Kubernetes manifests) against :func:`serving_command` and
  :func:`serving_environment` by ``tests/unit/test_serving_deploy.py``.

The topology (``docs/production.md``): PostgreSQL holds Airflow's metadata DB, the Celery result
backend and MLflow's backend store (two databases); Redis is the Celery broker; the API server,
scheduler, DAG processor and triggerer form the control plane; Celery workers run the tasks and
share no disk with anything (their DAG files and pipeline specs come with their image); every
file a task writes goes to ``s3://`` through the Airflow connection ``aws_default``; MLflow runs
as a server that proxies artifacts (``--serve-artifacts``), so a worker never sees an artifact
directory. Standard library only: nothing here imports Airflow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import quote

#: Airflow connection id of the object store (storage and source data).
STORAGE_CONN_ID = "aws_default"
#: Airflow connection id of the MLflow server (``MlflowHook``'s default).
MLFLOW_CONN_ID = "mlflow_default"
#: Module every Celery worker imports at start (``mlops_ops/worker_preload.py``).
PRELOAD_MODULE = "mlops_ops.worker_preload"
#: Environment variable the deployed pipeline specs read their source data's root from.
DATA_URI_VAR = "MLOPS_DATA_URI"

#: The Airflow components, in start order; each is ``airflow <command>`` in its own process.
AIRFLOW_COMPONENTS = (
    "airflow-apiserver",
    "airflow-dag-processor",
    "airflow-scheduler",
    "airflow-triggerer",
    "airflow-worker",
)

#: Settings the test adds to make one run short: timing only (how often the scheduler and the DAG
#: processor look, how long a task's API call may wait on a loaded machine), never behaviour.
#: ``tests/unit/test_docker_compose.py`` holds them to this promise.
FAST_TEST_SETTINGS = {
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "1200",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
    "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
    "AIRFLOW__WORKERS__EXECUTION_API_RETRIES": "10",
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
}


@dataclass(frozen=True)
class Placement:
    """Where each service of the topology is reached, and the secrets all Airflow processes share.

    Hosts are host names or addresses as the *clients* see them (a compose service name, or
    ``127.0.0.1`` when every process runs on one machine); ports are TCP ports.

    :param postgres: ``host:port`` of PostgreSQL.
    :param postgres_user: its user; ``postgres_password`` may be empty (trust authentication).
    :param airflow_db: database of Airflow's metadata and of the Celery results.
    :param mlflow_db: database of MLflow's backend store (never Airflow's: both use Alembic).
    :param redis: ``host:port`` of the Celery broker; ``redis_db`` its database number.
    :param queue: the Celery queue every task goes to and every worker consumes.
    :param api_host: how workers reach the API server; ``api_port`` where it listens.
    :param mlflow_host: how workers reach ``mlflow server``; ``mlflow_port`` where it listens;
        ``mlflow_ui_url`` how a browser reaches it (the extra links).
    :param s3_endpoint: URL of the S3-compatible server (``None``: AWS S3 itself).
    :param bucket: the bucket of storage (``s3://<bucket>/storage``), source data
        (``s3://<bucket>/data``) and MLflow's artifacts (``s3://<bucket>/mlartifacts``).
    """

    postgres: str
    postgres_user: str
    postgres_password: str
    airflow_db: str
    mlflow_db: str
    redis: str
    redis_db: int
    queue: str
    api_host: str
    api_port: int
    mlflow_host: str
    mlflow_port: int
    mlflow_ui_url: str
    s3_endpoint: str | None
    bucket: str
    s3_access_key: str
    s3_secret_key: str
    s3_region: str
    jwt_secret: str
    api_secret_key: str
    fernet_key: str
    mlflow_listen: str = "0.0.0.0"
    api_workers: int = 1
    worker_concurrency: int = 1
    extra_mlflow_hosts: tuple[str, ...] = field(default_factory=tuple)

    def postgres_url(self, scheme: str, database: str) -> str:
        password = f":{quote(self.postgres_password, safe='')}" if self.postgres_password else ""
        return f"{scheme}://{self.postgres_user}{password}@{self.postgres}/{database}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.mlflow_host}:{self.mlflow_port}"


@dataclass(frozen=True)
class Layout:
    """Where one process group keeps its files (its image, in a container).

    :param dags_folder: the DAG files (``dags/`` of the project).
    :param pipelines: the pipeline specs (``deploy/pipelines/``).
    :param mlops_home: ``MLOPS_HOME``: scratch space only; nothing a later task reads.
    """

    dags_folder: str
    pipelines: str
    mlops_home: str


@dataclass(frozen=True)
class Service:
    """One process of the topology: its command line and environment.

    ``command`` is the full argument vector for non-Airflow services and the arguments given to
    ``airflow`` for Airflow components (the official image's entrypoint is ``airflow``).
    """

    name: str
    command: tuple[str, ...]
    environment: dict[str, str]
    replicas: int = 1


#: The placement ``docker-compose.yaml`` uses: service names as hosts, development secrets
#: (overridable there through the variables named in its header).
COMPOSE = Placement(
    postgres="postgres:5432",
    postgres_user="airflow",
    postgres_password="airflow",
    airflow_db="airflow",
    mlflow_db="mlflow",
    redis="redis:6379",
    redis_db=0,
    queue="default",
    api_host="airflow-apiserver",
    api_port=8080,
    mlflow_host="mlflow",
    mlflow_port=5000,
    mlflow_ui_url="http://localhost:5000",
    s3_endpoint="http://s3:9000",
    bucket="mlops",
    s3_access_key="mlops-dev-access-key",
    s3_secret_key="mlops-dev-secret-key",
    s3_region="us-east-1",
    jwt_secret="dev-only-jwt-secret-change-me-0123456789abcdef",
    api_secret_key="dev-only-api-secret-key-change-me-0123456789",
    fernet_key="",
    extra_mlflow_hosts=("localhost:5000", "127.0.0.1:5000"),
    worker_concurrency=2,
)

#: Where compose puts the project in every Airflow container (the image's copy of the project).
COMPOSE_LAYOUT = Layout(
    dags_folder="/opt/mlops-ops/dags",
    pipelines="/opt/mlops-ops/deploy/pipelines",
    mlops_home="/tmp/mlops",
)

#: Replicas of the Celery worker (two machines' worth of workers; the test runs two as well).
WORKER_REPLICAS = 2

#: The online service (``mlops-ops serve``): the pipeline it serves and the port it listens on.
SERVING_PIPELINE = "churn"
SERVING_PORT = 8000


def aws_connection(p: Placement) -> dict[str, object]:
    """The Airflow ``aws`` connection of the object store, as ``AIRFLOW_CONN_AWS_DEFAULT`` JSON."""
    extra: dict[str, object] = {"region_name": p.s3_region}
    if p.s3_endpoint:
        extra["endpoint_url"] = p.s3_endpoint
    return {"conn_type": "aws", "login": p.s3_access_key, "password": p.s3_secret_key, "extra": extra}


def mlflow_connection(p: Placement) -> dict[str, object]:
    """The Airflow ``mlflow`` connection of the MLflow server (read by ``MlflowHook``)."""
    return {"conn_type": "mlflow", "host": p.mlflow_url, "extra": {"ui_url": p.mlflow_ui_url}}


def airflow_environment(p: Placement, layout: Layout) -> dict[str, str]:
    """The environment every Airflow process of the topology shares, value for value.

    :returns: variable name -> value (``AIRFLOW__SECTION__KEY`` options, ``AIRFLOW_CONN_*``
        connections, ``MLOPS_*`` settings).
    """
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": p.postgres_url("postgresql+psycopg2", p.airflow_db),
        "AIRFLOW__CELERY__BROKER_URL": f"redis://{p.redis}/{p.redis_db}",
        "AIRFLOW__CELERY__RESULT_BACKEND": p.postgres_url("db+postgresql", p.airflow_db),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(p.worker_concurrency),
        # a task still unacknowledged after this long is given to another worker (Airflow's
        # default, set so that nobody lowers it below the longest training run by accident)
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "86400",
        # each worker imports the heavy libraries once; its task processes are forks of it
        "AIRFLOW__CELERY__EXTRA_CELERY_CONFIG": json.dumps({"imports": [PRELOAD_MODULE]}),
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": p.queue,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": layout.dags_folder,
        # task processes on a worker reach the API server here (Airflow 3: tasks never touch the DB)
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{p.api_host}:{p.api_port}/execution/",
        # identical in every Airflow process: the API server verifies the tokens workers present
        "AIRFLOW__API_AUTH__JWT_SECRET": p.jwt_secret,
        "AIRFLOW__API__SECRET_KEY": p.api_secret_key,
        "AIRFLOW__CORE__FERNET_KEY": p.fernet_key,
        "AIRFLOW_CONN_MLFLOW_DEFAULT": json.dumps(mlflow_connection(p)),
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(aws_connection(p)),
        "MLOPS_STORAGE": f"s3://{p.bucket}/storage",
        "MLOPS_STORAGE_CONN_ID": STORAGE_CONN_ID,
        DATA_URI_VAR: f"s3://{p.bucket}/data",
        "MLOPS_HOME": layout.mlops_home,
        "MLOPS_PIPELINES": layout.pipelines,
        "GX_ANALYTICS_ENABLED": "False",
    }


def mlflow_environment(p: Placement) -> dict[str, str]:
    """The environment of ``mlflow server``: the object store its artifacts live on."""
    env = {
        "AWS_ACCESS_KEY_ID": p.s3_access_key,
        "AWS_SECRET_ACCESS_KEY": p.s3_secret_key,
        "AWS_DEFAULT_REGION": p.s3_region,
    }
    if p.s3_endpoint:
        env["MLFLOW_S3_ENDPOINT_URL"] = p.s3_endpoint
    return env


def mlflow_command(p: Placement) -> tuple[str, ...]:
    """``mlflow server`` on PostgreSQL, proxying artifacts stored under ``s3://<bucket>/mlartifacts``."""
    allowed = (f"{p.mlflow_host}:{p.mlflow_port}", *p.extra_mlflow_hosts)
    return (
        "mlflow",
        "server",
        "--backend-store-uri",
        p.postgres_url("postgresql+psycopg2", p.mlflow_db),
        "--artifacts-destination",
        f"s3://{p.bucket}/mlartifacts",
        "--serve-artifacts",
        "--host",
        p.mlflow_listen,
        "--port",
        str(p.mlflow_port),
        # MLflow 3 answers 403 to a Host header it does not allow (localhost only by default)
        "--allowed-hosts",
        ",".join(dict.fromkeys(allowed)),
        "--workers",
        "1",
    )


def services(p: Placement, layout: Layout) -> dict[str, Service]:
    """Every process the topology runs besides PostgreSQL, Redis and the object store.

    :returns: service name (as in ``docker-compose.yaml``) -> :class:`Service`. ``airflow-init``
        runs once before the others (the metadata DB's migration).
    """
    env = airflow_environment(p, layout)
    airflow = {
        "airflow-init": ("db", "migrate"),
        "airflow-apiserver": ("api-server", "--port", str(p.api_port), "--workers", str(p.api_workers)),
        "airflow-dag-processor": ("dag-processor",),
        "airflow-scheduler": ("scheduler",),
        "airflow-triggerer": ("triggerer",),
        "airflow-worker": ("celery", "worker", "--queues", p.queue),
    }
    found = {
        name: Service(name, command, dict(env), WORKER_REPLICAS if name == "airflow-worker" else 1)
        for name, command in airflow.items()
    }
    found["mlflow"] = Service("mlflow", mlflow_command(p), mlflow_environment(p))
    found["serving"] = Service("serving", serving_command(), serving_environment(p, layout))
    return found


def serving_command(pipeline: str = SERVING_PIPELINE, port: int = SERVING_PORT) -> tuple[str, ...]:
    """``mlops-ops serve``: the pipeline's champion (and challenger) over HTTP on every interface."""
    return ("mlops-ops", "serve", pipeline, "--host", "0.0.0.0", "--port", str(port))


def serving_environment(p: Placement, layout: Layout) -> dict[str, str]:
    """The online service's environment: the registry, and the object store its prediction log goes
    to (the same storage root the tasks write, so the monitoring and release DAGs read the log)."""
    env = airflow_environment(p, layout)
    keep = (
        "AIRFLOW_CONN_MLFLOW_DEFAULT",
        "AIRFLOW_CONN_AWS_DEFAULT",
        "MLOPS_STORAGE",
        "MLOPS_STORAGE_CONN_ID",
        "MLOPS_HOME",
        "MLOPS_PIPELINES",
    )
    return {k: env[k] for k in keep}
