"""Evaluation reports: metrics per slice and per study with bootstrap CIs that
resample studies (never slices: slices of one scan are not independent), and the
leakage report that sets a random slice split beside the grouped split."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ml.evaluation.metrics import (
    DEFAULT_AGGREGATION,
    DEFAULT_TOP_K,
    POINT_METRICS,
    aggregate_by_group,
    binary_metrics,
    expected_calibration_error,
    group_labels,
)


def _point(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    metrics = binary_metrics(y_true=y, prob=p, threshold=threshold)
    return {name: metrics[name] for name in POINT_METRICS}


def bootstrap_ci(
    *,
    y_true: Any,
    prob: Any,
    groups: Sequence[str],
    threshold: float,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, list[float]]:
    """Percentile bootstrap CIs of :data:`POINT_METRICS`, resampling *groups* with
    replacement (all slices of a drawn group come along). For study-level data pass
    one element per study. Returns metric → [low, high]; resamples where a metric
    is undefined (one class only) are skipped."""
    if not 0 < level < 1 or n_boot < 1:
        raise ValueError(f"need 0 < level < 1 and n_boot >= 1: {level}, {n_boot}")
    y = np.asarray(y_true).astype(int).ravel()
    p = np.asarray(prob, dtype=np.float64).ravel()
    _, inverse = np.unique(np.asarray(groups), return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(inverse.max() + 1)]
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {name: [] for name in POINT_METRICS}
    for _ in range(n_boot):
        drawn = rng.integers(0, len(members), len(members))
        idx = np.concatenate([members[g] for g in drawn])
        for name, value in _point(y[idx], p[idx], threshold).items():
            if not math.isnan(value):
                samples[name].append(value)
    tail = (1.0 - level) / 2.0 * 100.0
    return {
        name: (
            [float(np.percentile(v, tail)), float(np.percentile(v, 100.0 - tail))]
            if v
            else [math.nan, math.nan]
        )
        for name, v in samples.items()
    }


def _section(
    y: np.ndarray,
    p: np.ndarray,
    groups: Sequence[str],
    threshold: float,
    n_boot: int,
    seed: int,
) -> dict[str, Any]:
    out = binary_metrics(y_true=y, prob=p, threshold=threshold)
    out["ece"] = expected_calibration_error(y_true=y, prob=p)
    out["ci95"] = bootstrap_ci(
        y_true=y, prob=p, groups=groups, threshold=threshold, n_boot=n_boot, seed=seed
    )
    return out


def evaluate_predictions(
    *,
    y_true: Any,
    prob: Any,
    groups: Sequence[str],
    threshold: float,
    slice_threshold: float | None = None,
    study_prob: Mapping[str, float] | None = None,
    aggregation: str = DEFAULT_AGGREGATION,
    top_k: int = DEFAULT_TOP_K,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Metrics per slice and per study with 95% study-bootstrap CIs.

    ``y_true`` (N,) 0/1 slice labels (a study's label on each of its slices),
    ``prob`` (N,) slice stroke probabilities, ``groups`` (N,) study names.
    Study probabilities aggregate the slices (``aggregation``/``top_k``) unless
    ``study_prob`` (study name → probability, from a study-level model) is given.
    ``threshold`` applies to study probabilities, ``slice_threshold`` (default: the
    same) to slices. Returns a JSON-ready dict with ``slice``, ``study`` and
    ``aggregation`` sections.
    """
    y, p = np.asarray(y_true).astype(int).ravel(), np.asarray(prob, float).ravel()
    names, study_y = group_labels(y_true=y, groups=groups)
    if study_prob is None:
        _, study_p = aggregate_by_group(
            prob=p, groups=groups, method=aggregation, k=top_k
        )
        how = {"method": aggregation, "top_k": top_k}
    else:
        missing = sorted(set(names) - set(study_prob))
        if missing:
            raise ValueError(
                f"study_prob lacks {len(missing)} studies, e.g. {missing[0]}"
            )
        study_p = np.array([float(study_prob[n]) for n in names])
        how = {"method": "model"}
    slice_thr = threshold if slice_threshold is None else slice_threshold
    return {
        "slice": _section(y, p, list(groups), slice_thr, n_boot, seed),
        "study": _section(study_y, study_p, names, threshold, n_boot, seed),
        "aggregation": how,
        "studies": {
            "names": names,
            "labels": study_y.tolist(),
            "prob": study_p.tolist(),
        },
    }


def summary_row(report: Mapping[str, Any], level: str = "study") -> dict[str, Any]:
    """AUC, sensitivity and specificity of one level with their CIs, for tables."""
    section = report[level]
    return {
        name: {"value": section[name], "ci95": section["ci95"][name]}
        for name in ("auc", "sensitivity", "specificity", "accuracy")
    }


def format_ci(value: float, ci: Sequence[float], digits: int = 2) -> str:
    """``0.81 [0.70, 0.90]``; ``n/a`` for NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def leakage_report(
    *, grouped: Mapping[str, Any], random_split: Mapping[str, Any]
) -> dict[str, Any]:
    """Side by side: the same model evaluated after a grouped (by scan) split and
    after a random slice split. Both arguments are :func:`evaluate_predictions`
    reports; returns per-level rows and the inflation (random - grouped)."""
    rows = {}
    for level in ("slice", "study"):
        rows[level] = {
            name: {
                "grouped": grouped[level][name],
                "random_slice_split": random_split[level][name],
                "inflation": random_split[level][name] - grouped[level][name],
            }
            for name in ("auc", "accuracy", "sensitivity", "specificity")
        }
    return rows


def leakage_markdown(report: Mapping[str, Any]) -> str:
    """A markdown table of :func:`leakage_report`."""
    lines = [
        "| level | metric | grouped split | random slice split | inflation |",
        "|---|---|---:|---:|---:|",
    ]
    for level, metrics in report.items():
        for name, row in metrics.items():
            lines.append(
                f"| {level} | {name} | {row['grouped']:.3f} | "
                f"{row['random_slice_split']:.3f} | {row['inflation']:+.3f} |"
            )
    return "\n".join(lines)


def report_compact(report: Mapping[str, Any]) -> dict[str, Any]:
    """The headline metrics (with CIs) of an ``evaluate_predictions`` report, per
    level, for a model card: no per-study lists, no curves."""
    keep = (
        "auc",
        "accuracy",
        "precision",
        "sensitivity",
        "specificity",
        "f1",
        "ece",
        "ci95",
        "confusion_matrix",
        "n",
    )
    return {
        level: {k: report[level][k] for k in keep if k in report[level]}
        for level in ("slice", "study")
        if level in report
    }
