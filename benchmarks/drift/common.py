"""Shared by the generator, the orchestrator and every per-tool runner.

Only the standard library is imported at module level, so this file works unchanged in the
project's .venv and in benchmarks/.venv-peers (different numpy/pandas versions).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
META = DATA / "meta.json"

# Scenarios on the 1M x 23 data set, run by every tool.
BIG_SCENARIOS = ("no_drift", "shift", "tiny_shift")
# Small batches of the same (undrifted) distribution, run by every tool in one process each.
BATCHES = "small_batches"
# The same with a strong shift (1 SD in three numeric columns, the categorical share shift):
# shows whether a tool that stays calm on small batches still sees a real change.
BATCHES_SHIFT = "small_batches_shift"
BATCH_SCENARIOS = {BATCHES: "batches", BATCHES_SHIFT: "batches_shift"}
# mlops-ops only: 10M rows x 100 numeric columns.
LARGE = "large_10m"


def load_meta() -> dict:
    if not META.exists():
        sys.exit(f"{META} not found: run benchmarks/drift/generate.py first")
    return json.loads(META.read_text())


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Clock:
    """Named wall-clock laps, e.g. clock.lap('read') after reading."""

    def __init__(self) -> None:
        self.t0 = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> float:
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + (now - self.last)
        self.last = now
        return self.laps[name]

    def total(self) -> float:
        return time.perf_counter() - self.t0


def write_result(path: str | os.PathLike, doc: dict) -> None:
    doc.setdefault("peak_rss_self_mib", round(peak_rss_mib(), 1))
    Path(path).write_text(json.dumps(doc, indent=2, default=str))


def runner_args(argv: list[str] | None = None):
    import argparse

    p = argparse.ArgumentParser(description="one drift-detection run of one tool on one scenario")
    p.add_argument("--scenario", required=True)
    p.add_argument("--out", required=True, help="where to write this run's JSON result")
    p.add_argument(
        "--reference-rows",
        type=int,
        default=None,
        help="use a seeded random sample of this many reference rows (default: all)",
    )
    p.add_argument("--max-batches", type=int, default=None, help="small batches: check only the first N")
    return p.parse_args(argv)


def sample_reference(frame, rows: int | None):
    """A seeded random sample of the reference rows (all of them when rows is None)."""
    if rows is None or rows >= len(frame):
        return frame
    return frame.sample(rows, random_state=0).reset_index(drop=True)


def decision(drift: bool, flagged: list[str], n_columns: int, **extra) -> dict:
    """A tool's verdict in one shape for every tool."""
    return {
        "drift": bool(drift),
        "n_flagged": len(flagged),
        "flagged": sorted(flagged),
        "n_columns": n_columns,
        **extra,
    }


def run_batches(meta: dict, check, max_batches: int | None = None, scenario: str = BATCHES) -> dict:
    """Run check(path) -> decision over the small batches; time each batch separately."""
    rows = []
    truly = set(meta.get("batches_shift_truly", [])) if scenario == BATCHES_SHIFT else set()
    for rel in meta[BATCH_SCENARIOS[scenario]][:max_batches]:
        t0 = time.perf_counter()
        d = check(DATA / rel)
        d["seconds"] = time.perf_counter() - t0
        d["true_flagged"] = len(truly & set(d["flagged"]))
        d["false_flagged"] = d["n_flagged"] - d["true_flagged"]
        # per-column statistics of every batch would swell results.json; the verdicts are kept
        rows.append({k: v for k, v in d.items() if k not in ("pvalues", "scores")})
    secs = sorted(r["seconds"] for r in rows)
    flagged = [r for r in rows if r["drift"]]
    return {
        "batches": len(rows),
        "batch_rows": meta["batch_rows"],
        "flagged_batches": len(flagged),
        "flagged_share": len(flagged) / len(rows) if rows else None,
        "mean_columns_flagged": sum(r["n_flagged"] for r in rows) / len(rows) if rows else None,
        "truly_shifted_columns": len(truly),
        "mean_true_flagged": sum(r["true_flagged"] for r in rows) / len(rows) if rows else None,
        "mean_false_flagged": sum(r["false_flagged"] for r in rows) / len(rows) if rows else None,
        "median_batch_s": secs[len(secs) // 2] if secs else None,
        "per_batch": rows,
    }
