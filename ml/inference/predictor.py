"""`Predictor`: load a verified model once, then predict and explain studies."""

from __future__ import annotations

import functools
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ml.inference import geometry
from ml.inference.results import (
    DEFAULT_AGGREGATION,
    DEFAULT_TOP_K,
    StudyPrediction,
    aggregate_slices,
    check_study,
    describe_aggregation,
    study_prediction,
    study_type_probabilities,
    temperature_softmax,
)
from ml.modelfile import (
    ModelCard,
    ModelFileError,
    model_archive_unpack,
    model_card_load,
    model_files_verify,
)
from ml.onnx_export import (
    DEFAULT_TOLERANCE,
    KERAS_FILE,
    ONNX_FILE,
    check_batch,
    keras_outputs,
    load_keras_model,
    max_abs_difference,
    onnx_outputs,
    onnx_session,
)
from ml.preprocess import PreparedInput, PreprocessConfig, preprocess_study

if TYPE_CHECKING:
    from ml.io import LoadResult

Progress = Callable[[int, int], None]
BACKENDS = ("auto", "onnxruntime", "tensorflow")
DEFAULT_BATCH_SIZE = 16
CLASSICAL = ("cnn_svm", "cnn_rf")
CLASSIFIER_FILE = "classifier.joblib"
LOAD_CHECK_SLICES = 2  # slices of the ONNX-vs-Keras check when a model is loaded


@dataclass(frozen=True)
class OnnxStatus:
    """Whether the predictor serves through onnxruntime, and why (not)."""

    used: bool
    reason: str
    max_abs_diff: float | None = None


