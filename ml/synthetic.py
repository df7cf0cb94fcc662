"""Synthetic head-CT phantoms in Hounsfield units, with and without stroke lesions.

A phantom is an axial stack from the skull base (slice 0) to near the vertex: scalp,
a skull with cortical tables and diploë, a thin CSF rim, grey matter with gyri and
sulci over white matter, ventricles, basal ganglia and, in the lowest slices,
petrous bone and sinus air. Lesions are an intraparenchymal or subdural hemorrhage
(hyperdense) or an ischemic infarct (hypodense wedge in an arterial territory).

The phantoms feed tests and the demo model; they are not anatomy. Image rows run
anterior → posterior and columns patient right → left, as on a radiology screen.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

LABELS: tuple[str, ...] = ("normal", "ischemic", "hemorrhagic")
LESION_KINDS: dict[str, tuple[str, ...]] = {
    "normal": ("none",),
    "ischemic": ("infarct",),
    "hemorrhagic": ("intraparenchymal", "subdural"),
}
FOV_MM = 240.0  # field of view across the image
HEAD_HEIGHT_MM = 150.0  # skull base to vertex, the range z in [0, 1] spans
SKULL_BASE_Z = 0.33  # below this height slices show petrous bone and sinus air
HU_AIR, HU_CSF, HU_GREY, HU_WHITE, HU_SCALP = -1000.0, 6.0, 39.0, 27.0, 40.0


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


@dataclass(frozen=True)
class _Anatomy:
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
class _Slice:
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


# --- anatomy ---------------------------------------------------------------------


def _draw_anatomy(rng: np.random.Generator, *, size: int, slices: int) -> _Anatomy:
    z_lo, z_hi = rng.uniform(0.12, 0.2), rng.uniform(0.86, 0.93)
    return _Anatomy(
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


def _ellipse_r(x: np.ndarray, y: np.ndarray, lr: Any, ap: Any) -> np.ndarray:
    return np.sqrt((x / np.maximum(lr, 1e-3)) ** 2 + (y / np.maximum(ap, 1e-3)) ** 2)


def _slice_frame(anat: _Anatomy, z: float) -> _Slice:
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
    head, outer, inner, brain = (_ellipse_r(x, y, lr - d, ap - d) for d in depths)
    phi = np.arctan2(y / ap, x / anat.half_lr).astype(np.float32)
    return _Slice(x, y, z, head, outer, inner, brain, np.hypot(x, y), phi)


def _skull_hu(anat: _Anatomy, s: _Slice) -> np.ndarray:
    # Position across the bone: 0 at the inner table, 1 at the outer table.
    t = np.clip((s.r_inner - 1) / np.maximum(s.r_inner - s.r_outer, 1e-6), 0, 1)
    tables = np.maximum(np.exp(-((t / 0.3) ** 2)), np.exp(-(((1 - t) / 0.3) ** 2)))
    return anat.diploe_hu + (anat.cortical_hu - anat.diploe_hu) * tables


def _depth_below(s: _Slice, r: np.ndarray) -> np.ndarray:
    """Distance in mm from a pixel inside an ellipse to its boundary, along the ray."""
    return s.rho * (1 / np.maximum(r, 1e-3) - 1)


def _cortex(anat: _Anatomy, s: _Slice) -> tuple[np.ndarray, np.ndarray]:
    """(grey matter, sulcus) masks of the brain's outer band."""
    depth = _depth_below(s, s.r_brain)
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
    s: _Slice, centre: tuple[float, float], half: tuple[float, float], angle: float
) -> np.ndarray:
    dx, dy = s.x - centre[0], s.y - centre[1]
    cos, sin = math.cos(angle), math.sin(angle)
    return _ellipse_r(cos * dx + sin * dy, cos * dy - sin * dx, *half) < 1


def _ventricles(anat: _Anatomy, s: _Slice) -> np.ndarray:
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


