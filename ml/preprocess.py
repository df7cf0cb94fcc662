"""Turn a study's pixels into model input: window, crop, denoise, equalise, resize.

Pure numpy/OpenCV. Every image handled here is float32 in [0, 1] unless a docstring
says otherwise; volumes are (D, H, W) and model input is (D, S, S, C).

The chain of :func:`preprocess_study` per slice is: units → [0, 1] (window for
Hounsfield units, /255 for images that arrive already windowed, percentiles for
MR/raw data) → head crop → letterbox resize → denoise → CLAHE → clip to [0, 1].
Resizing comes before denoising and CLAHE so that both run on the small image.
With ``PreprocessConfig.brain`` the crop and resize are replaced by
:func:`ml.brain.brain_study`: the slice aligned on its midline, skull stripped.
Either way the geometric part is one affine per slice, returned with the input
(:class:`PreparedInput`), so a map on the input goes back onto the slice.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ml.brain import BrainConfig, brain_study

#: Window presets as (centre, width) in Hounsfield units.
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "stroke": (40.0, 40.0),
    "subdural": (80.0, 200.0),
    "bone": (600.0, 2800.0),
}
#: The three windows stacked by :func:`multi_window`, in channel order.
MULTI_WINDOWS: tuple[str, str, str] = ("brain", "subdural", "bone")
#: Pixel units a loader may report (see ``ml.io``).
UNITS: tuple[str, ...] = ("HU", "intensity", "windowed8", "raw16")
DENOISE_KINDS: tuple[str, ...] = ("none", "gaussian", "median")


# --- intensity -------------------------------------------------------------------


def apply_window(hu: np.ndarray, *, center: float, width: float) -> np.ndarray:
    """Map Hounsfield units linearly to [0, 1] through a window.

    ``hu``: any shape, Hounsfield units. Returns float32 of the same shape; values
    below ``center - width/2`` become 0 and above ``center + width/2`` become 1.
    """
    if not width > 0:
        raise ValueError(f"window width must be positive, got {width}")
    low = center - width / 2.0
    out = (np.asarray(hu, dtype=np.float32) - np.float32(low)) / np.float32(width)
    return np.clip(out, 0.0, 1.0, out=out)


def window_by_name(hu: np.ndarray, *, name: str) -> np.ndarray:
    """Apply the window preset ``name`` (see ``WINDOW_PRESETS``); float32 in [0, 1]."""
    if name not in WINDOW_PRESETS:
        raise ValueError(
            f"unknown window {name!r}; choose from {sorted(WINDOW_PRESETS)}"
        )
    center, width = WINDOW_PRESETS[name]
    return apply_window(hu, center=center, width=width)


def multi_window(hu: np.ndarray) -> np.ndarray:
    """Stack the brain, subdural and bone windows as channels.

    ``hu``: (..., H, W) Hounsfield units. Returns (..., H, W, 3) float32 in [0, 1].
    """
    channels = [window_by_name(hu, name=n) for n in MULTI_WINDOWS]
    if np.ndim(hu) == 2:
        return cv2.merge(channels)  # several times faster than np.stack for 2-D
    return np.stack(channels, axis=-1)


def percentile_normalise(
    image: np.ndarray, *, low: float = 1.0, high: float = 99.0
) -> np.ndarray:
    """Scale so the ``low``/``high`` percentiles map to 0/1, clipped; float32.

    Used for data without a calibrated scale (MR intensities, raw 16-bit images).
    A constant image maps to zeros.
    """
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"need 0 <= low < high <= 100, got low={low}, high={high}")
    arr = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(arr, [low, high])
    if hi <= lo:
        return np.zeros_like(arr)
    out = (arr - np.float32(lo)) / np.float32(hi - lo)
    return np.clip(out, 0.0, 1.0, out=out)


def to_unit_range(
    volume: np.ndarray, *, units: str, window: str | tuple[float, float] = "brain"
) -> np.ndarray:
    """Bring pixels of any supported unit to float32 [0, 1], windowing only once.

    ``units``: ``"HU"`` → window (a preset name, ``"multi"`` for the 3-window stack
    with a trailing channel axis, or a (centre, width) pair); ``"windowed8"`` (images
    that arrive already windowed, 0..255) → divided by 255, never re-windowed;
    ``"raw16"`` and ``"intensity"`` → 1st-99th percentile over the whole array.
    """
    if units not in UNITS:
        raise ValueError(f"unknown units {units!r}; choose from {list(UNITS)}")
    if units == "HU":
        return _window_hu(volume, window)
    if units == "windowed8":
        return _scale_windowed8(volume)
    return percentile_normalise(volume)


def _window_hu(hu: np.ndarray, window: str | tuple[float, float]) -> np.ndarray:
    if isinstance(window, str):
        return (
            multi_window(hu) if window == "multi" else window_by_name(hu, name=window)
        )
    center, width = window
    return apply_window(hu, center=center, width=width)


def _scale_windowed8(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image, dtype=np.float32)
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise ValueError(
            f"windowed8 pixels must lie in 0..255, got {arr.min():g}..{arr.max():g}"
        )
    return arr * np.float32(1.0 / 255.0)


# --- filters ---------------------------------------------------------------------


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Convert a [0, 1] float image to uint8 0..255 (rounded, clipped)."""
    return np.clip(np.rint(np.asarray(image) * 255.0), 0, 255).astype(np.uint8)


