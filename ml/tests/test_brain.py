"""ml.brain on synthetic heads with a known skull, midline and rotation, and on the
shared data beside the project when it is there (skipped otherwise)."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from ml import synthetic
from ml.brain import (
    BONE_LEVEL,
    brain_slice,
    brain_study,
    brain_window,
    mask_orientation,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CT_ICH = DATA / "ct-ich"
PHANTOM = DATA / "dicom-head-phantom" / "std-brain-5mm"
SIDE = 256


def _grid(side: int) -> tuple[np.ndarray, np.ndarray, float]:
    yy, xx = np.mgrid[:side, :side].astype(np.float32)
    return xx, yy, side / 2.0


def _rotated(image: np.ndarray, angle: float, *, nearest: bool = False) -> np.ndarray:
    side = image.shape[0]
    matrix = cv2.getRotationMatrix2D((side / 2.0, side / 2.0), angle, 1.0)
    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.warpAffine(image.astype(np.float32), matrix, (side, side), flags=flags)


def head_slice(
    *, angle: float = 0.0, side: int = SIDE, bleed: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A head in brain-window units, long axis vertical, then rotated by ``angle``
    degrees (cv2 convention, counter-clockwise on screen).

    Scalp 0.6, skull ring 1.0, brain 0.45, two ventricles mirrored about the
    midline (above the centre, so only the vertical axis is a mirror axis) and,
    with ``bleed``, a 0.75 lens against the inner table on the right. Returns
    (image, bleed mask, intracranial mask), (side, side).
    """
    xx, yy, c = _grid(side)
    r = np.hypot((xx - c) / (0.30 * side), (yy - c) / (0.38 * side))
    image = np.zeros((side, side), np.float32)
    image[r < 1.04] = 0.6
    image[r < 1.0] = 1.0
    inside = r < 0.9
    image[inside] = 0.45
    for sign in (-1, 1):
        v = np.hypot(
            (xx - c - sign * 0.05 * side) / (0.025 * side),
            (yy - c + 0.06 * side) / (0.08 * side),
        )
        image[v < 1] = 0.1
    bleed_mask = np.zeros((side, side), bool)
    if bleed:
        lens = np.hypot(
            (xx - c - 0.27 * side) / (0.04 * side),
            (yy - c - 0.05 * side) / (0.09 * side),
        )
        bleed_mask = (lens < 1) & inside
        image[bleed_mask] = 0.75
    noise = np.random.default_rng(0).normal(0.0, 0.01, image.shape)
    image = np.clip(image + (noise * (image > 0)).astype(np.float32), 0.0, 1.0)
    if angle:
        image = np.clip(_rotated(image, angle), 0.0, 1.0)
        bleed_mask = _rotated(bleed_mask, angle, nearest=True) > 0.5
        inside = _rotated(inside, angle, nearest=True) > 0.5
    return image, bleed_mask, inside


def neck_slice(side: int = SIDE) -> np.ndarray:
    """Soft tissue around a vertebra and the airway: bone, but no skull and no brain."""
    xx, yy, c = _grid(side)
    image = np.zeros((side, side), np.float32)
    image[np.hypot((xx - c) / (0.28 * side), (yy - c) / (0.22 * side)) < 1] = 0.55
    vertebra = np.hypot(
        (xx - c) / (0.06 * side), (yy - c - 0.06 * side) / (0.05 * side)
    )
    image[vertebra < 1] = 1.0
    airway = np.hypot((xx - c) / (0.03 * side), (yy - c + 0.1 * side) / (0.03 * side))
    image[airway < 1] = 0.0
    return image


