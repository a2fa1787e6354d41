"""One measured run: ingest a file with mlops-ops, or the floor (pyarrow read + write).

    .venv/bin/python benchmarks/ingest/runner.py --tool mlops --src data/rows_1000000.parquet --out r.json

``mlops`` runs the real :class:`~mlops_ops.operators.ingest.IngestDatasetOperator` (``execute``
with a minimal task context) into a fresh storage root: read in batches, normalised, hashed,
written as a verified snapshot. ``floor`` is what any ingest must at least do: pyarrow reads the
whole file (``pyarrow.parquet.read_table`` / ``pyarrow.csv.read_csv``) and writes it as zstd
Parquet (``pyarrow.parquet.write_table``). The wall time runs to the file written from the start
of the work with the libraries it imports: mlops-ops from ``execute()`` (the operator's module is
imported before, as a task runner has it from parsing the DAG file; ``execute`` imports pyarrow,
pandas and the filesystem layer itself), the floor from before its ``import pyarrow``. The
CPU seconds of the timed section (all threads) are recorded too; the orchestrator reads the
process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

# the checkout this file is in, whatever mlops_ops the interpreter would find first (an editable
# install can point at another checkout): the benchmark measures the code beside it
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


class _TI(SimpleNamespace):
    def xcom_push(self, key, value):  # noqa: ANN001
        pass


def run_mlops(src: Path, work: Path) -> dict:
    os.environ["MLOPS_HOME"] = str(work)
    os.environ["MLOPS_STORAGE"] = str(work / "storage")
    # as every deployment of the project sets it: Airflow's example plugins are not loaded (they
    # cost ~1 s of imports on the first file opened through ObjectStoragePath)
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    from mlops_ops.operators.ingest import IngestDatasetOperator

    op = IngestDatasetOperator(task_id="ingest", pipeline="bench", source_uri=str(src))
    context = {
        "ti": _TI(dag_id="bench", run_id="manual__bench", task_id="ingest"),
        "outlet_events": defaultdict(SimpleNamespace),
        "logical_date": None,
    }
    t0, c0 = time.perf_counter(), _cpu()
    result = op.execute(context)
    return {
        "wall_s": time.perf_counter() - t0,
        "work_cpu_s": _cpu() - c0,
        "rows": result["rows"],
        "sha256": result["sha256"],
    }


def run_floor(src: Path, work: Path) -> dict:
    # timed from before its imports, as mlops-ops' execute() pays the imports it makes
    t0, c0 = time.perf_counter(), _cpu()
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    import_s = time.perf_counter() - t0
    table = pq.read_table(src) if src.suffix == ".parquet" else pacsv.read_csv(src)
    pq.write_table(table, work / "copy.parquet", compression="zstd")
    return {
        "wall_s": time.perf_counter() - t0,
        "work_cpu_s": _cpu() - c0,
        "import_s": import_s,
        "rows": table.num_rows,
    }


def _cpu() -> float:
    """CPU seconds of this process so far, all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tool", choices=("mlops", "floor"), required=True)
    parser.add_argument("--src", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix=f"ingest-bench-{args.tool}-"))
    try:
        t_import = time.perf_counter()
        result = (run_mlops if args.tool == "mlops" else run_floor)(args.src.resolve(), work)
        result["process_s"] = time.perf_counter() - t_import
        args.out.write_text(json.dumps(result))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
