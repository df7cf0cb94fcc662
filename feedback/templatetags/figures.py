"""The one place feedback pages turn an evaluation's figures into words: a metric
with its 95% interval, as the model list, the model page, the comparison and the
dashboard show it."""

from django import template

from ..formatting import figure

register = template.Library()


@register.simple_tag
def metric(summary, name: str, ci: bool = True) -> str:
    """``summary[name]`` to 3 places, with ``[low, high]`` from ``summary["ci95"]``
    to 2 when there is one and `ci`; "—" when the figure is missing. `summary` is
    the study-level part of an evaluation report (``report["study"]``)."""
    summary = summary or {}
    value = summary.get(name)
    if value is None:
        return "—"
    text = figure(value)
    interval = (summary.get("ci95") or {}).get(name) if ci else None
    if interval and len(interval) == 2 and None not in interval:
        text += f" [{figure(interval[0], 2)}, {figure(interval[1], 2)}]"
    return text