def _deep_grey(s: _Slice) -> np.ndarray:
    """Lentiform nuclei and thalami, grey-matter density among white matter."""
    if not _bump(s.z, 0.38, 0.56):
        return np.zeros(s.x.shape, bool)
    out = np.zeros(s.x.shape, bool)
    for side in (-1.0, 1.0):
        out |= _rotated_ellipse(s, (side * 22, -2), (5.5, 13), -side * 0.3)
        out |= _rotated_ellipse(s, (side * 9, 12), (7, 9), 0.0)
    return out


def _midline_fissure(s: _Slice, brain_half_ap: float) -> np.ndarray:
    reach = brain_half_ap * (0.55 - 0.5 * np.clip((s.z - 0.5) / 0.35, 0, 1))
    return (np.abs(s.x) < 0.9) & (np.abs(s.y) > reach)


def _skull_base(s: _Slice, hu: np.ndarray, intracranial: np.ndarray) -> None:
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


def _render_anatomy(anat: _Anatomy, s: _Slice) -> tuple[np.ndarray, np.ndarray]:
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
    hu[brain & (sulcus | _ventricles(anat, s) | _midline_fissure(s, brain_half_ap))] = (
        HU_CSF
    )
    _skull_base(s, hu, intracranial)
    return hu, intracranial


# --- lesions ---------------------------------------------------------------------


def _soft_inside(distance: np.ndarray, softness: float) -> np.ndarray:
    """1 well inside (distance < 1), 0 outside, a linear ramp of width ``softness``."""
    return np.clip((1 - distance) / softness + 0.5, 0, 1)


def _pick_slice(rng: np.random.Generator, anat: _Anatomy, lo: float, hi: float) -> int:
    inside = np.flatnonzero((anat.z >= lo) & (anat.z <= hi))
    if inside.size == 0:
        inside = np.array([int(np.argmin(np.abs(anat.z - (lo + hi) / 2)))])
    return int(rng.choice(inside))


def _draw_lesion(rng: np.random.Generator, anat: _Anatomy, kind: str) -> dict[str, Any]:
    side = float(rng.choice([-1.0, 1.0]))
    spec: dict[str, Any] = {"kind": kind, "side": side}
    if kind == "intraparenchymal":
        spec |= _draw_hematoma(rng, anat, side)
    elif kind == "subdural":
        spec |= _draw_subdural(rng, anat, side)
    elif kind == "infarct":
        spec |= _draw_infarct(rng, anat, side)
    return spec


def _draw_hematoma(
    rng: np.random.Generator, anat: _Anatomy, side: float
) -> dict[str, Any]:
    k = _pick_slice(rng, anat, 0.38, 0.68)
    radius = rng.uniform(0.1, 0.5)
    angle = rng.uniform(-1.2, 1.2)
    return {
        "slice": k,
        "centre": (
            side * (10 + radius * anat.half_lr * 0.6 * abs(math.cos(angle))),
            radius * anat.half_ap * 0.6 * math.sin(angle),
        ),
        "radii": tuple(rng.uniform(6, 18, 2)),
        "half_height": max(6.0, 1.3 * anat.slice_mm) + rng.uniform(0, 12),
        "hu": rng.uniform(55, 80),
        "lobes": tuple(rng.uniform(0, 2 * math.pi, 2)),
    }


def _draw_subdural(
    rng: np.random.Generator, anat: _Anatomy, side: float
) -> dict[str, Any]:
    return {
        "slice": _pick_slice(rng, anat, 0.45, 0.72),
        "phi0": (0.0 if side > 0 else math.pi) + rng.uniform(-0.5, 0.5),
        "extent": rng.uniform(0.9, 1.4),
        "thickness": rng.uniform(5, 14),
        "half_height": rng.uniform(25, 45) + anat.slice_mm,
        "hu": rng.uniform(55, 80),
    }


