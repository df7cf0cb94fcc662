"""The lesion-feature model: a regularised logistic regression on the per-slice
features of :mod:`ml.lesion.features`, stored as plain JSON (no pickle, no
TensorFlow) in ``lesion_model.json`` beside ``model.json``.

A slice's probability is ``sigmoid((w · standardised(features) + b) / T)`` with the
card's temperature T; a study's comes from :func:`ml.inference.results.aggregate_slices`
over its brain slices only. The explanation is the lesion map itself: the candidate
blobs, scaled by how much this slice's hyperdensity features pushed its score up.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ml.brain import BrainConfig, BrainSlice
from ml.lesion import features as feat

ARCHITECTURE = "lesion_features"
LESION_FILE = "lesion_model.json"
FORMAT = 1


@dataclass
class LesionModel:
    """Coefficients of the logistic regression and what it reads.

    ``mean``/``scale``: (F,) standardisation of the transformed features;
    ``coef``: (F,) weights; ``intercept``: bias (logit units). ``brain``: how slices
    were aligned. ``feature_names`` must equal the code's ``FEATURE_NAMES``.
    """

    feature_names: list[str]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    brain: BrainConfig
    regularisation: float = 0.1

    def logits(self, raw: np.ndarray) -> np.ndarray:
        """(N,) float64 logits of (N, F) raw features (before transform)."""
        x = (feat.transform_features(raw) - self.mean) / self.scale
        return np.nan_to_num(x) @ self.coef + self.intercept

    def contributions(self, raw: np.ndarray) -> np.ndarray:
        """(N, F) per-feature terms of the logit (standardised value x weight)."""
        x = (feat.transform_features(raw) - self.mean) / self.scale
        return np.nan_to_num(x) * self.coef

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "feature_names": list(self.feature_names),
            "mean": [float(v) for v in self.mean],
            "scale": [float(v) for v in self.scale],
            "coef": [float(v) for v in self.coef],
            "intercept": float(self.intercept),
            "brain": self.brain.to_dict(),
            "regularisation": float(self.regularisation),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LesionModel:
        """Inverse of :meth:`to_dict`; ValueError when the file does not fit the
        code (other features, wrong lengths, non-finite numbers)."""
        if int(data.get("format", 0)) != FORMAT:
            raise ValueError(f"{LESION_FILE} format {data.get('format')} is unknown")
        names = [str(n) for n in data["feature_names"]]
        if names != list(feat.FEATURE_NAMES):
            raise ValueError(
                f"{LESION_FILE} was trained on other features than this code computes "
                f"({len(names)} vs {len(feat.FEATURE_NAMES)}); retrain it"
            )
        arrays = {k: np.asarray(data[k], np.float64) for k in ("mean", "scale", "coef")}
        if any(a.shape != (len(names),) for a in arrays.values()):
            raise ValueError(f"{LESION_FILE}: mean/scale/coef must have {len(names)}")
        intercept = float(data["intercept"])
        values = [*arrays.values(), np.array([intercept])]
        finite = all(np.isfinite(a).all() for a in values)
        if not finite or (arrays["scale"] <= 0).any():
            raise ValueError(f"{LESION_FILE} holds non-finite or zero-scale numbers")
        return cls(
            feature_names=names,
            brain=BrainConfig.from_dict(dict(data["brain"])),
            intercept=intercept,
            regularisation=float(data.get("regularisation", 0.1)),
            **arrays,
        )

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / LESION_FILE
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> LesionModel:
        path = Path(folder) / LESION_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls.from_dict(data)
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"cannot read {LESION_FILE}: {exc}") from exc


def study_features(slices: Sequence[BrainSlice]) -> np.ndarray:
    """(D, F) float32 raw features of a study's aligned slices, in order."""
    if not slices:
        return np.zeros((0, len(feat.FEATURE_NAMES)), np.float32)
    return np.stack([feat.slice_features(s) for s in slices]).astype(np.float32)


def lesion_fit(
    *,
    features: np.ndarray,
    labels: np.ndarray,
    brain: BrainConfig,
    regularisation: float = 0.1,
) -> LesionModel:
    """Fit the logistic regression on (N, F) raw features of brain slices and (N,)
    0/1 labels; classes are balanced. ``regularisation``: sklearn's C (smaller =
    stronger L2 penalty)."""
    from sklearn.linear_model import LogisticRegression

    x = feat.transform_features(np.asarray(features, np.float64))
    y = np.asarray(labels).astype(int)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"need (N, F) features and (N,) labels: {x.shape}, {y.shape}")
    if len(np.unique(y)) < 2:
        raise ValueError("the training slices hold only one class")
    mean = np.nan_to_num(x.mean(axis=0))
    scale = np.nan_to_num(x.std(axis=0))
    scale[scale < 1e-9] = 1.0
    z = np.nan_to_num((x - mean) / scale)
    clf = LogisticRegression(
        C=regularisation, class_weight="balanced", max_iter=5000
    ).fit(z, y)
    return LesionModel(
        feature_names=list(feat.FEATURE_NAMES),
        mean=mean,
        scale=scale,
        coef=clf.coef_[0].astype(np.float64),
        intercept=float(clf.intercept_[0]),
        brain=brain,
        regularisation=regularisation,
    )


def sigmoid(logits: np.ndarray, *, temperature: float = 1.0) -> np.ndarray:
    """float32 probabilities of logits scaled by a temperature."""
    z = np.clip(np.asarray(logits, np.float64) / float(temperature), -60, 60)
    return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the log loss of ``sigmoid(logits / T)`` on
    held-out data, in [0.25, 20]."""
    from scipy.optimize import minimize_scalar

    z, y = np.asarray(logits, np.float64), np.asarray(labels, np.float64)

    def loss(log_t: float) -> float:
        p = np.clip(sigmoid(z, temperature=float(np.exp(log_t))), 1e-7, 1 - 1e-7)
        return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())

    found = minimize_scalar(loss, bounds=(np.log(0.25), np.log(20.0)), method="bounded")
    return float(np.exp(found.x))


def slice_probabilities(
    model: LesionModel, raw: np.ndarray, is_brain: np.ndarray, *, temperature: float
) -> np.ndarray:
    """(D,) float32 calibrated probabilities of a study's slices; 0 on slices that
    are not brain slices (neck, face, vertex): they do not count."""
    if len(raw) == 0:
        return np.zeros(0, np.float32)
    p = sigmoid(model.logits(raw), temperature=temperature)
    return np.where(np.asarray(is_brain, bool), p, np.float32(0.0)).astype(np.float32)


def study_probability(
    slice_p: np.ndarray, is_brain: np.ndarray, *, method: str, k: int
) -> float:
    """The study's probability from its brain slices only, by the one aggregation
    rule the portal serves with (``ml.inference.results.aggregate_slices``).
    OutsideModelScope (a ValueError) when no slice shows brain."""
    from ml.inference.results import NO_BRAIN, OutsideModelScope, aggregate_slices

    brain = np.asarray(is_brain, bool)
    if not brain.any():
        raise OutsideModelScope(NO_BRAIN)
    return aggregate_slices(np.asarray(slice_p)[brain], method=method, k=k)
