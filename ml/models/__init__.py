"""The model zoo: every architecture of the seeds, built by name.

``build_model(architecture, input_shape=..., task=...)`` returns an uncompiled
``keras.Model``. Slice models take (H, W, C) float32 in [0, 1], C in {1, 3}, and end
in a softmax named ``probs`` over ``ml.modelfile.TASK_CLASSES[task]``. ``cnn_lstm``
takes (D, H, W, C) with D None (any number of slices) and has two outputs, ``study``
and ``slices``. ``cnn_svm`` / ``cnn_rf`` build the CNN whose ``embedding`` features an
SVM / random forest classifies after training (see :mod:`ml.models.classical`).

Nothing is downloaded (``weights=None`` always); ``weights_path`` loads a file the
user supplies. Importing this package is cheap (Keras loads on the first build or
load); load saved models with :func:`model_load`, which registers the zoo's custom
layers first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml.modelfile import TASK_CLASSES

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class ArchitectureSpec:
    """What an architecture name stands for."""

    name: str
    study_level: bool = False  # input (D, H, W, C), outputs study + slices
    classical: str = ""  # "svm" / "rf": an sklearn head on the CNN's embedding
    features: bool = False  # no network: hand-made features + logistic regression
    min_side: int = 32  # smallest H and W the builder accepts
    description: str = ""


ARCHITECTURES: dict[str, ArchitectureSpec] = {
    spec.name: spec
    for spec in (
        ArchitectureSpec("custom_cnn", min_side=8, description="6-block CNN"),
        ArchitectureSpec(
            "resnet_mobilenet_fusion", description="ResNet50 + MobileNetV2 fusion"
        ),
        ArchitectureSpec("resnet50", description="ResNet50"),
        ArchitectureSpec("mobilenet_v2", description="MobileNetV2"),
        ArchitectureSpec("vgg16", description="VGG16"),
        ArchitectureSpec(
            "cnn_lstm", study_level=True, min_side=8, description="CNN + BiLSTM/BiGRU"
        ),
        ArchitectureSpec(
            "cnn_svm", classical="svm", min_side=8, description="CNN features + SVM"
        ),
        ArchitectureSpec(
            "cnn_rf", classical="rf", min_side=8, description="CNN features + forest"
        ),
        ArchitectureSpec(
            "lesion_features",
            features=True,
            description="Lesion features + logistic regression (interpretable)",
        ),
    )
}

#: The layer whose output Grad-CAM uses, per slice architecture.
_GRADCAM = {
    "custom_cnn": ["conv6"],
    "resnet50": ["conv5_block3_out"],
    "mobilenet_v2": ["out_relu"],
    "vgg16": ["block5_conv3"],
    "resnet_mobilenet_fusion": ["conv5_block3_out", "out_relu"],
    # The encoder runs on the slices folded into the batch: output (B·D, h, w, F).
    "cnn_lstm": ["enc_conv6"],
}


def architecture_spec(architecture: str) -> ArchitectureSpec:
    """The :class:`ArchitectureSpec` of a name; ValueError naming the known ones."""
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"unknown architecture {architecture!r}; choose from "
            f"{sorted(ARCHITECTURES)}"
        )
    return ARCHITECTURES[architecture]


def _check_shape(spec: ArchitectureSpec, input_shape: tuple) -> tuple:
    rank = 4 if spec.study_level else 3
    shape = tuple(input_shape)
    expected = "(D, H, W, C)" if spec.study_level else "(H, W, C)"
    if len(shape) != rank:
        raise ValueError(f"{spec.name} needs input_shape {expected}, got {shape}")
    if shape[-1] not in (1, 3):
        raise ValueError(f"input channels must be 1 or 3, got {shape[-1]}")
    height, width = shape[-3], shape[-2]
    if not all(isinstance(v, int) and v >= spec.min_side for v in (height, width)):
        raise ValueError(
            f"{spec.name} needs H and W >= {spec.min_side}, got {height}x{width}"
        )
    return shape


def build_model(
    architecture: str,
    *,
    input_shape: tuple,
    task: str = "binary",
    weights_path: str | Path | None = None,
    **options: Any,
) -> keras.Model:
    """Build ``architecture`` for ``task`` (``"binary"`` or ``"type"``), uncompiled.

    ``input_shape``: (H, W, C) for slice models, (D, H, W, C) with D None or an int
    for ``cnn_lstm``. ``weights_path``: a Keras weights file (``.weights.h5``, or a
    ``.keras`` model) of the whole model or of one backbone; a file that does not fit
    raises ValueError. ``options`` go to the builder (see ``ml.models.zoo``);
    ``cnn_svm`` / ``cnn_rf`` accept ``backbone`` (default ``custom_cnn``).
    """
    spec = architecture_spec(architecture)
    if task not in TASK_CLASSES:
        raise ValueError(f"task {task!r} is not one of {sorted(TASK_CLASSES)}")
    if spec.features:
        raise ValueError(
            f"{architecture} is not a network: it is trained by ml.lesion "
            "(python -m ml train --architecture lesion_features)"
        )
    shape = _check_shape(spec, input_shape)
    classes = len(TASK_CLASSES[task])
    model, backbones = _build(spec, shape, classes=classes, options=dict(options))
    if weights_path is not None:
        from ml.models.weights import load_user_weights

        load_user_weights(model, backbones, Path(weights_path))
    return model


def _build(
    spec: ArchitectureSpec, shape: tuple, *, classes: int, options: dict[str, Any]
) -> tuple[keras.Model, dict[str, keras.Model]]:
    from ml.models import zoo

    name = spec.name
    if spec.classical:
        name = options.pop("backbone", "custom_cnn")
        if name not in ("custom_cnn", "resnet50", "mobilenet_v2", "vgg16"):
            raise ValueError(f"backbone {name!r} of {spec.name} is not a slice CNN")
    if name == "custom_cnn":
        return zoo.build_custom_cnn(shape, classes=classes, **options)
    if name in ("resnet50", "mobilenet_v2", "vgg16"):
        return zoo.build_backbone_model(name, shape, classes=classes, **options)
    if name == "resnet_mobilenet_fusion":
        return zoo.build_fusion(shape, classes=classes, **options)
    return zoo.build_cnn_lstm(shape, classes=classes, **options)


def gradcam_layers(model: keras.Model, architecture: str) -> list[str]:
    """Names of the conv layer(s) Grad-CAM should use, checked to exist in ``model``.

    Slice models: one layer, output (B, h, w, F); the fusion model: one per backbone
    (ResNet50 ``conv5_block3_out``, MobileNetV2 ``out_relu``), to be combined.
    ``cnn_lstm``: ``enc_conv6``, the slice encoder's last conv, which runs on all
    slices folded into the batch: ``model.get_layer("enc_conv6").output`` is
    (B·D, h, w, F), row ``b*D + d`` being slice d of study b; differentiate the
    ``study`` or ``slices[:, d]`` output with respect to it for one map per slice.
    ``cnn_svm``/``cnn_rf``: the last conv of their backbone.
    """
    spec = architecture_spec(architecture)
    if spec.classical:
        names = [n for v in _GRADCAM.values() for n in v if _has_layer(model, n)][:1]
    else:
        names = _GRADCAM[architecture]
    missing = [n for n in names if not _has_layer(model, n)]
    if missing or not names:
        raise ValueError(
            f"model {model.name!r} has no Grad-CAM layer {missing or names} "
            f"for {architecture}; was it built as {architecture}?"
        )
    return list(names)


def _has_layer(model: keras.Model, name: str) -> bool:
    try:
        model.get_layer(name)
    except ValueError:
        return False
    return True


def embedding_layer(architecture: str) -> str:
    """Name of the layer whose output is the feature vector of an input: (B, F).

    Every slice model (and so the CNN of ``cnn_svm``/``cnn_rf``) calls it
    ``embedding``; ``cnn_lstm`` has ``study_embedding`` (attention-pooled slices).
    """
    spec = architecture_spec(architecture)
    return "study_embedding" if spec.study_level else "embedding"


def model_load(path: str | Path) -> keras.Model:
    """Load a ``model.keras`` saved from a zoo model (safe mode, not compiled).

    Registers the zoo's custom layers (``FoldSlices``/``UnfoldSlices`` of
    ``cnn_lstm``) before loading; a file that Keras cannot read is a ValueError.
    """
    import keras

    from ml.models import zoo  # noqa: F401  (registers the custom layers)

    try:
        return keras.saving.load_model(Path(path), compile=False, safe_mode=True)
    except (OSError, TypeError, KeyError) as exc:
        raise ValueError(f"cannot load Keras model {Path(path).name}: {exc}") from exc


def output_names(architecture: str) -> list[str]:
    """Output layer names: ``["probs"]`` or, for study models, study + slices."""
    return (
        ["study", "slices"]
        if architecture_spec(architecture).study_level
        else ["probs"]
    )


__all__ = [
    "ARCHITECTURES",
    "ArchitectureSpec",
    "architecture_spec",
    "build_model",
    "embedding_layer",
    "gradcam_layers",
    "model_load",
    "output_names",
]