def apply_clahe(
    image: np.ndarray, *, clip_limit: float = 2.0, tile_grid: int = 8
) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation.

    ``image``: (H, W) or (H, W, C) float in [0, 1]; each channel is equalised on
    uint8 with ``cv2.createCLAHE``. Returns float32 in [0, 1], same shape.
    """
    if clip_limit <= 0 or tile_grid < 1:
        raise ValueError(f"bad CLAHE clip_limit={clip_limit} / tile_grid={tile_grid}")
    clahe = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tile_grid, tile_grid))
    u8 = to_uint8(image)
    if u8.ndim == 2:
        return clahe.apply(u8).astype(np.float32) / np.float32(255.0)
    channels = [
        clahe.apply(np.ascontiguousarray(u8[..., c])) for c in range(u8.shape[-1])
    ]
    return np.stack(channels, axis=-1).astype(np.float32) / np.float32(255.0)


def denoise(image: np.ndarray, *, kind: str, ksize: int = 3) -> np.ndarray:
    """Denoise a float32 (H, W[, C]) image with a Gaussian or median filter.

    ``kind``: ``"none"``, ``"gaussian"`` or ``"median"``; ``ksize`` odd (median: 3 or
    5, the sizes OpenCV supports for float images). Returns float32, same shape.
    """
    if kind not in DENOISE_KINDS:
        raise ValueError(f"unknown denoise kind {kind!r}; choose from {DENOISE_KINDS}")
    if ksize < 1 or ksize % 2 == 0:
        raise ValueError(f"ksize must be a positive odd number, got {ksize}")
    img = np.ascontiguousarray(image, dtype=np.float32)
    if kind == "gaussian":
        return _keep_shape(cv2.GaussianBlur(img, (ksize, ksize), 0), img)
    if kind == "median":
        if ksize not in (3, 5):
            raise ValueError(
                f"median ksize must be 3 or 5 for float images, got {ksize}"
            )
        return _keep_shape(cv2.medianBlur(img, ksize), img)
    return img


def _keep_shape(result: np.ndarray, like: np.ndarray) -> np.ndarray:
    # OpenCV drops a trailing channel axis of length 1.
    return result.reshape(like.shape)


# --- geometry --------------------------------------------------------------------


def head_mask(image: np.ndarray, *, threshold: float = 0.05) -> np.ndarray:
    """Mask of the head: the largest connected region above ``threshold``, holes filled.

    ``image``: (H, W) or (H, W, C) float in [0, 1]; of several channels only the first
    is used (the brain window of a :func:`multi_window` stack). A small opening first
    detaches thin structures such as the scanner table. Returns (H, W) bool; all
    False when nothing exceeds the threshold.
    """
    gray = image[..., 0] if image.ndim == 3 else image
    above = (np.asarray(gray) > threshold).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    opened = cv2.morphologyEx(above, cv2.MORPH_OPEN, kernel)
    return _fill_holes(_largest_component(opened))


def _largest_component(binary: np.ndarray) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if count <= 1:
        return np.zeros(binary.shape, dtype=np.uint8)
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return (labels == biggest).astype(np.uint8)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    # Flood the background from a padded corner; whatever it cannot reach is a hole.
    padded = np.pad(mask, 1).astype(np.uint8)
    flood = np.zeros((padded.shape[0] + 2, padded.shape[1] + 2), dtype=np.uint8)
    cv2.floodFill(padded, flood, (0, 0), 2)
    return (padded != 2)[1:-1, 1:-1]


def head_bbox(mask: np.ndarray, *, margin: float = 0.05) -> tuple[int, int, int, int]:
    """Bounding box ``(y0, y1, x0, x1)`` (half-open) of a (H, W) mask plus a margin.

    ``margin`` is a fraction of the box's longer side. An empty mask gives the
    whole image.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    height, width = mask.shape[:2]
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return 0, height, 0, width
    pad = math.ceil(margin * max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1))
    return (
        max(0, int(rows[0]) - pad),
        min(height, int(rows[-1]) + 1 + pad),
        max(0, int(cols[0]) - pad),
        min(width, int(cols[-1]) + 1 + pad),
    )