def face_slice(side: int = SIDE) -> np.ndarray:
    """A large head of soft tissue, facial bone and sinuses, with a small skull ring
    of brain at the back (the posterior fossa)."""
    xx, yy, c = _grid(side)
    image = np.zeros((side, side), np.float32)
    image[np.hypot((xx - c) / (0.32 * side), (yy - c) / (0.40 * side)) < 1] = 0.55
    for dx in (-0.15, 0.0, 0.15):
        r = np.hypot(
            (xx - c - dx * side) / (0.05 * side), (yy - c + 0.2 * side) / (0.07 * side)
        )
        image[r < 1] = 1.0
        image[r < 0.6] = 0.0
    r = np.hypot((xx - c) / (0.10 * side), (yy - c - 0.24 * side) / (0.08 * side))
    image[r < 1.0] = 1.0
    image[r < 0.85] = 0.45
    return image


def _scaled(image: np.ndarray, scale: float) -> np.ndarray:
    side = image.shape[0]
    matrix = cv2.getRotationMatrix2D((side / 2.0, side / 2.0), 0.0, scale)
    return cv2.warpAffine(image, matrix, (side, side), flags=cv2.INTER_LINEAR)


def _angle_gap(a: float, b: float) -> float:
    gap = abs((a - b) % 180.0)
    return min(gap, 180.0 - gap)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


# --- one slice ------------------------------------------------------------------


@pytest.mark.parametrize("angle", [0.0, 25.0, 70.0, 120.0, -40.0])
def test_brain_slice_recovers_a_known_rotation(angle):
    image, _, _ = head_slice(angle=angle)

    aligned = brain_slice(image)

    # Rotating by -angle undoes the phantom's rotation; face up or down is not
    # decided, so the two agree modulo 180 degrees.
    assert _angle_gap(aligned.angle, -angle) <= 5.0
    _, _, axis, _ = mask_orientation(aligned.brain)
    assert _angle_gap(axis, 90.0) <= 5.0  # the brain's long axis is vertical
    assert aligned.ring and aligned.is_brain


@pytest.mark.parametrize("angle", [0.0, 35.0, 100.0])
def test_brain_slice_keeps_a_bleed_against_the_skull(angle):
    image, bleed, _ = head_slice(angle=angle)

    aligned = brain_slice(image)

    on_frame = aligned.from_slice(bleed.astype(np.float32)) > 0.5
    assert on_frame.sum() > 50
    assert (on_frame & aligned.brain).sum() >= 0.8 * on_frame.sum()
    assert not (aligned.brain & aligned.bone).any()  # the skull itself is out


def test_brain_slice_of_an_empty_slice_is_not_brain():
    aligned = brain_slice(np.zeros((SIDE, SIDE), np.float32))

    assert not aligned.is_brain
    assert aligned.brain_fraction == 0.0 and not aligned.brain.any()


@pytest.mark.parametrize("side", [SIDE, 512])
def test_aligned_masks_round_trip_to_the_slice(side):
    image, _, inside = head_slice(angle=30.0, side=side)
    aligned = brain_slice(image)

    back = aligned.to_slice(aligned.from_slice(inside.astype(np.float32)), nearest=True)

    assert _iou(back > 0.5, inside) > 0.9
    # and the brain mask found is the phantom's inside of the skull
    found = aligned.to_slice(aligned.brain.astype(np.float32), nearest=True) > 0.5
    assert _iou(found, inside) > 0.9


# --- a study --------------------------------------------------------------------


def test_brain_study_marks_neck_face_and_vertex_slices_not_brain():
    mid = [
        _scaled(head_slice(bleed=False)[0], 1.0 - 0.08 * abs(k - 3)) for k in range(7)
    ]
    vertex = _scaled(head_slice(bleed=False)[0], 0.4)
    volume = np.stack([neck_slice(), face_slice(), *mid, vertex])

    study = brain_study(np.round(volume * 255), units="windowed8")

    assert study.is_brain.tolist() == [False, False] + [True] * 7 + [False]
    assert [s.is_brain for s in study.slices] == study.is_brain.tolist()
    assert study.brain_fraction[0] < 0.1  # the neck has bone but no skull ring


