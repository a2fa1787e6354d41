"""Generate the scoring benchmark's data and model under benchmarks/scoring/data/.

    .venv/bin/python benchmarks/scoring/generate.py              # 1M, 5M and 20M rows (about 6 GB)
    .venv/bin/python benchmarks/scoring/generate.py --rows 1000000

Each file has 30 feature columns (26 numeric of five kinds, 4 categorical text columns), a
``customer_id`` text column and the ``churned`` target, written in row groups of 250,000 rows from
a generator seeded per (file, row group): memory stays at one row group, and the same arguments
give the same bytes. The model is the project's own training (``mlops_ops.core.training.train_model``
with its schema and preprocessing) on
the first 200,000 rows of a separate seed; it is pickled with its schema to ``model.pkl``.
The model is the project's pipeline (schema coercion, median imputation, scaling) around a
``LogisticRegression`` on the 26 numeric columns: a cheap model, so that the cost of reading,
coercing and writing shows against it (the 4 text columns are in the file, not in the model:
the categorical imputers of the pipeline cost ~20 us a row for the floor and for mlops-ops alike).
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
SIZES = {"1m": 1_000_000, "5m": 5_000_000, "20m": 20_000_000}
GROUP = 250_000
NUMERIC = [f"num_{i:02d}" for i in range(26)]
CATEGORICAL = {
    "cat_plan": (["basic", "standard", "premium", "enterprise"], [0.4, 0.3, 0.2, 0.1]),
    "cat_region": ([f"region_{i:02d}" for i in range(12)], None),
    "cat_channel": (["web", "store", "phone"], [0.6, 0.3, 0.1]),
    "cat_device": ([f"device_{i}" for i in range(8)], None),
}


def block(rows: int, seed: int, start: int) -> pd.DataFrame:
    """``rows`` rows of the distribution; ids ``start..start+rows``."""
    rng = np.random.default_rng(seed)
    cols: dict[str, object] = {"customer_id": [f"c{i:09d}" for i in range(start, start + rows)]}
    for i, name in enumerate(NUMERIC):
        kind = i % 5
        if kind == 0:
            cols[name] = rng.normal(50 + i, 10, rows)
        elif kind == 1:
            cols[name] = rng.lognormal(2, 0.6, rows)
        elif kind == 2:
            cols[name] = rng.poisson(3 + i % 4, rows).astype("int64")
        elif kind == 3:
            cols[name] = rng.uniform(0, 100, rows)
        else:
            cols[name] = np.where(rng.random(rows) < 0.05, np.nan, rng.gamma(2, 2, rows))
    for name, (levels, p) in CATEGORICAL.items():
        if p is None:
            weights = 1 / np.arange(1, len(levels) + 1)
            p = list(weights / weights.sum())
        cols[name] = np.asarray(levels)[rng.choice(len(levels), rows, p=p)]
    frame = pd.DataFrame(cols)
    logit = (
        0.04 * (frame["num_00"] - 50)
        - 0.3 * (frame["num_01"] - 8.5)
        + 0.2 * (frame["num_02"] - 3)
        + 0.6 * (frame["cat_plan"] == "basic")
        - 0.4 * (frame["cat_channel"] == "web")
        + rng.normal(0, 1, rows)
    )
    frame["churned"] = (logit > 0.3).astype("int64")
    return frame


def write(path: Path, rows: int, seed: int) -> None:
    writer = None
    try:
        for g, start in enumerate(range(0, rows, GROUP)):
            table = pa.Table.from_pandas(
                block(min(GROUP, rows - start), seed * 100_003 + g, start), preserve_index=False
            )
            if writer is None:
                writer = pq.ParquetWriter(path.with_suffix(".tmp"), table.schema, compression="zstd")
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    path.with_suffix(".tmp").rename(path)


def train(path: Path) -> None:
    from mlops_ops.core.schema_inference import infer_schema
    from mlops_ops.core.training import train_model

    frame = block(200_000, seed=7, start=0)
    schema = infer_schema(frame, "churned", numeric=NUMERIC, categorical=[], id_columns=["customer_id"])
    result = train_model(
        frame,
        target="churned",
        features=schema.feature_set,
        estimator="sklearn.linear_model.LogisticRegression",
        params={},
        task="classification",
        holdout_fraction=0.2,
        seed=7,
        schema=schema,
    )
    with path.open("wb") as fh:
        pickle.dump({"model": result.model, "schema": schema.to_dict()}, fh)
    print(f"model: {path} ({path.stat().st_size / 2**20:.1f} MiB), holdout {result.metrics}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="*", default=list(SIZES), choices=list(SIZES))
    args = p.parse_args()
    DATA.mkdir(exist_ok=True)
    (DATA / ".gitignore").write_text("*\n")
    model = DATA / "model.pkl"
    if not model.exists():
        train(model)
    for key in args.sizes:
        path = DATA / f"scoring_{key}.parquet"
        if path.exists():
            continue
        t0 = time.perf_counter()
        write(path, SIZES[key], seed=int(SIZES[key] // 1_000_000))
        print(
            f"{path}: {SIZES[key]:,} rows, {path.stat().st_size / 2**30:.2f} GiB in {time.perf_counter() - t0:.0f} s"
        )
    (DATA / "meta.json").write_text(
        json.dumps({"numeric": NUMERIC, "categorical": list(CATEGORICAL)}, indent=2)
    )


if __name__ == "__main__":
    sys.exit(main())
