"""Slices larger than the model and the viewer need are read at a reduced size.

A 4096 x 4096 slice costs 16 times the memory, disk and time of a 1024 x 1024 one
and shows nothing more: the model reads at most 512 x 512 and the viewer draws
1024 pixels at most. Readers decode one slice at a time and reduce it before it
joins the volume, so the full-size volume never exists.
"""

from __future__ import annotations

import cv2
import numpy as np

Size = tuple[int, int]  # (H, W)


def reduced_size(size: Size, *, max_side: int) -> Size:
    """(H, W) with the longest side at most ``max_side``, the aspect ratio kept."""
    height, width = size
    longest = max(height, width)
    if longest <= max_side:
        return height, width
    scale = max_side / longest
    return max(1, round(height * scale)), max(1, round(width * scale))


def reduce_slice(pixels: np.ndarray, *, size: Size) -> np.ndarray:
    """``pixels`` (H, W) as (h, w) = ``size`` float32, by area averaging: each pixel
    is the mean of the pixels it covers, so Hounsfield units stay Hounsfield units.
    Returned as is (float32) when it already has that size."""
    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.shape == tuple(size):
        return pixels
    return cv2.resize(pixels, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def reduction_factor(stored: Size, read: Size) -> float:
    """How many times smaller each side was read (1.0 when not reduced)."""
    return round(max(stored) / max(read), 3)


def reduction_warning(stored: Size, read: Size) -> str:
    """The sentence shown with the study when its slices were read reduced."""
    return (
        f"slices of {stored[1]}x{stored[0]} pixels were read at "
        f"{read[1]}x{read[0]} (reduced {reduction_factor(stored, read):g}x), the "
        "most the model and the viewer use"
    )


def scaled_spacing(
    spacing: tuple[float, float] | None, *, stored: Size, read: Size
) -> tuple[float, float] | None:
    """(row, column) pixel spacing in mm of the reduced slices."""
    if spacing is None:
        return None
    return (
        spacing[0] * stored[0] / read[0],
        spacing[1] * stored[1] / read[1],
    )