def test_brain_study_marks_the_mid_slices_of_a_synthetic_phantom_as_brain():
    phantom = synthetic.make_phantom(
        label="hemorrhagic", lesion="subdural", size=SIDE, slices=16, seed=2
    )

    study = brain_study(phantom.volume_hu, units="HU")

    assert study.is_brain[4:12].all()
    for k in range(4, 12):
        aligned = study.slices[k]
        found = aligned.to_slice(aligned.brain.astype(np.float32), nearest=True)
        assert _iou(found > 0.5, phantom.brain_mask[k]) > 0.9
    # The subdural bleed against the skull stays in, as far as it is blood: the
    # phantom's mask also covers blurred inner-table pixels above bone level.
    blood = phantom.mask & (brain_window(phantom.volume_hu, units="HU") < BONE_LEVEL)
    kept = total = 0
    for aligned, lesion in zip(study.slices, blood, strict=True):
        on_frame = aligned.from_slice(lesion.astype(np.float32)) > 0.5
        kept, total = kept + (on_frame & aligned.brain).sum(), total + on_frame.sum()
    assert total > 1000 and kept >= 0.95 * total


# --- the shared data ------------------------------------------------------------


def _ct_ich_patients(count: int) -> list[tuple[int, list[dict[str, str]]]]:
    """The first ``count`` patients with a hemorrhage, by patient number."""
    rows: dict[int, list[dict[str, str]]] = defaultdict(list)
    with (CT_ICH / "labels.csv").open() as handle:
        for row in csv.DictReader(handle):
            rows[int(row["patient"])].append(row)
    bleeders = [
        p for p in sorted(rows) if any(r["any_hemorrhage"] == "1" for r in rows[p])
    ]
    return [
        (p, sorted(rows[p], key=lambda r: int(r["slice"]))) for p in bleeders[:count]
    ]


def _read_gray(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert image is not None, f"{path} is not an image"
    return np.asarray(image)


ct_ich_only = pytest.mark.skipif(
    not CT_ICH.is_dir(), reason=f"shared data not found at {CT_ICH} (optional)"
)


@ct_ich_only
@pytest.mark.xfail(
    strict=True,
    reason="measured 0.90 (patients 49, 50, 52: 0.88, 1.00, 0.78; 0.96 over all 27 "
    "bleed patients): epidural masks cover inner-table pixels at or above BONE_LEVEL, "
    "and the broken-ring fallback erodes bleeds lying against the skull",
)
def test_ct_ich_hemorrhage_masks_lie_inside_the_brain_mask():
    kept = total = 0
    for _, rows in _ct_ich_patients(3):
        volume = np.stack([_read_gray(CT_ICH / r["image"]) for r in rows])
        study = brain_study(volume.astype(np.float32), units="windowed8")
        for row, aligned in zip(rows, study.slices, strict=True):
            if row["any_hemorrhage"] != "1":
                continue
            mask = (_read_gray(CT_ICH / row["mask"]) > 0).astype(np.float32)
            on_frame = aligned.from_slice(mask) > 0.5
            kept += int((on_frame & aligned.brain).sum())
            total += int(on_frame.sum())
    assert total > 1000
    assert kept / total >= 0.95, f"{kept / total:.3f} of hemorrhage pixels in brain"


@ct_ich_only
def test_ct_ich_black_slices_are_not_brain_and_mid_slices_are():
    for patient, rows in _ct_ich_patients(3):
        volume = np.stack([_read_gray(CT_ICH / r["image"]) for r in rows])
        study = brain_study(volume.astype(np.float32), units="windowed8")
        black = volume.reshape(len(volume), -1).max(axis=1) == 0
        assert not study.is_brain[black].any(), patient
        middle = len(volume) // 2
        assert study.is_brain[middle - 2 : middle + 3].all(), patient


@pytest.mark.skipif(not PHANTOM.is_dir(), reason=f"{PHANTOM} not found (optional)")
def test_plastic_head_phantom_has_no_brain_slice():
    from ml.io import load_study

    result = load_study(PHANTOM)

    study = brain_study(result.volume, units=result.metadata.units)

    assert not study.is_brain.any(), np.flatnonzero(study.is_brain).tolist()
