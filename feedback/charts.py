"""Plotly figures as plain dicts (data + layout), rendered in the page by the
plotly.min.js the portal serves itself; no Python plotly needed at run time."""

from __future__ import annotations

from .formatting import figure

_LAYOUT = {
    "margin": {"l": 50, "r": 20, "t": 30, "b": 45},
    "height": 320,
    "legend": {"orientation": "h", "y": -0.25},
}


def roc_figure(evaluations) -> dict:
    """Study-level ROC curves of (label, ModelEvaluation) pairs on one chart."""
    data = [
        {
            "x": [0, 1],
            "y": [0, 1],
            "mode": "lines",
            "name": "chance",
            "line": {"dash": "dot", "color": "#999"},
        }
    ]
    for label, evaluation in evaluations:
        if not evaluation.ok or not evaluation.roc.get("fpr"):
            continue
        auc = evaluation.metric("auc")
        data.append(
            {
                "x": evaluation.roc["fpr"],
                "y": evaluation.roc["tpr"],
                "mode": "lines",
                "line": {"shape": "hv"},
                "name": f"{label}, AUC {figure(auc)}" if auc is not None else label,
            }
        )
    return {
        "data": data,
        "layout": {
            **_LAYOUT,
            "height": 380,
            "xaxis": {"title": {"text": "1 - specificity"}, "range": [0, 1]},
            "yaxis": {"title": {"text": "sensitivity"}, "range": [0, 1.02]},
        },
    }


def confusion_figures(evaluations, *, titles=None, prefix="confusion") -> list[dict]:
    """One study-level confusion-matrix heatmap per successful evaluation, titled
    by its data set or by ``titles`` (one per evaluation)."""
    figures = []
    titles = titles or [e.title for e in evaluations]
    for evaluation, title in zip(evaluations, titles, strict=True):
        matrix = evaluation.report.get("study", {}).get("confusion_matrix")
        if not evaluation.ok or not matrix:
            continue
        figures.append(
            {
                "id": f"{prefix}-{evaluation.pk}",
                "title": title,
                "data": [
                    {
                        "type": "heatmap",
                        "z": matrix,
                        "x": ["AI: normal", "AI: stroke"],
                        "y": ["truth: normal", "truth: stroke"],
                        "text": matrix,
                        "texttemplate": "%{text}",
                        # Plotly's Blues runs dark to light: reversed, more is darker.
                        "colorscale": "Blues",
                        "reversescale": True,
                        "showscale": False,
                    }
                ],
                "layout": {
                    **_LAYOUT,
                    "margin": {**_LAYOUT["margin"], "l": 105},
                    "height": 260,
                    "yaxis": {"autorange": "reversed"},
                },
            }
        )
    return figures


def studies_per_day_figure(figures: dict) -> dict:
    rows = figures["studies_per_day"]
    return {
        "data": [
            {
                "type": "bar",
                "x": [r["day"] for r in rows],
                "y": [r["n"] for r in rows],
                "name": "studies",
            }
        ],
        "layout": {
            **_LAYOUT,
            "height": 260,
            # Calendar days, one tick a week (a day's tick would crowd 31 labels).
            "xaxis": {"type": "date", "tickformat": "%d %b", "dtick": 7 * 86_400_000},
            "yaxis": {"title": {"text": "studies"}, "rangemode": "tozero"},
        },
    }
