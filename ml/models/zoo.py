"""Keras builders of the model zoo. Use :func:`ml.models.build_model`, not these.

Every slice model maps (B, H, W, C) float32 in [0, 1] to a softmax named ``probs``
and has a layer named ``embedding`` (the features the cnn_svm / cnn_rf heads use).
Keras-applications backbones are built *inline* on the model's own tensors, so their
layers (``conv5_block3_out``, ``out_relu``, ...) are layers of the returned model.

One-channel input is repeated to three channels by a ``Concatenate`` layer
(``to_rgb``) rather than giving the backbone a one-channel stem: a user-supplied
ImageNet weights file then fits the backbone unchanged, and the cost is one copy.
Backbones see the input rescaled from [0, 1] to [-1, 1] (``to_signed``).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

CUSTOM_FILTERS = (32, 32, 64, 64, 64, 64)
#: Batch-norm momentum of the Keras-applications backbones. Their ImageNet defaults
#: (0.99 / 0.999) leave the moving statistics far from the batch statistics after
#: the few hundred steps a from-scratch run takes here, and inference outputs
#: collapse to a constant (validation AUC exactly 0.5).
BACKBONE_BN_MOMENTUM = 0.9
ENCODER_FILTERS = (32, 32, 64, 64, 64, 64)


def _check_options(name: str, options: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for {name}; allowed: {sorted(allowed)}"
        )


def _head(features: Any, *, classes: int, dropout: float, name_prefix: str = "") -> Any:
    x = layers.Dropout(dropout, name=f"{name_prefix}head_dropout")(features)
    return layers.Dense(classes, activation="softmax", name="probs")(x)


def _rgb_signed(inputs: Any) -> Any:
    """(B, H, W, 1|3) in [0, 1] → (B, H, W, 3) in [-1, 1] for a backbone."""
    x = inputs
    if inputs.shape[-1] == 1:
        x = layers.Concatenate(axis=-1, name="to_rgb")([inputs, inputs, inputs])
    return layers.Rescaling(2.0, offset=-1.0, name="to_signed")(x)


def _conv_block(x: Any, *, filters: int, index: int, batch_norm: bool) -> Any:
    x = layers.Conv2D(
        filters, 3, padding="same", use_bias=not batch_norm, name=f"conv{index}"
    )(x)
    if batch_norm:
        x = layers.BatchNormalization(name=f"bn{index}")(x)
    x = layers.Activation("relu", name=f"relu{index}")(x)
    return layers.MaxPooling2D(2, padding="same", name=f"pool{index}")(x)


def build_custom_cnn(
    input_shape: tuple[int, int, int], *, classes: int, **options: Any
) -> tuple[keras.Model, dict[str, keras.Model]]:
    """6 x (Conv 3x3 + max-pool) with 32/64 filters, dense 64 (``embedding``), softmax.

    Options: ``filters`` (six ints), ``batch_norm`` (default True), ``dense``
    (default 64), ``dropout`` (default 0.3).
    """
    _check_options("custom_cnn", options, {"filters", "batch_norm", "dense", "dropout"})
    filters = tuple(options.get("filters", CUSTOM_FILTERS))
    batch_norm = bool(options.get("batch_norm", True))
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for i, f in enumerate(filters, start=1):
        x = _conv_block(x, filters=int(f), index=i, batch_norm=batch_norm)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(
        int(options.get("dense", 64)), activation="relu", name="embedding"
    )(x)
    outputs = _head(x, classes=classes, dropout=float(options.get("dropout", 0.3)))
    return keras.Model(inputs, outputs, name="custom_cnn"), {}


def _resnet50(x: Any) -> keras.Model:
    return keras.applications.ResNet50(
        include_top=False, weights=None, input_tensor=x, input_shape=tuple(x.shape[1:])
    )


def _mobilenet_v2(x: Any, alpha: float) -> keras.Model:
    return keras.applications.MobileNetV2(
        include_top=False,
        weights=None,
        input_tensor=x,
        input_shape=tuple(x.shape[1:]),
        alpha=alpha,
    )


def _vgg16(x: Any) -> keras.Model:
    return keras.applications.VGG16(
        include_top=False, weights=None, input_tensor=x, input_shape=tuple(x.shape[1:])
    )


def _set_bn_momentum(backbone: keras.Model, momentum: float) -> None:
    for layer in backbone.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = momentum


def build_backbone_model(
    name: str, input_shape: tuple[int, int, int], *, classes: int, **options: Any
) -> tuple[keras.Model, dict[str, keras.Model]]:
    """``resnet50`` / ``mobilenet_v2`` / ``vgg16`` + global average pool
    (``embedding``) + dropout + softmax.

    Options: ``dropout`` (default 0.3), ``alpha`` (MobileNetV2 width, default 1.0),
    ``bn_momentum`` (default :data:`BACKBONE_BN_MOMENTUM`).
    """
    allowed = {"dropout", "bn_momentum"} | (
        {"alpha"} if name == "mobilenet_v2" else set()
    )
    _check_options(name, options, allowed)
    inputs = keras.Input(input_shape, name="image")
    x = _rgb_signed(inputs)
    if name == "resnet50":
        backbone = _resnet50(x)
    elif name == "mobilenet_v2":
        backbone = _mobilenet_v2(x, float(options.get("alpha", 1.0)))
    else:
        backbone = _vgg16(x)
    _set_bn_momentum(backbone, float(options.get("bn_momentum", BACKBONE_BN_MOMENTUM)))
    features = layers.GlobalAveragePooling2D(name="embedding")(backbone.output)
    outputs = _head(features, classes=classes, dropout=options.get("dropout", 0.3))
    return keras.Model(inputs, outputs, name=name), {name: backbone}


def build_fusion(
    input_shape: tuple[int, int, int], *, classes: int, **options: Any
) -> tuple[keras.Model, dict[str, keras.Model]]:
    """ResNet50 and MobileNetV2 on the same input; their globally pooled features
    concatenated; Dense(``units``, relu) → Dropout → BatchNorm (``embedding``) →
    softmax.

    Options: ``units`` (default 256), ``dropout`` (default 0.4), ``alpha``
    (MobileNetV2 width, default 1.0), ``bn_momentum`` (default 0.9).
    """
    _check_options(
        "resnet_mobilenet_fusion", options, {"units", "dropout", "alpha", "bn_momentum"}
    )
    inputs = keras.Input(input_shape, name="image")
    x = _rgb_signed(inputs)
    resnet = _resnet50(x)
    mobilenet = _mobilenet_v2(x, float(options.get("alpha", 1.0)))
    for backbone in (resnet, mobilenet):
        _set_bn_momentum(
            backbone, float(options.get("bn_momentum", BACKBONE_BN_MOMENTUM))
        )
    pooled = [
        layers.GlobalAveragePooling2D(name="resnet_pool")(resnet.output),
        layers.GlobalAveragePooling2D(name="mobilenet_pool")(mobilenet.output),
    ]
    x = layers.Concatenate(name="fused")(pooled)
    x = layers.Dense(int(options.get("units", 256)), activation="relu", name="fc")(x)
    x = layers.Dropout(float(options.get("dropout", 0.4)), name="fc_dropout")(x)
    x = layers.BatchNormalization(name="embedding")(x)
    outputs = layers.Dense(classes, activation="softmax", name="probs")(x)
    backbones = {"resnet50": resnet, "mobilenet_v2": mobilenet}
    return keras.Model(inputs, outputs, name="resnet_mobilenet_fusion"), backbones


@keras.saving.register_keras_serializable(package="ml")
class FoldSlices(layers.Layer):
    """(B, D, H, W, C) → (B·D, H, W, C): the slices of all studies as one batch.

    Used instead of ``TimeDistributed``, whose Keras 3.15 implementation maps over
    the batch size instead of the time axis when D is None.
    """

    def call(self, inputs: Any) -> Any:
        return ops.reshape(inputs, (-1, *inputs.shape[2:]))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (None, *input_shape[2:])


@keras.saving.register_keras_serializable(package="ml")
class UnfoldSlices(layers.Layer):
    """[(B·D, F), reference (B, D, ...)] → (B, D, F)."""

    def call(self, inputs: Any) -> Any:
        features, reference = inputs
        shape = ops.shape(reference)
        return ops.reshape(features, (shape[0], shape[1], features.shape[-1]))

    def compute_output_shape(self, input_shapes: Any) -> tuple:
        features, reference = input_shapes
        return (reference[0], reference[1], features[-1])


def _encoder(x: Any, *, filters: tuple[int, ...], dense: int) -> Any:
    """Per-slice CNN on the folded (B·D, H, W, C) batch, so that ``enc_conv<i>``
    outputs (B·D, h, w, F) are tensors of the study model (Grad-CAM per slice)."""
    for i, f in enumerate(filters, start=1):
        x = layers.Conv2D(
            int(f), 3, padding="same", use_bias=False, name=f"enc_conv{i}"
        )(x)
        x = layers.BatchNormalization(name=f"enc_bn{i}")(x)
        x = layers.Activation("relu", name=f"enc_relu{i}")(x)
        x = layers.MaxPooling2D(2, padding="same", name=f"enc_pool{i}")(x)
    x = layers.GlobalAveragePooling2D(name="enc_gap")(x)
    return layers.Dense(dense, activation="relu", name="enc_dense")(x)


def build_cnn_lstm(
    input_shape: tuple[int | None, int, int, int], *, classes: int, **options: Any
) -> tuple[keras.Model, dict[str, keras.Model]]:
    """Study model: (B, D, H, W, C) → ``study`` (B, classes) softmax and ``slices``
    (B, D, 1) per-slice sigmoid stroke probability. D may be None.

    A CNN encodes every slice (all slices folded into one batch), a bidirectional
    ``rnn`` (``"lstm"`` or ``"gru"``) reads them in order, ``slices`` scores each
    step, and attention pooling over the steps (``attention`` weights,
    ``study_embedding``) feeds the study softmax.
    Options: ``rnn``, ``units`` (default 64), ``filters``, ``dense`` (default 64),
    ``dropout`` (default 0.3).
    """
    _check_options("cnn_lstm", options, {"rnn", "units", "filters", "dense", "dropout"})
    rnn_kind = str(options.get("rnn", "lstm")).lower()
    if rnn_kind not in ("lstm", "gru"):
        raise ValueError(f"rnn must be 'lstm' or 'gru', got {rnn_kind!r}")
    units = int(options.get("units", 64))
    inputs = keras.Input(input_shape, name="study_slices")
    per_slice = _encoder(
        FoldSlices(name="fold_slices")(inputs),
        filters=tuple(options.get("filters", ENCODER_FILTERS)),
        dense=int(options.get("dense", 64)),
    )
    x = UnfoldSlices(name="slice_embedding")([per_slice, inputs])
    cell = layers.LSTM if rnn_kind == "lstm" else layers.GRU
    seq = layers.Bidirectional(cell(units, return_sequences=True), name="sequence")(x)
    seq = layers.Dropout(float(options.get("dropout", 0.3)), name="seq_dropout")(seq)
    slices = layers.Dense(1, activation="sigmoid", name="slices")(seq)
    scores = layers.Dense(1, name="attention_score")(seq)
    weights = layers.Softmax(axis=1, name="attention")(scores)
    pooled = layers.Dot(axes=1, name="attention_pool")([weights, seq])  # (B, 1, 2u)
    pooled = layers.Reshape((2 * units,), name="study_embedding")(pooled)
    study = layers.Dense(classes, activation="softmax", name="study")(pooled)
    model = keras.Model(inputs, {"study": study, "slices": slices}, name="cnn_lstm")
    return model, {}