_TERRITORIES = {"MCA": 0.0, "ACA": -1.25, "PCA": 1.2}  # polar angle from the side


def _draw_infarct(
    rng: np.random.Generator, anat: _Anatomy, side: float
) -> dict[str, Any]:
    territory = str(rng.choice(list(_TERRITORIES), p=[0.6, 0.2, 0.2]))
    offset = _TERRITORIES[territory]
    phi0 = offset if side > 0 else math.pi - offset
    return {
        "slice": _pick_slice(rng, anat, 0.42, 0.66),
        "territory": territory,
        "phi0": phi0,
        "half_angle": rng.uniform(0.3, 0.6),
        "r_min": rng.uniform(0.35, 0.6),
        "half_height": rng.uniform(12, 30) + anat.slice_mm,
        "hu": rng.uniform(14, 21),
    }


def _angle_to(phi: np.ndarray, phi0: float) -> np.ndarray:
    return np.abs((phi - phi0 + math.pi) % (2 * math.pi) - math.pi)


def _z_fraction(anat: _Anatomy, s: _Slice, spec: dict[str, Any]) -> float:
    """Where slice ``s`` sits in the lesion's height: 0 centre, >= 1 outside."""
    dz_mm = (s.z - anat.z[spec["slice"]]) * HEAD_HEIGHT_MM
    return abs(dz_mm) / spec["half_height"]


def _lesion_weight(anat: _Anatomy, s: _Slice, spec: dict[str, Any]) -> np.ndarray:
    """Soft (H, W) weight in [0, 1] of the lesion on this slice (before masking)."""
    # Lesions stay above the skull base, where the phantom's brain is simplest.
    zf = 1.0 if spec["kind"] == "none" else _z_fraction(anat, s, spec)
    if zf >= 1 or s.z < SKULL_BASE_Z:
        return np.zeros(s.x.shape, np.float32)
    shrink = math.sqrt(1 - zf**2)
    if spec["kind"] == "intraparenchymal":
        return _hematoma_weight(s, spec, shrink)
    if spec["kind"] == "subdural":
        return _subdural_weight(s, spec, shrink)
    return _infarct_weight(s, spec, shrink)


def _hematoma_weight(s: _Slice, spec: dict[str, Any], shrink: float) -> np.ndarray:
    (cx, cy), (rx, ry), (p1, p2) = spec["centre"], spec["radii"], spec["lobes"]
    dx, dy = s.x - cx, s.y - cy
    theta = np.arctan2(dy, dx)
    lobes = 1 + 0.15 * np.sin(3 * theta + p1) + 0.08 * np.sin(5 * theta + p2)
    distance = _ellipse_r(dx, dy, rx * shrink, ry * shrink) / lobes
    return _soft_inside(distance, 0.15).astype(np.float32)


def _subdural_weight(s: _Slice, spec: dict[str, Any], shrink: float) -> np.ndarray:
    offset = _angle_to(s.phi, spec["phi0"]) / spec["extent"]
    along = np.cos(np.clip(offset, 0, 1) * math.pi / 2)
    thickness = spec["thickness"] * shrink * along
    depth = _depth_below(s, s.r_inner)
    return (depth < thickness).astype(np.float32)


def _infarct_weight(s: _Slice, spec: dict[str, Any], shrink: float) -> np.ndarray:
    ragged = 1 + 0.15 * np.sin(9 * s.phi + 7 * s.r_brain) * np.cos(5 * s.r_brain)
    width = spec["half_angle"] * (0.5 + shrink / 2) * (0.6 + 0.5 * s.r_brain) * ragged
    angular = _angle_to(s.phi, spec["phi0"]) / width
    radial = (1 - s.r_brain) / (1 - spec["r_min"])  # 1 at r_min, 0 at the cortex
    inside = np.maximum(angular, 1 - radial + 0.1 * ragged)
    return _soft_inside(inside, 0.35).astype(np.float32)


