"""Honest evaluation: metrics per slice and per study, bootstrap CIs over studies,
thresholds for a target sensitivity, temperature scaling, calibration error, plots,
and the leakage report. numpy/scipy/scikit-learn only: never imports TensorFlow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ml.evaluation.calibration import (
    apply_temperature,
    binary_probs,
    centred,
    fit_temperature,
    logits_from_probs,
    softmax,
)
from ml.evaluation.metrics import (
    AGGREGATIONS,
    DEFAULT_AGGREGATION,
    DEFAULT_TOP_K,
    aggregate_by_group,
    binary_metrics,
    calibration_curve,
    confusion,
    expected_calibration_error,
    group_labels,
    roc_auc,
    threshold_for_sensitivity,
    threshold_with_specificity_floor,
)
from ml.evaluation.report import (
    bootstrap_ci,
    evaluate_predictions,
    format_ci,
    leakage_markdown,
    leakage_report,
    report_compact,
    summary_row,
)


def report_write(
    *, report: dict[str, Any], y_slices: Any, p_slices: Any, out_dir: str | Path
) -> Path:
    """Write ``metrics.json``, the four PNG plots and ``report.html`` for an
    :func:`evaluate_predictions` report; returns the HTML path."""
    from ml.evaluation.plots import write_html, write_plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    studies = report["studies"]
    plots = write_plots(
        levels={
            "slice": (y_slices, p_slices, report["slice"]["confusion_matrix"]),
            "study": (
                studies["labels"],
                studies["prob"],
                report["study"]["confusion_matrix"],
            ),
        },
        out_dir=out,
    )
    return write_html(report=report, plots=plots, out_dir=out)


__all__ = [
    "AGGREGATIONS",
    "DEFAULT_AGGREGATION",
    "DEFAULT_TOP_K",
    "aggregate_by_group",
    "apply_temperature",
    "binary_metrics",
    "binary_probs",
    "bootstrap_ci",
    "calibration_curve",
    "centred",
    "confusion",
    "evaluate_predictions",
    "expected_calibration_error",
    "fit_temperature",
    "format_ci",
    "group_labels",
    "leakage_markdown",
    "leakage_report",
    "logits_from_probs",
    "report_compact",
    "report_write",
    "roc_auc",
    "softmax",
    "summary_row",
    "threshold_for_sensitivity",
    "threshold_with_specificity_floor",
]
