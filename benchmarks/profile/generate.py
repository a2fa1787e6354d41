"""Generate the profile benchmark's data under benchmarks/profile/data/.

    .venv/bin/python benchmarks/profile/generate.py                    # everything (about 11 GB)
    .venv/bin/python benchmarks/profile/generate.py --sizes 1m 5m      # skip 20M and 10M x 100

Files: ``profile_{1m,5m,20m}.parquet`` with 20 numeric columns (ten kinds, each twice:
normal, lognormal, gamma, uniform, Student t, a bimodal mixture, Poisson counts as int64,
exponential with 10 % missing, a 0/1 flag as int64, float32 normal), and
``profile_10m_x100.parquet`` with 10M rows x 100 numeric columns of the same kinds. Written in
row groups of 250,000 rows from a generator seeded per (file, row group), so memory stays at one
row group and the same arguments give the same bytes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
GROUP = 250_000
FILES = {"1m": (1_000_000, 20), "5m": (5_000_000, 20), "20m": (20_000_000, 20), "10m_x100": (10_000_000, 100)}


def column(kind: int, rng: np.random.Generator, rows: int) -> np.ndarray:
    if kind == 0:
        return rng.normal(50, 10, rows)
    if kind == 1:
        return rng.lognormal(3, 0.5, rows)
    if kind == 2:
        return rng.gamma(2, 2, rows)
    if kind == 3:
        return rng.uniform(0, 100, rows)
    if kind == 4:
        return rng.standard_t(5, rows) * 2
    if kind == 5:
        pick = rng.random(rows) < 0.6
        return np.where(pick, rng.normal(-2, 1, rows), rng.normal(3, 1.5, rows))
    if kind == 6:
        return rng.poisson(3, rows).astype("int64")
    if kind == 7:
        return np.where(rng.random(rows) < 0.1, np.nan, rng.exponential(2, rows))
    if kind == 8:
        return (rng.random(rows) < 0.3).astype("int64")
    return rng.normal(0, 1, rows).astype("float32")


def names(width: int) -> list[str]:
    return [f"num_{i:03d}" for i in range(width)]


def write(path: Path, rows: int, width: int, seed: int) -> None:
    tmp = path.with_suffix(".tmp")
    writer = None
    try:
        for g, start in enumerate(range(0, rows, GROUP)):
            n = min(GROUP, rows - start)
            rng = np.random.default_rng([seed, g])
            table = pa.table({name: column(i % 10, rng, n) for i, name in enumerate(names(width))})
            if writer is None:
                writer = pq.ParquetWriter(
                    tmp, table.schema, compression="snappy"
                )  # random floats: fast to write
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    tmp.rename(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="*", default=list(FILES), choices=list(FILES))
    args = p.parse_args()
    DATA.mkdir(exist_ok=True)
    (DATA / ".gitignore").write_text("*\n")
    for key in args.sizes:
        path = DATA / f"profile_{key}.parquet"
        if path.exists():
            continue
        rows, width = FILES[key]
        t0 = time.perf_counter()
        write(path, rows, width, seed=rows // 1_000_000 * 1000 + width)
        print(
            f"{path}: {rows:,} x {width}, {path.stat().st_size / 2**30:.2f} GiB in {time.perf_counter() - t0:.0f} s"
        )


if __name__ == "__main__":
    sys.exit(main())