def _apply_lesion(
    hu: np.ndarray, weight: np.ndarray, spec: dict[str, Any], allowed: np.ndarray
) -> np.ndarray:
    """Blend the lesion's density into ``hu`` in place; return its bool mask."""
    weight = weight * allowed
    if spec["kind"] == "intraparenchymal":
        edema = np.clip(cv2.GaussianBlur(weight, (0, 0), 2.5) * 1.6, 0, 1) * allowed
        hu += 0.6 * edema * (18.0 - hu) * (1 - weight)
    hu += weight * (spec["hu"] - hu)
    return weight >= 0.5


def _lesion_area(
    anat: _Anatomy, s: _Slice, spec: dict[str, Any], intracranial: np.ndarray
) -> np.ndarray:
    """Where the lesion may lie: a subdural under the skull, others in the brain."""
    if spec["kind"] == "subdural":
        return intracranial
    brain = s.r_brain < 1
    if spec["kind"] == "infarct":
        return brain & ~_ventricles(anat, s)  # an infarct does not fill a ventricle
    return brain


# --- assembly --------------------------------------------------------------------


def _texture(
    rng: np.random.Generator, shape: tuple[int, int], sigma: float
) -> np.ndarray:
    white = rng.standard_normal(shape).astype(np.float32)
    smooth = cv2.GaussianBlur(white, (0, 0), sigma)
    return smooth / max(float(smooth.std()), 1e-6)


