"""deploy/serving/ (the online service's image and Kubernetes manifests), checked without an engine.

No Docker or Kubernetes runs here, so the files are read as text and YAML and held to
``mlops_ops/topology.py`` (the command and environment the compose service also uses, see
``tests/unit/test_docker_compose.py``) and to the project (files the image copies exist, the CLI
parses the command).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml

from mlops_ops import topology

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "serving" / "Dockerfile"
MANIFESTS = ROOT / "deploy" / "serving" / "kubernetes.yaml"
COMMAND = list(topology.serving_command())
ENV = topology.serving_environment(topology.COMPOSE, topology.COMPOSE_LAYOUT)
#: credentials come from a Secret on Kubernetes, never as literal values
SECRET_ENV = {"AIRFLOW_CONN_MLFLOW_DEFAULT", "AIRFLOW_CONN_AWS_DEFAULT"}


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    out, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            keyword, _, args = current.strip().partition(" ")
            out.append((keyword.upper(), args.strip()))
            current = ""
    return out


def first(keyword: str) -> str:
    found = [a for k, a in instructions() if k == keyword]
    assert found, f"the Dockerfile has no {keyword}"
    return found[-1]


def test_the_image_runs_the_topology_command_as_a_non_root_user():
    assert json.loads(first("CMD")) == COMMAND
    assert first("EXPOSE") == str(topology.SERVING_PORT)
    assert first("USER") not in ("root", "0")
    assert first("STOPSIGNAL") == "SIGTERM"  # uvicorn's graceful stop
    assert first("FROM").startswith("python:3.11")


def test_the_image_copies_files_that_exist_and_installs_with_the_pins():
    for keyword, args in instructions():
        if keyword == "COPY":
            *sources, _ = shlex.split(args)
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such file in the project"
    run = first("RUN")
    assert "-c constraints.txt" in run
    env = dict(item.split("=", 1) for item in shlex.split(first("ENV")))
    assert env["MLOPS_PIPELINES"] == ENV["MLOPS_PIPELINES"]
    assert (ROOT / "deploy" / "pipelines" / f"{topology.SERVING_PIPELINE}.yaml").exists()


def test_the_command_parses_with_the_cli():
    from mlops_ops.cli import main

    with pytest.raises(SystemExit) as exit_:
        main([*COMMAND[1:], "--help"])
    assert exit_.value.code == 0


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict]:
    docs = [d for d in yaml.safe_load_all(MANIFESTS.read_text()) if d]
    kinds = [d["kind"] for d in docs]
    assert sorted(kinds) == ["Deployment", "HorizontalPodAutoscaler", "Service"]
    return {d["kind"]: d for d in docs}


def container(manifests) -> dict:
    (only,) = manifests["Deployment"]["spec"]["template"]["spec"]["containers"]
    return only


def test_the_deployment_runs_the_topology_command_and_environment(manifests):
    c = container(manifests)
    assert c["command"] == COMMAND
    given = {e["name"]: e for e in c["env"]}
    assert set(given) == set(ENV)
    for name, value in ENV.items():
        if name in SECRET_ENV:
            assert "secretKeyRef" in given[name]["valueFrom"], f"{name} must come from a Secret"
        else:
            assert given[name]["value"] == value, name


def test_probes_and_graceful_stop_fit_the_service(manifests):
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    c = container(manifests)
    port = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert port == {"http": topology.SERVING_PORT}
    assert c["readinessProbe"]["httpGet"] == {"path": "/ping", "port": "http"}
    # liveness must not depend on a champion existing (/ping is 503 without one)
    assert "httpGet" not in c["livenessProbe"]
    # uvicorn's graceful stop is 30 s (mlops_ops/serving/cli.py) plus the log's last write
    assert pod["terminationGracePeriodSeconds"] > 30 + 5
    assert c["resources"]["requests"]["cpu"]  # the autoscaler's utilisation is a share of it


def test_the_service_and_the_autoscaler_target_the_deployment(manifests):
    deployment = manifests["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = manifests["Service"]["spec"]
    assert service["selector"].items() <= labels.items()
    assert {p["targetPort"] for p in service["ports"]} == {"http"}
    hpa = manifests["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert hpa["spec"]["minReplicas"] <= deployment["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]


def test_the_compose_service_builds_this_image_and_waits_for_the_registry():
    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())["services"]["serving"]
    assert compose["build"] == {"context": ".", "dockerfile": "deploy/serving/Dockerfile"}
    assert compose["depends_on"]["mlflow"] == {"condition": "service_healthy"}
    assert f"{topology.SERVING_PORT}:{topology.SERVING_PORT}" in compose["ports"]