class Predictor:
    """A model ready to predict: card, Keras model and a compiled runner.

    Create it with :meth:`load`. Not thread-safe; a Celery worker process holds one.
    """

    def __init__(
        self,
        *,
        card: ModelCard,
        config: PreprocessConfig,
        model: Any,
        runner: Any,
        onnx: OnnxStatus,
    ) -> None:
        self.card = card
        self.config = config
        self.model = model
        self.onnx = onnx
        self._runner = runner
        self._explainer: Any = None
        self._last_input: tuple[np.ndarray, PreparedInput] | None = None

    # --- loading ------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        backend: str = "auto",
        batch_size: int = DEFAULT_BATCH_SIZE,
        threads: int | None = None,
    ) -> Predictor:
        """Load a model folder or zip archive, refusing a bad one with ModelFileError.

        The card is validated, every file checked against its sha256, the
        preprocessing checked against the input shape, and the Keras model against
        the card (input shape, classes vs output size). ``backend``: "auto" serves
        through onnxruntime when ``model.onnx`` exists and matches Keras within 1e-4
        on a check batch, else TensorFlow; "onnxruntime" insists (ModelFileError
        when it cannot); "tensorflow" never tries. ``batch_size``: slices per
        compiled call. ``threads``: onnxruntime intra-op threads (None = all cores).
        TensorFlow is imported here, never at module import.
        """
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        path = Path(path)
        load = functools.partial(
            cls._load_folder, backend=backend, batch_size=batch_size, threads=threads
        )
        if path.is_dir():
            return load(path)
        if not path.is_file():
            raise ModelFileError(f"model path {path} does not exist")
        with tempfile.TemporaryDirectory(prefix="ml-model-") as work:
            folder = model_archive_unpack(path, work)
            return load(folder)

    @classmethod
    def _load_folder(
        cls, folder: Path, *, backend: str, batch_size: int, threads: int | None
    ) -> Predictor:
        card = model_card_load(folder)
        model_files_verify(folder, card)
        if card.architecture == "lesion_features":
            from ml.lesion.predictor import LesionPredictor  # numpy, no TensorFlow

            return LesionPredictor.from_folder(folder, card)  # type: ignore[return-value]
        if card.architecture == "hemorrhage_seg":
            from ml.segment.predictor import SegPredictor  # onnxruntime only

            return SegPredictor.from_folder(folder, card, threads=threads)  # type: ignore[return-value]
        config = _checked_preprocessing(card)
        if KERAS_FILE not in card.files:
            raise ModelFileError(f"model.json lists no {KERAS_FILE}")
        model = load_keras_model(folder / KERAS_FILE)
        _check_model_against_card(model, card)
        if card.architecture in CLASSICAL:
            runner = _classical_runner(folder, card, model, batch_size=batch_size)
            onnx = OnnxStatus(False, "classical heads run on TensorFlow + sklearn")
            return cls(card=card, config=config, model=model, runner=runner, onnx=onnx)
        runner, onnx = _choose_runner(
            folder, card, model, backend=backend, batch_size=batch_size, threads=threads
        )
        return cls(card=card, config=config, model=model, runner=runner, onnx=onnx)

    @property
    def backend(self) -> str:
        """ "onnxruntime" or "tensorflow" (plus "+sklearn" for classical heads)."""
        return str(self._runner.name)

    # --- predicting -----------------------------------------------------------------

    def preprocess(self, load_result: LoadResult) -> np.ndarray:
        """The model input of a study: (D, S, S, C) float32 in [0, 1].

        Raises ValueError when the study's modality is not the model's, or when it
        has no slices.
        """
        return self._prepared(load_result).x

    def _prepared(self, load_result: LoadResult) -> PreparedInput:
        # The input with the slice -> input affines preprocessing used; explain()
        # right after predict() on the same study reuses both.
        self._check_study(load_result)
        volume = load_result.volume
        if self._last_input is not None and self._last_input[0] is volume:
            return self._last_input[1]
        prepared = preprocess_study(
            volume, units=load_result.metadata.units, config=self.config
        )
        self._last_input = (volume, prepared)
        return prepared

    def predict(
        self, load_result: LoadResult, *, progress: Progress | None = None
    ) -> StudyPrediction:
        """Predict one study; see :class:`StudyPrediction` for what comes back.

        ``progress(done, total)`` is called with the number of slices done after
        every compiled batch (and once with 0 before the first).
        """
        start = time.perf_counter()
        x = self.preprocess(load_result)
        preprocessed = time.perf_counter()
        if progress is not None:
            progress(0, len(x))
        if self.card.study_level:
            prediction = self._predict_study(x, progress)
        else:
            prediction = self._predict_slices(x, progress)
        prediction.timings = {
            "preprocess_s": preprocessed - start,
            "predict_s": time.perf_counter() - preprocessed,
        }
        return prediction

    def _run_batches(self, x: np.ndarray, progress: Progress | None) -> np.ndarray:
        size, chunks = self._runner.batch_size, []
        for begin in range(0, len(x), size):
            chunks.append(self._runner(x[begin : begin + size])["probs"])
            if progress is not None:
                progress(min(begin + size, len(x)), len(x))
        return np.concatenate(chunks).astype(np.float32)

    def _predict_slices(
        self, x: np.ndarray, progress: Progress | None
    ) -> StudyPrediction:
        probs = temperature_softmax(
            self._run_batches(x, progress), temperature=self.card.temperature
        )
        slice_p = (1.0 - probs[:, 0]).astype(np.float32)  # any stroke class
        method = str(self.card.extra.get("aggregation", DEFAULT_AGGREGATION))
        k = int(self.card.extra.get("top_k", DEFAULT_TOP_K))
        study_p = aggregate_slices(slice_p, method=method, k=k)
        type_p = study_type_probabilities(probs, slice_p, method=method, k=k)
        return self._finish(
            slice_p,
            study_p=study_p,
            type_p=type_p,
            aggregation=describe_aggregation(method=method, k=k),
        )

    def _predict_study(
        self, x: np.ndarray, progress: Progress | None
    ) -> StudyPrediction:
        out = self._runner(x[None])
        if progress is not None:
            progress(len(x), len(x))
        study = temperature_softmax(out["study"][0], temperature=self.card.temperature)
        slice_p = np.asarray(out["slices"][0, :, 0], np.float32)
        return self._finish(
            slice_p,
            study_p=float(1.0 - study[0]),
            type_p=study,
            aggregation="the study output of the model (attention over slices)",
        )

    def _finish(
        self,
        slice_p: np.ndarray,
        *,
        study_p: float,
        type_p: np.ndarray,
        aggregation: str,
    ) -> StudyPrediction:
        return study_prediction(
            self.card,
            slice_p,
            study_p=study_p,
            type_p=type_p,
            aggregation=aggregation,
            backend=self.backend,
        )

    # --- explaining -----------------------------------------------------------------

    def explain(
        self,
        load_result: LoadResult,
        *,
        slices: Sequence[int],
        space: str = "study",
    ) -> dict[int, np.ndarray]:
        """Grad-CAM maps of ``slices`` of a study: {slice index: map in [0, 1]}.

        ``space="study"``: (H, W) float32 maps aligned with ``load_result.volume``'s
        slices (the crop and letterbox of preprocessing undone), ready to lay over
        the slice a viewer shows. ``space="input"``: (S, S) maps on the model input.
        After :meth:`predict` on the same LoadResult the input is not recomputed.
        """
        if space not in ("study", "input"):
            raise ValueError(f"space must be 'study' or 'input', got {space!r}")
        x = self.preprocess(load_result)
        wanted = [int(s) for s in slices]
        bad = [s for s in wanted if not 0 <= s < len(x)]
        if bad:
            raise ValueError(f"slices {bad} are outside 0..{len(x) - 1}")
        if not wanted:
            return {}
        explainer = self._gradcam()
        if self.card.study_level:
            maps = explainer(x, slices=wanted)
        else:
            maps = explainer(x[wanted])
        if space == "input":
            return dict(zip(wanted, maps, strict=True))
        return self._to_study_space(load_result, wanted, maps)

    def _gradcam(self) -> Any:
        if self._explainer is None:
            from ml.explain import GradCam

            self._explainer = GradCam(model=self.model, layers=self.gradcam_layers())
        return self._explainer

    def gradcam_layers(self) -> list[str]:
        """The conv layer(s) Grad-CAM uses: ``extra["gradcam_layers"]`` of the card,
        else ``ml.models.gradcam_layers`` for the architecture."""
        named = self.card.extra.get("gradcam_layers")
        if named:
            return [str(n) for n in named]
        from ml.models import gradcam_layers

        return gradcam_layers(self.model, self.card.architecture)

    def _to_study_space(
        self, load_result: LoadResult, wanted: list[int], maps: np.ndarray
    ) -> dict[int, np.ndarray]:
        matrices = self._prepared(load_result).matrices
        shape = load_result.volume.shape[1:]
        return {
            index: geometry.input_to_slice(m, matrix=matrices[index], slice_shape=shape)
            for index, m in zip(wanted, maps, strict=True)
        }

    def _check_study(self, load_result: LoadResult) -> None:
        check_study(load_result, card=self.card)


