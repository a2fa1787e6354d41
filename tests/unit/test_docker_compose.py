"""docker-compose.yaml, checked without a Docker engine.

No engine runs on CI, so ``docker compose config`` is not available. Instead the file is loaded
with PyYAML and checked two ways:

* against itself: services that are referenced exist, every Airflow container agrees on the
  executor, the databases, the broker and the shared secrets, URLs point at the services that
  serve them, and the storage volume is where the tasks run;
* against ``mlops_ops/topology.py``, the description the distributed test
  (``tests/integration/test_distributed.py``) launches: the same services, commands, settings and
  connections;
* against the installed Airflow: every ``airflow ...`` command line is parsed by an argparse
  parser built from ``airflow.cli.cli_config`` (in a subprocess, so this process never imports
  Airflow), and every ``AIRFLOW__SECTION__KEY`` names an option of
  ``airflow/config_templates/config.yml``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from mlops_ops import topology

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"

AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}
EXPECTED_SERVICES = AIRFLOW_SERVICES | {"postgres", "mlflow-db-init", "redis", "s3", "s3-init", "mlflow"}

# Environment every Airflow container must share, value for value.
SHARED_ENV = (
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__CORE__DAGS_FOLDER",
    "AIRFLOW_CONN_MLFLOW_DEFAULT",
    "AIRFLOW_CONN_AWS_DEFAULT",
    "MLOPS_STORAGE",
    "MLOPS_STORAGE_CONN_ID",
    "MLOPS_DATA_URI",
    "MLOPS_HOME",
    "MLOPS_PIPELINES",
)

# Every Airflow command the topology relies on (as a prefix of some command line in the file).
EXPECTED_AIRFLOW_COMMANDS = [
    ("api-server",),
    ("scheduler",),
    ("dag-processor",),
    ("triggerer",),
    ("celery", "worker"),
    ("db", "migrate"),
    ("jobs", "check"),
]

# Connection extras MlflowHook reads (mlops_ops/hooks/mlflow.py).
MLFLOW_CONN_EXTRAS = {"tracking_uri", "registry_uri", "ui_url", "token"}


def _installed(distribution: str) -> bool:
    """Whether a distribution is installed, without importing anything (find_spec would import airflow)."""
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


# The celery command group and the [celery] config section belong to
# apache-airflow-providers-celery (a dev dependency: the distributed test runs Celery workers).
# Without the provider they cannot be checked against its code, so they are allowed as they are;
# with the provider installed they are checked like everything else.
CELERY_PROVIDER_INSTALLED = _installed("apache-airflow-providers-celery")
UNVERIFIABLE_WITHOUT_CELERY_PROVIDER_COMMANDS = {("celery", "worker")}
UNVERIFIABLE_WITHOUT_CELERY_PROVIDER_SECTIONS = {"celery"}


# -- loading ------------------------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\}")


def interpolate(value: Any) -> Any:
    """Compose's variable substitution, as if no variable were set: defaults apply, ``$$`` is ``$``."""
    if isinstance(value, str):
        return _INTERPOLATION.sub(lambda m: "$" if m.group(0) == "$$" else (m.group("default") or ""), value)
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    return value


def load_compose() -> dict[str, Any]:
    return yaml.load(COMPOSE_FILE.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


COMPOSE = load_compose()
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]


def env(service: str) -> dict[str, str]:
    environment = SERVICES[service].get("environment") or {}
    if isinstance(environment, list):  # the KEY=VALUE list form
        environment = dict(item.split("=", 1) for item in environment)
    return {k: interpolate(str(v)) for k, v in environment.items()}


def argv(value: str | list[Any] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(interpolate(value))
    return [interpolate(str(v)) for v in value]


def option(args: list[str], flag: str) -> str | None:
    """The value given to ``flag`` in an argument list (``--flag value`` or ``--flag=value``)."""
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def volume_mounts(service: str) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) of a service's volumes, short or long syntax."""
    mounts = []
    for vol in SERVICES[service].get("volumes") or []:
        if isinstance(vol, str):
            parts = interpolate(vol).split(":")
            source, target = (parts[0], parts[1]) if len(parts) > 1 else ("", parts[0])
            read_only = len(parts) > 2 and "ro" in parts[2].split(",")
        else:
            source, target = str(vol.get("source", "")), str(vol["target"])
            read_only = bool(vol.get("read_only", False))
        mounts.append((source, target, read_only))
    return mounts


