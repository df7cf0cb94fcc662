"""Phantom anatomy: a head's random shape parameters and one axial slice in HU.

Coordinates are in mm in the head's own frame; ``z`` is the normalised height from
the skull base (0) to the vertex (1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

FOV_MM = 240.0  # field of view across the image
HEAD_HEIGHT_MM = 150.0  # skull base to vertex, the range z in [0, 1] spans
SKULL_BASE_Z = 0.33  # below this height slices show petrous bone and sinus air
HU_AIR, HU_CSF, HU_GREY, HU_WHITE, HU_SCALP = -1000.0, 6.0, 39.0, 27.0, 40.0


@dataclass(frozen=True)
class Anatomy:
    """Per-study random shape parameters (mm unless stated)."""

    size: int
    z: np.ndarray  # (D,) normalised height of each slice, 0 = skull base
    half_lr: float
    half_ap: float
    angle: float  # radians
    shift: tuple[float, float]
    scalp: float
    skull: float
    cortical_hu: float
    diploe_hu: float
    ventricle_scale: float
    gyri: int
    gyral_phase: float
    noise_hu: float

    @property
    def pixel_mm(self) -> float:
        return FOV_MM / self.size

    @property
    def slice_mm(self) -> float:
        return float(self.z[1] - self.z[0]) * HEAD_HEIGHT_MM if len(self.z) > 1 else 5.0


@dataclass(frozen=True)
class SliceFrame:
    """Coordinates of one slice in the head's own frame (mm) and derived radii."""

    x: np.ndarray  # patient left-right, + towards image right
    y: np.ndarray  # anterior (-) to posterior (+)
    z: float  # normalised height
    r_head: np.ndarray
    r_outer: np.ndarray  # skull outer table
    r_inner: np.ndarray  # skull inner table
    r_brain: np.ndarray
    rho: np.ndarray  # distance from the head centre, mm
    phi: np.ndarray  # polar angle, radians


def draw_anatomy(rng: np.random.Generator, *, size: int, slices: int) -> Anatomy:
    """One head's random shape for ``slices`` slices of ``size`` px (uses ``rng``)."""
    z_lo, z_hi = rng.uniform(0.12, 0.2), rng.uniform(0.86, 0.93)
    return Anatomy(
        size=size,
        z=np.linspace(z_lo, z_hi, slices),
        half_lr=rng.uniform(66, 76),
        half_ap=rng.uniform(86, 96),
        angle=math.radians(rng.normal(0, 4)),
        shift=(rng.uniform(-8, 8), rng.uniform(-8, 8)),
        scalp=rng.uniform(4, 6),
        skull=rng.uniform(5, 7.5),
        cortical_hu=rng.uniform(1300, 1600),
        diploe_hu=rng.uniform(650, 850),
        ventricle_scale=rng.uniform(0.8, 1.35),
        gyri=int(rng.integers(16, 24)),
        gyral_phase=rng.uniform(0, 2 * math.pi),
        noise_hu=rng.uniform(2, 4),
    )


def _profile(z: float) -> float:
    """Relative size of the axial head section at height z (an ellipsoid cap)."""
    return math.sqrt(max(0.04, 1 - ((z - 0.42) / 0.6) ** 2))


def ellipse_r(x: np.ndarray, y: np.ndarray, lr: Any, ap: Any) -> np.ndarray:
    """Normalised elliptic radius of each point: < 1 inside semi-axes (lr, ap)."""
    return np.sqrt((x / np.maximum(lr, 1e-3)) ** 2 + (y / np.maximum(ap, 1e-3)) ** 2)


def slice_frame(anat: Anatomy, z: float) -> SliceFrame:
    """The (size, size) coordinate grids and tissue radii of the slice at height z."""
    coords = (np.arange(anat.size) - (anat.size - 1) / 2) * anat.pixel_mm
    rows, cols = np.meshgrid(coords, coords, indexing="ij")
    cos, sin = math.cos(anat.angle), math.sin(anat.angle)
    x0, y0 = cols - anat.shift[0], rows - anat.shift[1]
    x, y = (
        (cos * x0 + sin * y0).astype(np.float32),
        (cos * y0 - sin * x0).astype(np.float32),
    )
    scale = _profile(z)
    lr = anat.half_lr * scale * (1 + 0.07 * np.clip(y / anat.half_ap, -1, 1))
    ap = anat.half_ap * scale
    # Tangential cuts near the vertex make the skull look thicker.
    skull = anat.skull / math.sqrt(scale)
    depths = (0.0, anat.scalp, anat.scalp + skull, anat.scalp + skull + 1.5)
    head, outer, inner, brain = (ellipse_r(x, y, lr - d, ap - d) for d in depths)
    phi = np.arctan2(y / ap, x / anat.half_lr).astype(np.float32)
    return SliceFrame(x, y, z, head, outer, inner, brain, np.hypot(x, y), phi)


def _skull_hu(anat: Anatomy, s: SliceFrame) -> np.ndarray:
    # Position across the bone: 0 at the inner table, 1 at the outer table.
    t = np.clip((s.r_inner - 1) / np.maximum(s.r_inner - s.r_outer, 1e-6), 0, 1)
    tables = np.maximum(np.exp(-((t / 0.3) ** 2)), np.exp(-(((1 - t) / 0.3) ** 2)))
    return anat.diploe_hu + (anat.cortical_hu - anat.diploe_hu) * tables


def depth_below(s: SliceFrame, r: np.ndarray) -> np.ndarray:
    """Distance in mm from a pixel inside an ellipse to its boundary, along the ray."""
    return s.rho * (1 / np.maximum(r, 1e-3) - 1)


