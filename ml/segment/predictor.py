"""Serve a hemorrhage segmentation model through the interface of
``ml.inference.Predictor``: ``predict(load_result)`` and ``explain(...)``.

onnxruntime only (``model.onnx``), no TensorFlow in the worker: the ONNX file was
checked against the float Keras model when it was exported, and the card records
the difference. ``Predictor.load`` returns a :class:`SegPredictor` for a card whose
architecture is ``hemorrhage_seg``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ml.brain import BrainConfig, BrainStudy, brain_study
from ml.inference.predictor import OnnxStatus
from ml.inference.results import (
    NO_BRAIN,
    OutsideModelScope,
    StudyPrediction,
    brain_slice_prediction,
    check_study,
    temperature_sigmoid,
)
from ml.modelfile import ModelCard, ModelFileError
from ml.segment.data import model_input
from ml.segment.network import mirrored
from ml.segment.scores import CONTOUR_LEVEL, slice_scores, study_volume_ml

if TYPE_CHECKING:
    from ml.io import LoadResult

ONNX_FILE = "model.onnx"
BATCH = 16


class SegPredictor:
    """A segmentation model ready to predict; not thread-safe (one per worker)."""

    backend = "onnxruntime"
    config = None

    def __init__(
        self, *, card: ModelCard, session: Any, threads: int | None = None
    ) -> None:
        self.card = card
        self.session = session
        self.onnx = OnnxStatus(True, "segmentation models serve through onnxruntime")
        self.brain = BrainConfig.from_dict(card.preprocessing["brain"])
        self.level = float(card.extra.get("contour_level", CONTOUR_LEVEL))
        self._input = session.get_inputs()[0].name
        self._last: tuple[Any, BrainStudy, np.ndarray] | None = None

    @classmethod
    def from_folder(
        cls, folder: Path, card: ModelCard, *, threads: int | None = None
    ) -> SegPredictor:
        """An onnxruntime session on the verified folder's ``model.onnx``."""
        if ONNX_FILE not in card.files:
            raise ModelFileError(f"model.json lists no {ONNX_FILE}")
        if card.modality != "CT" or card.task != "binary":
            raise ModelFileError("a segmentation model reads CT and answers binary")
        if "brain" not in card.preprocessing:
            raise ModelFileError("model.json lacks preprocessing.brain")
        from ml.onnx_export import onnx_session

        try:
            session = onnx_session(folder / ONNX_FILE, threads=threads)
        except Exception as exc:  # a corrupt or foreign file: refuse, with why
            raise ModelFileError(f"{ONNX_FILE} cannot be loaded: {exc}") from exc
        size = card.input_shape[0]
        shape = session.get_inputs()[0].shape
        if list(shape[1:]) != list(card.input_shape):
            raise ModelFileError(
                f"{ONNX_FILE} takes {shape[1:]}, model.json says {card.input_shape}"
            )
        if BrainConfig.from_dict(card.preprocessing["brain"]).size != size:
            raise ModelFileError("preprocessing.brain.size differs from input_shape")
        return cls(card=card, session=session, threads=threads)

    # --- the network ----------------------------------------------------------

    def _run(self, inputs: np.ndarray) -> np.ndarray:
        out = [
            self.session.run(None, {self._input: inputs[i : i + BATCH]})[0]
            for i in range(0, len(inputs), BATCH)
        ]
        return np.concatenate(out)[..., 0].astype(np.float32)

    def segment(self, load_result: LoadResult) -> tuple[BrainStudy, np.ndarray]:
        """The aligned study and (D, S, S) pixel probabilities on the aligned frame
        (0 on slices the model does not read); computed once per LoadResult."""
        check_study(load_result, card=self.card, reads="head CT")
        volume = load_result.volume
        if self._last is not None and self._last[0] is volume:
            return self._last[1], self._last[2]
        study = brain_study(volume, units=load_result.metadata.units, config=self.brain)
        if not study.is_brain.any():
            raise OutsideModelScope(NO_BRAIN)
        size = self.brain.size
        maps = np.zeros((len(study.slices), size, size), np.float32)
        read = np.flatnonzero(study.is_brain)
        inputs = np.stack([model_input(study.slices[i]) for i in read])
        maps[read] = mirrored(self._run, inputs)
        self._last = (volume, study, maps)
        return study, maps

    # --- the Predictor interface ---------------------------------------------

    def predict(
        self, load_result: LoadResult, *, progress: Any = None
    ) -> StudyPrediction:
        """Predict one study: slice and study probabilities of a bleed, and the
        bleed volume when the study has a pixel spacing and a slice spacing.
        OutsideModelScope when it is not CT or shows no brain slice."""
        start = time.perf_counter()
        if progress is not None:
            progress(0, len(load_result.volume))
        study, maps = self.segment(load_result)
        segmented = time.perf_counter()
        card = self.card
        brains = np.stack([s.brain for s in study.slices])
        raw = slice_scores(maps, brains, rule=str(card.extra.get("score_rule", "peak")))
        slice_p = np.where(
            study.is_brain, temperature_sigmoid(raw, temperature=card.temperature), 0.0
        ).astype(np.float32)
        if progress is not None:
            progress(len(slice_p), len(slice_p))
        prediction = brain_slice_prediction(
            card,
            slice_p,
            study.is_brain,
            backend=self.backend,
            default_aggregation="max",
        )
        meta = load_result.metadata
        on_slice = [
            s.to_slice(m) if s.is_brain else None
            for s, m in zip(study.slices, maps, strict=True)
        ]
        prediction.volume_ml = study_volume_ml(
            on_slice,
            pixel_spacing_mm=meta.pixel_spacing_mm,
            slice_spacing_mm=meta.slice_spacing_mm or meta.slice_thickness_mm,
            level=self.level,
        )
        prediction.timings = {
            "preprocess_s": segmented - start,
            "predict_s": time.perf_counter() - segmented,
        }
        return prediction

    def explain(
        self, load_result: LoadResult, *, slices: Sequence[int], space: str = "study"
    ) -> dict[int, np.ndarray]:
        """Pixel bleed probabilities of ``slices``: {index: map in [0, 1]};
        ``space="study"``: (H, W) on the slice as loaded, ``"input"``: (S, S) on
        the aligned brain. The outline is the map's ``contour_level`` line."""
        if space not in ("study", "input"):
            raise ValueError(f"space must be 'study' or 'input', got {space!r}")
        study, maps = self.segment(load_result)
        wanted = [int(s) for s in slices]
        bad = [s for s in wanted if not 0 <= s < len(study.slices)]
        if bad:
            raise ValueError(f"slices {bad} are outside 0..{len(study.slices) - 1}")
        return {
            i: maps[i] if space == "input" else study.slices[i].to_slice(maps[i])
            for i in wanted
        }
