"""Slices as compact data for a viewer that windows them itself.

A viewer that changes window/level as the mouse moves needs the values, not a
picture per window: each slice goes once as little-endian int16, and the viewer
maps ``stored * scale + offset`` back to the volume's units (Hounsfield units for
CT, exactly: ``scale`` 1, ``offset`` 0).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ml.preprocess import WINDOW_PRESETS

_INT16 = (-32768, 32767)
_SAMPLE_STEP = 4  # pixels and slices between samples for a default window


@dataclass(frozen=True)
class SliceEncoding:
    """How int16 values map to the volume's units: ``value = stored * scale +
    offset``."""

    scale: float
    offset: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def slice_encoding(volume: np.ndarray, *, units: str) -> SliceEncoding:
    """The encoding of ``volume`` (D, H, W) in ``units``: identity for Hounsfield
    units and 8-bit pictures (their values fit int16 as they are), else the finite
    range of the volume spread over int16. Reads every value once for the latter."""
    if units in ("HU", "windowed8"):
        return SliceEncoding(scale=1.0, offset=0.0)
    finite = np.asarray(volume, dtype=np.float32)
    low, high = _finite_range(finite)
    if _INT16[0] <= low and high <= _INT16[1] and float(low).is_integer():
        return SliceEncoding(scale=1.0, offset=0.0)
    scale = (high - low) / (_INT16[1] - _INT16[0]) or 1.0
    return SliceEncoding(scale=float(scale), offset=float(low - _INT16[0] * scale))


def encode_slices(
    volume: np.ndarray, *, start: int, stop: int, encoding: SliceEncoding
) -> bytes:
    """Slices ``start`` to ``stop`` (exclusive) of ``volume`` (D, H, W) as
    little-endian int16, slice after slice, row after row; NaN becomes the lowest
    value. Raises ValueError for a range outside the volume."""
    if not 0 <= start < stop <= volume.shape[0]:
        raise ValueError(f"slices {start}-{stop} outside 0-{volume.shape[0]}")
    block = np.asarray(volume[start:stop], dtype=np.float32)
    stored = np.rint((block - encoding.offset) / encoding.scale)
    stored = np.nan_to_num(stored, nan=_INT16[0], posinf=_INT16[1], neginf=_INT16[0])
    return np.clip(stored, *_INT16).astype("<i2").tobytes()


def default_window(volume: np.ndarray, *, units: str) -> tuple[float, float]:
    """(centre, width) the viewer opens with: the brain window for Hounsfield units,
    the whole 0-255 range for 8-bit pictures, else the 1st-99th percentiles of a
    sample of the volume."""
    if units == "HU":
        return WINDOW_PRESETS["brain"]
    if units == "windowed8":
        return (127.5, 255.0)
    sample = np.asarray(volume[::_SAMPLE_STEP, ::_SAMPLE_STEP, ::_SAMPLE_STEP])
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return (0.0, 1.0)
    low, high = np.percentile(sample, [1, 99])
    return (float(low + high) / 2, float(max(high - low, 1e-3)))


def _finite_range(volume: np.ndarray) -> tuple[float, float]:
    low, high = np.nanmin(volume), np.nanmax(volume)
    if not (np.isfinite(low) and np.isfinite(high)):
        finite = volume[np.isfinite(volume)]
        if finite.size == 0:
            return 0.0, 0.0
        low, high = finite.min(), finite.max()
    return float(low), float(high)
