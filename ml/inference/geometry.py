"""Where a model-input pixel came from, so a heatmap computed on the (S, S) model
input can be laid over the slice the viewer shows.

Preprocessing records one affine per slice (``ml.preprocess.PreparedInput.matrices``:
crop + letterbox, or the brain alignment of ``ml.brain``); this module only inverts
it, so nothing about the crop is computed twice. A test in
``ml/tests/test_inference.py`` pushes a marked pixel through the chain and back.
"""

from __future__ import annotations

import cv2
import numpy as np


def input_to_slice(
    heatmap: np.ndarray, *, matrix: np.ndarray, slice_shape: tuple[int, int]
) -> np.ndarray:
    """Map an (S, S) map on the model input back onto the original (H, W) slice.

    ``matrix``: (2, 3) affine from slice (x, y) to input (x, y) pixels, as
    preprocessing returned it. Linear interpolation; slice pixels that fall outside
    the input are 0 (the letterbox padding maps onto the air beside the crop box,
    where the input was black too). Returns (H, W) float32.
    """
    size = heatmap.shape[0]
    if heatmap.ndim != 2 or heatmap.shape[1] != size:
        raise ValueError(f"heatmap must be (S, S), got {heatmap.shape}")
    affine = np.asarray(matrix, np.float64)
    if affine.shape != (2, 3):
        raise ValueError(f"matrix must be (2, 3), got {affine.shape}")
    height, width = slice_shape
    # WARP_INVERSE_MAP: each slice pixel reads the input at matrix @ (x, y, 1).
    return cv2.warpAffine(
        np.ascontiguousarray(heatmap, np.float32),
        affine,
        (int(width), int(height)),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    )