def crop_to_head(
    image: np.ndarray, mask: np.ndarray, *, margin: float = 0.05
) -> np.ndarray:
    """Crop (H, W[, C]) ``image`` to the bounding box of ``mask`` plus ``margin``.

    Removes the black border around the head so it does not dominate the resized
    input. An empty mask returns the image unchanged.
    """
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} != image shape {image.shape[:2]}")
    y0, y1, x0, x1 = head_bbox(mask, margin=margin)
    return image[y0:y1, x0:x1]


def resize_keep_aspect(
    image: np.ndarray, *, size: int, pad_value: float = 0.0
) -> np.ndarray:
    """Resize so the longer side is ``size``, then pad (centred) to ``size x size``.

    ``image``: (H, W) or (H, W, C). Area interpolation when shrinking, linear when
    enlarging. Returns (size, size[, C]) with the input's dtype.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"cannot resize an empty image of shape {image.shape}")
    new_h, new_w, top, left = _letterbox(height, width, size)
    interp = cv2.INTER_AREA if size < max(height, width) else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interp)
    resized = resized.reshape((new_h, new_w, *image.shape[2:]))
    out = np.full((size, size, *image.shape[2:]), pad_value, dtype=image.dtype)
    out[top : top + new_h, left : left + new_w] = resized
    return out


def _letterbox(height: int, width: int, size: int) -> tuple[int, int, int, int]:
    """(new height, new width, top, left) of a (height, width) image letterboxed
    into (size, size): the longer side becomes ``size``, the other is centred."""
    scale = size / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    return new_h, new_w, (size - new_h) // 2, (size - new_w) // 2


def letterbox_matrix(box: tuple[int, int, int, int], *, size: int) -> np.ndarray:
    """(2, 3) float64 affine from slice (x, y) to input (x, y) of a crop to ``box``
    (y0, y1, x0, x1) followed by :func:`resize_keep_aspect` to ``size``.

    Pixel centres as ``cv2.resize`` maps them: x' = (x - x0 + 0.5) * s - 0.5.
    """
    y0, y1, x0, x1 = box
    new_h, new_w, top, left = _letterbox(y1 - y0, x1 - x0, size)
    sy, sx = new_h / (y1 - y0), new_w / (x1 - x0)
    return np.array(
        [
            [sx, 0.0, left + (0.5 - x0) * sx - 0.5],
            [0.0, sy, top + (0.5 - y0) * sy - 0.5],
        ]
    )


# --- the chain -------------------------------------------------------------------


@dataclass(frozen=True)
class PreprocessConfig:
    """How a study becomes model input; stored in model.json via :meth:`to_dict`.

    ``window``: a ``WINDOW_PRESETS`` name or ``"multi"`` (brain/subdural/bone as
    three channels; needs ``channels=3``). ``size``: output side in pixels.
    ``channels``: 1, or 3 (a single window is repeated). ``denoise``: one of
    ``DENOISE_KINDS``. ``crop``: crop each slice to its own head bounding box.
    ``brain``: read each slice through :func:`ml.brain.brain_study` instead
    (aligned on its midline, skull stripped, in the brain window of ``ml.brain``:
    level 40 / width 120 HU); ``window`` must then be ``"brain"``, ``crop`` is not
    used and ``size`` is at least 32. Cards written before it load as False.
    """

    window: str = "brain"
    size: int = 224
    clahe: bool = False
    denoise: str = "none"
    crop: bool = True
    channels: int = 1
    brain: bool = False

    def __post_init__(self) -> None:
        if self.window != "multi" and self.window not in WINDOW_PRESETS:
            raise ValueError(
                f"unknown window {self.window!r}; choose 'multi' or one of "
                f"{sorted(WINDOW_PRESETS)}"
            )
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.window == "multi" and self.channels != 3:
            raise ValueError("window 'multi' produces 3 channels; set channels=3")
        if not isinstance(self.size, int) or self.size < 8:
            raise ValueError(f"size must be an int >= 8, got {self.size!r}")
        if self.denoise not in DENOISE_KINDS:
            raise ValueError(
                f"denoise must be one of {DENOISE_KINDS}, got {self.denoise!r}"
            )
        if self.brain and self.window != "brain":
            raise ValueError(
                f"brain=True reads the brain window (level 40 / width 120) of "
                f"ml.brain; set window='brain', got {self.window!r}"
            )
        if self.brain and self.size < 32:
            raise ValueError(f"brain=True needs size >= 32, got {self.size}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of JSON-serialisable fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PreprocessConfig:
        """Inverse of :meth:`to_dict`; unknown keys are a ValueError."""
        return cls(**_checked_fields(cls, data))


def _checked_fields(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {unknown}")
    return dict(data)


@dataclass(frozen=True)
class PreparedInput:
    """A study made model input, and how each slice got there.

    ``x``: (D, S, S, C) float32 in [0, 1]. ``matrices``: (D, 2, 3) float64 affines
    from slice (x, y) pixels to input (x, y) pixels (crop + letterbox, or the brain
    alignment); ``ml.inference.geometry.input_to_slice`` inverts them.
    ``brain_slices``: (D,) bool, the slices with enough brain to decide a study
    (``config.brain`` only; None otherwise).
    """

    x: np.ndarray
    matrices: np.ndarray
    brain_slices: np.ndarray | None = None


def preprocess_slice(image: np.ndarray, *, config: PreprocessConfig) -> np.ndarray:
    """Apply crop → resize → denoise → CLAHE to one [0, 1] slice.

    ``image``: (H, W) or (H, W, C) float32 in [0, 1], as from :func:`to_unit_range`.
    The crop box comes from this slice's own head mask. Returns (S, S, C) float32.
    """
    return _prepare_slice(image, config=config)[0]


def _prepare_slice(
    image: np.ndarray, *, config: PreprocessConfig
) -> tuple[np.ndarray, np.ndarray]:
    # The model input of one slice and its (2, 3) slice -> input affine.
    height, width = image.shape[:2]
    box = head_box_fast(image) if config.crop else (0, height, 0, width)
    y0, y1, x0, x1 = box
    finished = _finish_slice(image[y0:y1, x0:x1], config=config)
    return finished, letterbox_matrix(box, size=config.size)


def head_box_fast(
    image: np.ndarray, *, margin: float = 0.05, work_side: int = 128
) -> tuple[int, int, int, int]:
    """:func:`head_bbox` of :func:`head_mask`, computed on a copy about ``work_side``
    pixels wide and scaled back: a few times faster, and exact enough for a crop.

    ``image``: (H, W) or (H, W, C) float in [0, 1]. Returns (y0, y1, x0, x1).
    """
    gray = image[..., 0] if image.ndim == 3 else image
    height, width = gray.shape
    factor = max(1, max(height, width) // work_side)
    if factor == 1:
        return head_bbox(head_mask(gray), margin=margin)
    small = cv2.resize(
        np.ascontiguousarray(gray),
        (width // factor, height // factor),
        interpolation=cv2.INTER_AREA,
    )
    y0, y1, x0, x1 = head_bbox(head_mask(small), margin=margin)
    if (y0, y1, x0, x1) == (0, small.shape[0], 0, small.shape[1]):
        return 0, height, 0, width
    return (
        y0 * factor,
        min(height, y1 * factor + factor),
        x0 * factor,
        min(width, x1 * factor + factor),
    )


def _finish_slice(image: np.ndarray, *, config: PreprocessConfig) -> np.ndarray:
    img = resize_keep_aspect(np.ascontiguousarray(image), size=config.size)
    return _filter_slice(img, config=config)


def _filter_slice(img: np.ndarray, *, config: PreprocessConfig) -> np.ndarray:
    # Denoise -> CLAHE -> clip -> channels, on an image already (S, S).
    img = denoise(img, kind=config.denoise)
    if config.clahe:
        img = apply_clahe(img)
    img = np.clip(img, 0.0, 1.0)
    return _with_channels(img, config.channels)


def _with_channels(image: np.ndarray, channels: int) -> np.ndarray:
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == channels:
        return image.astype(np.float32, copy=False)
    return np.repeat(image, channels, axis=-1).astype(np.float32, copy=False)


def _multi_window_slice(
    hu: np.ndarray, *, config: PreprocessConfig
) -> tuple[np.ndarray, np.ndarray]:
    # Crop in HU first: windowing three channels of the small crop is much cheaper
    # than windowing the whole slice.
    height, width = hu.shape
    box = (0, height, 0, width)
    if config.crop:
        box = head_box_fast(window_by_name(hu, name="brain"))
    y0, y1, x0, x1 = box
    crop = multi_window(np.ascontiguousarray(hu[y0:y1, x0:x1]))
    return _finish_slice(crop, config=config), letterbox_matrix(box, size=config.size)


def preprocess_volume(
    volume: np.ndarray, *, units: str, config: PreprocessConfig
) -> np.ndarray:
    """Turn a (D, H, W) study into model input (D, S, S, C) float32 in [0, 1].

    The ``x`` of :func:`preprocess_study`, for callers that need only the input.
    """
    return preprocess_study(volume, units=units, config=config).x


def preprocess_study(
    volume: np.ndarray, *, units: str, config: PreprocessConfig
) -> PreparedInput:
    """Turn a (D, H, W) study into model input and say how each slice mapped.

    ``units`` as reported by the loader (see :func:`to_unit_range`). With
    ``config.window == "multi"`` a non-HU volume cannot be re-windowed, so its single
    normalised channel is repeated. Each slice is cropped to its own head box (from
    the brain window for HU): head size changes from skull base to vertex, and a
    per-slice box fills the input. With ``config.brain`` each slice is instead the
    aligned brain of :func:`ml.brain.brain_study`, 0 outside the brain mask.
    Returns a :class:`PreparedInput`: x (D, S, S, C) float32 in [0, 1] and one
    slice -> input affine per slice.
    """
    if volume.ndim != 3:
        raise ValueError(f"volume must be (D, H, W), got shape {volume.shape}")
    if config.brain:
        return _brain_input(volume, units=units, config=config)
    if units == "HU" and config.window == "multi":
        done = (_multi_window_slice(hu, config=config) for hu in volume)
    else:
        window = config.window if units == "HU" else "brain"
        unit = to_unit_range(volume, units=units, window=window)
        done = (_prepare_slice(image, config=config) for image in unit)
    out = np.empty((len(volume), config.size, config.size, config.channels), np.float32)
    matrices = np.empty((len(volume), 2, 3), np.float64)
    for k, (image, matrix) in enumerate(done):
        out[k], matrices[k] = image, matrix
    return PreparedInput(x=out, matrices=matrices)


def _brain_input(
    volume: np.ndarray, *, units: str, config: PreprocessConfig
) -> PreparedInput:
    # The aligned slices already have the input's size: no crop, no resize.
    if units not in UNITS:
        raise ValueError(f"unknown units {units!r}; choose from {list(UNITS)}")
    study = brain_study(volume, units=units, config=BrainConfig(size=config.size))
    out = np.empty((len(volume), config.size, config.size, config.channels), np.float32)
    for k, aligned in enumerate(study.slices):
        stripped = np.where(aligned.brain, aligned.image, np.float32(0.0))
        out[k] = _filter_slice(stripped, config=config)
    matrices = np.stack([s.matrix for s in study.slices]).astype(np.float64)
    return PreparedInput(x=out, matrices=matrices, brain_slices=study.is_brain.copy())


# --- augmentation ----------------------------------------------------------------


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and magnitudes of training-time augmentations.

    Rotation in degrees, shift as a fraction of the side, zoom as a scale range,
    brightness as an additive offset and contrast as a multiplicative range (both on
    [0, 1] images), noise as the standard deviation of additive Gaussian noise.
    """

    hflip_prob: float = 0.5
    vflip_prob: float = 0.0
    rotate_prob: float = 0.5
    max_rotate_deg: float = 10.0
    shift_prob: float = 0.5
    max_shift: float = 0.05
    zoom_prob: float = 0.3
    zoom_range: tuple[float, float] = (0.9, 1.1)
    intensity_prob: float = 0.5
    max_brightness: float = 0.1
    contrast_range: tuple[float, float] = (0.9, 1.1)
    noise_prob: float = 0.3
    noise_std: float = 0.02

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name.endswith("_prob") and not 0.0 <= value <= 1.0:
                raise ValueError(f"{field.name} must be in [0, 1], got {value}")
        for name in ("zoom_range", "contrast_range"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(
                    f"{name} must satisfy 0 < low <= high, got {low, high}"
                )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of JSON-serialisable fields (ranges as lists)."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in vars(self).items()
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AugmentConfig:
        """Inverse of :meth:`to_dict`; unknown keys are a ValueError."""
        fields = _checked_fields(cls, data)
        ranges = {k: tuple(v) for k, v in fields.items() if k.endswith("_range")}
        return cls(**{**fields, **ranges})


def augment(
    image: np.ndarray, *, rng: np.random.Generator, config: AugmentConfig | None = None
) -> np.ndarray:
    """Randomly flip, rotate, shift, zoom, change brightness/contrast and add noise.

    ``image``: (H, W) or (H, W, C) float32 in [0, 1]. Deterministic for a given
    ``rng`` state. Returns float32 in [0, 1] with the same shape.
    """
    cfg = config or AugmentConfig()
    img = np.asarray(image, dtype=np.float32)
    if rng.random() < cfg.hflip_prob:
        img = img[:, ::-1]
    if rng.random() < cfg.vflip_prob:
        img = img[::-1]
    img = _random_affine(img, rng=rng, cfg=cfg)
    img = _random_intensity(img, rng=rng, cfg=cfg)
    return np.clip(img, 0.0, 1.0).astype(np.float32, copy=False)


def _random_affine(
    img: np.ndarray, *, rng: np.random.Generator, cfg: AugmentConfig
) -> np.ndarray:
    angle = _maybe(
        rng, cfg.rotate_prob, rng.uniform, -cfg.max_rotate_deg, cfg.max_rotate_deg
    )
    zoom = _maybe(rng, cfg.zoom_prob, rng.uniform, *cfg.zoom_range, default=1.0)
    shift = _maybe(rng, cfg.shift_prob, rng.uniform, -cfg.max_shift, cfg.max_shift, 2)
    if angle == 0.0 and zoom == 1.0 and np.all(shift == 0.0):
        return np.ascontiguousarray(img)
    height, width = img.shape[:2]
    matrix = np.array(
        cv2.getRotationMatrix2D((width / 2.0, height / 2.0), float(angle), zoom),
        dtype=np.float64,
    )
    matrix[:, 2] += np.asarray(shift, dtype=np.float64) * (width, height)
    warped = cv2.warpAffine(
        np.ascontiguousarray(img),
        matrix,
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    )
    return warped.reshape(img.shape)


def _random_intensity(
    img: np.ndarray, *, rng: np.random.Generator, cfg: AugmentConfig
) -> np.ndarray:
    if rng.random() < cfg.intensity_prob:
        contrast = rng.uniform(*cfg.contrast_range)
        brightness = rng.uniform(-cfg.max_brightness, cfg.max_brightness)
        img = (img - 0.5) * np.float32(contrast) + np.float32(0.5 + brightness)
    if rng.random() < cfg.noise_prob:
        img = img + rng.normal(0.0, cfg.noise_std, img.shape).astype(np.float32)
    return img


def _maybe(
    rng: np.random.Generator, prob: float, draw: Any, *args: Any, default: Any = 0.0
) -> Any:
    return draw(*args) if rng.random() < prob else default
