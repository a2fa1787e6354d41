"""Peak memory of training per row x column: how large a training window fits a machine.

    flock /tmp/mlops-heavy.lock .venv/bin/python benchmarks/ingest/training_memory.py

For each row count, a child process reads the first N rows of ``data/rows_1000000.parquet``
(30 columns: 28 features after the id and the target, 4 of them text) and trains the churn
example's estimator (``HistGradientBoostingClassifier``, 20 iterations: memory does not grow with them) through
``core.training.train_model`` with the inferred schema, as the train task does (without MLflow).
A second child only reads the same rows. Peak RSS of each child from ``os.wait4``; the training
cost per cell is (peak of training - peak of reading) / (rows x columns). Results go to
``training_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE / "data" / "rows_1000000.parquet"


def child(rows: int, train: bool) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlops_ops.core.canonical import frame_of_table

    batch = next(pq.ParquetFile(SRC).iter_batches(batch_size=rows))
    frame = frame_of_table(pa.Table.from_batches([batch]))
    frame = frame[frame["churned"].notna()].drop(columns=["customer_id"])
    frame["churned"] = frame["churned"].astype("int64")
    if not train:
        return
    from mlops_ops.core.schema_inference import infer_schema
    from mlops_ops.core.training import train_model

    schema = infer_schema(frame, "churned")
    t0 = time.perf_counter()
    train_model(
        frame,
        target="churned",
        features=schema.feature_set,
        estimator="sklearn.ensemble.HistGradientBoostingClassifier",
        params={"max_iter": 20, "learning_rate": 0.08, "max_leaf_nodes": 15},
        schema=schema,
    )
    print(json.dumps({"fit_s": time.perf_counter() - t0}))


def measure(rows: int, train: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", str(rows), *(["--train"] if train else [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    rec = {"rows": rows, "train": train, "peak_rss_mib": usage.ru_maxrss / 1024}
    rec["returncode"] = os.waitstatus_to_exitcode(status)
    if out.strip():
        rec.update(json.loads(out.strip().splitlines()[-1]))
    return rec


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", type=int)
    parser.add_argument("--train", action="store_true")
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 200_000, 400_000])
    args = parser.parse_args()
    if args.child:
        child(args.child, args.train)
        return
    results = []
    for rows in args.rows:
        read, fit = measure(rows, False), measure(rows, True)
        cells = rows * 30
        per_cell = (fit["peak_rss_mib"] - read["peak_rss_mib"]) * 2**20 / cells
        results.append({"rows": rows, "read": read, "train": fit, "training_bytes_per_cell": per_cell})
        print(
            f"{rows:>9,} rows: read {read['peak_rss_mib']:7.0f} MiB, train {fit['peak_rss_mib']:7.0f} MiB "
            f"({fit.get('fit_s', float('nan')):.0f} s), {per_cell:.0f} B per cell",
            flush=True,
        )
    (HERE / "training_memory.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
