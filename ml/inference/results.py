"""What a prediction says, and the arithmetic that turns model outputs into it:
temperature calibration and the study-level aggregation of slice probabilities."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Slice models: how slice probabilities become the study probability, unless the
#: model card says otherwise (``extra["aggregation"]``, ``extra["top_k"]``): the mean
#: of the k most suspicious slices. Defined here only; ``ml.evaluation`` re-exports
#: them, so the rule that chose a model's threshold is the rule that applies it.
#: A stroke shows on a few of ~30 slices, so the mean of all would drown it, and the
#: maximum follows one noisy slice.
AGGREGATIONS = ("mean", "max", "topk")
DEFAULT_AGGREGATION, DEFAULT_TOP_K = "topk", 5
#: How many slices a prediction names as the most suspicious.
SUSPICIOUS_SLICES = 3
_EPS = 1e-7


@dataclass
class StudyPrediction:
    """The model's finding on one study.

    ``slice_probabilities``: (D,) float32, calibrated probability of stroke on each
    slice, in the order of ``LoadResult.volume``. ``study_probability``: calibrated
    probability that the study shows a stroke (see ``aggregation``); ``label`` is
    "stroke" when it reaches ``threshold``, and ``confidence`` the calibrated
    probability of that label. ``top_slices``: indices of the most suspicious slices,
    most suspicious first. For ``task == "type"`` models ``type_probabilities`` maps
    normal/ischemic/hemorrhagic to study-level probabilities and ``stroke_type`` is
    the likelier stroke class when the label is "stroke". ``timings`` in seconds:
    ``preprocess_s`` and ``predict_s``. ``backend``: "onnxruntime" or "tensorflow".
    ``slice_threshold``: the card's threshold for flagging single slices, if any.
    ``read_slices``: (D,) whether the model read each slice (a brain slice); the
    others' probabilities are 0 and mean "not read". None: it read them all.
    ``volume_ml``: a segmenting model's estimate of the lesion's volume in mL,
    None when the model does not segment or the study has no pixel spacing and
    slice positions. Study models calibrate the study output only; their slice
    outputs are raw.
    """

    slice_probabilities: np.ndarray
    study_probability: float
    label: str
    confidence: float
    threshold: float
    top_slices: list[int]
    aggregation: str
    model_name: str
    model_version: str
    backend: str
    stroke_type: str | None = None
    type_probabilities: dict[str, float] | None = None
    slice_threshold: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    read_slices: list[bool] | None = None
    volume_ml: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable fields (arrays as lists of floats)."""
        return {
            "slice_probabilities": [float(p) for p in self.slice_probabilities],
            "study_probability": float(self.study_probability),
            "label": self.label,
            "confidence": float(self.confidence),
            "threshold": float(self.threshold),
            "top_slices": [int(i) for i in self.top_slices],
            "aggregation": self.aggregation,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "backend": self.backend,
            "stroke_type": self.stroke_type,
            "type_probabilities": self.type_probabilities,
            "slice_threshold": self.slice_threshold,
            "timings": dict(self.timings),
            "read_slices": self.read_slices,
            "volume_ml": None if self.volume_ml is None else float(self.volume_ml),
        }


def temperature_softmax(probabilities: np.ndarray, *, temperature: float) -> np.ndarray:
    """Rescale softmax outputs by a temperature: softmax(log(p) / T).

    ``probabilities``: (..., K) rows summing to 1. ``log(p)`` equals the logits up to
    a per-row constant, which softmax ignores, so this is exact temperature scaling.
    Returns float32 of the same shape.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    logits = np.log(np.clip(np.asarray(probabilities, np.float64), _EPS, 1.0))
    scaled = logits / float(temperature)
    scaled -= scaled.max(axis=-1, keepdims=True)
    exp = np.exp(scaled)
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


def temperature_sigmoid(probabilities: np.ndarray, *, temperature: float) -> np.ndarray:
    """Rescale sigmoid outputs by a temperature: sigmoid(logit(p) / T); float32."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    p = np.clip(np.asarray(probabilities, np.float64), _EPS, 1.0 - _EPS)
    logits = np.log(p) - np.log1p(-p)
    return (1.0 / (1.0 + np.exp(-logits / float(temperature)))).astype(np.float32)


