"""``mlops-ops``: demo | up | serve | check | schema.

mlops-ops demo     run the whole model lifecycle on the embedded defaults and print a summary
mlops-ops up       start Airflow's UI (standalone) and MLflow's UI on the same defaults
mlops-ops serve    serve a pipeline's champion (and challenger) over HTTP, MLflow's scoring protocol
mlops-ops check    validate pipeline specs (names each broken field; exit 1 if any is broken)
mlops-ops schema   print the JSON schema of a pipeline spec (for editors)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from mlops_ops import embedded


def _home(args: argparse.Namespace) -> Path:
    return Path(args.home or os.environ.get("MLOPS_HOME") or ".mlops").expanduser().resolve()


# -- demo ------------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from mlops_ops.demo import run_demo

    return run_demo(_home(args), keep=args.keep)


def cmd_run_dags(args: argparse.Namespace) -> int:
    """Internal: ``dag.test()`` each run of a plan (DAGs from the DAGs folder); results as JSON."""
    from mlops_ops.demo import run_plan

    return run_plan(Path(args.plan), Path(args.result))


# -- up --------------------------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace) -> int:
    home = _home(args)
    env = embedded.up_env(home, airflow_port=args.airflow_port, mlflow_port=args.mlflow_port)
    home.mkdir(parents=True, exist_ok=True)
    embedded.install_example(home, overwrite=False)
    log_file = home / "logs" / "up.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    embedded.migrate_airflow_db(env, log_file)
    mlflow_cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        env["MLFLOW_TRACKING_URI"],
        "--default-artifact-root",
        (home / "mlartifacts").as_uri(),
        "--host",
        "127.0.0.1",
        "--port",
        str(args.mlflow_port),
    ]
    airflow_cmd = [sys.executable, "-m", "airflow", "standalone"]
    print(
        f"Airflow UI: http://localhost:{args.airflow_port} (login printed by 'airflow standalone' below; "
        f"password also in {home / 'airflow'}/simple_auth_manager_passwords.json.generated)"
    )
    print(f"MLflow UI:  {env['MLOPS_MLFLOW_UI_URL']}")
    print("Ctrl-C (or SIGTERM) stops both.", flush=True)
    return embedded.supervise([mlflow_cmd, airflow_cmd], env)


# -- serve -----------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the online service of one pipeline with uvicorn until SIGTERM or Ctrl-C (graceful)."""
    from mlops_ops.serving.cli import run_service

    return run_service(args)


# -- check / schema ------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    """Validate every spec file given (files or folders) and report each; never stops early."""
    from mlops_ops.config import SpecError, load_pipeline_spec, spec_files
    from mlops_ops.notifiers import build_notifier

    paths: list[Path] = []
    for target in args.paths or [os.environ.get("MLOPS_PIPELINES") or "pipelines"]:
        p = Path(target)
        paths += spec_files(p) if p.is_dir() else [p]
    if not paths:
        print("no pipeline specs found", file=sys.stderr)
        return 1
    bad = 0
    for path in paths:
        try:
            spec = load_pipeline_spec(path)
            if spec.notifications is not None:  # imported and built, as the DAG factory will
                build_notifier(spec.notifications, spec.name)
        except SpecError as err:
            bad += 1
            print(f"FAIL {err}" if str(err).startswith(str(path)) else f"FAIL {path}: {err}")
            continue
        except Exception as err:  # an unforeseen crash on one file must not hide the others
            bad += 1
            print(f"FAIL {path}: could not be checked: {type(err).__name__}: {err}")
            continue
        print(f"ok   {path}: pipeline {spec.name!r}, target {spec.target!r}, model {spec.model.estimator}")
    if bad:
        print(f"{bad} of {len(paths)} spec(s) failed", file=sys.stderr)
    return 1 if bad else 0


def cmd_schema(args: argparse.Namespace) -> int:
    from mlops_ops.config import pipeline_json_schema

    print(json.dumps(pipeline_json_schema(), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mlops-ops", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the whole lifecycle on embedded defaults")
    demo.add_argument("--home", help="MLOPS_HOME (default ./.mlops)")
    demo.add_argument("--keep", action="store_true", help="keep earlier models and snapshots")
    demo.set_defaults(func=cmd_demo)
    up = sub.add_parser("up", help="start the Airflow and MLflow UIs on embedded defaults")
    up.add_argument("--home", help="MLOPS_HOME, the state the demo wrote (default ./.mlops)")
    up.add_argument(
        "--airflow-port", type=int, default=8080, help="Airflow UI and API server port (default 8080)"
    )
    up.add_argument(
        "--mlflow-port",
        type=int,
        default=5000,
        help="MLflow UI port; the task links follow it (default 5000)",
    )
    up.set_defaults(func=cmd_up)
    serve = sub.add_parser("serve", help="serve a pipeline's models over HTTP (MLflow's scoring protocol)")
    serve.add_argument("pipeline", help="pipeline name (its registered model)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--spec", help="the pipeline's spec file (default: <name>.yaml in $MLOPS_PIPELINES)")
    serve.add_argument("--strategy", choices=["direct", "canary", "shadow", "ab"], help="override the spec")
    serve.add_argument("--traffic", type=float, help="challenger share of keys (override the spec)")
    serve.add_argument("--sticky-key", help="request column that picks the arm (override the spec)")
    serve.add_argument("--poll-seconds", type=float, default=5.0, help="how often the aliases are read")
    serve.add_argument("--no-prediction-log", action="store_true", help="do not write the prediction log")
    serve.add_argument("--log-max-rows", type=int, default=5000, help="prediction log: rows buffered at most")
    serve.add_argument(
        "--log-max-seconds", type=float, default=5.0, help="prediction log: seconds buffered at most"
    )
    serve.add_argument(
        "--log-max-buffered-rows",
        type=int,
        default=100_000,
        help="prediction log: rows waiting on failing storage before requests get 503",
    )
    serve.add_argument(
        "--explain-max-rows",
        type=int,
        default=100,
        help="most rows one request may ask SHAP contributions for (more: 413)",
    )
    serve.add_argument(
        "--explain-fallback-max-rows",
        type=int,
        default=10,
        help="the same for a version only the slow model-agnostic explainer explains",
    )
    serve.add_argument(
        "--scoring-threads", type=int, help="requests scored at once (default: cores, at most 4)"
    )
    serve.set_defaults(func=cmd_serve)
    check = sub.add_parser("check", help="validate pipeline specs")
    check.add_argument(
        "paths", nargs="*", help="spec files or folders (default: $MLOPS_PIPELINES or pipelines/)"
    )
    check.set_defaults(func=cmd_check)
    schema = sub.add_parser("schema", help="print the pipeline spec's JSON schema")
    schema.set_defaults(func=cmd_schema)
    run = sub.add_parser("_run-dags")  # internal: used by `demo` to run DAGs in a subprocess
    run.add_argument("plan")
    run.add_argument("--result", required=True)
    run.set_defaults(func=cmd_run_dags)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