def mount_for(service: str, path: str) -> tuple[str, str, bool] | None:
    """The mount of ``service`` that holds ``path`` (the longest matching target)."""
    matches = [m for m in volume_mounts(service) if path == m[1] or path.startswith(m[1].rstrip("/") + "/")]
    return max(matches, key=lambda m: len(m[1]), default=None)


def depends_on(service: str) -> dict[str, str]:
    deps = SERVICES[service].get("depends_on") or {}
    if isinstance(deps, list):
        return {d: "service_started" for d in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def services_running(command: tuple[str, ...]) -> list[str]:
    """Airflow services whose command line starts with ``command``."""
    return [s for s in AIRFLOW_SERVICES if tuple(argv(SERVICES[s].get("command"))[: len(command)]) == command]


def the_service_running(command: tuple[str, ...]) -> str:
    found = services_running(command)
    assert len(found) == 1, f"expected one service running `airflow {' '.join(command)}`, found {found}"
    return found[0]


# -- the Airflow command lines in the file -------------------------------------------------------

_SHELL_SEPARATORS = {"&&", "||", ";", "|", "&", ";;", "("}
_WRAPPERS = {"exec", "entrypoint", "env", "command", "gosu", "su-exec"}
# what the Airflow image's entrypoint runs as given instead of as `airflow <command>`
_NOT_AIRFLOW_SUBCOMMANDS = {"bash", "sh", "python", "python3"}


def _after_airflow(tokens: list[str]) -> list[str] | None:
    """The arguments given to Airflow's CLI by one simple command, or None if it runs something else.

    The program is the first word after wrappers (``exec``, the image's ``/entrypoint``, ``env``)
    and ``VAR=value`` assignments; ``python -m airflow`` counts as ``airflow``.
    """
    i = 0
    while i < len(tokens) and (tokens[i].rsplit("/", 1)[-1] in _WRAPPERS or re.match(r"^\w+=", tokens[i])):
        i += 1
    program = tokens[i:]
    if program[:1] and program[0].rsplit("/", 1)[-1] == "airflow":
        return program[1:]
    if program[1:3] == ["-m", "airflow"] and program[0].rsplit("/", 1)[-1].startswith("python"):
        return program[3:]
    return None


def _airflow_calls_in_shell(script: str) -> list[list[str]]:
    calls = []
    for line in script.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        command: list[str] = []
        for token in [*lexer, ";"]:
            if token in _SHELL_SEPARATORS:
                if (args := _after_airflow(command)) is not None:
                    calls.append(args)
                command = []
            else:
                command.append(token)
    return calls


def airflow_invocations() -> list[tuple[str, list[str]]]:
    """(where, argv after ``airflow``) for every Airflow CLI call the file makes."""
    common_image = COMPOSE["x-airflow-common"]["image"]
    calls: list[tuple[str, list[str]]] = []
    for name, svc in SERVICES.items():
        command = argv(svc.get("command"))
        airflow_entrypoint = svc.get("image") == common_image and svc.get("entrypoint") is None
        if airflow_entrypoint and command and command[0] not in _NOT_AIRFLOW_SUBCOMMANDS:
            # the image's entrypoint runs `airflow <command>`
            calls.append((f"{name}.command", command))
        else:
            if (args := _after_airflow(command)) is not None:
                calls.append((f"{name}.command", args))
            for script in (item for item in command if " " in item or "\n" in item):  # `sh -c <script>`
                calls += [(f"{name}.command", c) for c in _airflow_calls_in_shell(script)]
        test = argv((svc.get("healthcheck") or {}).get("test"))
        if test[:1] == ["CMD"] and (args := _after_airflow(test[1:])) is not None:
            calls.append((f"{name}.healthcheck", args))
        elif test[:1] == ["CMD-SHELL"]:
            calls += [(f"{name}.healthcheck", c) for c in _airflow_calls_in_shell(" ".join(test[1:]))]
    return calls


INVOCATIONS = airflow_invocations()

# Builds the real argument parsers of the installed Airflow CLI (the command tree of
# airflow.cli.cli_config, or of cli_parser with providers' commands when the Celery provider is
# installed) and parses each command line; parse errors are reported instead of exiting.
_CLI_CHECK = r"""
import argparse, json, sys

class ParseError(Exception):
    pass

class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise ParseError(message)

    def exit(self, status=0, message=None):
        raise ParseError(message or f"exited with status {status}")

def add(subparsers, command, GroupCommand):
    parser = subparsers.add_parser(command.name)
    if isinstance(command, GroupCommand):
        nested = parser.add_subparsers(dest="subcommand_of_" + command.name, required=True)
        for sub in command.subcommands:
            add(nested, sub, GroupCommand)
    else:
        for arg in command.args:
            arg.add_to_parser(parser)

from airflow.cli.cli_config import GroupCommand

if sys.argv[2] == "with-providers":
    from airflow.cli.cli_parser import airflow_commands as commands
else:
    from airflow.cli.cli_config import core_commands as commands

root = Parser(prog="airflow")
top = root.add_subparsers(dest="command", required=True)
for command in commands:
    add(top, command, GroupCommand)

errors = {}
for args in json.load(sys.stdin):
    try:
        root.parse_args(args)
    except ParseError as err:
        errors[" ".join(args)] = str(err)
with open(sys.argv[1], "w") as out:
    json.dump(errors, out)
"""


@pytest.fixture(scope="module")
def cli_errors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Parse errors of the installed Airflow CLI for every command line in the file."""
    tmp = tmp_path_factory.mktemp("airflow-cli")
    out = tmp / "errors.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _CLI_CHECK,
            str(out),
            "with-providers" if CELERY_PROVIDER_INSTALLED else "core",
        ],
        input=json.dumps([args for _, args in INVOCATIONS]),
        env={
            **os.environ,
            "AIRFLOW_HOME": str(tmp / "home"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp / 'airflow.db'}",
            # import Airflow as a library: configuration without ORM and logging set-up (the command
            # tree does not need them), about a second faster
            "_AIRFLOW__AS_LIBRARY": "1",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


# -- the installed Airflow configuration ---------------------------------------------------------


def _airflow_package_dir() -> Path:
    spec = importlib.util.find_spec("airflow")  # finds the package without importing it
    assert spec is not None, "apache-airflow is not installed"
    assert spec.submodule_search_locations, f"airflow is not a package: {spec}"
    return Path(next(iter(spec.submodule_search_locations)))


CONFIG_YML: dict[str, Any] = yaml.load(
    (_airflow_package_dir() / "config_templates" / "config.yml").read_text(),
    Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader),
)


def _config_options() -> dict[str, set[str]]:
    options = {section: set(body.get("options") or {}) for section, body in CONFIG_YML.items()}
    if CELERY_PROVIDER_INSTALLED:
        from airflow.providers.celery.get_provider_info import get_provider_info

        for section, body in get_provider_info().get("config", {}).items():
            options.setdefault(section, set()).update(body.get("options") or {})
    return options


CONFIG_OPTIONS = _config_options()
API_DEFAULT_PORT = int(CONFIG_YML["api"]["options"]["port"]["default"])

CONFIG_ENV_VARS = sorted(
    {(s, k) for s in AIRFLOW_SERVICES for k in env(s) if k.startswith("AIRFLOW__")}
    | {("test", k) for k in topology.FAST_TEST_SETTINGS}
)


# -- topology ------------------------------------------------------------------------------------


def test_every_expected_service_is_defined():
    assert EXPECTED_SERVICES <= set(SERVICES), (
        f"missing services: {sorted(EXPECTED_SERVICES - set(SERVICES))}"
    )


def test_depends_on_names_defined_services_with_a_condition_they_can_meet():
    for name in SERVICES:
        for dep, condition in depends_on(name).items():
            assert dep in SERVICES, f"{name} depends on undefined service {dep!r}"
            assert dep != name, f"{name} depends on itself"
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[dep], (
                    f"{name} waits for {dep} to be healthy; it has no healthcheck"
                )
            elif condition == "service_completed_successfully":
                assert SERVICES[dep].get("restart", "no") == "no", (
                    f"{name} waits for {dep} to exit; it restarts"
                )
            else:
                assert condition == "service_started", f"{name}: unknown condition {condition!r} for {dep}"


def test_depends_on_has_no_cycle():
    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"dependency cycle: {' -> '.join((*path, name))}"
        for dep in depends_on(name):
            visit(dep, (*path, name))

    for name in SERVICES:
        visit(name, ())


def test_long_running_services_have_healthchecks():
    for name in ("postgres", "redis", "mlflow", *sorted(AIRFLOW_SERVICES - {"airflow-init"})):
        assert (SERVICES[name].get("healthcheck") or {}).get("test"), f"{name} has no healthcheck"


def test_airflow_services_run_the_common_image_and_share_core_settings():
    common = COMPOSE["x-airflow-common"]
    for name in AIRFLOW_SERVICES:
        assert SERVICES[name].get("image") == common["image"], f"{name} does not run the common Airflow image"
    reference = env("airflow-scheduler")
    for key in SHARED_ENV:
        assert reference.get(key) not in (None, "") or key == "AIRFLOW__CORE__FERNET_KEY", f"{key} is not set"
        values = {name: env(name).get(key) for name in AIRFLOW_SERVICES}
        assert len(set(values.values())) == 1, f"{key} differs between Airflow services: {values}"


def test_executor_is_celery_on_postgres_and_redis():
    e = env("airflow-scheduler")
    assert e["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"

    pg = env("postgres")
    for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND"):
        dsn = urlsplit(e[key])
        assert dsn.scheme in ("postgresql+psycopg2", "db+postgresql"), f"{key}: {e[key]}"
        assert dsn.hostname == "postgres", f"{key} does not point at the postgres service"
        assert (dsn.username, dsn.password) == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"]), key
        assert dsn.path.lstrip("/") == pg["POSTGRES_DB"], f"{key} names another database than POSTGRES_DB"

    broker = urlsplit(e["AIRFLOW__CELERY__BROKER_URL"])
    assert broker.scheme == "redis", e["AIRFLOW__CELERY__BROKER_URL"]
    assert broker.hostname == "redis", "the Celery broker is not the redis service"
    assert (broker.port or 6379) == 6379


def test_execution_api_url_points_at_the_api_server():
    url = urlsplit(env("airflow-worker")["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    apiserver = the_service_running(("api-server",))
    port = int(option(argv(SERVICES[apiserver]["command"]), "--port") or API_DEFAULT_PORT)
    assert url.hostname == apiserver, f"execution API host {url.hostname!r} is not the api-server service"
    assert (url.port or 80) == port
    assert url.path.rstrip("/") == "/execution"


def test_mlflow_connection_points_at_the_mlflow_service():
    raw = env("airflow-worker")["AIRFLOW_CONN_MLFLOW_DEFAULT"]
    conn = json.loads(raw)
    assert conn["conn_type"] == "mlflow"
    assert set(conn.get("extra") or {}) <= MLFLOW_CONN_EXTRAS, f"unknown extras: {conn['extra']}"

    host = urlsplit(conn["host"])
    assert host.scheme == "http", conn["host"]
    assert host.hostname in SERVICES, f"{conn['host']} does not name a service"
    server = argv(SERVICES[host.hostname]["command"])
    assert server[:2] == ["mlflow", "server"], f"{host.hostname} does not run `mlflow server`"
    assert int(option(server, "--port") or 5000) == (host.port or 80)
    assert option(server, "--host") == "0.0.0.0", "mlflow listens on localhost only"

    # MLflow 3 answers 403 to a Host header outside --allowed-hosts (default: localhost only)
    allowed = (option(server, "--allowed-hosts") or "").split(",")
    assert host.netloc in allowed, f"{host.netloc} (how workers call MLflow) is not in --allowed-hosts"

    ui = urlsplit(conn["extra"]["ui_url"])
    published = {str(p).split(":")[0] for p in SERVICES[host.hostname].get("ports", [])}
    assert str(ui.port) in published, f"ui_url port {ui.port} is not published by {host.hostname}"
    assert ui.netloc in allowed, f"{ui.netloc} (how a browser calls MLflow) is not in --allowed-hosts"


def test_mlflow_backend_store_database_is_created_before_mlflow_starts():
    server = argv(SERVICES["mlflow"]["command"])
    store = urlsplit(option(server, "--backend-store-uri") or "")
    pg = env("postgres")
    assert store.hostname == "postgres"
    assert (store.username, store.password) == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"])
    database = store.path.lstrip("/")
    assert database, "the backend store URI names no database"
    assert database != pg["POSTGRES_DB"], "MLflow needs its own database, not Airflow's"

    creator = " ".join(argv(SERVICES["mlflow-db-init"]["command"]))
    assert re.search(rf"CREATE DATABASE \"?{re.escape(database)}\b(?![$-])", creator), (
        "mlflow-db-init creates another db"
    )
    assert depends_on("mlflow").get("mlflow-db-init") == "service_completed_successfully"
    assert depends_on("mlflow-db-init").get("postgres") == "service_healthy"

    artifacts = urlsplit(option(server, "--artifacts-destination") or "")
    assert "--serve-artifacts" in server, "workers cannot reach artifacts the server does not serve"
    assert artifacts.scheme == "s3", "MLflow's artifacts are not on the object store"
    assert artifacts.hostname == urlsplit(env("airflow-worker")["MLOPS_STORAGE"]).hostname
    aws = json.loads(env("airflow-worker")["AIRFLOW_CONN_AWS_DEFAULT"])
    assert env("mlflow")["MLFLOW_S3_ENDPOINT_URL"] == aws["extra"]["endpoint_url"]
    assert (env("mlflow")["AWS_ACCESS_KEY_ID"], env("mlflow")["AWS_SECRET_ACCESS_KEY"]) == (
        aws["login"],
        aws["password"],
    )


def test_workers_share_no_disk():
    """Storage and source data are on the object store; a worker mounts nothing it could write."""
    e = env("airflow-worker")
    for key in ("MLOPS_STORAGE", "MLOPS_DATA_URI"):
        assert urlsplit(e[key]).scheme == "s3", f"{key}={e[key]} is not on the object store"
    assert e["MLOPS_STORAGE_CONN_ID"] == topology.STORAGE_CONN_ID
    conn = json.loads(e["AIRFLOW_CONN_" + e["MLOPS_STORAGE_CONN_ID"].upper()])
    assert conn["conn_type"] == "aws"
    endpoint = urlsplit(conn["extra"]["endpoint_url"])
    assert endpoint.hostname == "s3", "the aws connection does not point at the s3 service"
    assert option(argv(SERVICES["s3"]["command"]), "-p") == str(endpoint.port)
    for name in services_running(("celery", "worker")):
        for source, target, read_only in volume_mounts(name):
            assert read_only, f"{name} mounts {source}:{target} writable: workers must share no disk"


def test_s3_init_creates_the_bucket_everything_lives_in():
    bucket = urlsplit(env("airflow-worker")["MLOPS_STORAGE"]).hostname
    script = " ".join(argv(SERVICES["s3-init"]["command"]))
    assert f'create_bucket(Bucket="{bucket}")' in script, "s3-init creates another bucket"
    assert "http://s3:9000" in script
    for name in ("mlflow", *sorted(AIRFLOW_SERVICES - {"airflow-init"})):
        assert depends_on(name).get("s3-init") == "service_completed_successfully", (
            f"{name} may start before the bucket exists"
        )


def test_dags_and_pipelines_folders_are_the_mounted_project():
    e = env("airflow-dag-processor")
    for key, folder in (("AIRFLOW__CORE__DAGS_FOLDER", "dags"), ("MLOPS_PIPELINES", "deploy/pipelines")):
        mount = mount_for("airflow-dag-processor", e[key])
        assert mount, f"{key}={e[key]} is not mounted"
        source, target, _ = mount
        on_host = (COMPOSE_FILE.parent / source / os.path.relpath(e[key], target)).resolve()
        assert on_host == (ROOT / folder).resolve(), f"{key} maps to {on_host}, not to ./{folder}"
        assert on_host.is_dir(), f"{on_host} does not exist"


# -- the tested topology ------------------------------------------------------------------------

# Set in the compose file only, because of what a container is: the import path of the project
# the image holds, the image's pip convenience, and the worker's warm shutdown under dumb-init.
CONTAINER_ONLY_ENV = {"PYTHONPATH", "_PIP_ADDITIONAL_REQUIREMENTS", "DUMB_INIT_SETSID"}
TOPOLOGY = topology.services(topology.COMPOSE, topology.COMPOSE_LAYOUT)


@pytest.mark.parametrize("name", sorted(TOPOLOGY))
def test_service_runs_the_tested_command(name):
    assert name in SERVICES, f"the tested topology runs {name}; the file has no such service"
    assert argv(SERVICES[name].get("command")) == list(TOPOLOGY[name].command), (
        f"{name} runs another command than mlops_ops/topology.py describes (and the test runs)"
    )
    replicas = (SERVICES[name].get("deploy") or {}).get("replicas", 1)
    assert replicas == TOPOLOGY[name].replicas, (
        f"{name}: {replicas} replica(s), the topology has {TOPOLOGY[name].replicas}"
    )


@pytest.mark.parametrize("name", sorted(TOPOLOGY))
def test_service_has_the_tested_settings_and_connections(name):
    given = env(name)
    expected = TOPOLOGY[name].environment
    differ = {k: (given.get(k), v) for k, v in expected.items() if given.get(k) != v}
    assert not differ, f"{name}: (file, topology) differ: {differ}"
    extra = set(given) - set(expected) - CONTAINER_ONLY_ENV
    assert not extra, f"{name} sets {sorted(extra)}, which the tested topology does not"


def test_the_topology_names_every_long_running_service_of_the_file():
    images_only = {"postgres", "redis", "s3"}  # the test uses the machine's own (and moto's fixture)
    one_shot = {"mlflow-db-init", "s3-init"}  # the test's fixtures create the databases and bucket
    assert set(SERVICES) == set(TOPOLOGY) | images_only | one_shot


def test_the_fast_test_settings_only_change_timing():
    for key in topology.FAST_TEST_SETTINGS:
        assert key not in TOPOLOGY["airflow-scheduler"].environment, (
            f"the test overrides {key} of the topology"
        )
        assert re.search(r"(HEARTBEAT|INTERVAL|TIMEOUT|RETRIES)", key), f"{key} is not a timing setting"


# -- against the installed Airflow ---------------------------------------------------------------


def test_the_file_runs_every_airflow_command_the_topology_needs():
    used = [args for _, args in INVOCATIONS]
    for command in EXPECTED_AIRFLOW_COMMANDS:
        assert any(tuple(a[: len(command)]) == command for a in used), (
            f"nothing runs `airflow {' '.join(command)}`"
        )


@pytest.mark.parametrize(("where", "args"), INVOCATIONS, ids=[f"{w}:{' '.join(a)}" for w, a in INVOCATIONS])
def test_airflow_command_line_parses_with_the_installed_cli(where, args, cli_errors):
    key = " ".join(args)
    if not CELERY_PROVIDER_INSTALLED and tuple(args[:2]) in UNVERIFIABLE_WITHOUT_CELERY_PROVIDER_COMMANDS:
        return
    assert key not in cli_errors, f"{where}: `airflow {key}` is rejected by Airflow's CLI: {cli_errors[key]}"


@pytest.mark.parametrize(("service", "var"), CONFIG_ENV_VARS, ids=[f"{s}:{v}" for s, v in CONFIG_ENV_VARS])
def test_airflow_config_env_var_names_a_real_option(service, var):
    parts = var[len("AIRFLOW__") :].split("__")
    assert len(parts) == 2, f"{var} is not AIRFLOW__SECTION__KEY"
    section, key = parts[0].lower(), parts[1].lower()
    for suffix in ("_cmd", "_secret"):  # AIRFLOW__X__Y_CMD / _SECRET read option y another way
        if key.endswith(suffix) and key[: -len(suffix)] in CONFIG_OPTIONS.get(section, ()):
            key = key[: -len(suffix)]
    if not CELERY_PROVIDER_INSTALLED and section in UNVERIFIABLE_WITHOUT_CELERY_PROVIDER_SECTIONS:
        return
    assert section in CONFIG_OPTIONS, f"{service}: {var}: Airflow has no [{section}] section"
    assert key in CONFIG_OPTIONS[section], f"{service}: {var}: [{section}] has no option {key!r}"
