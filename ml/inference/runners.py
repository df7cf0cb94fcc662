"""Batch runners: one compiled TensorFlow graph or one onnxruntime session per model.

A runner maps a batch (N, H, W, C) — or one study (1, D, H, W, C) — of float32 input
to named float32 outputs. TensorFlow is imported when a runner is built, never when
this module is imported.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ml.onnx_export import onnx_outputs


class KerasRunner:
    """Runs a Keras model through one ``tf.function`` with a fixed input signature.

    Slice models are traced once for (``batch_size``, H, W, C): a shorter batch is
    padded with zeros and the padding dropped from the outputs, so no study ever
    triggers a retrace. Study models are traced once for (1, None, H, W, C), with
    their TimeDistributed layers folded (see :mod:`ml.inference.folding`).
    """

    name = "tensorflow"

    def __init__(
        self,
        model: Any,
        *,
        input_shape: tuple[int | None, ...],
        batch_size: int,
        study_level: bool,
    ) -> None:
        import tensorflow as tf

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = 1 if study_level else int(batch_size)
        self.study_level = study_level
        if study_level:
            from ml.inference.folding import fold_time_distributed

            model = fold_time_distributed(model)
        self._model = model
        head = (1, None) if study_level else (self.batch_size,)
        spec = tf.TensorSpec((*head, *input_shape[-3:]), tf.float32, name="image")
        self._fn = tf.function(self._call, input_signature=[spec], autograph=False)

    def _call(self, batch: Any) -> dict[str, Any]:
        outputs = self._model(batch, training=False)
        if isinstance(outputs, dict):
            return dict(outputs)
        if isinstance(outputs, list | tuple):
            return dict(zip(self._model.output_names, outputs, strict=True))
        return {self._model.output_names[0]: outputs}

    @property
    def tracing_count(self) -> int:
        """How many times the graph was traced (1 after the first call)."""
        return int(self._fn.experimental_get_tracing_count())

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        count = len(batch)
        if self.study_level:
            return {k: v.numpy() for k, v in self._fn(batch).items()}
        if count > self.batch_size:
            raise ValueError(f"batch of {count} exceeds batch_size {self.batch_size}")
        if count < self.batch_size:
            pad = np.zeros((self.batch_size - count, *batch.shape[1:]), np.float32)
            batch = np.concatenate([batch, pad])
        return {k: v.numpy()[:count] for k, v in self._fn(batch).items()}


class OnnxRunner:
    """Runs an onnxruntime session exported by :mod:`ml.onnx_export` (dynamic batch
    axis: no padding needed)."""

    name = "onnxruntime"

    def __init__(self, session: Any, *, output_names: list[str], batch_size: int):
        self._session = session
        self._names = list(output_names)
        self.batch_size = int(batch_size)

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return onnx_outputs(self._session, batch, names=self._names)


class ClassicalRunner:
    """A CNN's ``embedding`` features through an sklearn head (cnn_svm, cnn_rf):
    ``inner`` yields ``{"embedding": (N, F)}``, this yields ``{"probs": (N, K)}``."""

    def __init__(self, inner: KerasRunner, estimator: Any) -> None:
        self._inner = inner
        self._estimator = estimator
        self.batch_size = inner.batch_size
        self.name = f"{inner.name}+sklearn"

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        embeddings = self._inner(batch)["embedding"]
        probs = self._estimator.predict_proba(np.asarray(embeddings, np.float32))
        return {"probs": np.asarray(probs, np.float32)}
