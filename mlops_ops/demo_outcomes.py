"""The demo's outcomes act: the labels of the demo's predictions arrive two days late and are joined.

Called by :func:`mlops_ops.demo.run_demo` after the release act. Whether a customer churned is
known only days after the prediction: this act writes the outcomes of

* the batch scoring of the story's last monitored day (``predictions/<day>/``), and
* the online traffic of the release act (every request ``mlops-ops serve`` logged),

drawn from the churn generator's own probability model
(:func:`mlops_ops.example.churn.churn_probability`) on the very rows that were scored, each
outcome happening a few hours after its prediction and delivered two days later as
``data/churn/outcomes/<arrival day>.csv`` (the spec's ``monitoring.feedback.source``). A few rows
are re-delivered and two answer predictions nobody made, as real exports do. The
``churn_monitoring`` DAG then runs on each arrival day: ``ingest_outcomes`` and ``join_outcomes``
join them (counted: late, duplicate, orphan...), and ``check_performance`` reports each model
version's live AUC with its bootstrap interval (its report's ``live`` key).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

PIPELINE = "churn"
DELAY_DAYS = 2  # outcomes arrive two days after the day they happened
SEED = 41


def _outcomes_of_batch(home: Path, day: dt.date, concept: float) -> Any:
    """Outcome rows for the batch scoring of ``day``: one per scored row."""
    import numpy as np
    import pandas as pd

    from mlops_ops.core.feedback import batch_prediction_id
    from mlops_ops.core.scoring import interval_key
    from mlops_ops.example.churn import churn_probability

    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    key = interval_key(start, "")
    scored = home / "storage" / PIPELINE / "predictions" / key / "predictions.parquet"
    if not scored.exists():
        return pd.DataFrame()
    inputs = pd.read_parquet(home / "data" / PIPELINE / "daily" / f"{day}.parquet")
    rng = np.random.default_rng(SEED)
    churned = (rng.random(len(inputs)) < churn_probability(inputs, concept=concept)).astype("int64")
    hours = rng.uniform(6, 23, size=len(inputs))
    return pd.DataFrame(
        {
            "prediction_id": [batch_prediction_id(key, i) for i in range(len(inputs))],
            "churned": churned,
            "churned_at": [start + dt.timedelta(hours=float(h)) for h in hours],
        }
    )


def _outcomes_of_traffic() -> Any:
    """Outcome rows for every request the online service logged: one per prediction id."""
    import numpy as np
    import pandas as pd

    from mlops_ops.example.churn import churn_probability
    from mlops_ops.hooks.storage import PipelineStorage
    from mlops_ops.serving.prediction_log import read_prediction_log

    start = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    log = read_prediction_log(PipelineStorage(PIPELINE), start, end, columns=["prediction_id", "ts", "input"])
    log = log.drop_duplicates("prediction_id")
    if log.empty:
        return pd.DataFrame()
    inputs = pd.DataFrame.from_records([json.loads(text) for text in log["input"]])
    rng = np.random.default_rng(SEED + 1)
    churned = (rng.random(len(log)) < churn_probability(inputs)).astype("int64")
    ts = pd.to_datetime(log["ts"], utc=True).reset_index(drop=True)
    # each outcome a few hours after its prediction, the same day
    end_of_day = ts.dt.floor("D") + pd.Timedelta(hours=23, minutes=59)
    at = (ts + pd.to_timedelta(rng.uniform(0.5, 6, size=len(ts)), unit="h")).where(
        lambda t: t <= end_of_day, end_of_day
    )
    return pd.DataFrame(
        {"prediction_id": log["prediction_id"].to_numpy(), "churned": churned, "churned_at": at}
    )


def _deliver(outcomes: Any, directory: Path) -> list[dt.date]:
    """Write each day's outcomes to ``<directory>/<day + DELAY_DAYS>.csv``; a few rows are
    re-delivered (duplicates) and two answer predictions nobody made (orphans), as real exports
    do. Returns the arrival days."""
    import pandas as pd

    directory.mkdir(parents=True, exist_ok=True)
    outcomes = outcomes.assign(churned_at=pd.to_datetime(outcomes["churned_at"], utc=True))
    arrivals = outcomes["churned_at"].dt.date + dt.timedelta(days=DELAY_DAYS)
    days = []
    for arrival, rows in outcomes.groupby(arrivals, sort=True):
        extra = [
            rows.head(3),  # re-delivered by the export
            pd.DataFrame(
                {
                    "prediction_id": ["crm-import-1", "crm-import-2"],  # no such prediction
                    "churned": [1, 0],
                    "churned_at": [rows["churned_at"].iloc[0]] * 2,
                }
            ),
        ]
        out = pd.concat([rows, *extra], ignore_index=True)
        out["churned_at"] = out["churned_at"].map(lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ"))
        out.to_csv(directory / f"{arrival}.csv", index=False)
        days.append(arrival)
    return days


def _describe(day: dt.date, what: str, result: dict[str, Any]) -> list[str]:
    tasks, returned = result["tasks"], result["returned"]
    joined = returned.get("join_outcomes") or {}
    if not joined:
        return [f"  {day}: outcomes of {what}: join_outcomes {tasks.get('join_outcomes', '-')}"]
    lines = [
        f"  {day}: outcomes of {what}: {joined['received']} received -> {joined['joined']} joined "
        f"({joined['late']} late), {joined['duplicate']} duplicate, {joined['orphan']} orphan, "
        f"{joined['out_of_window']} out of window, {joined['invalid']} invalid",
        f"    report: {joined['report_uri']}",
    ]
    live = (returned.get("check_performance") or {}).get("live")
    if live is None:
        lines.append("    live performance: check_performance reported no 'live' key")
        return lines
    for entry in sorted(live, key=lambda e: (int(e["model_version"]), e["day"] or "")):
        if entry.get("value") is None:
            continue
        when = entry["day"] or "whole window"
        level = float(entry["level"]) if float(entry["level"]) <= 1 else float(entry["level"]) / 100
        lines.append(
            f"    live {entry['metric']} of v{entry['model_version']} ({when}): {entry['value']:.3f} "
            f"[{entry['lower']:.3f}, {entry['upper']:.3f}] ({level:.0%} interval, {entry['rows']} rows)"
        )
    return lines


def run_outcomes_act(
    home: Path,
    env: dict[str, str],
    log_file: Path,
    run_plan: Callable[..., list[dict[str, Any]]],
    scoring_day: dt.date,
    estimate: dict[str, Any] | None = None,
) -> tuple[list[str], bool]:
    """The outcomes act (see the module's docstring); returns the timeline lines and whether every
    arrival day's outcomes were joined. ``run_plan`` is the demo's ``dag.test()`` runner;
    ``scoring_day`` the day the batch story scored; ``estimate`` the report of that day's
    ``estimate_performance`` (CBPE), printed as what was known before the outcomes arrived."""
    from mlops_ops.demo import DEMO_START
    from mlops_ops.example.churn import write_partitions

    daily = home / "data" / PIPELINE / "daily"
    outcomes_dir = home / "data" / PIPELINE / "outcomes"
    # the scored day is one of the story's days after the world moved (churn.concept 1.0)
    concept = 1.0 if scoring_day >= DEMO_START + dt.timedelta(days=2) else 0.0
    batch = _outcomes_of_batch(home, scoring_day, concept)
    online = _outcomes_of_traffic()
    plan, titles = [], []
    for frame, what in (
        (batch, f"the batch scoring of {scoring_day}"),
        (online, "the release act's live traffic"),
    ):
        if frame.empty:
            continue
        for arrival in _deliver(frame, outcomes_dir):
            if not (daily / f"{arrival}.parquet").exists():  # that day's monitoring batch
                write_partitions(daily, start=arrival, days=1, rows_per_day=300, seed=23)
            stamp = dt.datetime(arrival.year, arrival.month, arrival.day, tzinfo=dt.UTC).isoformat()
            plan.append({"dag_id": f"{PIPELINE}_monitoring", "logical_date": stamp})
            titles.append((arrival, what))
    lines = [
        "",
        f"Outcomes arrive {DELAY_DAYS} days late (monitoring.feedback joins them to their predictions)",
    ]
    if not plan:
        return [*lines, "  no prediction to join outcomes to"], False
    print(
        f"  outcomes: {len(plan)} monitoring run(s) join the outcomes that arrived {DELAY_DAYS} days late ...",
        flush=True,
    )
    if estimate:
        from mlops_ops.core.estimation import describe_estimate

        lines.append(
            f"  {scoring_day}, the day of the predictions (monitoring's estimate_performance, CBPE):"
        )
        lines += [f"    {line}" for line in describe_estimate(estimate)]
    results = run_plan(plan, env, log_file)
    ok = True
    for (arrival, what), result in zip(titles, results, strict=True):
        lines += _describe(arrival, what, result)
        ok = (
            ok
            and result["state"] == "success"
            and bool((result["returned"].get("join_outcomes") or {}).get("joined"))
        )
    lines.append(f"  joined outcomes: {home / 'storage' / PIPELINE / 'outcomes' / 'joined'}")
    return lines, ok
