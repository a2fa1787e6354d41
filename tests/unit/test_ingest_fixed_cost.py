"""What an ingest task pays before its first row: the Parquet path loads no library it does not use.

Importing pandas (about 0.25 s), and Airflow's discovery of every provider's filesystem and asset
modules (about 0.2 s each: the Amazon provider's bring boto3 and the S3 hook) were a fixed cost of
every ingest task, a fifth of the whole task at a million rows (benchmarks/ingest/README.md). A
fresh interpreter runs the operator's ``execute()`` on a local Parquet file, as a task runner
does, and reports what it imported: a check on what is loaded, not on time, so it holds on a
loaded machine. The snapshot's name is the one an in-process ingest of the same file gives.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlops_ops.operators.ingest import IngestDatasetOperator
from tests.conftest import ROOT

_CHILD = """
import json, os, sys
from collections import defaultdict
from types import SimpleNamespace

from mlops_ops.operators.ingest import IngestDatasetOperator

class TI(SimpleNamespace):
    def xcom_push(self, key, value):
        pass

before = set(sys.modules)
op = IngestDatasetOperator(task_id="ingest", pipeline="cost", source_uri=sys.argv[1])
result = op.execute({
    "ti": TI(dag_id="d", run_id="manual__cost", task_id="ingest"),
    "outlet_events": defaultdict(SimpleNamespace),
    "logical_date": None,
})
loaded = sorted({m.split(".")[0] for m in set(sys.modules) - before})
providers = sorted(m for m in set(sys.modules) - before if m.startswith("airflow.providers"))
print(json.dumps({"sha256": result["sha256"], "loaded": loaded, "providers": providers}))
"""


def _table(n: int = 3000) -> pa.Table:
    rng = np.random.default_rng(3)
    return pa.table(
        {
            "id": pa.array(np.arange(n)),
            "calls": pa.array(rng.integers(0, 9, n), mask=rng.random(n) < 0.1),
            "amount": pa.array(rng.normal(size=n), mask=rng.random(n) < 0.05),
            "region": pa.array(rng.choice(["north", "south"], n)).dictionary_encode(),
            "active": pa.array(rng.random(n) < 0.5),
            "seen": pa.array(rng.integers(0, 2**40, n)).cast(pa.timestamp("ms")),
        }
    )


def test_a_parquet_ingest_imports_neither_pandas_nor_the_providers_modules(tmp_path, monkeypatch):
    source = tmp_path / "part-0.parquet"
    pq.write_table(_table(), source, row_group_size=1000)
    env = {
        **os.environ,
        "MLOPS_HOME": str(tmp_path / "child"),
        "PYTHONPATH": str(ROOT),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    env.pop("MLOPS_STORAGE", None)
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(source)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "pandas" not in report["loaded"], "the Parquet ingest path imported pandas"
    assert "boto3" not in report["loaded"], report["providers"]
    assert report["providers"] == [], "provider modules were discovered on local storage"

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "here"))
    op = IngestDatasetOperator(task_id="ingest", pipeline="cost", source_uri=str(source))
    here = op.execute(
        {
            "ti": SimpleNamespace(dag_id="d", run_id="r", task_id="ingest", xcom_push=lambda **_: None),
            "outlet_events": defaultdict(SimpleNamespace),
            "logical_date": None,
        }
    )
    assert here["sha256"] == report["sha256"]
