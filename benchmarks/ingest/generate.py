"""Generate the ingest benchmark's sources under benchmarks/ingest/data/ (seeded, no downloads).

    .venv/bin/python benchmarks/ingest/generate.py --rows 1000000 5000000 20000000

For each row count N: ``rows_<N>.parquet`` (zstd, row groups of 250,000 rows, as a typical export)
and ``rows_<N>.csv`` with the same rows. 30 columns, a tabular mix like a customer table:

- ``customer_id`` int64 (unique), 7 int64 counts (Poisson), 2 int64 counts with 5 % missing
  values (a CSV writes them as empty cells; Parquet stores them as nullable int64);
- 14 float64 measures (normal, lognormal, uniform; 4 of them with 2 % missing values);
- 4 text columns (12, 50, 3 and 1,000 levels), 1 of them with 1 % missing values;
- 2 flags (bool), 1 of them with missing values.

Written one block of 250,000 rows at a time from a generator seeded per block, so memory stays
at one block and the same arguments give the same bytes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
BLOCK = 250_000


def block(start: int, n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng([seed, start])
    cols: dict[str, pa.Array] = {"customer_id": pa.array(np.arange(start, start + n, dtype=np.int64))}
    for i in range(7):
        cols[f"count_{i}"] = pa.array(rng.poisson(2 + i, n).astype(np.int64))
    for i in range(2):
        values = rng.poisson(5, n).astype(np.int64)
        cols[f"gappy_count_{i}"] = pa.array(values, mask=rng.random(n) < 0.05)
    for i in range(14):
        kind = i % 3
        if kind == 0:
            values = rng.normal(50 + i, 10, n)
        elif kind == 1:
            values = rng.lognormal(3, 0.5, n)
        else:
            values = rng.uniform(0, 100, n)
        values = np.round(values, 4)
        cols[f"measure_{i}"] = pa.array(values, mask=(rng.random(n) < 0.02) if i < 4 else None)
    for name, levels, gaps in (
        ("region", 12, 0.0),
        ("plan", 50, 0.01),
        ("channel", 3, 0.0),
        ("store", 1000, 0.0),
    ):
        labels = np.array([f"{name}_{j:04d}" for j in range(levels)])
        picked = labels[rng.integers(0, levels, n)]
        cols[name] = pa.array(picked, mask=(rng.random(n) < gaps) if gaps else None)
    cols["active"] = pa.array(rng.random(n) < 0.6)
    cols["churned"] = pa.array(rng.random(n) < 0.2, mask=rng.random(n) < 0.01)
    return pa.table(cols)


def generate(rows: int, seed: int = 7) -> tuple[Path, Path]:
    DATA.mkdir(parents=True, exist_ok=True)
    parquet, csv = DATA / f"rows_{rows}.parquet", DATA / f"rows_{rows}.csv"
    if parquet.exists() and csv.exists():
        return parquet, csv
    schema = block(0, 1, seed).schema
    tmp_p, tmp_c = parquet.with_suffix(".parquet.part"), csv.with_suffix(".csv.part")
    with pq.ParquetWriter(tmp_p, schema, compression="zstd") as pw, pacsv.CSVWriter(tmp_c, schema) as cw:
        for start in range(0, rows, BLOCK):
            table = block(start, min(BLOCK, rows - start), seed)
            pw.write_table(table, row_group_size=BLOCK)
            cw.write_table(table)
    tmp_p.rename(parquet)
    tmp_c.rename(csv)
    return parquet, csv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000, 20_000_000])
    args = parser.parse_args()
    for rows in args.rows:
        t0 = time.perf_counter()
        parquet, csv = generate(rows)
        print(
            f"{rows:>11,} rows: {parquet.stat().st_size / 2**20:8.0f} MiB parquet, "
            f"{csv.stat().st_size / 2**20:8.0f} MiB csv ({time.perf_counter() - t0:.0f} s)",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
