"""Export a saved Keras model to ONNX, and keep the export only if it agrees.

``onnx_export(model_dir=...)`` converts ``model.keras`` with Keras' own ONNX export
(tf2onnx underneath), runs a fixed check batch through both Keras and onnxruntime,
and writes ``model.onnx`` next to the weights, listed with its sha256 in
``model.json``, only when every output matches within ``tolerance``.
:class:`ml.inference.Predictor` serves such a model through onnxruntime, after
repeating the check on its own machine.

TensorFlow and onnxruntime are imported inside the functions: importing this module
is cheap and safe before a fork.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ml.modelfile import (
    ModelCard,
    ModelFileError,
    model_card_load,
    model_card_save,
    model_files_verify,
)

KERAS_FILE = "model.keras"
ONNX_FILE = "model.onnx"
DEFAULT_TOLERANCE = 1e-4
DEFAULT_OPSET = 17
#: Slices in the check batch (and in the study of a study-level model's check).
CHECK_SLICES = 8


@dataclass(frozen=True)
class OnnxExportResult:
    """What :func:`onnx_export` did.

    ``path`` is the written ``model.onnx``, or None when the export was not kept;
    ``reason`` says why not ("" when kept). ``max_abs_diff`` is the largest absolute
    difference between Keras and onnxruntime outputs on the check batch (None when
    conversion or the runtime failed); ``seconds`` the conversion time.
    """

    path: Path | None
    max_abs_diff: float | None
    tolerance: float
    seconds: float
    reason: str = ""

    @property
    def kept(self) -> bool:
        return self.path is not None


def check_batch(
    *, input_shape: list[int | None], count: int = CHECK_SLICES, seed: int = 0
) -> np.ndarray:
    """A reproducible batch for comparing two runtimes of one model.

    ``input_shape``: the card's (H, W, C) or (D, H, W, C). Returns float32 in [0, 1]:
    (count, H, W, C) for slice models, (1, count, H, W, C) for study models (D is
    replaced when None). Smooth blobs plus noise, so that activations
    look more like an image's than uniform noise does.
    """
    height, width, channels = (int(v or 0) for v in input_shape[-3:])
    if min(height, width, channels) < 1:
        raise ValueError(f"input_shape {input_shape} needs fixed H, W and C")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    batch = np.empty((count, height, width, channels), np.float32)
    for i in range(count):
        cy, cx = rng.uniform(0.3, 0.7, 2) * (height, width)
        radius = rng.uniform(0.15, 0.4) * min(height, width)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2.0 * radius**2))
        noise = rng.normal(0.0, 0.05, (height, width, channels))
        batch[i] = np.clip(blob[..., None] * rng.uniform(0.5, 1.0) + noise, 0.0, 1.0)
    return batch[None] if len(input_shape) == 4 else batch


def max_abs_difference(
    a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]
) -> float:
    """Largest |a - b| over the outputs both mappings share; ValueError when their
    names or shapes differ."""
    if set(a) != set(b):
        raise ValueError(f"outputs differ: {sorted(a)} vs {sorted(b)}")
    worst = 0.0
    for name in a:
        left, right = np.asarray(a[name]), np.asarray(b[name])
        if left.shape != right.shape:
            raise ValueError(f"output {name}: shape {left.shape} vs {right.shape}")
        worst = max(worst, float(np.max(np.abs(left - right), initial=0.0)))
    return worst


def keras_outputs(model: Any, batch: np.ndarray) -> dict[str, np.ndarray]:
    """Run a Keras model once (inference mode) and name its outputs: the dict keys of
    a multi-output model, else the output layer's names (``probs``)."""
    outputs = model(batch, training=False)
    if isinstance(outputs, Mapping):
        return {str(k): np.asarray(v) for k, v in outputs.items()}
    if isinstance(outputs, list | tuple):
        return {
            str(n): np.asarray(v)
            for n, v in zip(model.output_names, outputs, strict=True)
        }
    return {str(model.output_names[0]): np.asarray(outputs)}


