"""Grad-CAM heatmaps: where on a slice the model found the evidence for its call.

Grad-CAM (Selvaraju et al., 2017) weights the feature maps of a conv layer by the
spatial mean of the gradient of a class score, sums them and keeps the positive part.
The score here is the log-odds of the target class against "normal"
(``log p_c - log p_normal``, i.e. a difference of logits), which does not saturate
the way a softmax probability does on a confident model.

- Slice models: one map per image at the layer(s) of ``ml.models.gradcam_layers``;
  for the ResNet50 + MobileNetV2 fusion model the two backbones' maps are each
  normalised and then averaged.
- ``cnn_lstm``: the conv layer belongs to the slice encoder, whose activations are
  (D, h, w, F) with the slices folded into the batch (or (1, D, h, w, F) under a
  TimeDistributed); slice d's map differentiates that slice's ``slices`` output
  (its log-odds) through the encoder's activations of slice d.

Maps are (H, W) float32 in [0, 1] at the model input size. A :class:`GradCam` builds
a second Keras model over the same layers and never modifies the model it explains:
no weights, layers or trainable flags change. TensorFlow is imported only when a
:class:`GradCam` is created.

:func:`ml.display.overlay` draws a map over its slice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

_EPS = 1e-7


class GradCam:
    """Grad-CAM for one Keras model (built once, reused for every call).

    ``layers``: names of conv layers of ``model`` (see ``ml.models.gradcam_layers``).
    A slice model must have a softmax output; a study model (input (B, D, H, W, C))
    must have a ``slices`` output of shape (B, D, 1).
    """

    def __init__(self, *, model: Any, layers: Sequence[str]) -> None:
        import keras
        import tensorflow as tf

        if not layers:
            raise ValueError("Grad-CAM needs at least one layer name")
        self.layers = list(layers)
        self.study_level = len(model.inputs[0].shape) == 5
        if self.study_level:
            from ml.inference.folding import fold_time_distributed

            model = fold_time_distributed(model)  # traces right for any D
        self.input_size = tuple(int(v) for v in model.inputs[0].shape[-3:-1])
        features = [_layer_output(model, name) for name in self.layers]
        target = _target_output(model, study_level=self.study_level)
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        self._grad_model = keras.Model(inputs, [*features, target])
        shape = model.inputs[0].shape
        if self.study_level:
            specs = [
                tf.TensorSpec((1, None, *shape[2:]), tf.float32),
                tf.TensorSpec((), tf.int32),
            ]
            self._fn = tf.function(self._study_cams, input_signature=specs)
        else:
            specs = [
                tf.TensorSpec((None, *shape[1:]), tf.float32),
                tf.TensorSpec((None,), tf.int32),
            ]
            self._fn = tf.function(self._slice_cams, input_signature=specs)

    # --- traced graphs --------------------------------------------------------

    def _slice_cams(self, images: Any, classes: Any) -> list[Any]:
        import tensorflow as tf

        with tf.GradientTape() as tape:
            *features, probs = self._grad_model(images, training=False)
            score = tf.reduce_sum(_log_odds(probs, classes))
        grads = tape.gradient(score, features)
        return [_cam(f, g, axes=(1, 2)) for f, g in zip(features, grads, strict=True)]

    def _study_cams(self, study: Any, index: Any) -> list[Any]:
        import tensorflow as tf

        with tf.GradientTape() as tape:
            *features, slices = self._grad_model(study, training=False)
            p = tf.clip_by_value(slices[0, index, 0], _EPS, 1.0 - _EPS)
            score = tf.math.log(p) - tf.math.log(1.0 - p)
        grads = tape.gradient(score, features)
        return [
            _cam(_slice_of(f, index), _slice_of(g, index), axes=(1, 2))[0]
            for f, g in zip(features, grads, strict=True)
        ]

    # --- public ---------------------------------------------------------------

    def __call__(
        self,
        images: np.ndarray,
        *,
        class_index: int | None = None,
        slices: Sequence[int] | None = None,
    ) -> np.ndarray:
        """Heatmaps in [0, 1], float32, at the model input size (H, W).

        Slice models: ``images`` (N, H, W, C) float32 → (N, H, W); ``class_index``
        is the class whose evidence is shown (default: "stroke" for binary models,
        the likelier stroke class of each image for type models). Study models:
        ``images`` is one study (D, H, W, C) and ``slices`` the slice indices to map
        (default all) → (len(slices), H, W).
        """
        batch = np.ascontiguousarray(images, dtype=np.float32)
        if batch.ndim != 4:
            raise ValueError(f"images must be (N, H, W, C), got shape {batch.shape}")
        if self.study_level:
            return self._explain_study(batch, slices)
        if slices is not None:
            raise ValueError("slices applies to study models; pass the images wanted")
        if len(batch) == 0:
            return np.zeros((0, *batch.shape[1:3]), np.float32)
        classes = self._classes(batch, class_index)
        raw = [np.asarray(m) for m in self._fn(batch, classes)]
        return np.stack(
            [_combine([r[i] for r in raw], batch.shape[1:3]) for i in range(len(batch))]
        )

    def _classes(self, batch: np.ndarray, class_index: int | None) -> np.ndarray:
        count = int(self._grad_model.outputs[-1].shape[-1])
        if class_index is not None:
            if not 0 <= class_index < count:
                raise ValueError(f"class_index {class_index} is not in 0..{count - 1}")
            return np.full(len(batch), class_index, np.int32)
        if count == 2:
            return np.ones(len(batch), np.int32)
        probs = np.asarray(self._grad_model(batch, training=False)[-1])
        return (1 + np.argmax(probs[:, 1:], axis=1)).astype(np.int32)

    def _explain_study(
        self, study: np.ndarray, slices: Sequence[int] | None
    ) -> np.ndarray:
        depth = len(study)
        wanted = list(range(depth)) if slices is None else [int(s) for s in slices]
        bad = [s for s in wanted if not 0 <= s < depth]
        if bad:
            raise ValueError(f"slices {bad} are outside 0..{depth - 1}")
        maps = [
            _combine(
                [np.asarray(m) for m in self._fn(study[None], s)], study.shape[1:3]
            )
            for s in wanted
        ]
        return np.stack(maps) if maps else np.zeros((0, *study.shape[1:3]), np.float32)


def grad_cam(
    *,
    model: Any,
    images: np.ndarray,
    layers: Sequence[str],
    class_index: int | None = None,
    slices: Sequence[int] | None = None,
) -> np.ndarray:
    """One-off Grad-CAM; see :class:`GradCam` (keep one of those to explain many
    studies: it compiles its graph once). Returns (N, H, W) float32 in [0, 1]."""
    explainer = GradCam(model=model, layers=layers)
    return explainer(images, class_index=class_index, slices=slices)


def _layer_output(model: Any, name: str) -> Any:
    try:
        return model.get_layer(name).output
    except ValueError as exc:
        raise ValueError(f"model {model.name!r} has no layer {name!r}") from exc


def _target_output(model: Any, *, study_level: bool) -> Any:
    name = "slices" if study_level else None
    outputs = model.outputs
    if name is None:
        if len(outputs) != 1:
            raise ValueError("a slice model for Grad-CAM must have a single output")
        return outputs[0]
    return _layer_output(model, name)


def _slice_of(tensor: Any, index: Any) -> Any:
    """Slice ``index`` of study 0 as (1, h, w, F): from (1, D, h, w, F) activations
    (TimeDistributed) or from (D, h, w, F) ones (slices folded into the batch)."""
    if len(tensor.shape) == 5:
        return tensor[0, index][None]
    return tensor[index][None]


def _log_odds(probs: Any, classes: Any) -> Any:
    """log p_c - log p_normal per row; for c = normal, log p_0 - log(1 - p_0)."""
    import tensorflow as tf

    logp = tf.math.log(tf.clip_by_value(probs, _EPS, 1.0))
    chosen = tf.gather(logp, classes, axis=1, batch_dims=1)
    p0 = tf.clip_by_value(probs[:, 0], _EPS, 1.0 - _EPS)
    base = tf.where(classes == 0, tf.math.log(1.0 - p0), logp[:, 0])
    return chosen - base


def _cam(features: Any, grads: Any, *, axes: tuple[int, int]) -> Any:
    import tensorflow as tf

    weights = tf.reduce_mean(grads, axis=axes, keepdims=True)
    return tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))


def _combine(maps: Sequence[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """Upsample each (h, w) map to ``size``, normalise each to [0, 1], average."""
    resized = [_normalise(_upsample(m, size)) for m in maps]
    return _normalise(np.mean(resized, axis=0))


def _upsample(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    cam = np.asarray(cam, np.float32)
    if cam.shape == tuple(size):
        return cam
    height, width = size
    return cv2.resize(cam, (width, height), interpolation=cv2.INTER_LINEAR)


def _normalise(cam: np.ndarray) -> np.ndarray:
    cam = np.maximum(np.nan_to_num(np.asarray(cam, np.float32)), 0.0)
    peak = float(cam.max(initial=0.0))
    return cam / peak if peak > 0 else np.zeros_like(cam)
