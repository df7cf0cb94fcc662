"""Where a model-input pixel came from: the inverse of the crop and letterbox of
``ml.preprocess.preprocess_volume``, so a heatmap computed on the (S, S) model input
can be laid over the slice the viewer shows.

This mirrors ``preprocess_slice``/``resize_keep_aspect`` step for step; a test in
``ml/tests/test_inference.py`` pushes a marked pixel through the forward chain and
back, and fails if the two drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ml.preprocess import (
    PreprocessConfig,
    head_box_fast,
    to_unit_range,
    window_by_name,
)

Box = tuple[int, int, int, int]  # (y0, y1, x0, x1), half-open


def crop_boxes(
    volume: np.ndarray, *, units: str, config: PreprocessConfig, indices: Sequence[int]
) -> list[Box]:
    """The head box ``preprocess_volume`` cropped each of ``indices`` slices to.

    ``volume``: (D, H, W) as loaded, in ``units``. Returns one (y0, y1, x0, x1) box
    per index; the whole slice when ``config.crop`` is off.
    """
    depth, height, width = volume.shape
    bad = [i for i in indices if not 0 <= i < depth]
    if bad:
        raise ValueError(f"slice indices {bad} are outside 0..{depth - 1}")
    if not config.crop:
        return [(0, height, 0, width)] * len(indices)
    if units == "HU":
        window = "brain" if config.window == "multi" else config.window
        return [head_box_fast(window_by_name(volume[i], name=window)) for i in indices]
    # Percentile scaling depends on the whole volume: scale it all, as the chain does.
    unit = to_unit_range(volume, units=units, window="brain")
    return [head_box_fast(unit[i]) for i in indices]


def input_to_slice(
    heatmap: np.ndarray, *, box: Box, slice_shape: tuple[int, int]
) -> np.ndarray:
    """Map an (S, S) map on the model input back onto the original (H, W) slice.

    The letterbox padding is cut away, the rest resized (linear) to the crop box and
    placed in it; outside the box the map is 0. Returns (H, W) float32.
    """
    size = heatmap.shape[0]
    if heatmap.ndim != 2 or heatmap.shape[1] != size:
        raise ValueError(f"heatmap must be (S, S), got {heatmap.shape}")
    y0, y1, x0, x1 = box
    crop_h, crop_w = y1 - y0, x1 - x0
    scale = size / max(crop_h, crop_w)
    new_h, new_w = max(1, round(crop_h * scale)), max(1, round(crop_w * scale))
    top, left = (size - new_h) // 2, (size - new_w) // 2
    inner = np.ascontiguousarray(heatmap[top : top + new_h, left : left + new_w])
    resized = cv2.resize(
        inner.astype(np.float32), (crop_w, crop_h), interpolation=cv2.INTER_LINEAR
    )
    out = np.zeros(slice_shape, np.float32)
    out[y0:y1, x0:x1] = resized.reshape(crop_h, crop_w)
    return out