def onnx_session(path: str | Path, *, threads: int | None = None) -> Any:
    """An onnxruntime CPU session for ``path`` (``threads`` intra-op, None = all
    physical cores)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # A worker also holds TensorFlow (Grad-CAM): no arena that keeps its peak
    # allocation for the life of the process, and no threads spinning for work on
    # cores that TensorFlow or other workers need.
    options.enable_cpu_mem_arena = False
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = int(threads)
    return ort.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )


def onnx_outputs(
    session: Any, batch: np.ndarray, *, names: list[str]
) -> dict[str, np.ndarray]:
    """Run an onnxruntime session on ``batch`` and name its outputs like Keras does.

    ``names``: the Keras output names. ONNX outputs are matched by name when the
    export kept them (dict outputs) and by position for a single output.
    """
    feed = {session.get_inputs()[0].name: np.ascontiguousarray(batch, np.float32)}
    values = session.run(None, feed)
    onnx_names = [o.name for o in session.get_outputs()]
    if set(onnx_names) == set(names):
        return dict(zip(onnx_names, values, strict=True))
    if len(values) == len(names) == 1:
        return {names[0]: values[0]}
    raise ValueError(f"ONNX outputs {onnx_names} do not match Keras outputs {names}")


def load_keras_model(path: str | Path) -> Any:
    """Load a ``.keras`` file for inference through ``ml.models.model_load`` (no
    optimizer, custom zoo layers registered, ``safe_mode`` on so that a file that
    would run arbitrary code is refused); ModelFileError when it cannot be read."""
    from ml.models import model_load

    try:
        return model_load(path)
    except Exception as exc:  # Keras raises many types for a bad file
        raise ModelFileError(f"{Path(path).name} cannot be loaded: {exc}") from exc


def onnx_export(
    *,
    model_dir: str | Path,
    tolerance: float = DEFAULT_TOLERANCE,
    opset: int = DEFAULT_OPSET,
    model: Any = None,
) -> OnnxExportResult:
    """Export ``model_dir/model.keras`` to ``model_dir/model.onnx`` when it agrees.

    The card and files are verified first. The export has a dynamic batch axis (and
    slice axis for study models). On success ``model.json`` is rewritten: ``files``
    then lists ``model.onnx`` with its sha256 and ``extra["onnx"]`` records the
    opset, tolerance and measured difference. A failed or disagreeing export leaves
    the folder untouched. ``model``: the already loaded Keras model, to skip
    loading it again.
    """
    folder = Path(model_dir)
    card = model_card_load(folder)
    model_files_verify(folder, card)
    if model is None:
        model = load_keras_model(folder / KERAS_FILE)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ml-onnx-") as work:
        candidate = Path(work) / ONNX_FILE
        try:
            _convert(model, card, candidate, opset=opset)
            diff = _compare(model, card, candidate)
        except Exception as exc:  # any converter/runtime failure means "not kept"
            seconds = time.perf_counter() - start
            reason = f"conversion failed: {type(exc).__name__}: {exc}"[:500]
            return OnnxExportResult(None, None, tolerance, seconds, reason)
        seconds = time.perf_counter() - start
        if not diff <= tolerance:
            reason = f"outputs differ by {diff:.3g} > {tolerance:g}"
            return OnnxExportResult(None, diff, tolerance, seconds, reason)
        shutil.move(candidate, folder / ONNX_FILE)
    _record(card, folder, diff=diff, tolerance=tolerance, opset=opset)
    return OnnxExportResult(folder / ONNX_FILE, diff, tolerance, seconds)


def _convert(model: Any, card: ModelCard, out: Path, *, opset: int) -> None:
    import tensorflow as tf

    shape = [None, *card.input_shape]
    if card.study_level:
        from ml.inference.folding import fold_time_distributed

        shape[1] = None  # any number of slices
        model = fold_time_distributed(model)  # see there: Keras' own graph is wrong
    signature = [tf.TensorSpec(shape, tf.float32, name="image")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # tf2onnx and numpy 2
        model.export(
            str(out),
            format="onnx",
            input_signature=signature,
            opset_version=opset,
            verbose=False,
        )


def _compare(model: Any, card: ModelCard, path: Path) -> float:
    batch = check_batch(input_shape=card.input_shape)
    expected = keras_outputs(model, batch)
    got = onnx_outputs(onnx_session(path), batch, names=list(expected))
    return max_abs_difference(expected, got)


def _record(
    card: ModelCard, folder: Path, *, diff: float, tolerance: float, opset: int
) -> None:
    import onnxruntime
    import tf2onnx

    card.extra = {
        **card.extra,
        "onnx": {
            "file": ONNX_FILE,
            "opset": opset,
            "max_abs_diff": diff,
            "tolerance": tolerance,
            "converter": f"keras.Model.export / tf2onnx {tf2onnx.__version__}",
            "onnxruntime": onnxruntime.__version__,
        },
    }
    model_card_save(card, folder)
