"""Run TimeDistributed layers as one batch over (B·D) slices.

Keras 3.15's ``TimeDistributed`` runs a dynamic time axis with
``vectorized_map(step, arange(shape[0]))`` where ``shape[0]`` is the *batch* size:
inside a ``tf.function`` whose slice axis is None, a study model therefore sees only
its first slice(s) (eager calls are right because shapes are concrete there).
:func:`fold_time_distributed` rebuilds a study model with the same layer objects
(so the same weights) but with each TimeDistributed replaced by a reshape to
(B·D, ...), the wrapped layer, and a reshape back. The result traces once for any
number of slices, and is faster than a per-slice loop. The original model is not
changed (its layers only gain a second call site).
"""

from __future__ import annotations

from typing import Any


def fold_time_distributed(model: Any) -> Any:
    """A functional model equal to ``model`` whose TimeDistributed layers run as one
    batch (``model`` itself when it has none). Layers (and weights) are shared. A
    fold layer keeps the name of the TimeDistributed layer it replaces, so
    ``get_layer(name).output`` is still (B, D, ...)."""
    import keras

    if not any(isinstance(x, keras.layers.TimeDistributed) for x in model.layers):
        return model  # nothing to fold (the zoo's cnn_lstm folds slices itself)
    fold_class = _fold_layer_class()

    def call(layer: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(layer, keras.layers.TimeDistributed):
            kwargs.pop("mask", None)
            return fold_class(layer.layer, name=layer.name)(*args, **kwargs)
        return layer(*args, **kwargs)

    return keras.models.clone_model(
        model, clone_function=lambda layer: layer, call_function=call
    )


_FOLD_CLASS: Any = None


def _fold_layer_class() -> Any:
    global _FOLD_CLASS
    if _FOLD_CLASS is not None:
        return _FOLD_CLASS
    import keras
    from keras import ops

    class FoldTime(keras.layers.Layer):
        """(B, D, ...) → inner layer on (B·D, ...) → (B, D, ...)."""

        def __init__(self, inner: Any, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.inner = inner

        def call(self, inputs: Any, training: Any = None) -> Any:
            shape = ops.shape(inputs)
            flat = ops.reshape(inputs, (-1, *inputs.shape[2:]))
            out = self.inner(flat, training=training)
            return ops.reshape(out, (shape[0], shape[1], *out.shape[1:]))

        def compute_output_shape(self, input_shape: Any) -> Any:
            inner = self.inner.compute_output_shape((None, *input_shape[2:]))
            return (input_shape[0], input_shape[1], *inner[1:])

    _FOLD_CLASS = FoldTime
    return FoldTime
