"""What a reader sees: a slice and the model's maps as display arrays.

Arrays in, arrays out; encoding them (PNG for the viewer, JPEG for the PDF, pixels
for DICOM) is the caller's. Grey slices are (H, W) uint8, drawings laid over them
(H, W, 4) uint8 RGBA whose alpha says how much of the drawing shows, and pictures
(H, W, 3) uint8 RGB.

- :func:`window_slice`: a slice of any supported unit as grey, windowed by
  :mod:`ml.preprocess` (the windowing the model reads its input through).
- :func:`heatmap_rgba`: a map in [0, 1] as a colour map, alpha following the map.
- :func:`contour_rgba`: the outline of a lesion probability map at a level.
- :func:`blend`: such a drawing over a grey or RGB slice at an opacity.
- :func:`overlay`: a heatmap of any size blended over a slice in one call.
"""

from __future__ import annotations

import cv2
import numpy as np

from ml.preprocess import (
    WINDOW_PRESETS,
    apply_window,
    percentile_normalise,
    to_uint8,
    to_unit_range,
)

#: Colour maps :func:`heatmap_rgba` accepts, by name.
COLORMAPS: dict[str, int] = {
    "jet": cv2.COLORMAP_JET,
    "turbo": cv2.COLORMAP_TURBO,
    "inferno": cv2.COLORMAP_INFERNO,
    "viridis": cv2.COLORMAP_VIRIDIS,
    "hot": cv2.COLORMAP_HOT,
}
#: (centre, width) in Hounsfield units of the window slices are read in by default.
BRAIN_WINDOW: tuple[float, float] = WINDOW_PRESETS["brain"]
#: A drawing whose most opaque pixel is fainter than this (of 255) shows nothing, on
#: screen or on paper, so it is no map: :func:`heatmap_rgba` gives None for it.
MIN_VISIBLE_ALPHA = 8
#: Outline colour and its faint fill (RGBA): yellow stands out on a grey CT and is
#: not the red of a danger badge.
CONTOUR_RGBA: tuple[int, int, int, int] = (255, 221, 0, 255)
CONTOUR_FILL_ALPHA = 48
CONTOUR_THICKNESS = 2  # pixels


def window_slice(
    image: np.ndarray, *, units: str, centre: float | None, width: float | None
) -> np.ndarray:
    """One slice as 8-bit grey for display.

    ``image``: (H, W) pixels in ``units`` (see ``ml.preprocess.UNITS``). Hounsfield
    units go through the window ``centre``/``width`` (HU), or through the 1st-99th
    percentiles when both are None; ``"windowed8"`` (0..255) is shown as it came,
    clipped to 0..255; ``"raw16"`` and ``"intensity"`` are scaled by percentiles.
    Returns (H, W) uint8.
    """
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"image must be (H, W), got shape {arr.shape}")
    if (centre is None) != (width is None):
        raise ValueError("give both the window centre and width, or neither")
    if units == "HU":
        if centre is None or width is None:
            return to_uint8(percentile_normalise(arr))
        return to_uint8(apply_window(arr, center=centre, width=width))
    if units == "windowed8":
        # The model refuses such pixels; a picture of them shows what it can.
        arr = np.clip(arr, 0.0, 255.0)
    return to_uint8(to_unit_range(arr, units=units))


def heatmap_rgba(heatmap: np.ndarray, *, colormap: str = "jet") -> np.ndarray | None:
    """A map as a colour map to lay over its slice.

    ``heatmap``: (H, W) in [0, 1] (NaN counts as 0; values outside are clipped).
    Returns (H, W, 4) uint8 RGBA: the colour of ``colormap``, alpha the square root
    of the map (so faint evidence stays visible and cold areas are see-through); or
    None when no pixel would reach ``MIN_VISIBLE_ALPHA``.
    """
    code = _colormap(colormap)
    values = _map_values(heatmap)
    alpha = (np.sqrt(values) * 255).astype(np.uint8)
    if not alpha.size or alpha.max() < MIN_VISIBLE_ALPHA:
        return None
    colours = cv2.applyColorMap((values * 255).astype(np.uint8), code)
    return np.dstack([colours[..., ::-1], alpha])


