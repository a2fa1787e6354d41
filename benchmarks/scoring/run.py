"""Run the scoring benchmark: streamed scoring against the floor, side by side; writes results.json.

    flock /tmp/mlops-heavy.lock .venv/bin/python benchmarks/scoring/run.py             # 1M, 5M, 20M x 3
    .venv/bin/python benchmarks/scoring/run.py --sizes 1m --repeats 1                  # a quick look

Every measurement is its own subprocess (runner.py); its peak RSS is the child's ru_maxrss from
os.wait4 (the whole process: interpreter, imports, model, data). The floor and mlops-ops take turns
within each repeat, so a noisy neighbour slows them alike; the file is read once before each size
(warm page cache for both). Medians of the repeats are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DATA = HERE / "data"


def measure(args: list[str], timeout: float = 3600) -> dict:
    """Run ``runner.py args`` in a child; its JSON result plus the child's peak RSS and times."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        out = tmp.name
    cmd = [sys.executable, str(HERE / "runner.py"), *args, "--out", out]
    proc = subprocess.Popen(cmd, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {code}")
    doc = json.loads(Path(out).read_text())
    os.unlink(out)
    doc["peak_rss_mib"] = usage.ru_maxrss / 1024
    doc["user_s"], doc["sys_s"] = usage.ru_utime, usage.ru_stime
    return doc


def warm(path: Path) -> None:
    with path.open("rb") as fh:
        while fh.read(64 << 20):
            pass


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="*", default=["1m", "5m", "20m"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--repeats-20m", type=int, default=None, help="repeats at 20M rows (default: --repeats)")
    p.add_argument(
        "--floor-sizes",
        nargs="*",
        default=["1m", "5m"],
        help="sizes at which the floor runs (it holds the whole frame and the pipeline's copies of it: "
        "about 1.3 GiB per million rows, so 20M rows would need ~26 GiB on a 24 GiB machine)",
    )
    p.add_argument("--out", default=str(HERE / "results.json"))
    args = p.parse_args()
    missing = [s for s in args.sizes if not (DATA / f"scoring_{s}.parquet").exists()]
    if missing or not (DATA / "model.pkl").exists():
        subprocess.run(
            [sys.executable, str(HERE / "generate.py"), "--sizes", *args.sizes], check=True, cwd=ROOT
        )
    runs: list[dict] = []
    for size in args.sizes:
        warm(DATA / f"scoring_{size}.parquet")
        repeats = args.repeats_20m if size == "20m" and args.repeats_20m else args.repeats
        for r in range(repeats):
            for mode in ("floor", "mlops", "verify"):
                if mode == "floor" and size not in args.floor_sizes:
                    continue
                doc = measure(["--mode", mode, "--rows", size])
                doc["repeat"] = r
                runs.append(doc)
                print(
                    f"{size} {mode:6s} #{r}: {doc['wall_s']:7.1f} s  peak {doc['peak_rss_mib']:7.0f} MiB"
                    f"  (after model load {doc['rss_after_load_mib']:.0f} MiB)",
                    flush=True,
                )
    summary = []
    for size in args.sizes:
        row: dict = {"size": size}
        for mode in ("floor", "mlops", "verify"):
            mine = [d for d in runs if d["rows_key"] == size and d["mode"] == mode]
            if not mine:
                row[mode] = None
                continue
            row[mode] = {
                "runs": len(mine),
                "wall_s": statistics.median(d["wall_s"] for d in mine),
                "peak_rss_mib": statistics.median(d["peak_rss_mib"] for d in mine),
                "rss_after_load_mib": statistics.median(d["rss_after_load_mib"] for d in mine),
                "rows": mine[0]["rows"] if "rows" in mine[0] else None,
            }
        row["time_ratio"] = row["mlops"]["wall_s"] / row["floor"]["wall_s"] if row["floor"] else None
        row["mlops_above_load_mib"] = row["mlops"]["peak_rss_mib"] - row["mlops"]["rss_after_load_mib"]
        summary.append(row)
        print(json.dumps(row))
    doc = {
        "created": datetime.now(UTC).isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
        },
        "model_pickle_mib": runs[0]["model_pickle_mib"] if runs else None,
        "summary": summary,
        "runs": runs,
    }
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"done in {time.perf_counter() - t0:.0f} s")