# --- checks on load -------------------------------------------------------------------


def _checked_preprocessing(card: ModelCard) -> PreprocessConfig:
    try:
        config = PreprocessConfig.from_dict(card.preprocessing)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"model.json preprocessing is invalid: {exc}") from exc
    height, width, channels = card.input_shape[-3:]
    if config.channels != channels:
        raise ModelFileError(
            f"preprocessing makes {config.channels} channel(s) but the model's "
            f"input_shape {card.input_shape} takes {channels}"
        )
    if (config.size, config.size) != (height, width):
        raise ModelFileError(
            f"preprocessing makes {config.size}x{config.size} images but the model's "
            f"input_shape {card.input_shape} takes {height}x{width}"
        )
    if card.study_level != (len(card.input_shape) == 4):
        raise ModelFileError(
            f"study_level={card.study_level} does not fit input_shape "
            f"{card.input_shape}"
        )
    return config


def _check_model_against_card(model: Any, card: ModelCard) -> None:
    shape = list(model.inputs[0].shape[1:])
    expected = list(card.input_shape)
    fits = len(shape) == len(expected) and all(
        e is None or s is None or int(s) == int(e)
        for s, e in zip(shape, expected, strict=True)
    )
    if not fits:
        raise ModelFileError(
            f"{KERAS_FILE} takes input {shape} but model.json says {expected}"
        )
    head = _class_output(model, card)
    if int(head.shape[-1]) != len(card.classes):
        raise ModelFileError(
            f"{KERAS_FILE} outputs {head.shape[-1]} classes but model.json lists "
            f"{len(card.classes)} ({', '.join(card.classes)})"
        )


