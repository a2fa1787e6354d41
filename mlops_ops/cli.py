"""``mlops-ops``: demo | up | check | schema.

mlops-ops demo     run the whole model lifecycle on the embedded defaults and print a summary
mlops-ops up       start Airflow's UI (standalone) and MLflow's UI on the same defaults
mlops-ops check    validate pipeline specs (names each broken field; exit 1 if any is broken)
mlops-ops schema   print the JSON schema of a pipeline spec (for editors)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mlops_ops import embedded

PIPELINE = "churn"


def _home(args: argparse.Namespace) -> Path:
    return Path(args.home or os.environ.get("MLOPS_HOME") or ".mlops").expanduser().resolve()


# -- demo ------------------------------------------------------------------------------------------


def _run_dag_subprocess(
    dag_id: str, conf: dict[str, Any], env: dict[str, str], log_file: Path
) -> dict[str, Any]:
    """One ``dag.test()`` in a fresh interpreter (its log goes to ``log_file``)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        result_path = Path(fh.name)
    cmd = [
        sys.executable,
        "-m",
        "mlops_ops.cli",
        "_run-dag",
        dag_id,
        "--conf",
        json.dumps(conf),
        "--result",
        str(result_path),
    ]
    with log_file.open("a") as log:
        log.write(f"\n===== {dag_id} {json.dumps(conf)} =====\n")
        log.flush()
        proc = subprocess.run(cmd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    try:
        result = json.loads(result_path.read_text()) if result_path.stat().st_size else None
    finally:
        result_path.unlink(missing_ok=True)
    if proc.returncode != 0 or result is None:
        tail = log_file.read_text().splitlines()[-40:]
        raise SystemExit(
            f"running {dag_id} failed (exit {proc.returncode}); last lines of {log_file}:\n" + "\n".join(tail)
        )
    return result


def _describe_run(title: str, result: dict[str, Any]) -> list[str]:
    tasks, ret = result["tasks"], result["returned"]
    order = ["ingest", "validate", "train", "evaluate", "deploy"]
    lines = [
        f"{title}",
        f"  DAG run {result['run_id']}: {result['state']}",
        "  tasks: " + ", ".join(f"{t}={tasks.get(t, '-')}" for t in order),
    ]
    ing = ret.get("ingest") or {}
    if ing:
        lines.append(
            f"  snapshot {ing['sha256'][:12]} ({ing['rows']} rows, {'new' if ing['created'] else 'reused'})"
        )
    val = ret.get("validate") or {}
    if val:
        lines.append(
            f"  validation: {val['status']} ({val['warnings']} warning(s)), reference: "
            f"{val.get('reference') or 'none (no champion yet)'}"
        )
    tr = ret.get("train") or {}
    if tr:
        m = tr["metrics"]
        lines.append(
            f"  trained v{tr['version']}: holdout roc_auc={m.get('roc_auc', float('nan')):.3f} "
            f"accuracy={m.get('accuracy', float('nan')):.3f}"
        )
    ev = ret.get("evaluate") or {}
    if ev:
        base = f"champion v{ev['baseline_version']}" if ev.get("baseline_version") else "no baseline"
        lines.append(f"  gate: {ev['status'].upper()} v{ev['challenger_version']} against {base}")
        lines += [f"    - {r}" for r in ev["reasons"]]
    dep = ret.get("deploy") or {}
    if dep:
        prev = f"v{dep['previous_version']}" if dep.get("previous_version") else "none"
        lines.append(f"  deploy: v{dep['version']} is champion (was {prev}); ledger {dep['ledger_uri']}")
    elif tasks.get("deploy") == "skipped":
        lines.append("  deploy: skipped, the champion is unchanged")
    return lines


def cmd_demo(args: argparse.Namespace) -> int:
    home = _home(args)
    env = embedded.embedded_env(home)
    os.environ.update(env)
    home.mkdir(parents=True, exist_ok=True)
    log_file = home / "logs" / "demo.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text("")
    started = time.monotonic()
    print(f"mlops-ops demo: everything lives under {home} (full log: {log_file})")
    if not args.keep:
        embedded.reset_pipeline_state(home, PIPELINE)
    embedded.install_example(home)
    print("  preparing Airflow's SQLite metadata DB (airflow db migrate) ...", flush=True)
    embedded.migrate_airflow_db(env, log_file)

    from mlops_ops.example.churn import write_training_data

    data_dir = home / "data" / PIPELINE / "train"
    print("  run 1: 4,000 generated customers; training, gating, deploying ...", flush=True)
    write_training_data(data_dir, rows=4000, seed=0)
    first = _run_dag_subprocess(f"{PIPELINE}_training", {"reason": "demo: first model"}, env, log_file)
    print(
        "  run 2: new data where 35% of the labels are wrong (any model trained on it is worse) ...",
        flush=True,
    )
    write_training_data(data_dir, rows=4000, seed=1, label_noise=0.35)
    second = _run_dag_subprocess(f"{PIPELINE}_training", {"reason": "demo: noisy labels"}, env, log_file)

    lines = ["", "=" * 78, "Summary", "=" * 78]
    lines += _describe_run("Run 1: first model", first) + [""]
    lines += _describe_run("Run 2: data that yields a worse model", second) + [""]
    lines += _registry_summary(home)
    lines += [
        "",
        "Where to look",
        f"  reports (JSON + HTML): {home / 'storage' / PIPELINE / 'reports'}",
        f"  deployment ledger:     {home / 'storage' / PIPELINE / 'deployments'}",
        f"  snapshots:             {home / 'storage' / PIPELINE / 'snapshots'}",
        f"  MLflow store:          {env['MLFLOW_TRACKING_URI']} (artifacts in {home / 'mlartifacts'})",
        "  open the UIs:          make up   (Airflow http://localhost:8080, MLflow http://localhost:5000)",
        f"demo finished in {time.monotonic() - started:.0f} s",
    ]
    print("\n".join(lines))
    champion_ok = first["tasks"].get("deploy") == "success" and second["tasks"].get("deploy") == "skipped"
    return 0 if champion_ok and first["state"] == "success" and second["state"] == "success" else 1


def _registry_summary(home: Path) -> list[str]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])
    versions = sorted(client.search_model_versions(f"name = '{PIPELINE}'"), key=lambda v: int(v.version))
    try:
        champion = client.get_model_version_by_alias(PIPELINE, "champion").version
    except Exception:
        champion = None
    lines = [f"Registered model '{PIPELINE}' (champion: {'v' + str(champion) if champion else 'none'})"]
    for v in versions:
        tags = v.tags or {}
        mark = "  <- champion" if str(v.version) == str(champion) else ""
        lines.append(
            f"  v{v.version}: gate={tags.get('mlops.gate', '-')}, holdout roc_auc="
            f"{tags.get('mlops.metric.roc_auc', '-')}, snapshot {tags.get('mlops.snapshot_sha256', '')[:12]}{mark}"
        )
    ledger = sorted((home / "storage" / PIPELINE / "deployments").glob("*.json"))
    lines.append(f"Deployment ledger: {len(ledger)} record(s)")
    for path in ledger:
        rec = json.loads(path.read_text())
        lines.append(
            f"  {rec['deployed_at']}: v{rec['version']} promoted (previous: "
            f"{'v' + str(rec['previous_version']) if rec.get('previous_version') else 'none'})"
        )
    return lines


