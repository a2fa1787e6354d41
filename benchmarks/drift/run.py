"""Run the whole drift benchmark side by side and write benchmarks/drift/results.json.

    .venv/bin/python benchmarks/drift/run.py                 # everything (about 30 minutes)
    .venv/bin/python benchmarks/drift/run.py --quick         # 1 repeat, no Evidently, no 10M file

Every measured run is its own subprocess: one tool, one scenario. Its peak RSS is the child's
ru_maxrss as reported by os.wait4 for that child alone (the whole process: interpreter, imports,
reading the Parquet files, the test). Its wall time is measured inside the runner from after the
imports to the verdict (so it includes reading the Parquet files); the import time and the whole
process's wall time are kept in results.json as well. Tools take turns within each repeat, so
a noisy neighbour slows them alike. Data is generated first if missing (generate.py).
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
sys.path.insert(0, str(HERE))
from common import BATCH_SCENARIOS, BATCHES, BATCHES_SHIFT, BIG_SCENARIOS, DATA, LARGE, load_meta  # noqa: E402

PEERS_PY = ROOT / "benchmarks" / ".venv-peers" / "bin" / "python"
TOOLS = ("mlops", "scipy", "alibi", "evidently")
LABEL = {"mlops": "mlops-ops", "scipy": "scipy (naive)", "alibi": "alibi-detect", "evidently": "Evidently"}
RESULTS = HERE / "results.json"
BATCHES_FULLREF = BATCHES + "_fullref"


# ---- running one measured subprocess ------------------------------------------------------------
def run_one(
    tool: str,
    scenario: str,
    python: Path,
    workdir: Path,
    timeout: float,
    tag: str,
    extra: tuple[str, ...] = (),
    key: str | None = None,
) -> dict:
    """One measured subprocess; `key` names the result when the runner's scenario is reused
    with other arguments (`extra`)."""
    key = key or scenario
    out = workdir / f"{tool}-{key}-{tag}.json"
    log = workdir / f"{tool}-{key}-{tag}.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1", TRANSFORMERS_VERBOSITY="error", DO_NOT_TRACK="1")
    cmd = [str(python), str(HERE / f"runner_{tool}.py"), "--scenario", scenario, "--out", str(out), *extra]
    t0 = time.perf_counter()
    with open(log, "w") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    timed_out = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - t0 > timeout:
            proc.kill()
            timed_out = True
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.02)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    wall = time.perf_counter() - t0
    rec = {
        "tool": tool,
        "scenario": key,
        "args": list(extra),
        "tag": tag,
        "returncode": proc.returncode,
        "timed_out": timed_out,
        "process_wall_s": wall,
        "peak_rss_mib": usage.ru_maxrss / 1024,  # Linux: KiB
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
    }
    if proc.returncode == 0 and out.exists():
        rec["result"] = json.loads(out.read_text())
    else:
        rec["log_tail"] = log.read_text()[-3000:]
    state = "ok" if "result" in rec else ("TIMEOUT" if timed_out else f"FAILED rc={proc.returncode}")
    inner = rec.get("result", {}).get("total_s")
    print(
        f"  {LABEL[tool]:<14} {key:<22} {tag:<3} {state:<8} "
        + (f"check {inner:8.2f}s  " if inner is not None else "")
        + f"process {wall:7.2f}s  peak RSS {rec['peak_rss_mib']:8.0f} MiB",
        flush=True,
    )
    return rec


def warm(*paths: Path) -> None:
    """Read the files once so every tool starts from a warm page cache (not timed)."""
    for path in paths:
        with open(path, "rb") as fh:
            while fh.read(1 << 24):
                pass


def provenance() -> dict:
    """Which mlops-ops code was measured: HEAD plus a hash of the detector's source file."""
    import hashlib

    doc: dict = {}
    try:
        doc["git_head"] = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "mlops_ops/core/drift"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        doc["drift_py_modified_since_head"] = bool(dirty)
    except (OSError, subprocess.CalledProcessError):
        pass
    sources = sorted((ROOT / "mlops_ops" / "core" / "drift").glob("*.py"))  # the drift package
    if sources:
        digest = hashlib.sha256()
        for src in sources:
            digest.update(src.name.encode() + b"\0" + src.read_bytes())
        doc["drift_py_sha256"] = digest.hexdigest()[:16]
    return doc


