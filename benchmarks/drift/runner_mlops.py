"""mlops-ops: build_reference_profile once, then detect_drift(profile, parquet_path, DriftConfig()).

Scenarios:
  profile         read reference.parquet, build the profile, save it as data/profile.json
  profile_large   the same for large_reference.parquet (1M x 100) -> data/large_profile.json
  no_drift | shift | tiny_shift | small_batches   load the saved profile, check the Parquet file(s)
  large_10m       load data/large_profile.json, check large_current.parquet (10M x 100)

The timed check is what a monitoring task does per batch: load the profile JSON (an artifact
logged with the model) and call detect_drift on the Parquet path, which reads the file itself.
Runs in the project's .venv.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    BATCH_SCENARIOS,
    DATA,
    LARGE,
    Clock,
    decision,
    load_meta,
    peak_rss_mib,
    run_batches,
    runner_args,
    write_result,
)

t_import = time.perf_counter()
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402

from mlops_ops.core import drift as drift_mod  # noqa: E402
from mlops_ops.core.drift import ReferenceProfile, build_reference_profile  # noqa: E402

IMPORT_S = time.perf_counter() - t_import
PROFILES = {
    "profile": ("reference", DATA / "profile.json"),
    "profile_large": ("large", DATA / "large_profile.json"),
}


def column_names(items) -> list[str]:
    out = []
    for c in items or []:
        out.append(c if isinstance(c, str) else getattr(c, "name", getattr(c, "column", str(c))))
    return out


def verdict(report) -> dict:
    status = getattr(report, "status", None)
    flagged = column_names(getattr(report, "drifted_columns", []))
    n_columns = len(getattr(report, "columns", []) or [])
    return decision(bool(report.drifted), flagged, n_columns, status=str(status))


def build(kind: str, dest: Path, meta: dict) -> dict:
    clock = Clock()
    if kind == "reference":
        frame = pd.read_parquet(DATA / meta["reference"])
        categorical = meta["categorical"]
    else:
        frame = pd.read_parquet(DATA / meta["large"]["reference"])
        categorical = []
    clock.lap("read_reference")
    profile = build_reference_profile(frame, categorical=categorical)
    clock.lap("build_profile")
    dest.write_text(json.dumps(profile.to_dict()))
    clock.lap("save_profile")
    return {
        "timings": clock.laps,
        "total_s": clock.total(),
        "rows": len(frame),
        "columns": len(profile.columns),
        "profile_bytes": dest.stat().st_size,
    }


def main() -> None:
    args = runner_args()
    meta = load_meta()
    out: dict = {"tool": "mlops-ops", "scenario": args.scenario, "imports_s": IMPORT_S}
    if args.scenario in PROFILES:
        kind, dest = PROFILES[args.scenario]
        out.update(build(kind, dest, meta))
    else:
        from mlops_ops.core.drift import DriftConfig, detect_drift

        config = DriftConfig()
        profile_path = PROFILES["profile_large" if args.scenario == LARGE else "profile"][1]
        if not profile_path.exists():
            sys.exit(f"{profile_path} missing: run the profile scenario first")
        clock = Clock()
        profile = ReferenceProfile.from_dict(json.loads(profile_path.read_text()))
        clock.lap("load_profile")
        out["rss_after_imports_and_reference_mib"] = round(peak_rss_mib(), 1)
        if args.scenario in BATCH_SCENARIOS:
            out["batches"] = run_batches(
                meta,
                lambda path: verdict(detect_drift(profile, str(path), config)),
                args.max_batches,
                args.scenario,
            )
            clock.lap("batches")
        else:
            rel = (
                meta["large"]["current"]
                if args.scenario == LARGE
                else meta["scenarios"][args.scenario]["file"]
            )
            report = detect_drift(profile, str(DATA / rel), config)
            clock.lap("detect")  # includes reading the Parquet file, column by column
            out["decision"] = verdict(report)
        out["timings"] = clock.laps
        out["total_s"] = clock.total()
        out["config"] = config.to_dict() if hasattr(config, "to_dict") else str(config)
    out["versions"] = {
        "mlops-ops": getattr(drift_mod, "__version__", None) or _version(),
        "pandas": pd.__version__,
        "numpy": np.__version__,
        "pyarrow": pa.__version__,
    }
    write_result(args.out, out)


def _version() -> str | None:
    try:
        from importlib.metadata import version

        return version("mlops-ops")
    except Exception:
        return None


if __name__ == "__main__":
    main()
