"""Evidently 0.7 Report([DataDriftPreset()]) with its defaults.

With more than 1,000 reference rows Evidently picks the normed Wasserstein distance (threshold 0.1)
for numeric columns and the Jensen-Shannon distance (threshold 0.1) for categorical ones; the
data set is drifted when at least half of the columns drift (drift_share=0.5). Column kinds are
declared with a DataDefinition so nothing is left to inference. Runs in benchmarks/.venv-peers.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    BATCH_SCENARIOS,
    DATA,
    Clock,
    decision,
    load_meta,
    peak_rss_mib,
    run_batches,
    runner_args,
    sample_reference,
    write_result,
)

t_import = time.perf_counter()
import evidently  # noqa: E402
import pandas as pd  # noqa: E402
from evidently import DataDefinition, Dataset, Report  # noqa: E402
from evidently.presets import DataDriftPreset  # noqa: E402

IMPORT_S = time.perf_counter() - t_import
DRIFT_SHARE = 0.5  # the preset's default, repeated here only to read its verdict


def verdict(snapshot, n_columns: int) -> dict:
    doc = snapshot.dict()
    count = share = None
    flagged, scores, methods = [], {}, {}
    for m in doc["metrics"]:
        cfg = m["config"]
        kind = cfg.get("type", "")
        if kind.endswith("DriftedColumnsCount"):
            count, share = m["value"]["count"], m["value"]["share"]
        elif kind.endswith("ValueDrift"):
            col, score, thr, method = cfg["column"], float(m["value"]), float(cfg["threshold"]), cfg["method"]
            scores[col], methods[col] = score, method
            # p-value tests drift below the threshold, distances at or above it
            drifted = score < thr if "p_value" in method else score >= thr
            if drifted:
                flagged.append(col)
    drift = share is not None and share >= DRIFT_SHARE
    return decision(
        drift,
        flagged,
        n_columns,
        evidently_count=count,
        evidently_share=share,
        scores=scores,
        methods=sorted(set(methods.values())),
    )


def main() -> None:
    args = runner_args()
    meta = load_meta()
    numeric, categorical = meta["numeric"], meta["categorical"]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    clock = Clock()
    ref = pd.read_parquet(DATA / meta["reference"])
    clock.lap("read_reference")
    ref = sample_reference(ref, args.reference_rows)
    ref_ds = Dataset.from_pandas(ref, data_definition=definition)
    clock.lap("prepare_reference")
    out = {
        "reference_rows": len(ref),
        "tool": "evidently",
        "scenario": args.scenario,
        "imports_s": IMPORT_S,
        "rss_after_imports_and_reference_mib": round(peak_rss_mib(), 1),
    }

    def one(path: Path) -> dict:
        cur_ds = Dataset.from_pandas(pd.read_parquet(path), data_definition=definition)
        return verdict(Report([DataDriftPreset()]).run(cur_ds, ref_ds), len(numeric) + len(categorical))

    if args.scenario in BATCH_SCENARIOS:
        out["batches"] = run_batches(meta, one, args.max_batches, args.scenario)
        clock.lap("batches")
    else:
        cur = pd.read_parquet(DATA / meta["scenarios"][args.scenario]["file"])
        clock.lap("read_current")
        cur_ds = Dataset.from_pandas(cur, data_definition=definition)
        snapshot = Report([DataDriftPreset()]).run(cur_ds, ref_ds)
        out["decision"] = verdict(snapshot, len(numeric) + len(categorical))
        clock.lap("detect")
    out["timings"] = clock.laps
    out["total_s"] = clock.total()
    out["versions"] = {"evidently": evidently.__version__, "pandas": pd.__version__}
    write_result(args.out, out)


if __name__ == "__main__":
    main()
