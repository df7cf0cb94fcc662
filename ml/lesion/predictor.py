"""Serve a lesion-feature model through the same interface as
``ml.inference.Predictor``: ``predict(load_result)`` and ``explain(...)``.

No TensorFlow: features and a logistic regression in numpy. ``Predictor.load``
returns a :class:`LesionPredictor` for a card whose architecture is
``lesion_features``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ml.brain import BrainStudy, brain_study
from ml.inference.predictor import OnnxStatus
from ml.inference.results import (
    StudyPrediction,
    brain_slice_prediction,
    check_study,
)
from ml.lesion.features import lesion_map
from ml.lesion.model import (
    LESION_FILE,
    LesionModel,
    slice_probabilities,
    study_features,
)
from ml.modelfile import ModelCard, ModelFileError

if TYPE_CHECKING:
    from ml.io import LoadResult


class LesionPredictor:
    """A lesion-feature model ready to predict; not thread-safe (one per worker)."""

    backend = "numpy"
    onnx = OnnxStatus(False, "a lesion-feature model runs in numpy (no network)")
    config = None

    def __init__(self, *, card: ModelCard, model: LesionModel) -> None:
        self.card = card
        self.model = model
        self._last: tuple[Any, BrainStudy, np.ndarray] | None = None

    @classmethod
    def from_folder(cls, folder: Path, card: ModelCard) -> LesionPredictor:
        """Load ``lesion_model.json`` of a verified folder (ModelFileError if bad)."""
        if LESION_FILE not in card.files:
            raise ModelFileError(f"model.json lists no {LESION_FILE}")
        try:
            model = LesionModel.load(folder)
        except ValueError as exc:
            raise ModelFileError(str(exc)) from exc
        if card.modality != "CT" or card.task != "binary":
            raise ModelFileError("a lesion-feature model reads CT and answers binary")
        return cls(card=card, model=model)

    def aligned(self, load_result: LoadResult) -> tuple[BrainStudy, np.ndarray]:
        """The aligned study and its features (computed once per LoadResult)."""
        self._check_study(load_result)
        volume = load_result.volume
        if self._last is not None and self._last[0] is volume:
            return self._last[1], self._last[2]
        study = brain_study(
            volume, units=load_result.metadata.units, config=self.model.brain
        )
        features = study_features(study.slices)
        self._last = (volume, study, features)
        return study, features

    def predict(
        self, load_result: LoadResult, *, progress: Any = None
    ) -> StudyPrediction:
        """Predict one study. ValueError when the study is not CT or shows no
        brain slice (the model was not made for it)."""
        start = time.perf_counter()
        if progress is not None:
            progress(0, len(load_result.volume))
        study, features = self.aligned(load_result)
        prepared = time.perf_counter()
        card = self.card
        slice_p = slice_probabilities(
            self.model, features, study.is_brain, temperature=card.temperature
        )
        if progress is not None:
            progress(len(slice_p), len(slice_p))
        prediction = brain_slice_prediction(
            card,
            slice_p,
            study.is_brain,
            backend=self.backend,
            default_aggregation="topk",
        )
        prediction.timings = {
            "preprocess_s": prepared - start,
            "predict_s": time.perf_counter() - prepared,
        }
        return prediction

    def explain(
        self, load_result: LoadResult, *, slices: Sequence[int], space: str = "study"
    ) -> dict[int, np.ndarray]:
        """Lesion maps of ``slices``: {index: map in [0, 1]}, the candidate blobs
        scaled by the slice's probability. ``space="study"``: (H, W) on the slice as
        loaded; ``"input"``: (S, S) on the aligned brain."""
        if space not in ("study", "input"):
            raise ValueError(f"space must be 'study' or 'input', got {space!r}")
        study, features = self.aligned(load_result)
        wanted = [int(s) for s in slices]
        bad = [s for s in wanted if not 0 <= s < len(study.slices)]
        if bad:
            raise ValueError(f"slices {bad} are outside 0..{len(study.slices) - 1}")
        p = slice_probabilities(
            self.model, features, study.is_brain, temperature=self.card.temperature
        )
        maps = {}
        for index in wanted:
            s = study.slices[index]
            aligned = (
                lesion_map(s) * np.float32(p[index])
                if s.is_brain
                else np.zeros(s.image.shape, np.float32)  # not read: nothing to show
            )
            maps[index] = aligned if space == "input" else s.to_slice(aligned)
        return maps

    def _check_study(self, load_result: LoadResult) -> None:
        check_study(load_result, card=self.card, reads="head CT")
