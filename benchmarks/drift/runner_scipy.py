"""The naive baseline: scipy ks_2samp per numeric column, chi-squared per categorical column.

No multiple-testing correction and no effect-size floor: a column is flagged when its p-value is
below 0.05 and the data set is called drifted when any column is flagged. Runs in
benchmarks/.venv-peers (run.py starts it); reads the reference and the current Parquet files.
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

ALPHA = 0.05

t_import = time.perf_counter()
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy  # noqa: E402
from scipy.stats import chi2_contingency, ks_2samp  # noqa: E402

IMPORT_S = time.perf_counter() - t_import


def check(
    ref: pd.DataFrame, ref_counts: dict, cur: pd.DataFrame, numeric: list[str], categorical: list[str]
) -> dict:
    flagged, pvalues = [], {}
    for col in numeric:
        p = float(ks_2samp(ref[col].to_numpy(), cur[col].dropna().to_numpy()).pvalue)
        pvalues[col] = p
        if p < ALPHA:
            flagged.append(col)
    for col in categorical:
        rc = ref_counts[col]
        cc = cur[col].value_counts()
        cats = rc.index.union(cc.index)
        table = np.vstack(
            [rc.reindex(cats, fill_value=0).to_numpy(), cc.reindex(cats, fill_value=0).to_numpy()]
        )
        table = table[:, table.sum(axis=0) > 0]
        p = float(chi2_contingency(table)[1])
        pvalues[col] = p
        if p < ALPHA:
            flagged.append(col)
    return decision(bool(flagged), flagged, len(numeric) + len(categorical), pvalues=pvalues)


def main() -> None:
    args = runner_args()
    meta = load_meta()
    numeric, categorical = meta["numeric"], meta["categorical"]
    clock = Clock()
    ref = pd.read_parquet(DATA / meta["reference"])
    clock.lap("read_reference")
    ref = sample_reference(ref, args.reference_rows)
    # Reference-side work that does not depend on the current batch.
    ref_counts = {c: ref[c].value_counts() for c in categorical}
    ref = ref[numeric].dropna()  # no missing values in this data; kept for safety
    clock.lap("prepare_reference")
    out = {
        "reference_rows": len(ref),
        "tool": "scipy",
        "scenario": args.scenario,
        "imports_s": IMPORT_S,
        "rss_after_imports_and_reference_mib": None,
    }

    def one(path: Path) -> dict:
        cur = pd.read_parquet(path)
        return check(ref, ref_counts, cur, numeric, categorical)

    out["rss_after_imports_and_reference_mib"] = round(peak_rss_mib(), 1)
    if args.scenario in BATCH_SCENARIOS:
        out["batches"] = run_batches(meta, one, args.max_batches, args.scenario)
        clock.lap("batches")
    else:
        cur = pd.read_parquet(DATA / meta["scenarios"][args.scenario]["file"])
        clock.lap("read_current")
        out["decision"] = check(ref, ref_counts, cur, numeric, categorical)
        clock.lap("detect")
    out["timings"] = clock.laps
    out["total_s"] = clock.total()
    out["versions"] = {"scipy": scipy.__version__, "pandas": pd.__version__, "numpy": np.__version__}
    write_result(args.out, out)


if __name__ == "__main__":
    main()
