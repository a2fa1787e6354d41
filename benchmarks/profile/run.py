"""Run the profile benchmark: the streamed profile against np.sort per column, side by side.

    flock /tmp/mlops-heavy.lock .venv/bin/python benchmarks/profile/run.py      # everything, 3 repeats
    .venv/bin/python benchmarks/profile/run.py --files 1m --repeats 1           # a quick look

Every measurement is its own subprocess (runner.py); its peak RSS is the child's ru_maxrss from
os.wait4 (the whole process: interpreter, imports, data). The floor (``sort``), mlops-ops
(``mlops``) and, on the 1M file, the in-memory profile of before (``memory``) take
turns within each repeat; the file is read once before each size (warm page cache for all).
Medians of the repeats are reported in results.json.
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
    p.add_argument("--files", nargs="*", default=["1m", "5m", "20m", "10m_x100"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--repeats-large", type=int, default=None, help="repeats on 20m and 10m_x100 (default: --repeats)"
    )
    p.add_argument(
        "--memory-files",
        nargs="*",
        default=["1m"],
        help="files on which the in-memory profile of before runs too (it holds the frame and its coerced copy)",
    )
    p.add_argument("--out", default=str(HERE / "results.json"))
    args = p.parse_args()
    missing = [f for f in args.files if not (DATA / f"profile_{f}.parquet").exists()]
    if missing:
        subprocess.run([sys.executable, str(HERE / "generate.py"), "--sizes", *missing], check=True, cwd=ROOT)
    runs: list[dict] = []
    for key in args.files:
        warm(DATA / f"profile_{key}.parquet")
        modes = ("sort", "mlops", "memory") if key in args.memory_files else ("sort", "mlops")
        large = key in ("20m", "10m_x100") and args.repeats_large
        for r in range(args.repeats_large if large else args.repeats):
            for mode in modes:
                doc = measure(["--mode", mode, "--file", key])
                doc["repeat"] = r
                runs.append(doc)
                print(
                    f"{key} {mode:6s} #{r}: {doc['wall_s']:7.1f} s  peak {doc['peak_rss_mib']:7.0f} MiB",
                    flush=True,
                )
    summary = []
    for key in args.files:
        row: dict = {"file": key}
        for mode in ("sort", "mlops", "memory"):
            mine = [d for d in runs if d["file"] == key and d["mode"] == mode]
            if not mine:
                continue
            row["rows"], row["columns"] = mine[0]["rows"], mine[0]["columns"]
            row[mode] = {
                "runs": len(mine),
                "wall_s": statistics.median(d["wall_s"] for d in mine),
                "peak_rss_mib": statistics.median(d["peak_rss_mib"] for d in mine),
            }
        row["time_ratio"] = row["mlops"]["wall_s"] / row["sort"]["wall_s"]
        summary.append(row)
        print(json.dumps(row))
    doc = {
        "created": datetime.now(UTC).isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
        },
        "summary": summary,
        "runs": runs,
    }
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"done in {time.perf_counter() - t0:.0f} s")
