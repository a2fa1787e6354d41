"""deploy/, checked without a cluster: the KubernetesExecutor pod template, the Helm values for the
official Airflow chart and the deployed pipeline spec agree with ``mlops_ops/topology.py``, the
topology ``tests/integration/test_distributed.py`` runs and ``docker-compose.yaml`` writes out.

No Kubernetes API server or Helm runs here, so the files are parsed as YAML and compared with the
module; the option names are checked against the installed Airflow's configuration reference.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from mlops_ops import topology
from tests.unit.test_docker_compose import CONFIG_OPTIONS

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


POD = _load(DEPLOY / "kubernetes" / "pod-template.yaml")
VALUES = _load(DEPLOY / "helm" / "values.yaml")
EXPECTED = topology.airflow_environment(topology.COMPOSE, topology.COMPOSE_LAYOUT)

# Settings that hold the same value wherever the topology runs (no host name, port or secret).
PLACEMENT_FREE = (
    "AIRFLOW__CORE__LOAD_EXAMPLES",
    "AIRFLOW__CORE__DAGS_FOLDER",
    "MLOPS_STORAGE",
    "MLOPS_STORAGE_CONN_ID",
    topology.DATA_URI_VAR,
    "MLOPS_HOME",
    "MLOPS_PIPELINES",
    "GX_ANALYTICS_ENABLED",
)
# Values that carry a secret (signing key, connection credentials) come from a Secret, never inline.
SECRET_ENV = ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW_CONN_MLFLOW_DEFAULT", "AIRFLOW_CONN_AWS_DEFAULT")


def _base_container() -> dict[str, Any]:
    found = [c for c in POD["spec"]["containers"] if c["name"] == "base"]
    assert len(found) == 1, "the KubernetesExecutor runs tasks in the container named 'base'"
    return found[0]


def _pod_env() -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in _base_container().get("env", [])}


def _option_exists(var: str) -> bool:
    section, key = var[len("AIRFLOW__") :].lower().split("__")
    return key in CONFIG_OPTIONS.get(section, set())


# -- the pod template ----------------------------------------------------------------------------


def test_pod_template_is_a_pod_for_the_kubernetes_executor():
    assert POD["apiVersion"] == "v1"
    assert POD["kind"] == "Pod"
    assert POD["spec"]["restartPolicy"] == "Never", "a task pod that restarts runs its task twice"
    assert _pod_env()["AIRFLOW__CORE__EXECUTOR"]["value"] == "KubernetesExecutor"


def test_pod_template_has_the_topology_settings():
    env = _pod_env()
    for key in PLACEMENT_FREE:
        assert key in env, f"the pod template does not set {key}"
        assert env[key].get("value") == EXPECTED[key], (
            f"{key}: {env[key].get('value')!r} != {EXPECTED[key]!r}"
        )
    url = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]["value"])
    assert url.path == urlsplit(EXPECTED["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]).path


def test_pod_template_takes_secrets_from_secrets():
    env = _pod_env()
    for key in SECRET_ENV:
        assert key in env, f"the pod template does not set {key}"
        assert "value" not in env[key], f"{key} is written into the pod template"
        assert env[key]["valueFrom"]["secretKeyRef"]["name"]
    jwt = env["AIRFLOW__API_AUTH__JWT_SECRET"]["valueFrom"]["secretKeyRef"]
    assert (jwt["name"], jwt["key"]) == (VALUES["jwtSecretName"], "jwt-secret"), (
        "task pods would sign with another JWT secret than the API server verifies"
    )


def test_pod_template_shares_no_disk():
    volumes = POD["spec"].get("volumes") or []
    for volume in volumes:
        kinds = set(volume) - {"name"}
        assert kinds == {"emptyDir"}, f"volume {volume['name']} is {kinds}: task pods must share no disk"


@pytest.mark.parametrize("var", sorted(k for k in _pod_env() if k.startswith("AIRFLOW__")))
def test_pod_template_option_exists(var):
    assert _option_exists(var), f"{var} names no option of the installed Airflow"


# -- the Helm values ---------------------------------------------------------------------------


def test_helm_values_run_the_tested_executor_and_workers():
    assert VALUES["executor"] == EXPECTED["AIRFLOW__CORE__EXECUTOR"]
    assert VALUES["workers"]["replicas"] == topology.WORKER_REPLICAS
    config = VALUES["config"]
    assert str(config["celery"]["worker_concurrency"]) == EXPECTED["AIRFLOW__CELERY__WORKER_CONCURRENCY"]
    assert json.loads(config["celery"]["extra_celery_config"]) == json.loads(
        EXPECTED["AIRFLOW__CELERY__EXTRA_CELERY_CONFIG"]
    )
    assert config["operators"]["default_queue"] == EXPECTED["AIRFLOW__OPERATORS__DEFAULT_QUEUE"]
    assert (
        str(config["celery_broker_transport_options"]["visibility_timeout"])
        == (EXPECTED["AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT"])
    )
    assert config["core"]["dags_folder"] == EXPECTED["AIRFLOW__CORE__DAGS_FOLDER"]
    assert str(config["core"]["load_examples"]) == EXPECTED["AIRFLOW__CORE__LOAD_EXAMPLES"]
    for section, options in config.items():
        for key in options:
            assert _option_exists(f"AIRFLOW__{section.upper()}__{key.upper()}"), f"config.{section}.{key}"


def test_helm_values_have_the_topology_settings_and_connections():
    env = {item["name"]: item["value"] for item in VALUES["env"]}
    for key in PLACEMENT_FREE:
        if key.startswith("AIRFLOW__"):
            continue  # set through `config:` above
        assert env.get(key) == EXPECTED[key], f"{key}: {env.get(key)!r} != {EXPECTED[key]!r}"
    secrets = {item["envName"]: item for item in VALUES["secret"]}
    pod = _pod_env()
    for key in ("AIRFLOW_CONN_MLFLOW_DEFAULT", "AIRFLOW_CONN_AWS_DEFAULT"):
        assert key in secrets, f"the chart's pods do not get {key}"
        ref = pod[key]["valueFrom"]["secretKeyRef"]
        assert (secrets[key]["secretName"], secrets[key]["secretKey"]) == (ref["name"], ref["key"])


def test_helm_values_share_no_disk_and_bring_their_own_services():
    assert VALUES["dags"]["persistence"]["enabled"] is False
    assert VALUES["dags"]["gitSync"]["enabled"] is False, "DAG files come with the image"
    assert VALUES["logs"]["persistence"]["enabled"] is False
    assert VALUES["workers"]["persistence"]["enabled"] is False
    # PostgreSQL and Redis are the team's own, given by secrets (the chart's bundled ones are for trials)
    assert VALUES["postgresql"]["enabled"] is False
    assert VALUES["redis"]["enabled"] is False
    for key in ("metadataSecretName", "resultBackendSecretName", "brokerUrlSecretName"):
        assert VALUES["data"][key], key
    for key in ("jwtSecretName", "apiSecretKeySecretName", "fernetKeySecretName"):
        assert VALUES[key], key


# -- the deployed pipeline spec -----------------------------------------------------------------


def test_deployed_spec_is_the_example_with_its_data_on_the_object_store():
    from mlops_ops.config import load_pipeline_spec

    deployed = _load(DEPLOY / "pipelines" / "churn.yaml")
    example = _load(ROOT / "pipelines" / "churn.yaml")
    sources = [
        deployed["source"],
        deployed["monitoring"]["source"],
        deployed["monitoring"]["feedback"]["source"],
        deployed["scoring"]["source"],
    ]
    for source in sources:
        assert source["uri"].startswith("${" + topology.DATA_URI_VAR + "}/"), source
        assert source["conn_id_storage"] == topology.STORAGE_CONN_ID, source
        source.pop("conn_id_storage")
        source["uri"] = source["uri"].replace("${" + topology.DATA_URI_VAR + "}", "${MLOPS_HOME}/data")
    assert deployed == example, (
        "deploy/pipelines/churn.yaml differs from pipelines/churn.yaml beyond its sources"
    )
    spec = load_pipeline_spec(DEPLOY / "pipelines" / "churn.yaml")
    assert spec.source.conn_id_storage == topology.STORAGE_CONN_ID