def contour_rgba(lesion: np.ndarray, *, level: float = 0.5) -> np.ndarray | None:
    """The outline of a lesion to lay over its slice.

    ``lesion``: (H, W) lesion probability (NaN counts as 0). Returns (H, W, 4) uint8
    RGBA: a ``CONTOUR_THICKNESS``-pixel line of ``CONTOUR_RGBA`` along the edge of
    ``lesion >= level``, a faint fill (``CONTOUR_FILL_ALPHA``) inside it and
    transparent elsewhere; None when no pixel reaches ``level``.
    """
    mask = (_finite(lesion) >= level).astype(np.uint8)
    if not mask.any():
        return None
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    rgba = np.zeros((*mask.shape, 4), np.uint8)
    rgba[mask > 0] = (*CONTOUR_RGBA[:3], CONTOUR_FILL_ALPHA)
    cv2.drawContours(rgba, contours, -1, CONTOUR_RGBA, thickness=CONTOUR_THICKNESS)
    return rgba


def is_visible(rgba: np.ndarray) -> bool:
    """Whether any pixel of a (H, W, 4) RGBA drawing reaches ``MIN_VISIBLE_ALPHA``."""
    alpha = np.asarray(rgba)[..., 3]
    return bool(alpha.size) and int(alpha.max()) >= MIN_VISIBLE_ALPHA


def blend(
    base: np.ndarray, rgba: np.ndarray | None, *, opacity: float = 1.0
) -> np.ndarray:
    """A drawing laid over a slice.

    ``base``: (H, W) or (H, W, 1|3), grey or RGB, uint8 or float in [0, 1].
    ``rgba``: (H, W, 4) uint8, or None for none. Each pixel takes the drawing's
    colour at its alpha times ``opacity`` (in [0, 1]): 0 gives the slice unchanged,
    1 the drawing at its own alpha. Returns (H, W, 3) uint8 RGB.
    """
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    rgb = _as_rgb(base)
    if rgba is None:
        return rgb.astype(np.uint8)
    drawing = np.asarray(rgba)
    if drawing.shape != (*rgb.shape[:2], 4):
        raise ValueError(
            f"rgba must be (H, W, 4) of the base {rgb.shape[:2]}, got {drawing.shape}"
        )
    alpha = drawing[..., 3:].astype(np.float32) * np.float32(opacity / 255.0)
    out = rgb * (1.0 - alpha) + drawing[..., :3].astype(np.float32) * alpha
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def overlay(
    slice_image: np.ndarray,
    heatmap: np.ndarray,
    *,
    colormap: str = "jet",
    opacity: float = 0.4,
) -> np.ndarray:
    """A heatmap blended over a slice: (H, W, 3) uint8 RGB.

    ``slice_image`` as ``base`` of :func:`blend` (already windowed for display).
    ``heatmap``: (h, w) in [0, 1], resized to (H, W) (e.g. a Grad-CAM map at the
    model input size). ``opacity`` is the weight of the colour where the map is 1.
    """
    size = _as_rgb(slice_image).shape[:2]
    heat = _resize(_map_values(heatmap), size)
    return blend(slice_image, heatmap_rgba(heat, colormap=colormap), opacity=opacity)


def _colormap(name: str) -> int:
    if name not in COLORMAPS:
        raise ValueError(f"unknown colormap {name!r}; choose from {sorted(COLORMAPS)}")
    return COLORMAPS[name]


def _finite(values: np.ndarray) -> np.ndarray:
    arr = np.nan_to_num(np.asarray(values, dtype=np.float32))
    if arr.ndim != 2:
        raise ValueError(f"a map must be (H, W), got shape {arr.shape}")
    return arr


def _map_values(heatmap: np.ndarray) -> np.ndarray:
    return np.clip(_finite(heatmap), 0.0, 1.0)


def _resize(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if values.shape == size:
        return values
    height, width = size
    return cv2.resize(values, (width, height), interpolation=cv2.INTER_LINEAR)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    # (H, W, 3) float32 0..255 of a grey or RGB image, uint8 or float in [0, 1].
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] != 3):
        raise ValueError(f"a slice must be (H, W) or (H, W, 1|3), got {arr.shape}")
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(np.asarray(arr, np.float32) * 255.0), 0, 255)
    arr = arr.astype(np.float32)
    return np.repeat(arr[..., None], 3, axis=-1) if arr.ndim == 2 else arr
