"""Generate the drift benchmark's data as Parquet under benchmarks/drift/data/.

    .venv/bin/python benchmarks/drift/generate.py            # everything (about 9 GB on disk)
    .venv/bin/python benchmarks/drift/generate.py --no-large # skip the 10M x 100 file

Every file is written in row groups from a generator seeded per (file, row group), so memory
stays at one row group whatever the row count, and the same arguments give the same bytes.

Files (1M rows x 20 numeric + 3 categorical columns unless stated):
  reference.parquet      the reference sample (seed 1)
  no_drift.parquet       a second, independent sample of the same distribution
  shift.parquet          +0.25 SD mean shift in num_00, num_01, num_03; cat_plan's "basic"
                         share 40% -> 30% (moved to "premium", 20% -> 30%)
  tiny_shift.parquet     +0.02 SD mean shift in all 20 numeric columns (nothing practical)
  batches/batch_NNN.parquet   50 batches of 200 rows of the undrifted distribution
  batches_shift/batch_NNN.parquet  50 batches of 200 rows, +1 SD in num_00, num_01, num_03 and
                              the cat_plan share shift
  large_reference.parquet     1M rows x 100 numeric columns (the large scenario's reference)
  large_current.parquet       10M rows x 100 numeric columns, +0.25 SD shift in 3 columns

meta.json describes the columns, the files and which columns are truly shifted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, META  # noqa: E402

# ---- the distribution ---------------------------------------------------------------------------
# Ten kinds of numeric column, repeated with different parameters. Each entry:
# (kind, params). The mean shift of k SD is applied as a location shift for continuous kinds and
# through the rate for the integer-valued Poisson kind (so its values stay integers).
KINDS: list[tuple[str, dict]] = [
    ("normal", {"loc": 50.0, "scale": 10.0}),
    ("lognormal", {"mean": 3.0, "sigma": 0.5}),
    ("gamma", {"shape": 2.0, "scale": 2.0}),
    ("uniform", {"low": 0.0, "high": 100.0}),
    ("student_t", {"df": 5.0, "scale": 2.0}),
    ("mixture", {"w": 0.6, "mu1": -2.0, "s1": 1.0, "mu2": 3.0, "s2": 1.5}),
    ("poisson", {"lam": 3.0}),
    ("exponential", {"scale": 2.0}),
    ("beta", {"a": 2.0, "b": 5.0}),
    ("normal", {"loc": 0.0, "scale": 1.0}),
]

CATEGORIES: dict[str, tuple[list[str], list[float]]] = {
    "cat_plan": (["basic", "standard", "premium", "enterprise"], [0.40, 0.30, 0.20, 0.10]),
    "cat_region": (
        [f"region_{i:02d}" for i in range(12)],
        list(np.array([1 / (i + 1) for i in range(12)]) / sum(1 / (i + 1) for i in range(12))),
    ),
    "cat_channel": (["web", "app", "store"], [0.50, 0.35, 0.15]),
}
# The categorical shift of the "shift" scenario: 10 points from "basic" to "premium".
PLAN_SHIFTED = [0.30, 0.30, 0.30, 0.10]


def column_spec(i: int) -> tuple[str, dict]:
    """Kind and parameters of numeric column i (parameters vary by round so columns differ)."""
    kind, params = KINDS[i % len(KINDS)]
    k = i // len(KINDS)  # 0, 1, 2, ...
    p = dict(params)
    factor = 1.0 + 0.5 * k
    if kind in ("normal", "uniform", "student_t", "exponential"):
        for key in ("loc", "scale", "high"):
            if key in p:
                p[key] *= factor
    elif kind == "lognormal":
        p["mean"] += 0.25 * k
    elif kind == "gamma":
        p["shape"] += k
    elif kind == "poisson":
        p["lam"] += 2 * k
    elif kind == "beta":
        p["a"] += 0.5 * k
    elif kind == "mixture":
        p["mu2"] += k
    return kind, p


def sd_of(kind: str, p: dict) -> float:
    if kind == "normal":
        return p["scale"]
    if kind == "lognormal":
        s2 = p["sigma"] ** 2
        return math.sqrt((math.exp(s2) - 1) * math.exp(2 * p["mean"] + s2))
    if kind == "gamma":
        return math.sqrt(p["shape"]) * p["scale"]
    if kind == "uniform":
        return (p["high"] - p["low"]) / math.sqrt(12)
    if kind == "student_t":
        return p["scale"] * math.sqrt(p["df"] / (p["df"] - 2))
    if kind == "mixture":
        w = p["w"]
        mean = w * p["mu1"] + (1 - w) * p["mu2"]
        second = w * (p["s1"] ** 2 + p["mu1"] ** 2) + (1 - w) * (p["s2"] ** 2 + p["mu2"] ** 2)
        return math.sqrt(second - mean**2)
    if kind == "poisson":
        return math.sqrt(p["lam"])
    if kind == "exponential":
        return p["scale"]
    if kind == "beta":
        a, b = p["a"], p["b"]
        return math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    raise ValueError(kind)


def draw(rng: np.random.Generator, kind: str, p: dict, n: int, shift_sd: float) -> np.ndarray:
    sd = sd_of(kind, p)
    if kind == "poisson":
        return rng.poisson(p["lam"] + shift_sd * sd, n).astype("int64")
    if kind == "normal":
        x = rng.normal(p["loc"], p["scale"], n)
    elif kind == "lognormal":
        x = rng.lognormal(p["mean"], p["sigma"], n)
    elif kind == "gamma":
        x = rng.gamma(p["shape"], p["scale"], n)
    elif kind == "uniform":
        x = rng.uniform(p["low"], p["high"], n)
    elif kind == "student_t":
        x = rng.standard_t(p["df"], n) * p["scale"]
    elif kind == "mixture":
        first = rng.random(n) < p["w"]
        x = np.where(first, rng.normal(p["mu1"], p["s1"], n), rng.normal(p["mu2"], p["s2"], n))
    elif kind == "exponential":
        x = rng.exponential(p["scale"], n)
    elif kind == "beta":
        x = rng.beta(p["a"], p["b"], n)
    else:
        raise ValueError(kind)
    if shift_sd:
        x = x + shift_sd * sd
    return x


def num_name(i: int, n_numeric: int) -> str:
    return f"num_{i:02d}" if n_numeric <= 100 else f"num_{i:03d}"


def make_chunk(
    rng: np.random.Generator,
    n: int,
    n_numeric: int,
    categorical: bool,
    shifts: dict[str, float],
    plan_probs: list[float] | None,
) -> pa.Table:
    cols: dict[str, pa.Array] = {}
    for i in range(n_numeric):
        name = num_name(i, n_numeric)
        kind, p = column_spec(i)
        cols[name] = pa.array(draw(rng, kind, p, n, shifts.get(name, 0.0)))
    if categorical:
        for name, (labels, probs) in CATEGORIES.items():
            if name == "cat_plan" and plan_probs is not None:
                probs = plan_probs
            idx = rng.choice(len(labels), size=n, p=np.asarray(probs) / np.sum(probs))
            cols[name] = pa.array(np.asarray(labels, dtype=object)[idx], type=pa.string())
    return pa.table(cols)


def write_file(
    path: Path,
    *,
    rows: int,
    seed: int,
    n_numeric: int = 20,
    categorical: bool = True,
    shifts: dict[str, float] | None = None,
    plan_probs: list[float] | None = None,
    row_group: int = 250_000,
) -> float:
    t0 = time.perf_counter()
    tmp = path.with_suffix(".parquet.tmp")
    writer = None
    try:
        for g, start in enumerate(range(0, rows, row_group)):
            n = min(row_group, rows - start)
            rng = np.random.default_rng([seed, g])
            chunk = make_chunk(rng, n, n_numeric, categorical, shifts or {}, plan_probs)
            if writer is None:
                writer = pq.ParquetWriter(tmp, chunk.schema, compression="snappy")
            writer.write_table(chunk, row_group_size=row_group)
            del chunk
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(path)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of each 1M-scale file")
    ap.add_argument("--batches", type=int, default=50)
    ap.add_argument("--batch-rows", type=int, default=200)
    ap.add_argument("--large-rows", type=int, default=10_000_000)
    ap.add_argument("--large-cols", type=int, default=100)
    ap.add_argument("--no-large", action="store_true", help="skip the 10M x 100 scenario's files")
    ap.add_argument("--force", action="store_true", help="regenerate files that already exist")
    args = ap.parse_args(argv)

    DATA.mkdir(parents=True, exist_ok=True)
    (DATA / "batches").mkdir(exist_ok=True)
    (DATA / "batches_shift").mkdir(exist_ok=True)
    numeric = [f"num_{i:02d}" for i in range(20)]
    categorical = list(CATEGORIES)
    shifted_numeric = ["num_00", "num_01", "num_03"]
    large_numeric = [num_name(i, args.large_cols) for i in range(args.large_cols)]
    large_shifted = ["num_00", "num_01", "num_03"]

    plan: list[tuple[str, dict]] = [
        ("reference.parquet", {"rows": args.rows, "seed": 1}),
        ("no_drift.parquet", {"rows": args.rows, "seed": 2}),
        (
            "shift.parquet",
            {
                "rows": args.rows,
                "seed": 3,
                "shifts": {c: 0.25 for c in shifted_numeric},
                "plan_probs": PLAN_SHIFTED,
            },
        ),
        ("tiny_shift.parquet", {"rows": args.rows, "seed": 4, "shifts": {c: 0.02 for c in numeric}}),
    ]
    plan += [
        (f"batches/batch_{b:03d}.parquet", {"rows": args.batch_rows, "seed": 1000 + b})
        for b in range(args.batches)
    ]
    plan += [
        (
            f"batches_shift/batch_{b:03d}.parquet",
            {
                "rows": args.batch_rows,
                "seed": 2000 + b,
                "shifts": {c: 1.0 for c in shifted_numeric},
                "plan_probs": PLAN_SHIFTED,
            },
        )
        for b in range(args.batches)
    ]
    large_files = ("large_reference.parquet", "large_current.parquet")
    # The large files are always described; --no-large only stops them being written.
    plan += [
        (
            "large_reference.parquet",
            {"rows": 1_000_000, "seed": 11, "n_numeric": args.large_cols, "categorical": False},
        ),
        (
            "large_current.parquet",
            {
                "rows": args.large_rows,
                "seed": 12,
                "n_numeric": args.large_cols,
                "categorical": False,
                "shifts": {c: 0.25 for c in large_shifted},
            },
        ),
    ]

    # A fingerprint of everything that determines the bytes, so stale files are regenerated.
    spec_doc = {"kinds": KINDS, "categories": CATEGORIES, "plan_shift": PLAN_SHIFTED, "version": 1}
    old = json.loads(META.read_text()) if META.exists() else {}
    files_meta = {}
    for rel, kw in plan:
        path = DATA / rel
        fp = hashlib.sha256(json.dumps([spec_doc, kw], sort_keys=True, default=str).encode()).hexdigest()[:16]
        fresh = path.exists() and old.get("files", {}).get(rel, {}).get("fingerprint") == fp
        if fresh and not args.force:
            files_meta[rel] = old["files"][rel]
            continue
        if args.no_large and rel in large_files:
            continue  # kept out of meta.json unless an up-to-date file is already there
        seconds = write_file(path, **kw)
        files_meta[rel] = {
            "fingerprint": fp,
            "rows": kw["rows"],
            "bytes": path.stat().st_size,
            "generated_in_s": round(seconds, 2),
        }
        if not rel.startswith("batches"):
            print(
                f"wrote {rel}: {kw['rows']:,} rows, {path.stat().st_size / 2**20:,.0f} MiB in {seconds:.1f}s"
            )
    print(f"{args.batches} batches of {args.batch_rows} rows in data/batches/ and data/batches_shift/")

    meta = {
        "numeric": numeric,
        "categorical": categorical,
        "numeric_kinds": {c: column_spec(i)[0] for i, c in enumerate(numeric)},
        "scenarios": {
            "no_drift": {"file": "no_drift.parquet", "truly_shifted": []},
            "shift": {"file": "shift.parquet", "truly_shifted": [*shifted_numeric, "cat_plan"]},
            "tiny_shift": {"file": "tiny_shift.parquet", "truly_shifted": "all numeric, by 0.02 SD"},
        },
        "reference": "reference.parquet",
        "batches": [rel for rel, _ in plan if rel.startswith("batches/")],
        "batches_shift": [rel for rel, _ in plan if rel.startswith("batches_shift/")],
        "batches_shift_truly": [*shifted_numeric, "cat_plan"],
        "batch_rows": args.batch_rows,
        "large": None
        if not all(f in files_meta for f in large_files)
        else {
            "reference": "large_reference.parquet",
            "current": "large_current.parquet",
            "rows": args.large_rows,
            "numeric": large_numeric,
            "truly_shifted": large_shifted,
        },
        "files": files_meta,
    }
    META.write_text(json.dumps(meta, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