def cmd_run_dag(args: argparse.Namespace) -> int:
    """Internal: ``dag.test()`` one DAG from the DAGs folder and write its result as JSON."""
    import runpy

    from mlops_ops.runner import run_dag

    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dag = None
    for path in sorted(folder.glob("*.py")):
        namespace = runpy.run_path(str(path))
        dag = next((v for v in namespace.values() if getattr(v, "dag_id", None) == args.dag_id), None)
        if dag is not None:
            break
    if dag is None:
        print(f"no DAG {args.dag_id!r} in {folder}", file=sys.stderr)
        return 2
    result = run_dag(dag, conf=json.loads(args.conf))
    Path(args.result).write_text(json.dumps(result.to_dict(), default=str))
    return 0


# -- up --------------------------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace) -> int:
    home = _home(args)
    env = {**os.environ, **embedded.embedded_env(home)}
    # `airflow standalone` starts its components as `airflow ...` from PATH: use this environment's
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
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
    env["AIRFLOW__API__PORT"] = str(args.airflow_port)
    print(
        f"Airflow UI: http://localhost:{args.airflow_port} (login printed by 'airflow standalone' below; "
        f"password also in {home / 'airflow'}/simple_auth_manager_passwords.json.generated)"
    )
    print(f"MLflow UI:  http://localhost:{args.mlflow_port}")
    print("Ctrl-C stops both.", flush=True)
    procs = [subprocess.Popen(mlflow_cmd, env=env), subprocess.Popen(airflow_cmd, env=env)]
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
    return 0


# -- check / schema ------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    from mlops_ops.config import SpecError, load_pipeline_spec

    paths: list[Path] = []
    for target in args.paths or [os.environ.get("MLOPS_PIPELINES") or "pipelines"]:
        p = Path(target)
        paths += sorted(p.glob("*.y*ml")) if p.is_dir() else [p]
    if not paths:
        print("no pipeline specs found", file=sys.stderr)
        return 1
    bad = 0
    for path in paths:
        try:
            spec = load_pipeline_spec(path)
        except SpecError as err:
            bad += 1
            print(f"FAIL {err}")
            continue
        print(f"ok   {path}: pipeline {spec.name!r}, target {spec.target!r}, model {spec.model.estimator}")
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
    up.add_argument("--home")
    up.add_argument("--airflow-port", type=int, default=8080)
    up.add_argument("--mlflow-port", type=int, default=5000)
    up.set_defaults(func=cmd_up)
    check = sub.add_parser("check", help="validate pipeline specs")
    check.add_argument(
        "paths", nargs="*", help="spec files or folders (default: $MLOPS_PIPELINES or pipelines/)"
    )
    check.set_defaults(func=cmd_check)
    schema = sub.add_parser("schema", help="print the pipeline spec's JSON schema")
    schema.set_defaults(func=cmd_schema)
    run = sub.add_parser("_run-dag")  # internal: used by `demo` to run one DAG in a subprocess
    run.add_argument("dag_id")
    run.add_argument("--conf", default="{}")
    run.add_argument("--result", required=True)
    run.set_defaults(func=cmd_run_dag)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