# ---- summarising ------------------------------------------------------------------------------------
def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(runs: list[dict]) -> dict:
    ok = [r for r in runs if "result" in r]
    if not ok:
        return {"runs": 0, "failed": len(runs)}
    res = [r["result"] for r in ok]
    timings = {k: med([x.get("timings", {}).get(k) for x in res]) for k in res[0].get("timings", {})}
    ref_side = (timings.get("read_reference") or 0.0) + (timings.get("prepare_reference") or 0.0)
    total = med([x.get("total_s") for x in res])
    s = {
        "runs": len(ok),
        "failed": len(runs) - len(ok),
        "total_s": total,
        "total_s_all": [round(x["total_s"], 3) for x in res if "total_s" in x],
        "after_reference_s": None if total is None else total - ref_side,
        "timings": timings,
        "imports_s": med([x.get("imports_s") for x in res]),
        "process_wall_s": med([r["process_wall_s"] for r in ok]),
        "peak_rss_mib": med([r["peak_rss_mib"] for r in ok]),
        "peak_rss_mib_max": max(r["peak_rss_mib"] for r in ok),
        "versions": res[0].get("versions"),
    }
    if "decision" in res[0]:
        d = res[0]["decision"]
        s["decision"] = {k: d[k] for k in ("drift", "n_flagged", "flagged", "n_columns") if k in d}
        for extra in ("status", "evidently_share", "threshold", "methods"):
            if extra in d:
                s["decision"][extra] = d[extra]
        s["decisions_consistent"] = all(
            x["decision"]["drift"] == d["drift"] and x["decision"]["flagged"] == d["flagged"] for x in res
        )
    if "batches" in res[0]:
        b = res[0]["batches"]
        s["batches"] = {k: v for k, v in b.items() if k != "per_batch"}
        s["batches"]["statuses"] = sorted({str(p.get("status")) for p in b["per_batch"]} - {"None"})
    for k in ("rows", "columns", "profile_bytes", "reference_rows"):
        if k in res[0]:
            s[k] = res[0][k]
    return s


