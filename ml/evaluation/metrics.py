"""Binary classification metrics per slice and per study, with bootstrap CIs.

Pure numpy (plus scipy for one 1-D minimisation): no TensorFlow, so the portal can
import this anywhere. Probabilities are of the positive class ("stroke"); labels are
0/1. A prediction is positive when ``prob >= threshold``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

# The study rule lives in ml.inference.results (pure numpy, no TensorFlow), so the
# threshold chosen here is chosen with the rule the Predictor applies.
from ml.inference.results import (
    AGGREGATIONS,
    DEFAULT_AGGREGATION,
    DEFAULT_TOP_K,
    aggregate_slices,
)

POINT_METRICS = (
    "auc",
    "accuracy",
    "precision",
    "sensitivity",
    "specificity",
    "f1",
)


def _check_binary(y_true: Any, prob: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(int).ravel()
    p = np.asarray(prob, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"{y.size} labels but {p.size} probabilities")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    if not np.isfinite(p).all():
        raise ValueError("probabilities must be finite")
    return y, p


def roc_auc(*, y_true: Any, prob: Any) -> float:
    """Area under the ROC curve (Mann-Whitney U with ties counted half).

    ``y_true``: (N,) 0/1; ``prob``: (N,) scores. NaN when only one class is present.
    """
    y, p = _check_binary(y_true, prob)
    pos, neg = int(y.sum()), int(y.size - y.sum())
    if pos == 0 or neg == 0:
        return math.nan
    ranks = _average_ranks(p)
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    sorted_vals = values[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_vals)) + 1]
    ends = np.r_[starts[1:], len(values)]
    avg = (starts + ends + 1) / 2.0  # 1-based average rank of each run of ties
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def confusion(*, y_true: Any, prob: Any, threshold: float) -> np.ndarray:
    """2x2 int confusion matrix [[TN, FP], [FN, TP]] (sklearn's layout)."""
    y, p = _check_binary(y_true, prob)
    pred = p >= threshold
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    return np.array([[y.size - tp - fp - fn, fp], [fn, tp]])


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else math.nan


def binary_metrics(*, y_true: Any, prob: Any, threshold: float) -> dict[str, Any]:
    """AUC, accuracy, precision, sensitivity (= recall), specificity, F1, confusion
    matrix and counts for (N,) 0/1 labels and (N,) probabilities. Undefined ratios
    (no positives, nothing predicted positive) are NaN."""
    (tn, fp), (fn, tp) = confusion(y_true=y_true, prob=prob, threshold=threshold)
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    return {
        "auc": roc_auc(y_true=y_true, prob=prob),
        "accuracy": _ratio(tp + tn, tp + tn + fp + fn),
        "precision": precision,
        "sensitivity": recall,
        "recall": recall,
        "specificity": _ratio(tn, tn + fp),
        "f1": f1,
        "confusion_matrix": [[int(tn), int(fp)], [int(fn), int(tp)]],
        "n": int(tn + fp + fn + tp),
        "positives": int(fn + tp),
        "threshold": float(threshold),
    }


def aggregate_by_group(
    *,
    prob: Any,
    groups: Sequence[str],
    method: str = DEFAULT_AGGREGATION,
    k: int = DEFAULT_TOP_K,
    eligible: Any = None,
) -> tuple[list[str], np.ndarray]:
    """Study probabilities from slice probabilities, one
    :func:`ml.inference.results.aggregate_slices` call per study.

    ``prob`` (N,) slice probabilities, ``groups`` (N,) study names, ``eligible``
    optional (N,) bool aligned with ``prob``: the slices allowed to decide their
    study (a study with none eligible uses all its slices). ``method``: ``"mean"``,
    ``"max"`` or ``"topk"`` (mean of the k highest; all of a study's slices when it
    has fewer). Returns (sorted group names, (G,) float64).
    """
    if method not in AGGREGATIONS:
        raise ValueError(f"aggregation {method!r} is not one of {AGGREGATIONS}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    p = np.asarray(prob, dtype=np.float64).ravel()
    names = np.asarray(groups)
    if names.shape != p.shape:
        raise ValueError(f"{names.size} group names but {p.size} probabilities")
    mask = None if eligible is None else np.asarray(eligible, bool).ravel()
    if mask is not None and mask.shape != p.shape:
        raise ValueError(f"{mask.size} eligible flags but {p.size} probabilities")
    unique, inverse = np.unique(names, return_inverse=True)
    out = np.empty(len(unique))
    for g in range(len(unique)):
        mine = inverse == g
        out[g] = aggregate_slices(
            p[mine],
            method=method,
            k=k,
            eligible=None if mask is None else mask[mine],
        )
    return [str(u) for u in unique], out


def group_labels(*, y_true: Any, groups: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """(sorted group names, (G,) int labels); ValueError if a group mixes labels."""
    y = np.asarray(y_true).astype(int).ravel()
    unique, inverse = np.unique(np.asarray(groups), return_inverse=True)
    labels = np.zeros(len(unique), dtype=int)
    for g in range(len(unique)):
        values = np.unique(y[inverse == g])
        if len(values) != 1:
            raise ValueError(f"group {unique[g]!r} has slices with different labels")
        labels[g] = values[0]
    return [str(u) for u in unique], labels


def threshold_for_sensitivity(*, y_true: Any, prob: Any, target: float = 0.95) -> float:
    """The highest threshold whose sensitivity on these data is at least ``target``.

    ``y_true`` (N,) 0/1 with at least one positive, ``prob`` (N,). The threshold is
    the ceil(target·P)-th highest positive score, kept inside (0, 1) as a model
    file requires.
    """
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target sensitivity must be in (0, 1], got {target}")
    y, p = _check_binary(y_true, prob)
    positives = np.sort(p[y == 1])[::-1]
    if positives.size == 0:
        raise ValueError("no positive examples to set a threshold on")
    needed = max(1, math.ceil(target * positives.size - 1e-9))
    return float(np.clip(positives[needed - 1], 1e-6, 1.0 - 1e-6))


def threshold_with_specificity_floor(
    *,
    y_true: Any,
    prob: Any,
    target_sensitivity: float = 0.95,
    min_specificity: float = 0.0,
) -> float:
    """The threshold of the highest sensitivity, up to ``target_sensitivity``, whose
    specificity on these data is at least ``min_specificity``.

    ``y_true`` (N,) 0/1 with at least one positive and one negative when a floor is
    set, ``prob`` (N,). Candidates are the positive scores (between two of them the
    sensitivity does not change and the specificity only falls as the threshold
    does); among those meeting the floor, the one whose sensitivity, capped at the
    target, is highest, and of those the highest threshold. With no floor this is
    :func:`threshold_for_sensitivity`. ValueError, naming the best specificity
    there is, when no threshold that finds a positive meets the floor.
    """
    if not 0.0 <= min_specificity <= 1.0:
        raise ValueError(f"min_specificity must be in [0, 1], got {min_specificity}")
    if min_specificity == 0.0:
        return threshold_for_sensitivity(
            y_true=y_true, prob=prob, target=target_sensitivity
        )
    if not 0.0 < target_sensitivity <= 1.0:
        raise ValueError(
            f"target sensitivity must be in (0, 1], got {target_sensitivity}"
        )
    y, p = _check_binary(y_true, prob)
    positives, negatives = np.sort(p[y == 1])[::-1], p[y == 0]
    if positives.size == 0 or negatives.size == 0:
        raise ValueError(
            "a specificity floor needs positive and negative examples, got "
            f"{positives.size} and {negatives.size}"
        )
    candidates = np.unique(positives)[::-1]  # highest first
    sensitivity = np.array([(positives >= t).mean() for t in candidates])
    specificity = np.array([(negatives < t).mean() for t in candidates])
    allowed = specificity >= min_specificity - 1e-12
    if not allowed.any():
        raise ValueError(
            f"no threshold keeps specificity at or above {min_specificity:g}: at "
            f"the highest positive score ({candidates[0]:.4g}) it is "
            f"{specificity[0]:.3f} with sensitivity {sensitivity[0]:.3f}; the "
            "scores do not separate the classes well enough for this floor"
        )
    capped = np.where(allowed, np.minimum(sensitivity, target_sensitivity), -1.0)
    best = int(np.flatnonzero(capped >= capped.max() - 1e-12)[0])  # highest such t
    return float(np.clip(candidates[best], 1e-6, 1.0 - 1e-6))


def expected_calibration_error(*, y_true: Any, prob: Any, bins: int = 10) -> float:
    """ECE of a binary classifier (Guo et al. 2017): confidence max(p, 1-p) in
    ``bins`` equal-width bins, the bin-size-weighted mean |accuracy - confidence|."""
    y, p = _check_binary(y_true, prob)
    if y.size == 0:
        return math.nan
    confidence = np.maximum(p, 1.0 - p)
    correct = (p >= 0.5) == (y == 1)
    edges = np.linspace(0.5, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total / y.size)


def calibration_curve(
    *, y_true: Any, prob: Any, bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reliability diagram data: per non-empty bin of ``prob`` the mean predicted
    probability, the observed positive fraction and the count."""
    y, p = _check_binary(y_true, prob)
    which = np.clip((p * bins).astype(int), 0, bins - 1)
    keep = [b for b in range(bins) if (which == b).any()]
    mean_p = np.array([p[which == b].mean() for b in keep])
    frac = np.array([y[which == b].mean() for b in keep])
    count = np.array([(which == b).sum() for b in keep])
    return mean_p, frac, count
