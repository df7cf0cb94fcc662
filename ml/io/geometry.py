"""Slice geometry in the DICOM patient frame (LPS, millimetres)."""

from __future__ import annotations

import numpy as np

_PLANES = ("sagittal", "coronal", "axial")
#: Gaps that differ from the median gap by more than this fraction are uneven.
UNEVEN_TOLERANCE = 0.1
#: Slices closer than this along the normal share one position.
SAME_POSITION_MM = 0.01


def slice_normal(*, orientation: np.ndarray) -> np.ndarray:
    """Unit normal (3,) float64 of the plane of ImageOrientationPatient (6,).

    The normal is row x column, turned to point superior (+z) so that sorting by
    position along it orders slices foot to head. Raises ValueError when the row
    and column directions are degenerate.
    """
    normal = np.cross(orientation[:3], orientation[3:])
    length = float(np.linalg.norm(normal))
    if not np.isfinite(length) or length < 1e-3:
        raise ValueError(f"degenerate ImageOrientationPatient {orientation.tolist()}")
    normal = normal / length
    return -normal if normal[2] < 0 else normal


def plane_name(*, orientation: np.ndarray) -> str:
    """'axial', 'coronal' or 'sagittal': the plane nearest ImageOrientationPatient."""
    normal = slice_normal(orientation=orientation)
    return _PLANES[int(np.argmax(np.abs(normal)))]


def spacing_stats(*, positions: np.ndarray) -> tuple[float | None, bool]:
    """Median gap (mm) between sorted positions (N,) and whether gaps are uneven."""
    gaps = np.diff(np.sort(positions))
    if gaps.size == 0:
        return None, False
    median = float(np.median(gaps))
    uneven = bool(np.any(np.abs(gaps - median) > UNEVEN_TOLERANCE * median))
    return median, uneven


def tilt_deg(*, points: np.ndarray, normal: np.ndarray) -> float | None:
    """Angle (degrees) between the slice normal (3,) and the step of points (N, 3).

    Points are ImagePositionPatient of slices in order. A gantry-tilted acquisition
    steps along the table while its planes lean, so the angle is the tilt. None
    with fewer than two distinct points.
    """
    step = points[-1] - points[0] if len(points) > 1 else np.zeros(3)
    length = float(np.linalg.norm(step))
    if length < SAME_POSITION_MM:
        return None
    cosine = min(1.0, abs(float(step @ normal)) / length)
    return float(np.degrees(np.arccos(cosine)))


#: The patient direction each LPS axis points to, for a positive and a negative
#: component: +x is the patient's left, +y posterior, +z head (superior).
_LETTERS = (("L", "R"), ("P", "A"), ("H", "F"))
#: Components smaller than this do not name the direction (oblique by < ~30 deg).
_MINOR = 0.5


def direction_letters(vector: np.ndarray) -> str:
    """The patient direction a unit vector (3,) in LPS points to, as a radiologist
    reads it at the edge of a slice: "L", "A", or "LA" for an oblique one (the
    larger component first)."""
    order = np.argsort(-np.abs(vector))
    letters = ""
    for axis in order[:2]:
        value = float(vector[axis])
        if abs(value) >= (_MINOR if letters else 1e-6):
            letters += _LETTERS[axis][0 if value > 0 else 1]
    return letters


def edge_labels(*, orientation: np.ndarray) -> dict[str, str]:
    """Orientation markers for a slice shown as stored (row 0 at the top, column 0
    at the left) from ImageOrientationPatient (6,): the direction each screen edge
    faces, {"left", "right", "top", "bottom"}. A standard axial slice gives R, L, A,
    P (the patient's right on the viewer's left). Raises ValueError when the
    orientation is degenerate."""
    slice_normal(orientation=orientation)  # validates
    row, column = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    return {
        "right": direction_letters(row),
        "left": direction_letters(-row),
        "bottom": direction_letters(column),
        "top": direction_letters(-column),
    }
