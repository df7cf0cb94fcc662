"""Stroke lesions drawn into a phantom: hemorrhages (intraparenchymal, subdural) and
ischemic infarcts (a hypodense wedge in an arterial territory)."""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from ml.synthetic.anatomy import (
    HEAD_HEIGHT_MM,
    SKULL_BASE_Z,
    Anatomy,
    SliceFrame,
    depth_below,
    ellipse_r,
    ventricles,
)


def _soft_inside(distance: np.ndarray, softness: float) -> np.ndarray:
    """1 well inside (distance < 1), 0 outside, a linear ramp of width ``softness``."""
    return np.clip((1 - distance) / softness + 0.5, 0, 1)


def _pick_slice(rng: np.random.Generator, anat: Anatomy, lo: float, hi: float) -> int:
    inside = np.flatnonzero((anat.z >= lo) & (anat.z <= hi))
    if inside.size == 0:
        inside = np.array([int(np.argmin(np.abs(anat.z - (lo + hi) / 2)))])
    return int(rng.choice(inside))


def draw_lesion(rng: np.random.Generator, anat: Anatomy, kind: str) -> dict[str, Any]:
    """Random parameters of a lesion of ``kind`` ("none" draws only a side)."""
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
    rng: np.random.Generator, anat: Anatomy, side: float
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
    rng: np.random.Generator, anat: Anatomy, side: float
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
    rng: np.random.Generator, anat: Anatomy, side: float
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


def _z_fraction(anat: Anatomy, s: SliceFrame, spec: dict[str, Any]) -> float:
    """Where slice ``s`` sits in the lesion's height: 0 centre, >= 1 outside."""
    dz_mm = (s.z - anat.z[spec["slice"]]) * HEAD_HEIGHT_MM
    return abs(dz_mm) / spec["half_height"]


def lesion_weight(anat: Anatomy, s: SliceFrame, spec: dict[str, Any]) -> np.ndarray:
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


def _hematoma_weight(s: SliceFrame, spec: dict[str, Any], shrink: float) -> np.ndarray:
    (cx, cy), (rx, ry), (p1, p2) = spec["centre"], spec["radii"], spec["lobes"]
    dx, dy = s.x - cx, s.y - cy
    theta = np.arctan2(dy, dx)
    lobes = 1 + 0.15 * np.sin(3 * theta + p1) + 0.08 * np.sin(5 * theta + p2)
    distance = ellipse_r(dx, dy, rx * shrink, ry * shrink) / lobes
    return _soft_inside(distance, 0.15).astype(np.float32)


def _subdural_weight(s: SliceFrame, spec: dict[str, Any], shrink: float) -> np.ndarray:
    offset = _angle_to(s.phi, spec["phi0"]) / spec["extent"]
    along = np.cos(np.clip(offset, 0, 1) * math.pi / 2)
    thickness = spec["thickness"] * shrink * along
    depth = depth_below(s, s.r_inner)
    return (depth < thickness).astype(np.float32)


def _infarct_weight(s: SliceFrame, spec: dict[str, Any], shrink: float) -> np.ndarray:
    ragged = 1 + 0.15 * np.sin(9 * s.phi + 7 * s.r_brain) * np.cos(5 * s.r_brain)
    width = spec["half_angle"] * (0.5 + shrink / 2) * (0.6 + 0.5 * s.r_brain) * ragged
    angular = _angle_to(s.phi, spec["phi0"]) / width
    radial = (1 - s.r_brain) / (1 - spec["r_min"])  # 1 at r_min, 0 at the cortex
    inside = np.maximum(angular, 1 - radial + 0.1 * ragged)
    return _soft_inside(inside, 0.35).astype(np.float32)


def apply_lesion(
    hu: np.ndarray, weight: np.ndarray, spec: dict[str, Any], allowed: np.ndarray
) -> np.ndarray:
    """Blend the lesion's density into ``hu`` in place; return its bool mask."""
    weight = weight * allowed
    if spec["kind"] == "intraparenchymal":
        edema = np.clip(cv2.GaussianBlur(weight, (0, 0), 2.5) * 1.6, 0, 1) * allowed
        hu += 0.6 * edema * (18.0 - hu) * (1 - weight)
    hu += weight * (spec["hu"] - hu)
    return weight >= 0.5


def lesion_area(
    anat: Anatomy, s: SliceFrame, spec: dict[str, Any], intracranial: np.ndarray
) -> np.ndarray:
    """Where the lesion may lie: a subdural under the skull, others in the brain."""
    if spec["kind"] == "subdural":
        return intracranial
    brain = s.r_brain < 1
    if spec["kind"] == "infarct":
        return brain & ~ventricles(anat, s)  # an infarct does not fill a ventricle
    return brain