def top_k_indices(probabilities: np.ndarray, *, k: int) -> np.ndarray:
    """Indices of the ``k`` largest values of a (D,) array, largest first (ties keep
    the lower index first)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    values = np.asarray(probabilities)
    order = np.argsort(-values, kind="stable")
    return order[: min(k, len(values))]


def aggregate_slices(
    probabilities: np.ndarray,
    *,
    method: str = DEFAULT_AGGREGATION,
    k: int = DEFAULT_TOP_K,
    eligible: np.ndarray | None = None,
) -> float:
    """Study probability from (D,) slice probabilities: their ``"mean"``, ``"max"``
    or ``"topk"`` (mean of the ``k`` largest; all of them when fewer than ``k``).

    The one implementation of the study rule: serving (``Predictor``), training's
    threshold choice and evaluation (``ml.evaluation.aggregate_by_group``) all call
    it. ``eligible``: optional (D,) bool mask of the slices allowed to decide the
    study (brain slices; neck and vertex slices False); only those are aggregated.
    When no slice is eligible, all slices are used, so that every study still gets
    a probability.
    """
    if method not in AGGREGATIONS:
        raise ValueError(f"aggregation {method!r} is not one of {AGGREGATIONS}")
    values = np.asarray(probabilities, np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"need a non-empty (D,) array, got shape {values.shape}")
    values = values[_deciding(eligible, size=values.size)]
    if method == "mean":
        return float(values.mean())
    if method == "max":
        return float(values.max())
    return float(values[top_k_indices(values, k=k)].mean())


def _deciding(eligible: np.ndarray | None, *, size: int) -> np.ndarray:
    """(D,) bool: the eligible slices, or every slice when none (or no mask) is."""
    if eligible is None:
        return np.ones(size, bool)
    mask = np.asarray(eligible, bool)
    if mask.shape != (size,):
        raise ValueError(f"eligible has shape {mask.shape}, expected ({size},)")
    return mask if mask.any() else np.ones(size, bool)


def study_type_probabilities(
    class_probs: np.ndarray,
    slice_p: np.ndarray,
    *,
    method: str,
    k: int,
    eligible: np.ndarray | None = None,
) -> np.ndarray:
    """(K,) class probabilities of a study from its (D, K) slice probabilities:
    the mean over the slices that decide the study's stroke probability (all of
    them for "mean", the most suspicious for "max", the top ``k`` otherwise), among
    the ``eligible`` slices as in :func:`aggregate_slices`."""
    chosen = {"mean": len(slice_p), "max": 1}.get(method, k)
    deciding = np.flatnonzero(_deciding(eligible, size=len(slice_p)))
    best = top_k_indices(np.asarray(slice_p)[deciding], k=chosen)
    return np.asarray(class_probs)[deciding[best]].mean(axis=0)


def study_stroke_type(
    type_p: Sequence[float] | np.ndarray, classes: Sequence[str]
) -> str:
    """The stroke class (every class after "normal") with the larger probability."""
    return classes[1 + int(np.argmax(np.asarray(type_p)[1:]))]


def describe_aggregation(*, method: str, k: int) -> str:
    """A reader's description of an aggregation rule."""
    if method == "topk":
        return f"mean of the {k} highest slice probabilities"
    return f"{method} of the slice probabilities"


def label_and_confidence(probability: float, *, threshold: float) -> tuple[str, float]:
    """("stroke", p) when ``probability >= threshold``, else ("normal", 1 - p)."""
    if probability >= threshold:
        return "stroke", float(probability)
    return "normal", float(1.0 - probability)


class OutsideModelScope(ValueError):
    """The study is readable but not what the model was made for (another
    modality, no head or brain found): the portal says "outside what the model was
    trained for" instead of a probability, and does not count it as a failure."""


def check_study(load_result: Any, *, card: Any, reads: str = "") -> None:
    """Refuse a study a model was not made for: another modality than the card's
    (:class:`OutsideModelScope`), or no slices (ValueError). ``reads``: how the
    message names what the model reads (default: the card's modality)."""
    modality = load_result.metadata.modality
    if modality and modality.upper() != card.modality:
        raise OutsideModelScope(
            f"the study is {modality} but model {card.name} {card.version} reads "
            f"{reads or card.modality}"
        )
    volume = load_result.volume
    if volume.ndim != 3 or len(volume) == 0:
        raise ValueError(f"the study has no slices (volume shape {volume.shape})")


def study_prediction(
    card: Any,
    slice_p: np.ndarray,
    *,
    study_p: float,
    aggregation: str,
    backend: str,
    type_p: np.ndarray | None = None,
    read_slices: list[bool] | None = None,
) -> StudyPrediction:
    """The :class:`StudyPrediction` a model card's threshold, task and classes make
    of (D,) slice and study probabilities: the label and its confidence, the most
    suspicious slices, and for a stroke-type model the type probabilities (``type_p``,
    (K,)) and the likelier stroke type."""
    label, confidence = label_and_confidence(study_p, threshold=card.threshold)
    stroke_type, type_probs = None, None
    if card.task == "type" and type_p is not None:
        type_probs = {c: float(p) for c, p in zip(card.classes, type_p, strict=True)}
        if label == "stroke":
            stroke_type = study_stroke_type(type_p, card.classes)
    slice_threshold = card.extra.get("slice_threshold")
    return StudyPrediction(
        slice_probabilities=slice_p,
        study_probability=float(study_p),
        label=label,
        confidence=confidence,
        threshold=float(card.threshold),
        top_slices=[int(i) for i in top_k_indices(slice_p, k=SUSPICIOUS_SLICES)],
        aggregation=aggregation,
        model_name=card.name,
        model_version=card.version,
        backend=backend,
        stroke_type=stroke_type,
        type_probabilities=type_probs,
        slice_threshold=None if slice_threshold is None else float(slice_threshold),
        read_slices=read_slices,
    )


#: Why a model that reads brain slices declines a study without any.
NO_BRAIN = (
    "it does not look like an axial head CT (no slice shows brain tissue); "
    "the model reads head CT only"
)


def brain_slice_prediction(
    card: Any,
    slice_p: np.ndarray,
    is_brain: np.ndarray,
    *,
    backend: str,
    default_aggregation: str,
) -> StudyPrediction:
    """The :class:`StudyPrediction` of a model that reads brain slices only (the
    lesion-feature and segmentation models): the study probability aggregates the
    ``is_brain`` slices by the card's rule (``extra.aggregation``, ``extra.top_k``),
    the others are "not read". OutsideModelScope when no slice shows brain."""
    brain = np.asarray(is_brain, bool)
    if not brain.any():
        raise OutsideModelScope(NO_BRAIN)
    method = str(card.extra.get("aggregation", default_aggregation))
    k = int(card.extra.get("top_k", DEFAULT_TOP_K))
    study_p = aggregate_slices(slice_p, method=method, k=k, eligible=brain)
    return study_prediction(
        card,
        slice_p,
        study_p=study_p,
        aggregation=(
            f"{describe_aggregation(method=method, k=k)} of the {int(brain.sum())} "
            "brain slices (neck, face and vertex slices do not count)"
        ),
        backend=backend,
        read_slices=[bool(b) for b in brain],
    )
