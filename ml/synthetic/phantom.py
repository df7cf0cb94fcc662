"""One synthetic study: anatomy, an optional lesion and noise, slice by slice."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from ml.synthetic.anatomy import Anatomy, draw_anatomy, render_anatomy, slice_frame
from ml.synthetic.lesions import (
    apply_lesion,
    draw_lesion,
    lesion_area,
    lesion_weight,
)

LABELS: tuple[str, ...] = ("normal", "ischemic", "hemorrhagic")
LESION_KINDS: dict[str, tuple[str, ...]] = {
    "normal": ("none",),
    "ischemic": ("infarct",),
    "hemorrhagic": ("intraparenchymal", "subdural"),
}


@dataclass(frozen=True)
class Phantom:
    """One synthetic study.

    ``volume_hu``: (D, H, W) float32, Hounsfield units, slice 0 most inferior.
    ``mask``: (D, H, W) bool lesion mask (all False for "normal").
    ``brain_mask``: (D, H, W) bool intracranial space (inside the inner skull table).
    ``spacing``: (slice, row, column) in mm.
    """

    volume_hu: np.ndarray
    mask: np.ndarray
    brain_mask: np.ndarray
    label: str
    lesion: str
    spacing: tuple[float, float, float]
    seed: int
    details: dict[str, Any] = field(default_factory=dict)


def _texture(
    rng: np.random.Generator, shape: tuple[int, int], sigma: float
) -> np.ndarray:
    white = rng.standard_normal(shape).astype(np.float32)
    smooth = cv2.GaussianBlur(white, (0, 0), sigma)
    return smooth / max(float(smooth.std()), 1e-6)


def _finish_slice(
    rng: np.random.Generator, anat: Anatomy, hu: np.ndarray, intracranial: np.ndarray
) -> np.ndarray:
    soft = intracranial & (hu < 100)
    hu = hu + soft * 1.5 * _texture(rng, hu.shape, 4.0 / anat.pixel_mm)
    hu = cv2.GaussianBlur(hu, (0, 0), 0.6)  # partial-volume edges
    noise = anat.noise_hu * _texture(rng, hu.shape, 0.7)
    return np.clip(hu + noise, -1024.0, 3071.0).astype(np.float32)


def _check_args(label: str, size: int, slices: int, lesion: str | None) -> str:
    if label not in LABELS:
        raise ValueError(f"label must be one of {LABELS}, got {label!r}")
    if size < 32:
        raise ValueError(f"size must be >= 32 pixels, got {size}")
    if slices < 1:
        raise ValueError(f"slices must be >= 1, got {slices}")
    if lesion is not None and lesion not in LESION_KINDS[label]:
        raise ValueError(f"lesion for {label!r} must be one of {LESION_KINDS[label]}")
    return lesion or ""


def make_phantom(
    *,
    label: str = "normal",
    size: int = 256,
    slices: int = 24,
    seed: int = 0,
    lesion: str | None = None,
) -> Phantom:
    """Generate one head-CT phantom, deterministic for a given ``seed``.

    ``label``: "normal", "ischemic" or "hemorrhagic". ``lesion`` narrows the kind
    (hemorrhagic: "intraparenchymal" or "subdural"; default random). Returns a
    :class:`Phantom` with a (slices, size, size) float32 HU volume.
    """
    kind = _check_args(label, size, slices, lesion)
    rng = np.random.default_rng(seed)
    anat = draw_anatomy(rng, size=size, slices=slices)
    kind = kind or str(rng.choice(LESION_KINDS[label]))
    spec = draw_lesion(rng, anat, kind)
    shape = (slices, size, size)
    volume, mask, brain = (
        np.empty(shape, np.float32),
        np.zeros(shape, bool),
        np.zeros(shape, bool),
    )
    for k, z in enumerate(anat.z):
        volume[k], mask[k], brain[k] = _render_slice(rng, anat, spec, float(z))
    spacing = (round(anat.slice_mm, 3), anat.pixel_mm, anat.pixel_mm)
    details = {k: v for k, v in spec.items() if k != "kind"}
    return Phantom(volume, mask, brain, label, kind, spacing, seed, details)


def _render_slice(
    rng: np.random.Generator, anat: Anatomy, spec: dict[str, Any], z: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = slice_frame(anat, z)
    hu, intracranial = render_anatomy(anat, s)
    weight = lesion_weight(anat, s, spec)
    mask = np.zeros(hu.shape, bool)
    if weight.any():
        allowed = lesion_area(anat, s, spec, intracranial).astype(np.float32)
        mask = apply_lesion(hu, weight, spec, allowed) & intracranial
    return _finish_slice(rng, anat, hu, intracranial), mask, intracranial