def machine() -> dict:
    info = {"nproc": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["mem_gib"] = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return info


# ---- Markdown ---------------------------------------------------------------------------------------
def fmt_s(x):
    if x is None:
        return "–"
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 100 else f"{x:.0f}"


def fmt_ratio(x):
    if x is None:
        return "–"
    return f"{x:.1f}×" if x < 100 else f"{x:.0f}×"


def markdown(doc: dict) -> str:
    S = doc["summary"]
    n_cols = 23
    lines = [
        f"1M-row current file vs 1M-row reference, 20 numeric + 3 categorical columns. "
        f"Median of {doc['args']['repeats']} runs (Evidently: {doc['args']['evidently_repeats']}); "
        "wall = after imports, up to the verdict, including reading Parquet.",
        "",
        "| scenario | tool | runs | wall s | × mlops-ops | wall s without the reference side | peak RSS MiB "
        "| dataset drift | columns flagged |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for sc in BIG_SCENARIOS:
        base = S.get(f"mlops/{sc}", {}).get("total_s")
        for tool in TOOLS:
            s = S.get(f"{tool}/{sc}")
            if not s:
                continue
            if not s.get("runs"):
                lines.append(f"| {sc} | {LABEL[tool]} | 0 | failed | | | | | |")
                continue
            d = s.get("decision", {})
            ratio = s["total_s"] / base if base and tool != "mlops" else None
            after = s["after_reference_s"] if tool != "mlops" else None
            flagged = d.get("flagged", [])
            shown = ", ".join(flagged) if 0 < len(flagged) <= 5 else ""
            lines.append(
                f"| {sc} | {LABEL[tool]} | {s['runs']} | {fmt_s(s['total_s'])} | "
                f"{fmt_ratio(ratio) if tool != 'mlops' else '1×'} | {fmt_s(after) if after is not None else '–'} | "
                f"{s['peak_rss_mib']:.0f} | {'**yes**' if d.get('drift') else 'no'} | "
                f"{d.get('n_flagged')}/{d.get('n_columns') or n_cols}{(' (' + shown + ')') if shown else ''} |"
            )
    for bsc, what in (
        (BATCHES, "the undrifted distribution"),
        (BATCHES_SHIFT, "a strong shift: +1 SD in num_00, num_01, num_03 and cat_plan 40/20% -> 30/30%"),
    ):
        b_rows = [
            (t, S[f"{t}/{k}"])
            for t in TOOLS
            for k in (bsc, bsc + "_fullref")
            if S.get(f"{t}/{k}", {}).get("runs")
        ]
        if not b_rows:
            continue
        first = b_rows[0][1]["batches"]
        truly = first.get("truly_shifted_columns") or 0
        lines += [
            "",
            f"`{bsc}`: {first['batch_rows']}-row batches of {what}; one process per tool (the reference is "
            "read and prepared once, then each batch is read from Parquet and checked).",
            "",
            "| tool | reference rows | batches flagged as drifted | columns flagged per batch (mean)"
            + (f" | of them truly shifted (of {truly})" if truly else "")
            + " | median s per batch | peak RSS MiB |",
            "|---|---:|---:|---:|" + ("---:|" if truly else "") + "---:|---:|",
        ]
        for tool, s in b_rows:
            b = s["batches"]
            ref_rows = "profile of 1,000,000" if tool == "mlops" else f"{s.get('reference_rows', 0):,}"
            lines.append(
                f"| {LABEL[tool]} | {ref_rows} | {b['flagged_batches']}/{b['batches']} "
                f"({100 * b['flagged_share']:.0f}%) | {b['mean_columns_flagged']:.2f} | "
                + (f"{b['mean_true_flagged']:.2f} | " if truly else "")
                + f"{fmt_s(b['median_batch_s'])} | {s['peak_rss_mib']:.0f} |"
            )
    prof = S.get("mlops/profile")
    large = S.get(f"mlops/{LARGE}")
    lprof = S.get("mlops/profile_large")
    if prof or large:
        lines += [
            "",
            "mlops-ops one-offs and the large scenario:",
            "",
            "| run | runs | wall s | process wall s | peak RSS MiB | verdict |",
            "|---|---:|---:|---:|---:|---|",
        ]
        if prof and prof.get("runs"):
            lines.append(
                f"| build_reference_profile, 1M × 23 (incl. reading Parquet) | {prof['runs']} | {fmt_s(prof['total_s'])} | "
                f"{fmt_s(prof['process_wall_s'])} | {prof['peak_rss_mib']:.0f} | profile JSON {prof.get('profile_bytes', 0) / 1024:.0f} KiB |"
            )
        if lprof and lprof.get("runs"):
            lines.append(
                f"| build_reference_profile, 1M × 100 | {lprof['runs']} | {fmt_s(lprof['total_s'])} | "
                f"{fmt_s(lprof['process_wall_s'])} | {lprof['peak_rss_mib']:.0f} | profile JSON {lprof.get('profile_bytes', 0) / 1024:.0f} KiB |"
            )
        if large and large.get("runs"):
            d = large.get("decision", {})
            lines.append(
                f"| detect_drift, 10M × 100 from Parquet | {large['runs']} | {fmt_s(large['total_s'])} | "
                f"{fmt_s(large['process_wall_s'])} | {large['peak_rss_mib']:.0f} (max {large['peak_rss_mib_max']:.0f}) | "
                f"drift={'yes' if d.get('drift') else 'no'}, {d.get('n_flagged')}/{d.get('n_columns')} flagged"
                f"{(' (' + ', '.join(d['flagged']) + ')') if 0 < d.get('n_flagged', 0) <= 5 else ''} |"
            )
    t = doc.get("targets", {})
    if t:
        lines += ["", "Targets:", ""]
        for name, v in t.items():
            lines.append(f"- {name}: {v['measured']} → {'met' if v['met'] else 'NOT met'}")
    return "\n".join(lines)


def targets(S: dict) -> dict:
    out = {}
    ratios = []
    for sc in BIG_SCENARIOS:
        e, m = S.get(f"evidently/{sc}", {}), S.get(f"mlops/{sc}", {})
        if e.get("total_s") and m.get("total_s"):
            ratios.append((sc, e["total_s"] / m["total_s"]))
    if ratios:
        worst = min(r for _, r in ratios)
        out["mlops-ops ≥ 50× faster than Evidently on 1M × 23"] = {
            "measured": ", ".join(f"{sc} {r:.0f}×" for sc, r in ratios),
            "met": worst >= 50,
        }
    large = S.get(f"mlops/{LARGE}", {})
    if large.get("runs"):
        worst_wall = max(
            large["timings"].get("detect", 0) + large["timings"].get("load_profile", 0), large["total_s"]
        )
        out["10M × 100 from Parquet in ≤ 60 s"] = {
            "measured": f"median {large['total_s']:.1f} s over {large['runs']} runs "
            f"(whole process incl. interpreter start and imports: {large['process_wall_s']:.1f} s)",
            "met": worst_wall <= 60 and large["process_wall_s"] <= 60,
        }
        out["10M × 100 peak memory ≤ 3 GB"] = {
            "measured": f"peak RSS {large['peak_rss_mib_max'] / 1024:.2f} GiB (worst of {large['runs']} runs)",
            "met": large["peak_rss_mib_max"] <= 3 * 1024,
        }
    return out


# ---- main -------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="runs per tool and scenario (median reported)")
    ap.add_argument("--evidently-repeats", type=int, default=1, help="Evidently takes minutes per 1M-row run")
    ap.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated subset of {','.join(TOOLS)}")
    ap.add_argument("--scenarios", default=",".join([*BIG_SCENARIOS, *BATCH_SCENARIOS, LARGE]))
    ap.add_argument("--no-large", action="store_true", help="skip the 10M x 100 scenario (and its 8 GB file)")
    ap.add_argument("--quick", action="store_true", help="1 repeat, no Evidently, no large scenario")
    ap.add_argument(
        "--evidently-batch-reference-rows",
        type=int,
        default=20_000,
        help="reference sample Evidently gets in the small-batch scenario",
    )
    ap.add_argument(
        "--evidently-fullref-batches",
        type=int,
        default=3,
        help="small batches Evidently also checks against the full 1M-row reference (0: none)",
    )
    ap.add_argument("--timeout", type=float, default=1800, help="seconds before one run is killed")
    ap.add_argument("--peers-python", default=str(PEERS_PY))
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument(
        "--render", metavar="RESULTS_JSON", help="only print the Markdown tables of a results file"
    )
    args = ap.parse_args(argv)
    if args.render:
        print(markdown(json.loads(Path(args.render).read_text())))
        return 0
    if args.quick:
        args.repeats, args.no_large = 1, True
        args.tools = ",".join(t for t in args.tools.split(",") if t != "evidently")
    tools = [t for t in TOOLS if t in args.tools.split(",")]
    scenarios = [s for s in args.scenarios.split(",") if not (args.no_large and s == LARGE)]
    peers_py = Path(args.peers_python)
    if any(t != "mlops" for t in tools) and not peers_py.exists():
        sys.exit(f"{peers_py} not found: run benchmarks/drift/setup_peers.sh first")
    pythons = {"mlops": Path(sys.executable)} | {t: peers_py for t in ("scipy", "alibi", "evidently")}

    started = datetime.now(UTC)
    t_start = time.perf_counter()
    load_before = os.getloadavg()
    code_before = provenance()
    print("generating data (files already up to date are kept)", flush=True)
    gen = [sys.executable, str(HERE / "generate.py")] + (["--no-large"] if LARGE not in scenarios else [])
    subprocess.run(gen, check=True, cwd=ROOT)
    meta = load_meta()
    if LARGE in scenarios and not meta.get("large"):
        sys.exit("large scenario requested but meta.json has no large files")

    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="drift-bench-") as tmp:
        work = Path(tmp)
        if "mlops" in tools:
            print("mlops-ops reference profiles (one-off per model version)", flush=True)
            warm(DATA / meta["reference"])
            for r in range(args.repeats):
                runs.append(run_one("mlops", "profile", pythons["mlops"], work, args.timeout, f"r{r}"))
            if LARGE in scenarios:
                warm(DATA / meta["large"]["reference"])
                for r in range(args.repeats):
                    runs.append(
                        run_one("mlops", "profile_large", pythons["mlops"], work, args.timeout, f"r{r}")
                    )
        for sc in [s for s in scenarios if s in BIG_SCENARIOS]:
            print(f"scenario {sc}", flush=True)
            warm(DATA / meta["reference"], DATA / meta["scenarios"][sc]["file"])
            for r in range(args.repeats):
                for tool in tools:
                    if tool == "evidently" and r >= args.evidently_repeats:
                        continue
                    runs.append(run_one(tool, sc, pythons[tool], work, args.timeout, f"r{r}"))
        for bsc in [s for s in scenarios if s in BATCH_SCENARIOS]:
            print(f"scenario {bsc}", flush=True)
            warm(DATA / meta["reference"], *(DATA / b for b in meta[BATCH_SCENARIOS[bsc]]))
            for tool in tools:
                if tool != "evidently":
                    runs.append(run_one(tool, bsc, pythons[tool], work, args.timeout, "r0"))
                    continue
                # ~100 s per 200-row batch against the 1M-row reference: every batch is checked
                # against a seeded 20k-row reference sample, and the first few undrifted ones
                # against the full reference too (for the time per batch).
                sample = ("--reference-rows", str(args.evidently_batch_reference_rows))
                runs.append(run_one(tool, bsc, pythons[tool], work, args.timeout, "r0", sample))
                if bsc == BATCHES and args.evidently_fullref_batches:
                    limit = ("--max-batches", str(args.evidently_fullref_batches))
                    runs.append(
                        run_one(
                            tool, bsc, pythons[tool], work, args.timeout, "r0", limit, key=BATCHES_FULLREF
                        )
                    )
        if LARGE in scenarios and "mlops" in tools:
            print(f"scenario {LARGE} (mlops-ops only)", flush=True)
            warm(DATA / meta["large"]["current"])
            for r in range(args.repeats):
                runs.append(run_one("mlops", LARGE, pythons["mlops"], work, args.timeout, f"r{r}"))

    keys = sorted({(r["tool"], r["scenario"]) for r in runs})
    summary = {
        f"{t}/{s}": summarise([r for r in runs if (r["tool"], r["scenario"]) == (t, s)]) for t, s in keys
    }
    doc = {
        "started": started.isoformat(timespec="seconds"),
        "duration_s": round(time.perf_counter() - t_start, 1),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "machine": machine(),
        "mlops_ops_code": code_before,
        "mlops_ops_code_changed_during_run": provenance().get("drift_py_sha256")
        != code_before.get("drift_py_sha256"),
        "args": vars(args),
        "versions": {LABEL[t]: summary.get(f"{t}/{BIG_SCENARIOS[0]}", {}).get("versions") for t in tools},
        "data": {k: meta[k] for k in ("numeric", "categorical", "scenarios", "batch_rows", "large")},
        "summary": summary,
        "runs": runs,
    }
    doc["targets"] = targets(summary)
    Path(args.out).write_text(json.dumps(doc, indent=2, default=str))
    print()
    print(markdown(doc))
    if doc["mlops_ops_code_changed_during_run"]:
        print("WARNING: mlops_ops/core/drift/ changed during the run; results mix two versions")
    print(f"\nwrote {args.out} ({doc['duration_s'] / 60:.1f} min)")
    failed = [r for r in runs if "result" not in r]
    for r in failed:
        print(f"\nFAILED {r['tool']}/{r['scenario']} {r['tag']}:\n{r.get('log_tail', '')}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