def _class_output(model: Any, card: ModelCard) -> Any:
    names = list(model.output_names)
    if card.study_level:
        if not {"study", "slices"} <= set(names):
            raise ModelFileError(
                f"a study-level model needs outputs 'study' and 'slices', got {names}"
            )
        return model.get_layer("study").output
    if len(model.outputs) != 1:
        raise ModelFileError(f"a slice model needs one output, got {names}")
    return model.outputs[0]


def _choose_runner(
    folder: Path,
    card: ModelCard,
    model: Any,
    *,
    backend: str,
    batch_size: int,
    threads: int | None,
) -> tuple[Any, OnnxStatus]:
    from ml.inference.runners import KerasRunner, OnnxRunner

    status = OnnxStatus(False, "backend 'tensorflow' was asked for")
    if backend != "tensorflow":
        session, names, status = _onnx_if_it_matches(folder, card, model, threads)
        if session is not None:
            onnx = OnnxRunner(session, output_names=names, batch_size=batch_size)
            return onnx, status
        if backend == "onnxruntime":
            raise ModelFileError(f"cannot serve through onnxruntime: {status.reason}")
    runner = KerasRunner(
        model,
        input_shape=tuple(card.input_shape),
        batch_size=batch_size,
        study_level=card.study_level,
    )
    return runner, status


def _onnx_if_it_matches(
    folder: Path, card: ModelCard, model: Any, threads: int | None
) -> tuple[Any, list[str], OnnxStatus]:
    """An onnxruntime session for model.onnx and the output names, or None and why
    not: the file must be listed and match Keras on a check batch, here and now."""
    if ONNX_FILE not in card.files:
        return None, [], OnnxStatus(False, f"model.json lists no {ONNX_FILE}")
    try:
        session = onnx_session(folder / ONNX_FILE, threads=threads)
        # Two slices: an eager Keras pass over eight 224-px slices of the fusion
        # model grew the worker by 1.8 GB that TensorFlow never gave back.
        batch = check_batch(input_shape=card.input_shape, count=LOAD_CHECK_SLICES)
        expected = keras_outputs(model, batch)
        got = onnx_outputs(session, batch, names=list(expected))
        diff = max_abs_difference(expected, got)
    except Exception as exc:  # no onnxruntime, bad graph, runtime error: fall back
        return None, [], OnnxStatus(False, f"{ONNX_FILE} unusable: {exc}"[:300])
    if not diff <= DEFAULT_TOLERANCE:
        reason = f"{ONNX_FILE} differs from Keras by {diff:.3g}"
        return None, [], OnnxStatus(False, reason, diff)
    status = OnnxStatus(True, f"matches Keras within {diff:.2g}", diff)
    return session, list(expected), status


def _classical_runner(
    folder: Path, card: ModelCard, model: Any, *, batch_size: int
) -> Any:
    import keras

    from ml.inference.runners import ClassicalRunner, KerasRunner

    if CLASSIFIER_FILE not in card.files:
        raise ModelFileError(f"a {card.architecture} model needs {CLASSIFIER_FILE}")
    from ml.models.classical import classical_head_load

    estimator = classical_head_load(folder=folder)  # a pickle: sha256 checked above
    embedding = model.get_layer("embedding").output
    features = keras.Model(model.inputs[0], {"embedding": embedding})
    inner = KerasRunner(
        features,
        input_shape=tuple(card.input_shape),
        batch_size=batch_size,
        study_level=False,
    )
    return ClassicalRunner(inner, estimator)
