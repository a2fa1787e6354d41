"""What a task pays for its metrics: ``push_metrics`` against the floor, prometheus-client's bare push.

Starts Debian's ``prometheus-pushgateway`` on a free local port, then, in turns within each repeat
(so a noisy neighbour slows both alike), times:

- ``push_metrics("drift", ...)``: settings read and validated, the registry built from a drift
  document of ``--columns`` columns, the push (POST), the log line;
- the floor: ``prometheus_client.pushadd_to_gateway`` of the same metrics, the registry built once
  beforehand (no settings, no building, no log);
- ``push_metrics`` with metrics off (``MLOPS_PUSHGATEWAY_URL`` unset);
- ``push_metrics`` against a port that refuses connections (the gateway is down).

Writes ``results.json`` beside this file and prints a Markdown table. Usage::

    .venv/bin/python benchmarks/metrics/run.py [--columns 20] [--pushes 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import types
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONTEXT = {"ti": types.SimpleNamespace(dag_id="churn_monitoring", task_id="detect_drift")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _document(columns: int) -> dict:
    return {
        "status": "drift",
        "drifted_share": 0.5,
        "rows": 300,
        "prediction_drift": False,
        "columns": [
            {
                "name": f"c{i}",
                "test": "ks",
                "effect": 0.01 * i,
                "effect_threshold": 0.1,
                "drifted": i % 2 == 0,
            }
            for i in range(columns)
        ],
    }


def _per_call_ms(call, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - start) / n * 1000


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--columns", type=int, default=20)
    parser.add_argument("--pushes", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("prometheus-pushgateway") is None:
        print("prometheus-pushgateway is not installed: apt-get install -y prometheus-pushgateway")
        return 1
    logging.getLogger("mlops_ops.hooks.pushgateway").setLevel(logging.ERROR)  # one line a push

    from prometheus_client import pushadd_to_gateway

    from mlops_ops.hooks.pushgateway import build_registry, grouping_key, push_metrics

    port, down = _free_port(), _free_port()
    gateway = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        ["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{gateway}/-/ready", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        doc = _document(args.columns)
        registry = build_registry("drift", doc)
        group = grouping_key("drift", "churn", CONTEXT)

        def ours() -> None:
            assert push_metrics("drift", "churn", CONTEXT, doc)

        def floor() -> None:
            pushadd_to_gateway(gateway, job="mlops_ops", registry=registry, grouping_key=group, timeout=5)

        def refused() -> None:
            assert not push_metrics("drift", "churn", CONTEXT, doc)

        def off() -> None:
            push_metrics("drift", "churn", CONTEXT, doc)

        runs: dict[str, list[float]] = {"ours": [], "floor": [], "refused": [], "off": []}
        for _ in range(args.repeats):
            os.environ["MLOPS_PUSHGATEWAY_URL"] = gateway
            runs["ours"].append(_per_call_ms(ours, args.pushes))
            runs["floor"].append(_per_call_ms(floor, args.pushes))
            os.environ["MLOPS_PUSHGATEWAY_URL"] = f"http://127.0.0.1:{down}"
            runs["refused"].append(_per_call_ms(refused, args.pushes // 4))
            os.environ.pop("MLOPS_PUSHGATEWAY_URL")
            runs["off"].append(_per_call_ms(off, args.pushes * 10))
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    medians = {k: statistics.median(v) for k, v in runs.items()}
    result = {
        "columns": args.columns,
        "pushes": args.pushes,
        "repeats": args.repeats,
        "python": sys.version.split()[0],
        "load_average": os.getloadavg(),
        "median_ms_per_call": medians,
        "runs_ms_per_call": runs,
        "ratio_ours_to_floor": medians["ours"] / medians["floor"],
    }
    (HERE / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"| call ({args.columns}-column drift document) | median ms per call |")
    print("|---|---:|")
    print(f"| `push_metrics`, gateway up | {medians['ours']:.2f} |")
    print(f"| floor: bare `pushadd_to_gateway`, registry built once | {medians['floor']:.2f} |")
    print(f"| `push_metrics`, gateway refusing connections | {medians['refused']:.2f} |")
    print(f"| `push_metrics`, metrics off | {medians['off']:.4f} |")
    print(f"ratio ours / floor: {result['ratio_ours_to_floor']:.2f}; load average {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
