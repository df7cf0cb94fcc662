"""PNG plots (ROC, precision-recall, confusion matrix, calibration) and a small HTML
page embedding them. matplotlib (Agg) is imported lazily."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ml.evaluation.metrics import calibration_curve

PLOTS = ("roc", "pr", "confusion", "calibration")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _curves(y: np.ndarray, p: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from sklearn.metrics import precision_recall_curve, roc_curve

    fpr, tpr, _ = roc_curve(y, p)
    precision, recall, _ = precision_recall_curve(y, p)
    return {"roc": (fpr, tpr), "pr": (recall, precision)}


def write_plots(
    *, levels: Mapping[str, tuple[Any, Any, Any]], out_dir: str | Path
) -> dict[str, str]:
    """Write one PNG per plot with a line per level.

    ``levels``: level name (``"slice"``, ``"study"``) → (y_true (N,) 0/1, prob (N,),
    confusion matrix 2x2). Returns plot name → file name inside ``out_dir``.
    """
    plt, out = _pyplot(), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = {
        name: (np.asarray(y, int), np.asarray(p, float), np.asarray(cm))
        for name, (y, p, cm) in levels.items()
    }
    files = {}
    for plot in PLOTS:
        fig, axes = _figure(plt, plot, len(data))
        for i, (name, (y, p, cm)) in enumerate(data.items()):
            _draw(plot, axes[i] if plot == "confusion" else axes[0], name, y, p, cm)
        fig.tight_layout()
        files[plot] = f"{plot}.png"
        fig.savefig(out / files[plot], dpi=100)
        plt.close(fig)
    return files


def _figure(plt: Any, plot: str, count: int) -> tuple[Any, list[Any]]:
    if plot == "confusion":
        fig, axes = plt.subplots(1, count, figsize=(3.2 * count, 3.0))
        return fig, list(np.atleast_1d(axes))
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    return fig, [ax]


def _draw(
    plot: str, ax: Any, name: str, y: np.ndarray, p: np.ndarray, cm: np.ndarray
) -> None:
    if plot in ("roc", "pr"):
        x, yy = _curves(y, p)[plot]
        ax.plot(x, yy, label=name)
        diagonal = ([0, 1], [0, 1]) if plot == "roc" else ([0, 1], [y.mean()] * 2)
        ax.plot(*diagonal, color="grey", linewidth=0.5, linestyle="--")
        xlabel, ylabel = ("1 - specificity", "sensitivity")
        if plot == "pr":
            xlabel, ylabel = ("recall", "precision")
        ax.set(xlabel=xlabel, ylabel=ylabel, xlim=(0, 1), ylim=(0, 1.02))
        ax.legend(loc="lower right" if plot == "roc" else "lower left")
    elif plot == "calibration":
        mean_p, frac, _ = calibration_curve(y_true=y, prob=p)
        ax.plot(mean_p, frac, marker="o", label=name)
        ax.plot([0, 1], [0, 1], color="grey", linewidth=0.5, linestyle="--")
        ax.set(xlabel="predicted stroke probability", ylabel="observed fraction")
        ax.legend(loc="upper left")
    else:
        ax.imshow(cm, cmap="Blues")
        for (r, c), value in np.ndenumerate(cm):
            ax.text(c, r, str(value), ha="center", va="center")
        ax.set(
            xticks=[0, 1],
            yticks=[0, 1],
            xticklabels=["normal", "stroke"],
            yticklabels=["normal", "stroke"],
            xlabel="predicted",
            ylabel="true",
            title=name,
        )


def write_html(
    *, report: Mapping[str, Any], plots: Mapping[str, str], out_dir: str | Path
) -> Path:
    """``out_dir/report.html``: a metrics table and the PNGs embedded inline."""
    out = Path(out_dir)
    rows = []
    for level in ("slice", "study"):
        section = report[level]
        for name in ("auc", "accuracy", "precision", "sensitivity", "specificity"):
            lo, hi = section["ci95"][name]
            rows.append(
                f"<tr><td>{level}</td><td>{name}</td><td>{section[name]:.3f}</td>"
                f"<td>{lo:.3f} to {hi:.3f}</td></tr>"
            )
        rows.append(
            f"<tr><td>{level}</td><td>ECE</td><td>{section['ece']:.3f}</td>"
            "<td></td></tr>"
        )
    images = "".join(
        f'<img alt="{html.escape(name)}" src="data:image/png;base64,'
        f'{base64.b64encode((out / file).read_bytes()).decode()}">'
        for name, file in plots.items()
    )
    how = html.escape(json.dumps(report.get("aggregation", {})))
    page = (
        "<!doctype html><meta charset='utf-8'><title>Evaluation</title>"
        "<style>body{font-family:sans-serif}td,th{padding:2px 8px}</style>"
        f"<h1>Evaluation</h1><p>Study aggregation: {how}; CIs: 95% bootstrap over "
        "studies.</p><table><tr><th>level</th><th>metric</th><th>value</th>"
        f"<th>95% CI</th></tr>{''.join(rows)}</table>{images}"
    )
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
