"""The demo: the whole model lifecycle on the embedded defaults (``mlops-ops demo``).

Two weeks of churn history, a first model, daily monitoring until the data drifts, the retrain
monitoring requests, batch scoring, a retrain on a broken export that the gate refuses, and two
rollbacks; each batch of DAG runs goes through ``dag.test()`` in a fresh interpreter
(``python -m mlops_ops.cli _run-dags``, which calls :func:`run_plan`). Prints a timeline and
returns 0 when every run went as the story expects.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlops_ops import embedded

PIPELINE = "churn"


DEMO_START = dt.date(2026, 3, 1)  # first monitored day; the history is the two weeks before


def _at(day: dt.date) -> str:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).isoformat()


def _run_plan_subprocess(
    plan: list[dict[str, Any]], env: dict[str, str], log_file: Path
) -> list[dict[str, Any]]:
    """Several ``dag.test()`` runs, in order, in one fresh interpreter (log to ``log_file``)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        result_path = Path(fh.name)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(plan, fh)
        plan_path = Path(fh.name)
    cmd = [sys.executable, "-m", "mlops_ops.cli", "_run-dags", str(plan_path), "--result", str(result_path)]
    with log_file.open("a") as log:
        log.write(f"\n===== {json.dumps(plan)} =====\n")
        log.flush()
        proc = subprocess.run(cmd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    try:
        results = json.loads(result_path.read_text()) if result_path.stat().st_size else None
    finally:
        result_path.unlink(missing_ok=True)
        plan_path.unlink(missing_ok=True)
    if proc.returncode != 0 or results is None:
        tail = log_file.read_text().splitlines()[-40:]
        raise SystemExit(
            f"running {[p['dag_id'] for p in plan]} failed (exit {proc.returncode}); last lines of "
            f"{log_file}:\n" + "\n".join(tail)
        )
    return list(results)


def _describe_training(title: str, result: dict[str, Any]) -> list[str]:
    tasks, ret = result["tasks"], result["returned"]
    order = ["ingest", "validate", "train", "evaluate", "deploy"]
    lines = [
        f"{title}",
        f"  {result['dag_id']} {result['state']}: " + ", ".join(f"{t}={tasks.get(t, '-')}" for t in order),
    ]
    ing = ret.get("ingest") or {}
    if ing:
        lines.append(
            f"  snapshot {ing['sha256'][:12]} ({ing['rows']} rows, {'new' if ing['created'] else 'reused'})"
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
        lines.append(f"  deploy: v{dep['version']} is champion (was {prev})")
    elif tasks.get("deploy") == "skipped":
        lines.append("  deploy: skipped, the champion is unchanged")
    return lines


def _describe_monitoring(day: dt.date, result: dict[str, Any]) -> list[str]:
    tasks, ret = result["tasks"], result["returned"]
    drift = ret.get("detect_drift") or {}
    perf = ret.get("check_performance") or {}
    parts = []
    if drift:
        cols = drift.get("drifted_columns") or []
        text = f"drift {drift['status']}"
        if cols:
            text += f" ({len(cols)} col: {', '.join(cols)})"
        if drift.get("prediction_drift"):
            text += ", predictions drifted"
        parts.append(text)
    if perf:
        value = perf.get("value")
        parts.append(
            f"{perf['metric']} {value:.3f} vs {perf['baseline']:.3f} at promotion: {perf['status']}"
            if isinstance(value, float) and isinstance(perf.get("baseline"), float)
            else f"performance {perf.get('status')}"
        )
    if tasks.get("request_retrain") == "success":
        decision = "RETRAIN REQUESTED (asset event x-mlops://churn/retrain)"
    elif drift.get("status") == "drift" or perf.get("status") == "degraded":
        decision = "no new request: cooldown (same incident)"
    else:
        decision = "nothing to do"
    champion = drift.get("champion_version") or perf.get("champion_version")
    return [f"  {day} vs v{champion}: {'; '.join(parts)} -> {decision}"]


def run_demo(home: Path, *, keep: bool = False) -> int:
    """Run the demo under ``home`` (``keep``: keep earlier models and snapshots); 0 when it went as expected."""
    env = embedded.embedded_env(home)
    os.environ.update(env)
    home.mkdir(parents=True, exist_ok=True)
    log_file = home / "logs" / "demo.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text("")
    started = time.monotonic()
    print(f"mlops-ops demo: everything lives under {home} (full log: {log_file})")
    if not keep:
        embedded.reset_pipeline_state(home, PIPELINE)
    embedded.install_example(home)
    print("  preparing Airflow's SQLite metadata DB (airflow db migrate) ...", flush=True)
    embedded.migrate_airflow_db(env, log_file)

    from mlops_ops.example.churn import write_partitions

    d0 = DEMO_START
    day = [d0 + dt.timedelta(days=i) for i in range(6)]
    daily = home / "data" / PIPELINE / "daily"
    # two clean weeks of history and two clean days, then three days where the world moved
    write_partitions(daily, start=d0 - dt.timedelta(days=14), days=16, rows_per_day=300, seed=7)
    _write_moved_days(daily, start=day[2], days=3)
    train = f"{PIPELINE}_training"
    monitor = f"{PIPELINE}_monitoring"

    print(
        f"  1/3 train v1 on {d0 - dt.timedelta(days=14)}..{d0 - dt.timedelta(days=1)}; monitor {day[0]}..{day[2]} ...",
        flush=True,
    )
    first = _run_plan_subprocess(
        [
            {
                "dag_id": train,
                "conf": {"reason": "demo: first model"},
                "logical_date": _at(day[0] - dt.timedelta(days=1)),
            }
        ]
        + [{"dag_id": monitor, "logical_date": _at(d)} for d in day[:3]],
        env,
        log_file,
    )
    requests = sorted((home / "storage" / PIPELINE / "retrain_requests").glob("*.json"))
    reason = json.loads(requests[-1].read_text())["reason"] if requests else "demo"
    print(
        f"  2/3 the retrain request starts {train}; monitor {day[3]}..{day[4]}; score {day[4]} ...",
        flush=True,
    )
    second = _run_plan_subprocess(
        [
            {
                "dag_id": train,
                "conf": {"reason": f"retrain requested by monitoring: {reason}"},
                "logical_date": _at(day[2]),
            }
        ]
        + [{"dag_id": monitor, "logical_date": _at(d)} for d in day[3:5]]
        + [{"dag_id": f"{PIPELINE}_batch_scoring", "logical_date": _at(day[4])}],
        env,
        log_file,
    )
    # a broken export re-delivers the window with 35% of its labels flipped
    _flip_labels(daily, day[4], days=14, share=0.35, seed=11)
    print("  3/3 a retrain on a broken export (35% wrong labels); then a rollback ...", flush=True)
    third = _run_plan_subprocess(
        [
            {
                "dag_id": train,
                "conf": {"reason": "demo: labels from a broken export"},
                "logical_date": _at(day[4]),
            },
            {"dag_id": f"{PIPELINE}_rollback", "conf": {"version": "previous", "reason": "demo: roll back"}},
            {"dag_id": f"{PIPELINE}_rollback", "conf": {"version": "previous", "reason": "demo: roll back"}},
        ],
        env,
        log_file,
    )

    from mlops_ops.demo_release import run_release_act

    release_lines, release_ok = run_release_act(home, env, log_file, _run_plan_subprocess, day[5])
    from mlops_ops.demo_outcomes import run_outcomes_act

    outcome_lines, outcomes_ok = run_outcomes_act(
        home,
        env,
        log_file,
        _run_plan_subprocess,
        day[4],
        estimate=second[2]["returned"].get("estimate_performance"),
    )

    # the world stays as it moved, up to today: runs started from the UI (the trigger form's logical
    # date is now) and the runs the scheduler starts on unpausing (no catch-up: the latest
    # interval) find their partitions
    extended_to = extend_to_today(daily, after=day[4])

    lines = ["", "=" * 78, "Timeline", "=" * 78]
    lines += _describe_training(f"{day[0] - dt.timedelta(days=1)}: first model", first[0]) + [""]
    lines.append("Monitoring (each day's batch vs the champion's training data)")
    for d, result in zip(day[:3], first[1:], strict=True):
        lines += _describe_monitoring(d, result)
    lines.append("")
    lines += _describe_training(f"{day[2]}: retrain requested by monitoring", second[0]) + [""]
    for d, result in zip(day[3:5], second[1:3], strict=True):
        lines += _describe_monitoring(d, result)
    lines += [""] + _describe_scoring(day[4], second[3]) + [""]
    lines += _describe_training(f"{day[4]}: retrain on a broken export", third[0]) + [""]
    lines += _describe_rollback(third[1:]) + [""]
    lines += release_lines + outcome_lines + [""]
    from mlops_ops.demo_explain import describe_explanations  # issue 13: how v1 and v2 explain

    lines += describe_explanations(env["MLFLOW_TRACKING_URI"], PIPELINE, ["1", "2"]) + [""]
    lines += _registry_summary(home)
    lines += [
        "",
        "Where to look",
        f"  reports (JSON + HTML): {home / 'storage' / PIPELINE / 'reports'}",
        f"  deployment ledger:     {home / 'storage' / PIPELINE / 'deployments'}",
        f"  retrain requests:      {home / 'storage' / PIPELINE / 'retrain_requests'}",
        f"  predictions:           {home / 'storage' / PIPELINE / 'predictions'}",
        f"  daily data:            {daily} (up to {extended_to}: a run started today finds its data)",
        f"  MLflow store:          {env['MLFLOW_TRACKING_URI']} (artifacts in {home / 'mlartifacts'})",
        "  open the UIs:          make up   (Airflow http://localhost:8080, MLflow "
        f"{os.environ.get('MLOPS_MLFLOW_UI_URL', 'http://localhost:5000')})",
        f"demo finished in {time.monotonic() - started:.0f} s",
    ]
    print("\n".join(lines))
    runs = [*first, *second, *third]
    ok = all(r["state"] == "success" for r in runs)
    ok = ok and first[0]["tasks"].get("deploy") == "success" and third[0]["tasks"].get("deploy") == "skipped"
    ok = ok and any(r["tasks"].get("request_retrain") == "success" for r in runs) and release_ok
    ok = ok and outcomes_ok
    return 0 if ok else 1


def extend_to_today(directory: Path, *, after: dt.date, today: dt.date | None = None) -> dt.date:
    """Write the drifted daily partitions missing from the day after ``after`` to ``today`` (UTC)
    inclusive, as the demo's last days were generated; returns the last day that has a partition."""
    today = today or dt.datetime.now(dt.UTC).date()
    start = after + dt.timedelta(days=1)
    # only the days without a partition: the release act has written its own weeks by then
    missing = [
        start + dt.timedelta(days=i)
        for i in range(max((today - start).days + 1, 0))
        if not (directory / f"{(start + dt.timedelta(days=i)).isoformat()}.parquet").exists()
    ]
    runs: list[list[dt.date]] = []
    for d in missing:
        if runs and d - runs[-1][-1] == dt.timedelta(days=1):
            runs[-1].append(d)
        else:
            runs.append([d])
    for run in runs:
        _write_moved_days(directory, start=run[0], days=len(run))
    return max(today, after)


def _write_moved_days(directory: Path, *, start: dt.date, days: int) -> None:
    """Daily batches after the world moved: features drifted, churn depends on them differently."""
    from mlops_ops.example.churn import write_partitions

    write_partitions(
        directory,
        start=start,
        days=days,
        rows_per_day=300,
        seed=7,
        drift_from=DEMO_START,
        drift=1.5,
        concept=1.0,
    )


def _flip_labels(directory: Path, end: dt.date, *, days: int, share: float, seed: int) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    for i in range(days):
        path = directory / f"{(end - dt.timedelta(days=i)).isoformat()}.parquet"
        if path.exists():
            frame = pd.read_parquet(path)
            flip = rng.random(len(frame)) < share
            frame["churned"] = np.where(flip, 1 - frame["churned"], frame["churned"])
            frame.to_parquet(path, index=False)


def _describe_scoring(day: dt.date, result: dict[str, Any]) -> list[str]:
    score = result["returned"].get("score") or {}
    if not score:
        return [f"{day}: batch scoring {result['state']}"]
    return [
        f"{day}: batch scoring with champion v{score.get('version')}: {score.get('rows')} predictions "
        f"-> {score.get('uri')}"
    ]


def _describe_rollback(results: list[dict[str, Any]]) -> list[str]:
    lines = []
    for i, result in enumerate(results):
        ret = next(iter(result["returned"].values()), None) or {}
        label = "rollback to the previous champion" if i == 0 else "the same rollback again (idempotent)"
        lines.append(
            f"{label}: {result['state']}, outcome {ret.get('outcome', '-')}, champion v{ret.get('version', '?')}"
            + (f" (was v{ret['previous_version']})" if ret.get("previous_version") else "")
        )
    return lines


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
            f"  {rec['deployed_at']}: v{rec['version']} {rec.get('action', 'promote')} (previous: "
            f"{'v' + str(rec['previous_version']) if rec.get('previous_version') else 'none'})"
            + (f", reason: {rec['reason']}" if rec.get("reason") else "")
        )
    return lines


def run_plan(plan: Path, result: Path) -> int:
    """``dag.test()`` each run of a plan file (DAGs from the DAGs folder); results as JSON in ``result``."""
    import runpy

    from mlops_ops.runner import run_dag

    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    results = []
    for step in json.loads(Path(plan).read_text()):
        dag = None
        for path in sorted(folder.glob("*.py")):
            namespace = runpy.run_path(str(path))
            dag = next((v for v in namespace.values() if getattr(v, "dag_id", None) == step["dag_id"]), None)
            if dag is not None:
                break
        if dag is None:
            print(f"no DAG {step['dag_id']!r} in {folder}", file=sys.stderr)
            return 2
        when = dt.datetime.fromisoformat(step["logical_date"]) if step.get("logical_date") else None
        with _captured_output() as captured:
            done = run_dag(dag, conf=step.get("conf") or {}, logical_date=when)
        _write_task_logs(captured.read_text(errors="replace"), done.run_id, dag.dag_id)
        captured.unlink(missing_ok=True)
        _note_where_the_logs_are(done.run_id, dag.dag_id)
        results.append(done.to_dict())
    Path(result).write_text(json.dumps(results, default=str))
    return 0


@contextlib.contextmanager
def _captured_output() -> Iterator[Path]:
    """This process's file descriptors 1 and 2 go to a temporary file meanwhile (``dag.test()``
    logs its tasks there); afterwards the text is copied to the real output as well."""
    with tempfile.NamedTemporaryFile(suffix=".log", delete=False) as fh:
        path = Path(fh.name)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:
        yield path
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (fd, *saved):
            os.close(f)
        with path.open("rb") as src:
            shutil.copyfileobj(src, sys.stdout.buffer)
        sys.stdout.flush()


def _write_task_logs(text: str, run_id: str, dag_id: str) -> int:
    """Split ``dag.test()``'s output by task (its "[DAG TEST] starting/end task" lines) and write
    each task's part where Airflow's log view reads a task's log (``[logging] base_log_folder``,
    ``log_filename_template``); returns the number of files written."""
    import re

    from airflow.configuration import conf
    from airflow.models.dagrun import DagRun
    from airflow.utils.log.file_task_handler import FileTaskHandler
    from airflow.utils.session import create_session

    parts: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        started = re.search(r"\[DAG TEST\] starting task_id=(\S+)", line)
        if started:
            current = started.group(1)
        if current is not None:
            parts.setdefault(current, []).append(line)
        if re.search(r"\[DAG TEST\] end task task_id=(\S+)", line):
            current = None
    handler = FileTaskHandler(base_log_folder=conf.get("logging", "base_log_folder"))
    written = 0
    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.run_id == run_id).one_or_none()
        for ti in run.get_task_instances(session=session) if run is not None else []:
            lines = parts.get(ti.task_id)
            if not lines:
                continue
            path = Path(handler.local_base, handler._render_filename(ti, max(int(ti.try_number or 0), 1)))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(lines) + "\n")
            written += 1
    return written


def _note_where_the_logs_are(run_id: str, dag_id: str) -> None:
    """Tell the UI's reader of a run where its task logs are: ``dag.test()`` runs the tasks in this
    process and writes their logs to its output, not to the task log files the UI reads."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    home = os.environ.get("MLOPS_HOME", ".mlops")
    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.run_id == run_id).one_or_none()
        if run is not None and not run.note:
            run.note = (
                "Run by `mlops-ops demo` with dag.test(), in one process: each task's log view shows "
                f"its part of that process's output; the whole of it is in {home}/logs/demo.log."
            )
