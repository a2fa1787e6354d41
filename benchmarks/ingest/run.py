"""Run the ingest benchmark side by side with its floor and write benchmarks/ingest/results.json.

    flock /tmp/mlops-heavy.lock .venv/bin/python benchmarks/ingest/run.py
    .venv/bin/python benchmarks/ingest/run.py --rows 1000000 --repeats 1   # a quick look

For every row count and source format (Parquet, CSV) the two tools take turns within each
repeat (mlops-ops ingest, then the floor: pyarrow read + write of the same file), so a noisy
neighbour slows them alike; the file is read once before (warm page cache for both). Every
measured run is its own subprocess; its peak RSS is ``ru_maxrss`` from ``os.wait4`` for that
child alone (the whole process: interpreter, imports, the work). Medians over the repeats.
Data is generated first if missing (generate.py).
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
RESULTS = HERE / "results.json"
sys.path.insert(0, str(HERE))
from generate import generate  # noqa: E402

TOOLS = ("mlops", "floor")


def measure(tool: str, src: Path, workdir: Path, tag: str) -> dict:
    out = workdir / f"{tool}-{src.name}-{tag}.json"
    log = workdir / f"{tool}-{src.name}-{tag}.log"
    cmd = [sys.executable, str(HERE / "runner.py"), "--tool", tool, "--src", str(src), "--out", str(out)]
    t0 = time.perf_counter()
    with open(log, "w") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    record = {
        "tool": tool,
        "source": src.name,
        "tag": tag,
        "returncode": proc.returncode,
        "process_wall_s": time.perf_counter() - t0,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "cpu_s": usage.ru_utime + usage.ru_stime,
    }
    if proc.returncode == 0:
        record.update(json.loads(out.read_text()))
    else:
        record["log_tail"] = log.read_text()[-3000:]
    return record


def warm(path: Path) -> None:
    with open(path, "rb") as fh:
        while fh.read(64 << 20):
            pass


def summarise(runs: list[dict]) -> list[dict]:
    rows = []
    keys = sorted({(r["source"], r["tool"]) for r in runs})
    for source, tool in keys:
        ok = [r for r in runs if r["source"] == source and r["tool"] == tool and r["returncode"] == 0]
        if not ok:
            continue
        rows.append(
            {
                "source": source,
                "tool": tool,
                "runs": len(ok),
                "wall_s": statistics.median(r["wall_s"] for r in ok),
                "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in ok),
                "work_cpu_s": (
                    statistics.median(r["work_cpu_s"] for r in ok)
                    if all("work_cpu_s" in r for r in ok)
                    else None
                ),
                "rows": ok[0]["rows"],
            }
        )
    return rows


def table(summary: list[dict]) -> str:
    by = {(s["source"], s["tool"]): s for s in summary}
    lines = [
        "| source | rows | runs | mlops-ops ingest s | floor s | ratio | CPU s in the timed section, mlops-ops / floor "
        "| mlops-ops peak RSS MiB | floor peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    sources = sorted({s["source"] for s in summary}, key=lambda n: (int(n.split("_")[1].split(".")[0]), n))
    for source in sources:
        m, f = by.get((source, "mlops")), by.get((source, "floor"))
        if not (m and f):
            continue
        fmt = "Parquet" if source.endswith(".parquet") else "CSV"
        cpu = (
            f"{m['work_cpu_s']:.1f} / {f['work_cpu_s']:.1f}"
            if m.get("work_cpu_s") and f.get("work_cpu_s")
            else "-"
        )
        lines.append(
            f"| {fmt} | {m['rows']:,} | {min(m['runs'], f['runs'])} | {m['wall_s']:.1f} | {f['wall_s']:.1f} | "
            f"{m['wall_s'] / f['wall_s']:.2f}x | {cpu} | {m['peak_rss_mib']:,.0f} | {f['peak_rss_mib']:,.0f} |"
        )
    return "\n".join(lines)


def save(runs: list[dict]) -> list[dict]:
    summary = summarise(runs)
    RESULTS.write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": {
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                    "python": platform.python_version(),
                },
                "summary": summary,
                "runs": runs,
            },
            indent=2,
        )
        + "\n"
    )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000, 20_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--repeats-large", type=int, default=None, help="repeats at 20M rows and more")
    parser.add_argument("--formats", nargs="+", default=["parquet", "csv"])
    args = parser.parse_args()
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    measured = {f"rows_{n}.{fmt}" for n in args.rows for fmt in args.formats}
    runs: list[dict] = [r for r in previous.get("runs", []) if r["source"] not in measured]
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        for rows in args.rows:
            parquet, csv = generate(rows)
            repeats = args.repeats_large if (args.repeats_large and rows >= 20_000_000) else args.repeats
            for src in [p for p in (parquet, csv) if p.suffix.lstrip(".") in args.formats]:
                warm(src)
                for i in range(repeats):
                    for tool in TOOLS:
                        record = measure(tool, src, Path(tmp), f"r{i}")
                        runs.append(record)
                        save(runs)  # after every run: an interrupted benchmark keeps what it measured
                        print(
                            f"{src.name:>24} {tool:>6} r{i}: "
                            + (
                                f"{record['wall_s']:7.1f} s {record['peak_rss_mib']:8.0f} MiB"
                                if record["returncode"] == 0
                                else f"FAILED ({record['returncode']})"
                            ),
                            flush=True,
                        )
    summary = save(runs)
    print(table(summary))


if __name__ == "__main__":
    main()
