"""alibi-detect TabularDrift with its defaults (p_val=0.05, Bonferroni correction).

K-S per numeric feature, chi-squared per categorical feature (categoricals label-encoded with the
reference's categories). The data set is drifted when any feature's p-value is below
0.05 / n_features. Runs in benchmarks/.venv-peers.
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
import alibi_detect  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from alibi_detect.cd import TabularDrift  # noqa: E402

IMPORT_S = time.perf_counter() - t_import


def encode(frame: pd.DataFrame, numeric: list[str], categorical: list[str], cats: dict) -> np.ndarray:
    """Numeric columns as they are, categoricals as integer codes of the reference categories
    (a category unseen in the reference gets its own code)."""
    x = np.empty((len(frame), len(numeric) + len(categorical)), dtype=np.float64)
    for j, col in enumerate(numeric):
        x[:, j] = frame[col].to_numpy(dtype=np.float64)
    for k, col in enumerate(categorical):
        codes = pd.Categorical(frame[col], categories=cats[col]).codes.astype(np.int64)
        codes[codes < 0] = len(cats[col])
        x[:, len(numeric) + k] = codes
    return x


def main() -> None:
    args = runner_args()
    meta = load_meta()
    numeric, categorical = meta["numeric"], meta["categorical"]
    names = [*numeric, *categorical]
    clock = Clock()
    ref = pd.read_parquet(DATA / meta["reference"])
    clock.lap("read_reference")
    ref = sample_reference(ref, args.reference_rows)
    cats = {c: sorted(ref[c].dropna().unique()) for c in categorical}
    x_ref = encode(ref, numeric, categorical, cats)
    del ref
    cd = TabularDrift(
        x_ref, p_val=0.05, categories_per_feature={len(numeric) + k: None for k in range(len(categorical))}
    )
    clock.lap("prepare_reference")
    out = {
        "reference_rows": int(x_ref.shape[0]),
        "tool": "alibi-detect",
        "scenario": args.scenario,
        "imports_s": IMPORT_S,
        "rss_after_imports_and_reference_mib": round(peak_rss_mib(), 1),
    }

    def verdict(x) -> dict:
        pred = cd.predict(x, drift_type="batch", return_p_val=True)["data"]
        pvals = np.asarray(pred["p_val"], dtype=float).tolist()
        flagged = [n for n, p in zip(names, pvals, strict=True) if p < pred["threshold"]]
        return decision(
            bool(pred["is_drift"]),
            flagged,
            len(names),
            pvalues=dict(zip(names, pvals, strict=True)),
            threshold=float(pred["threshold"]),
        )

    if args.scenario in BATCH_SCENARIOS:
        out["batches"] = run_batches(
            meta,
            lambda path: verdict(encode(pd.read_parquet(path), numeric, categorical, cats)),
            args.max_batches,
            args.scenario,
        )
        clock.lap("batches")
    else:
        cur = pd.read_parquet(DATA / meta["scenarios"][args.scenario]["file"])
        clock.lap("read_current")
        x = encode(cur, numeric, categorical, cats)
        del cur
        out["decision"] = verdict(x)
        clock.lap("detect")
    out["timings"] = clock.laps
    out["total_s"] = clock.total()
    out["versions"] = {
        "alibi-detect": alibi_detect.__version__,
        "pandas": pd.__version__,
        "numpy": np.__version__,
    }
    write_result(args.out, out)


if __name__ == "__main__":
    main()
