"""The segmentation network: a U-Net small enough to train on two CPU cores.

Input (S, S, 2): the aligned slice relative to the brain median, and the brain
mask. Output (S, S, 1): the per-pixel bleed probability (sigmoid).
"""

from __future__ import annotations

from typing import Any

INPUT_CHANNELS = 2


def build_unet(size: int, *, base: int = 8, depth: int = 4, seed: int = 0) -> Any:
    """A U-Net with ``depth`` poolings and ``base`` filters on the top level
    (doubling per level); about 0.47 M weights for base 8, depth 4."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    if size % (2**depth):
        raise ValueError(f"size {size} must be divisible by {2**depth}")
    inputs = keras.Input((size, size, INPUT_CHANNELS), name="slice")
    x, skips = inputs, []
    for level in range(depth):
        x = _block(x, base * 2**level, f"down{level}")
        skips.append(x)
        x = layers.MaxPooling2D(name=f"pool{level}")(x)
    x = _block(x, base * 2**depth, "bottom")
    for level in reversed(range(depth)):
        x = layers.UpSampling2D(interpolation="bilinear", name=f"up{level}")(x)
        x = layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = _block(x, base * 2**level, f"dec{level}")
    outputs = layers.Conv2D(1, 1, activation="sigmoid", name="bleed")(x)
    return keras.Model(inputs, outputs, name="hemorrhage_seg")


def _block(x: Any, filters: int, name: str) -> Any:
    from keras import layers

    for i in (1, 2):
        x = layers.Conv2D(
            filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}"
        )(x)
        x = layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{i}")(x)
    return x


def mirrored(run: Any, inputs: Any) -> Any:
    """The mean of ``run`` on the slices and on their left-right mirror images
    (mirrored back): a bleed is a bleed on either side, and the average halves the
    specks the network sees on one side only. ``run``: (N, S, S, C) -> (N, S, S)."""
    plain = run(inputs)
    flipped = run(inputs[:, :, ::-1].copy())[:, :, ::-1]
    return (plain + flipped) / 2


def dice_bce_loss(y_true: Any, y_pred: Any) -> Any:
    """Binary cross-entropy plus a soft Dice over the batch: the cross-entropy
    teaches every pixel, the Dice keeps the rare bleed pixels from being drowned by
    the background."""
    from keras import ops

    y_true = ops.cast(y_true, y_pred.dtype)
    eps = 1e-6
    p = ops.clip(y_pred, eps, 1 - eps)
    bce = -ops.mean(y_true * ops.log(p) + (1 - y_true) * ops.log(1 - p))
    intersection = ops.sum(y_true * y_pred)
    dice = (2 * intersection + 1.0) / (ops.sum(y_true) + ops.sum(y_pred) + 1.0)
    return bce + (1 - dice)