def _cortex(anat: Anatomy, s: SliceFrame) -> tuple[np.ndarray, np.ndarray]:
    """(grey matter, sulcus) masks of the brain's outer band."""
    depth = depth_below(s, s.r_brain)
    wobble = 0.8 * np.sin(3 * s.phi + 5 * s.z) + 0.4 * np.sin(7 * s.phi - 3 * s.z)
    gyral = np.sin(anat.gyri * s.phi + anat.gyral_phase + 9 * s.z + wobble)
    grey = depth < 3.0 + 3.0 * (gyral > -0.2) - 0.15 * depth * (gyral < -0.2)
    reach = 0.5 + 0.5 * np.sin(2.3 * anat.gyri * s.phi + 4 * s.z) ** 2
    sulcus_depth = reach * (3 + 12 * np.clip((s.z - 0.25) / 0.5, 0, 1))
    width = 0.93 + 0.05 * np.clip(depth / 6, 0, 1)  # sulci open at the surface
    sulcus = (gyral < -width) & (depth < sulcus_depth)
    return grey, sulcus


def _bump(z: float, lo: float, hi: float) -> float:
    """0 outside [lo, hi], rising smoothly to 1 in the middle."""
    if not lo < z < hi:
        return 0.0
    return math.sin(math.pi * (z - lo) / (hi - lo)) ** 0.5


def _rotated_ellipse(
    s: SliceFrame, centre: tuple[float, float], half: tuple[float, float], angle: float
) -> np.ndarray:
    dx, dy = s.x - centre[0], s.y - centre[1]
    cos, sin = math.cos(angle), math.sin(angle)
    return ellipse_r(cos * dx + sin * dy, cos * dy - sin * dx, *half) < 1


def ventricles(anat: Anatomy, s: SliceFrame) -> np.ndarray:
    """Deep CSF: lateral ventricles (butterfly), third and fourth ventricles."""
    k, lateral = anat.ventricle_scale, _bump(s.z, 0.42, 0.72)
    csf = np.zeros(s.x.shape, bool)
    for side in (-1.0, 1.0):
        if lateral:
            body = _rotated_ellipse(
                s, (side * 7 * k, -4), (4.5 * k * lateral, 22 * lateral), side * 0.3
            )
            caudate = _rotated_ellipse(s, (side * 13 * k, -14), (6, 7), 0.0)
            csf |= body & ~caudate
        if _bump(s.z, 0.42, 0.56):
            csf |= _rotated_ellipse(s, (side * 13 * k, 30), (3 * k, 9), -side * 0.5)
    if _bump(s.z, 0.36, 0.46):
        csf |= _rotated_ellipse(s, (0, 3), (1.5 * k, 10), 0.0)
    if _bump(s.z, 0.2, 0.3):
        csf |= _rotated_ellipse(s, (0, 32), (5 * k, 3.5), 0.0)
    return csf


def _deep_grey(s: SliceFrame) -> np.ndarray:
    """Lentiform nuclei and thalami, grey-matter density among white matter."""
    if not _bump(s.z, 0.38, 0.56):
        return np.zeros(s.x.shape, bool)
    out = np.zeros(s.x.shape, bool)
    for side in (-1.0, 1.0):
        out |= _rotated_ellipse(s, (side * 22, -2), (5.5, 13), -side * 0.3)
        out |= _rotated_ellipse(s, (side * 9, 12), (7, 9), 0.0)
    return out


def _midline_fissure(s: SliceFrame, brain_half_ap: float) -> np.ndarray:
    reach = brain_half_ap * (0.55 - 0.5 * np.clip((s.z - 0.5) / 0.35, 0, 1))
    return (np.abs(s.x) < 0.9) & (np.abs(s.y) > reach)


def _skull_base(s: SliceFrame, hu: np.ndarray, intracranial: np.ndarray) -> None:
    """Petrous ridges, clivus and sphenoid sinus in the lowest slices (in place)."""
    strength = float(np.clip((SKULL_BASE_Z - s.z) / 0.13, 0, 1))
    if strength == 0.0:
        return
    bone = np.zeros(s.x.shape, bool)
    for side in (-1.0, 1.0):
        bone |= _rotated_ellipse(
            s, (side * 38, 16), (26, 2 + 5 * strength), side * 0.75
        )
    bone |= _rotated_ellipse(s, (0, -22), (6 + 10 * strength, 8 + 10 * strength), 0)
    hu[bone & intracranial] = 850.0
    sinus = _rotated_ellipse(s, (0, -26), (7 * strength + 1, 6 * strength + 1), 0.0)
    hu[sinus & intracranial] = -850.0


def render_anatomy(anat: Anatomy, s: SliceFrame) -> tuple[np.ndarray, np.ndarray]:
    """(HU image without noise, intracranial mask) of one slice."""
    hu = np.full(s.x.shape, HU_AIR, np.float32)
    hu[s.r_head < 1] = HU_SCALP
    bone = s.r_outer < 1
    hu[bone] = _skull_hu(anat, s)[bone]
    intracranial = s.r_inner < 1
    hu[intracranial] = HU_CSF
    brain = s.r_brain < 1
    grey, sulcus = _cortex(anat, s)
    hu[brain] = np.where(grey | _deep_grey(s), HU_GREY, HU_WHITE)[brain]
    brain_half_ap = anat.half_ap * _profile(s.z)
    hu[brain & (sulcus | ventricles(anat, s) | _midline_fissure(s, brain_half_ap))] = (
        HU_CSF
    )
    _skull_base(s, hu, intracranial)
    return hu, intracranial
