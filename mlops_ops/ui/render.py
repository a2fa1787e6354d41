"""HTML of the plugin's pages, rendered from the Jinja2 templates in ``mlops_ops/ui/templates``
(autoescaped; charts are inline SVG laid out by :func:`mlops_ops.ui.history.layout_chart`, so the
pages load nothing from elsewhere)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from mlops_ops.ui.history import layout_chart, retrain_checks

if TYPE_CHECKING:
    import jinja2

    from mlops_ops.ui.history import Chart, PipelineHistory


@functools.cache
def _env() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mlops_ops.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["retrain_checks"] = retrain_checks
    return env


def render_index(pipelines: list[str], links: dict[str, str]) -> str:
    """The list of pipelines; ``links`` holds the ``mlops`` and ``airflow`` URL paths."""
    return _env().get_template("index.html.j2").render(pipelines=pipelines, links=links)


def render_pipeline(history: PipelineHistory, links: dict[str, str]) -> str:
    """The pipeline page of ``history``; ``links`` as for :func:`render_index`."""
    return (
        _env()
        .get_template("pipeline.html.j2")
        .render(h=history, charts=_charts(history), links=links, rollback_dag=f"{history.pipeline}_rollback")
    )


def _charts(history: PipelineHistory) -> dict[str, list[Chart]]:
    drift = [
        layout_chart(
            column,
            points,
            threshold=history.drift_thresholds.get(column),
            threshold_label="effect threshold",
        )
        for column, points in history.drift.items()
    ]
    performance = []
    if history.performance:
        performance.append(
            layout_chart(
                history.performance_metric or "metric",
                history.performance,
                threshold=history.performance_baseline,
                threshold_label="value at promotion",
            )
        )
    return {"drift": drift, "performance": performance}
