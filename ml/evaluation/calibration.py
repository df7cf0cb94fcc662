"""Temperature scaling (Guo et al. 2017) on softmax outputs. Pure numpy + scipy."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

_EPS = 1e-7


def logits_from_probs(probs: Any) -> np.ndarray:
    """Log-probabilities of (N, K) softmax outputs: logits up to a per-row constant,
    which softmax ignores, so temperature scaling can run on a model's ``probs``."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"need (N, K) probabilities with K >= 2, got {p.shape}")
    return np.log(np.clip(p, _EPS, 1.0))


def softmax(logits: Any, *, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of (N, K) ``logits / temperature``; float64."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    p = softmax(logits, temperature=temperature)[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(p, _EPS, 1.0)).mean())


def fit_temperature(*, logits: Any, labels: Any) -> float:
    """The temperature T in [0.05, 20] minimising the negative log-likelihood of
    (N,) int ``labels`` under softmax((N, K) ``logits`` / T)."""
    from scipy.optimize import minimize_scalar

    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels).astype(int).ravel()
    if z.ndim != 2 or len(z) != len(y) or len(y) == 0:
        raise ValueError(f"need (N, K) logits and (N,) labels: {z.shape}, {y.shape}")
    if y.min() < 0 or y.max() >= z.shape[1]:
        raise ValueError(f"labels must lie in 0..{z.shape[1] - 1}")
    result = minimize_scalar(
        lambda log_t: _nll(z, y, float(np.exp(log_t))),
        bounds=(np.log(0.05), np.log(20.0)),
        method="bounded",
    )
    return float(np.exp(result.x))


def apply_temperature(*, probs: Any, temperature: float) -> np.ndarray:
    """Calibrated (N, K) probabilities from (N, K) softmax outputs."""
    return softmax(logits_from_probs(probs), temperature=temperature)


def binary_probs(positive: Any) -> np.ndarray:
    """(N,) positive-class probabilities → (N, 2) [1 - p, p]."""
    p = np.asarray(positive, dtype=np.float64).ravel()
    return np.stack([1.0 - p, p], axis=1)


def centred(prob: np.ndarray, threshold: float) -> np.ndarray:
    """Monotone map sending ``threshold`` to 0.5, so that folds with different
    thresholds can be pooled and judged at 0.5."""
    p = np.clip(np.asarray(prob, np.float64), 1e-7, 1 - 1e-7)
    t = min(max(threshold, 1e-7), 1 - 1e-7)
    z = np.log(p / (1 - p)) - math.log(t / (1 - t))
    return 1.0 / (1.0 + np.exp(-z))