def _finish_slice(
    rng: np.random.Generator, anat: _Anatomy, hu: np.ndarray, intracranial: np.ndarray
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
    anat = _draw_anatomy(rng, size=size, slices=slices)
    kind = kind or str(rng.choice(LESION_KINDS[label]))
    spec = _draw_lesion(rng, anat, kind)
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
    rng: np.random.Generator, anat: _Anatomy, spec: dict[str, Any], z: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = _slice_frame(anat, z)
    hu, intracranial = _render_anatomy(anat, s)
    weight = _lesion_weight(anat, s, spec)
    mask = np.zeros(hu.shape, bool)
    if weight.any():
        allowed = _lesion_area(anat, s, spec, intracranial).astype(np.float32)
        mask = _apply_lesion(hu, weight, spec, allowed) & intracranial
    return _finish_slice(rng, anat, hu, intracranial), mask, intracranial


# --- writers ---------------------------------------------------------------------

#: Lossless transfer syntaxes the DICOM writer can compress with, by short name.
COMPRESSIONS: dict[str, str] = {
    "rle": "1.2.840.10008.1.2.5",  # RLE Lossless, pydicom natively
    "jpeg-ls": "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless, pyjpegls
    "jpeg2000": "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless, pylibjpeg-openjpeg
}
RESCALE_INTERCEPT = -1024.0


def _uid(seed: str | None, *parts: object) -> str:
    from pydicom.uid import generate_uid

    if seed is None:
        return str(generate_uid())
    return str(generate_uid(entropy_srcs=[seed, *map(str, parts)]))


def _stored_pixels(hu: np.ndarray, *, signed: bool) -> np.ndarray:
    """HU → stored values with intercept -1024, slope 1 (12-bit unsigned or int16)."""
    stored = np.rint(hu) - RESCALE_INTERCEPT
    if signed:
        return np.clip(stored, -32768, 32767).astype(np.int16)
    return np.clip(stored, 0, 4095).astype(np.uint16)


def _series_uids(*, patient_id: str, uid_seed: str | None) -> dict[str, str]:
    return {
        name: _uid(uid_seed, patient_id, name)
        for name in ("study", "series", "frame_of_reference")
    }


def _ct_dataset(
    phantom: Phantom, k: int, *, uids: dict[str, str], patient_id: str, signed: bool
) -> Any:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.SOPInstanceUID = uids[f"instance {k}"]
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    _set_patient_study(ds, phantom, uids=uids, patient_id=patient_id)
    _set_geometry(ds, phantom, k)
    _set_pixels(ds, phantom.volume_hu[k], signed=signed)
    return ds


def _set_patient_study(
    ds: Any, phantom: Phantom, *, uids: dict[str, str], patient_id: str
) -> None:
    ds.PatientID, ds.PatientName = patient_id, f"PHANTOM^{patient_id}"
    ds.PatientSex, ds.PatientBirthDate = "O", ""
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uids["study"], uids["series"]
    ds.FrameOfReferenceUID = uids["frame_of_reference"]
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "20240101", "120000", ""
    ds.StudyID, ds.SeriesNumber, ds.ReferringPhysicianName = "1", 1, ""
    ds.Modality, ds.BodyPartExamined, ds.Manufacturer = "CT", "HEAD", "ml.synthetic"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SeriesDescription = "SYNTHETIC HEAD PHANTOM"
    ds.ImageComments = f"Synthetic phantom, not a patient (label={phantom.label})"


def _set_geometry(ds: Any, phantom: Phantom, k: int) -> None:
    dz, dy, dx = phantom.spacing
    rows, cols = phantom.volume_hu.shape[1:]
    z = round(k * dz, 3)
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = [
        round(-dx * (cols - 1) / 2, 3),
        round(-dy * (rows - 1) / 2, 3),
        z,
    ]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceLocation, ds.SliceThickness = z, dz
    ds.PixelSpacing = [round(dy, 6), round(dx, 6)]


def _set_pixels(ds: Any, hu: np.ndarray, *, signed: bool) -> None:
    stored = _stored_pixels(hu, signed=signed)
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored = 16, 16 if signed else 12
    ds.HighBit, ds.PixelRepresentation = ds.BitsStored - 1, int(signed)
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = RESCALE_INTERCEPT, 1, "HU"
    ds.WindowCenter, ds.WindowWidth = 40, 80
    ds.PixelData = stored.tobytes()


def write_dicom_series(
    phantom: Phantom,
    out_dir: str | Path,
    *,
    transfer_syntax: str | None = None,
    patient_id: str = "PHANTOM0001",
    signed: bool = False,
    uid_seed: str | None = None,
) -> list[Path]:
    """Write the phantom as a CT Image Storage series, one file per slice.

    ``transfer_syntax``: None (explicit VR little endian), a key of ``COMPRESSIONS``
    or a lossless UID. Pixels are uint16 (12 bits stored) or, with ``signed``,
    int16; RescaleIntercept -1024, slope 1, window 40/80. ``uid_seed`` makes UIDs
    reproducible. Returns the paths ``IM0001.dcm``… in slice order.
    """
    syntax = _resolve_syntax(transfer_syntax)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    uids = _series_uids(patient_id=patient_id, uid_seed=uid_seed)
    paths = []
    for k in range(len(phantom.volume_hu)):
        uids[f"instance {k}"] = _uid(uid_seed, patient_id, "instance", k)
        ds = _ct_dataset(phantom, k, uids=uids, patient_id=patient_id, signed=signed)
        if syntax:
            ds.compress(syntax, generate_instance_uid=False)
        paths.append(out / f"IM{k + 1:04d}.dcm")
        ds.save_as(paths[-1], enforce_file_format=True)
    return paths


def _resolve_syntax(transfer_syntax: str | None) -> str | None:
    if transfer_syntax in (None, "", "none"):
        return None
    if transfer_syntax in COMPRESSIONS:
        return COMPRESSIONS[transfer_syntax]
    if transfer_syntax in COMPRESSIONS.values():
        return transfer_syntax
    raise ValueError(
        f"unsupported transfer syntax {transfer_syntax!r}; use one of "
        f"{sorted(COMPRESSIONS)} or their UIDs"
    )


def window_to_uint8(hu: np.ndarray, *, window: str = "brain") -> np.ndarray:
    """Brain-window (or another preset) HU to uint8 0..255, as a PNG stores it."""
    from ml.preprocess import to_uint8, window_by_name

    return to_uint8(window_by_name(hu, name=window))


def write_png_slices(
    phantom: Phantom, out_dir: str | Path, *, scan_number: int, window: str = "brain"
) -> list[Path]:
    """Write 8-bit windowed slices named ``N (k).png`` (k from 1), like brain-stroke-ct.

    Returns the paths in slice order.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, hu in enumerate(phantom.volume_hu, start=1):
        paths.append(out / f"{scan_number} ({k}).png")
        _imwrite(paths[-1], window_to_uint8(hu, window=window))
    return paths


def _imwrite(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write image {path}")


def write_mask(
    phantom: Phantom, out_dir: str | Path, *, fmt: str = "npy", scan_number: int = 1
) -> list[Path]:
    """Write the lesion mask: ``mask.npy`` ((D, H, W) bool) or ``masks/N (k).png``.

    PNG masks are 0/255 uint8, one per slice, in a ``masks`` folder (which
    ``ml.datasets`` skips when indexing images).
    """
    out = Path(out_dir)
    if fmt == "npy":
        out.mkdir(parents=True, exist_ok=True)
        np.save(out / "mask.npy", phantom.mask)
        return [out / "mask.npy"]
    if fmt != "png":
        raise ValueError(f"mask format must be 'npy' or 'png', got {fmt!r}")
    (out / "masks").mkdir(parents=True, exist_ok=True)
    paths = [
        out / "masks" / f"{scan_number} ({k}).png"
        for k in range(1, len(phantom.mask) + 1)
    ]
    for path, plane in zip(paths, phantom.mask, strict=True):
        _imwrite(path, plane.astype(np.uint8) * 255)
    return paths


def phantom_montage(
    phantoms: list[Phantom], *, columns: int = 6, outline: bool = False
) -> np.ndarray:
    """A grid of brain-windowed slices: one row per phantom, ``columns`` slices each.

    Slices are spread evenly over each stack and, when the phantom has a lesion,
    include its central slice. ``outline`` draws lesion contours in red. Returns
    (rows * H, columns * W, 3) uint8 RGB.
    """
    if not phantoms or columns < 1:
        raise ValueError("need at least one phantom and one column")
    return np.concatenate([_montage_row(p, columns, outline) for p in phantoms])


def _montage_row(phantom: Phantom, columns: int, outline: bool) -> np.ndarray:
    depth = len(phantom.volume_hu)
    picks = set(np.linspace(0, depth - 1, columns).round().astype(int).tolist())
    if "slice" in phantom.details:
        picks.add(int(phantom.details["slice"]))
    tiles = [_montage_tile(phantom, k, outline) for k in sorted(picks)[-columns:]]
    row = np.concatenate(tiles, axis=1)
    caption = f"{phantom.label} ({phantom.lesion})"
    cv2.putText(row, caption, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0))
    return row


def _montage_tile(phantom: Phantom, k: int, outline: bool) -> np.ndarray:
    tile = np.repeat(window_to_uint8(phantom.volume_hu[k])[..., None], 3, axis=-1)
    if outline and phantom.mask[k].any():
        contours, _ = cv2.findContours(
            phantom.mask[k].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
        )
        cv2.drawContours(tile, contours, -1, (255, 0, 0), 1)
    return tile


# --- a whole synthetic data set --------------------------------------------------

SYNTH_FORMATS: tuple[str, ...] = ("dicom", "png", "both")
MIXED = "mixed"  # cycle uncompressed / RLE / JPEG-LS / JPEG 2000 over studies


@dataclass(frozen=True)
class SynthStudy:
    """One written study of :func:`synthesize_dataset` (a row of ``labels.csv``)."""

    study: str
    label: str
    lesion: str
    scan_number: int
    patient_id: str
    study_uid: str
    seed: int
    compression: str
    path: str  # relative to the data set folder


def _study_plan(studies: int, seed: int) -> list[tuple[str, int]]:
    """Balanced, shuffled labels and an independent seed for each study."""
    rng = np.random.default_rng(seed)
    labels = [LABELS[i % len(LABELS)] for i in range(studies)]
    order = rng.permutation(studies)
    children = np.random.SeedSequence(seed).spawn(studies)
    return [
        (labels[j], int(c.generate_state(1)[0]))
        for j, c in zip(order, children, strict=True)
    ]


def _compression_for(index: int, compression: str) -> str:
    if compression == MIXED:
        return ("none", *COMPRESSIONS)[index % (len(COMPRESSIONS) + 1)]
    _resolve_syntax(compression)  # validates
    return compression or "none"


def synthesize_dataset(
    out_dir: str | Path,
    *,
    studies: int,
    seed: int = 0,
    size: int = 256,
    slices: int = 24,
    fmt: str = "dicom",
    compression: str = "none",
    masks: str = "npy",
) -> list[SynthStudy]:
    """Write ``studies`` phantoms to ``out_dir/<label>/<study>/`` plus ``labels.csv``.

    ``fmt``: "dicom", "png" or "both" (then ``dicom/`` and ``png/`` subfolders).
    ``compression``: "none", a ``COMPRESSIONS`` key, or "mixed". ``masks``: "npy",
    "png" or "none". Labels are balanced over normal/ischemic/hemorrhagic and
    shuffled; everything is reproducible from ``seed``.
    """
    if studies < 1:
        raise ValueError(f"studies must be >= 1, got {studies}")
    if fmt not in SYNTH_FORMATS:
        raise ValueError(f"format must be one of {SYNTH_FORMATS}, got {fmt!r}")
    if masks not in ("npy", "png", "none"):
        raise ValueError(f"masks must be 'npy', 'png' or 'none', got {masks!r}")
    root = Path(out_dir)
    records = []
    for i, (label, study_seed) in enumerate(_study_plan(studies, seed)):
        phantom = make_phantom(label=label, size=size, slices=slices, seed=study_seed)
        options = {"fmt": fmt, "masks": masks, "seed": seed}
        compress = _compression_for(i, compression)
        records.append(_write_study(root, phantom, i + 1, compress, options))
    _write_labels_csv(root / "labels.csv", records)
    return records


def _write_study(
    root: Path, phantom: Phantom, number: int, compression: str, options: dict
) -> SynthStudy:
    study = f"study{number:04d}"
    folder = root / phantom.label / study
    patient_id = f"SYN{options['seed']}-{number:04d}"
    uid_seed = f"ml.synthetic/{options['seed']}/{number}"
    if options["fmt"] in ("dicom", "both"):
        target = folder / "dicom" if options["fmt"] == "both" else folder
        syntax = None if compression == "none" else compression
        write_dicom_series(
            phantom,
            target,
            transfer_syntax=syntax,
            patient_id=patient_id,
            uid_seed=uid_seed,
        )
    if options["fmt"] in ("png", "both"):
        target = folder / "png" if options["fmt"] == "both" else folder
        write_png_slices(phantom, target, scan_number=number)
    if options["masks"] != "none":
        write_mask(phantom, folder, fmt=options["masks"], scan_number=number)
    study_uid = _series_uids(patient_id=patient_id, uid_seed=uid_seed)["study"]
    return SynthStudy(
        study=study,
        label=phantom.label,
        lesion=phantom.lesion,
        scan_number=number,
        patient_id=patient_id,
        study_uid=study_uid,
        seed=phantom.seed,
        compression=compression,
        path=folder.relative_to(root).as_posix(),
    )


def _write_labels_csv(path: Path, records: list[SynthStudy]) -> None:
    import csv

    names = [f.name for f in dataclasses.fields(SynthStudy)]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        writer.writerows(dataclasses.asdict(r) for r in records)
