"""Online serving benchmark: `mlops-ops serve` (prediction log on) vs `mlflow models serve`.

Both serve the same registered champion (trained here by the project's training DAG) from the same
MLflow store, one uvicorn worker each, on this machine. A closed-loop asyncio/httpx client keeps
C requests in flight (one row each, `dataframe_records`) for a fixed time per server and
concurrency; the servers take turns within each concurrency so a noisy neighbour slows both alike.

    flock /tmp/mlops-heavy.lock .venv/bin/python benchmarks/serving/run.py [--seconds 20]

Writes results.json next to this file and prints the Markdown table of the README.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERVERS = ("mlops-ops serve", "mlflow models serve", "mlflow models serve, OMP_NUM_THREADS=1")
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(home: Path) -> None:
    """A churn champion (v1) trained by the training DAG in ``home``, on the embedded defaults,
    as ``mlops-ops demo`` runs its DAGs (``mlops-ops _run-dags``, in a subprocess)."""
    from mlops_ops import embedded
    from mlops_ops.example.churn import write_training_data

    env = {**os.environ, **embedded.embedded_env(home)}
    embedded.install_example(home)
    home.mkdir(parents=True, exist_ok=True)
    embedded.migrate_airflow_db(env, home / "migrate.log")
    write_training_data(home / "data" / "churn" / "daily", rows=4000, seed=0)
    plan, result = home / "plan.json", home / "result.json"
    plan.write_text(json.dumps([{"dag_id": "churn_training"}]))
    subprocess.run(
        [sys.executable, "-m", "mlops_ops.cli", "_run-dags", str(plan), "--result", str(result)],
        env=env,
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    (run,) = json.loads(result.read_text())
    assert run["state"] == "success", run


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


def start_servers(home: Path, logs: Path) -> dict[str, tuple[str, subprocess.Popen]]:
    env = {
        **{k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"},
        "MLOPS_HOME": str(home),
        "MLOPS_PIPELINES": str(home / "pipelines"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        # `mlflow models serve` starts `uvicorn` from PATH: this environment's
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    ports = {name: free_port() for name in SERVERS}

    def mlflow_serve(port: int) -> list[str]:
        return [
            sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/churn@champion",
            "--env-manager", "local", "--port", str(port), "--workers", "1",
        ]  # fmt: skip

    ours = [sys.executable, "-m", "mlops_ops.cli", "serve", "churn", "--port", str(ports[SERVERS[0]])]
    commands = {
        SERVERS[0]: (ours, {}),
        SERVERS[1]: (mlflow_serve(ports[SERVERS[1]]), {}),
        # the OpenMP setting `mlops-ops serve` defaults to, for a like-for-like comparison
        SERVERS[2]: (mlflow_serve(ports[SERVERS[2]]), {"OMP_NUM_THREADS": "1"}),
    }
    servers = {}
    for i, (name, (command, extra)) in enumerate(commands.items()):
        log = (logs / f"server-{i}.log").open("w")
        proc = subprocess.Popen(command, env={**env, **extra}, stdout=log, stderr=subprocess.STDOUT)
        servers[name] = (f"http://127.0.0.1:{ports[name]}", proc)
    try:
        for url, proc in servers.values():
            wait_ready(f"{url}/ping", proc)
    except BaseException:
        stop_servers(servers)
        raise
    return servers


def stop_servers(servers: dict[str, tuple[str, subprocess.Popen]]) -> None:
    for _, proc in servers.values():
        proc.terminate()
    for _, proc in servers.values():
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


async def load(url: str, bodies: list[bytes], concurrency: int, seconds: float) -> dict:
    """Closed loop: ``concurrency`` workers, each sending its next request when the last is answered."""
    import httpx

    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        headers = {"Content-Type": "application/json"}
        for body in bodies[:20]:  # warm-up
            await client.post("/invocations", content=body, headers=headers)
        stop_at = time.perf_counter() + seconds

        async def worker(offset: int) -> None:
            nonlocal errors
            i = offset
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                try:
                    resp = await client.post("/invocations", content=bodies[i % len(bodies)], headers=headers)
                except httpx.HTTPError:  # a dropped connection is an error, not the end of the run
                    errors += 1
                else:
                    latencies.append(time.perf_counter() - t0)
                    errors += resp.status_code != 200
                i += concurrency

        started = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return {
        "requests": len(latencies),
        "errors": errors,
        "throughput_rps": len(latencies) / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "mean_ms": statistics.fmean(latencies) * 1000,
    }


def table(results: dict) -> str:
    ours, mlflow, mlflow1 = SERVERS
    lines = [
        "| concurrency | mlops-ops req/s | MLflow req/s | MLflow (1 thread) req/s | ratio to MLflow / 1 thread "
        "| mlops-ops p50 / p99 ms | MLflow p50 / p99 ms | MLflow (1 thread) p50 / p99 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c, row in sorted(results["runs"].items(), key=lambda kv: int(kv[0])):
        a, b, d = row[ours], row[mlflow], row[mlflow1]
        lines.append(
            f"| {c} | {a['throughput_rps']:.0f} | {b['throughput_rps']:.0f} | {d['throughput_rps']:.0f} | "
            f"{a['throughput_rps'] / b['throughput_rps']:.2f} / {a['throughput_rps'] / d['throughput_rps']:.2f} | "
            f"{a['p50_ms']:.1f} / {a['p99_ms']:.1f} | {b['p50_ms']:.1f} / {b['p99_ms']:.1f} | "
            f"{d['p50_ms']:.1f} / {d['p99_ms']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="load per server and concurrency")
    parser.add_argument("--concurrency", default="1,4,16,64")
    parser.add_argument("--home", help="reuse a home with a trained churn champion")
    args = parser.parse_args()
    from mlops_ops.example.churn import generate

    work = Path(tempfile.mkdtemp(prefix="mlops-bench-serving-"))
    home = Path(args.home) if args.home else work / "home"
    if not args.home:
        print("training the champion ...", flush=True)
        train(home)
    frame = generate(2000, seed=11).drop(columns=["churned"])
    frame["data_usage_gb"] = frame["data_usage_gb"].fillna(10.0)
    frame["region"] = frame["region"].fillna("north")
    rows = json.loads(frame.to_json(orient="records"))
    bodies = [json.dumps({"dataframe_records": [r]}).encode() for r in rows]
    servers = start_servers(home, work)
    results: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, shared",
        "python": platform.python_version(),
        "seconds": args.seconds,
        "runs": {},
    }
    try:
        for c in [int(x) for x in args.concurrency.split(",")]:
            results["runs"][str(c)] = {}
            for name, (url, _) in servers.items():
                r = asyncio.run(load(url, bodies, c, args.seconds))
                results["runs"][str(c)][name] = r
                print(
                    f"c={c:3d} {name:40s} {r['throughput_rps']:7.0f} req/s  p50 {r['p50_ms']:6.1f} ms  "
                    f"p99 {r['p99_ms']:6.1f} ms  errors {r['errors']}",
                    flush=True,
                )
    finally:
        stop_servers(servers)
    log_dir = home / "storage" / "churn" / "prediction_log"
    results["prediction_log_parts"] = len(list(log_dir.rglob("part-*.parquet")))
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
