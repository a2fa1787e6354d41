"""The demo's explanation lines: how each model version explains its predictions, side by side,
and the attribution drift the monitoring runs reported.

Reads what training and monitoring logged to MLflow (``explain/shap_importance.json`` of each
version's run, the ``monitoring.attribution`` runs); computes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlops_ops.artifacts import SHAP_IMPORTANCE_ARTIFACT


def _client(home_or_tracking: str | Path) -> Any:
    from mlflow import MlflowClient

    text = str(home_or_tracking)
    if "://" in text or text.startswith("sqlite:"):
        return MlflowClient(tracking_uri=text)
    return MlflowClient(tracking_uri=f"sqlite:///{Path(text) / 'mlflow.db'}")


def _profile(client: Any, run_id: str) -> dict[str, Any] | None:
    try:
        path = client.download_artifacts(run_id, SHAP_IMPORTANCE_ARTIFACT)
    except Exception:  # an older version, trained before explanations were logged
        return None
    doc: dict[str, Any] = json.loads(Path(path).read_text())
    return doc


def describe_explanations(
    home_or_tracking: str | Path, pipeline: str, versions: Sequence[str | int]
) -> list[str]:
    """Lines showing how ``versions`` of ``pipeline`` explain their predictions: each input
    column's mean |SHAP| on the version's holdout sample and its share of the total, side by side
    (columns ordered by the first version's reliance), then each ``monitoring.attribution`` run.

    :param home_or_tracking: an MLOPS_HOME directory (its embedded ``mlflow.db``) or a tracking URI.
    :param versions: version numbers, e.g. ``["1", "2"]``; a version without a profile is named so.
    """
    client = _client(home_or_tracking)
    profiles: dict[str, dict[str, Any] | None] = {}
    missing = set()
    for number in map(str, versions):
        try:
            run_id = client.get_model_version(pipeline, number).run_id
        except Exception:  # not registered (the demo stopped early)
            profiles[number] = None
            missing.add(number)
            continue
        profiles[number] = _profile(client, run_id)
    known = {v: p for v, p in profiles.items() if p}
    if not known:
        return [f"Explanations: no SHAP profile logged for {pipeline} v{', v'.join(profiles)}"]
    first = next(iter(known.values()))
    spaces = sorted({f"{p['explainer']} explainer, {p['output'].replace('_', '-')}" for p in known.values()})
    lines = [
        f"How {' and '.join('v' + v for v in profiles)} explain their predictions "
        f"(mean |SHAP| on the holdout and its share; {'; '.join(spaces)})",
        f"  {'feature':<18}" + "".join(f"{'v' + v:>20}" for v in profiles),
    ]
    columns = list(first["mean_abs_shap"])
    columns += [c for p in known.values() for c in p["mean_abs_shap"] if c not in columns]
    for column in columns:
        cells = []
        for number in profiles:
            profile = profiles[number]
            if not profile or column not in profile["mean_abs_shap"]:
                cells.append(f"{'-':>20}")
                continue
            value, share = profile["mean_abs_shap"][column], profile["share"][column]
            cells.append(f"{value:>12.3f} ({share:>4.0%})")
        lines.append(f"  {column:<18}" + "".join(cells))
    for number, profile in profiles.items():
        if profile:
            top = list(profile["mean_abs_shap"])[:3]
            lines.append(f"  v{number} leans most on {', '.join(top)} ({profile['rows']} holdout rows)")
        elif number in missing:
            lines.append(f"  v{number}: not registered")
        else:
            lines.append(f"  v{number}: no SHAP profile (trained before explanations were logged)")
    return lines + _attribution_runs(client, pipeline)


def _attribution_runs(client: Any, pipeline: str) -> list[str]:
    experiment = client.get_experiment_by_name(pipeline)
    if experiment is None:
        return []
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.`mlops.kind` = 'monitoring.attribution'",
        order_by=["attributes.start_time ASC"],
        max_results=100,
    )
    if not runs:
        return []
    lines = ["Attribution drift (the champion's mean |SHAP| on each batch vs on its holdout; reported only)"]
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        try:
            doc = json.loads(
                Path(client.download_artifacts(run.info.run_id, "monitoring/attribution.json")).read_text()
            )
            day = str((doc.get("data_interval") or {}).get("start") or "")[:10]
        except Exception:  # a report that cannot be read: the line still shows the run
            doc, day = {}, "?"
        moved = metrics.get("attribution.moved")
        text = f"  {day} vs v{tags.get('mlops.champion_version', '?')}: {tags.get('mlops.status', '?')}"
        if moved is not None:
            text += f", {moved:.1%} of the attribution moved (lower bound {metrics.get('attribution.moved_lower', 0):.1%})"
        columns = doc.get("columns") or []
        if doc.get("status") == "drift" and columns:
            top = columns[0]
            text += f"; most: {top['column']} {top['reference_share']:.0%} -> {top['batch_share']:.0%}"
        lines.append(text)
    return lines


__all__ = ["describe_explanations"]
