"""From per-pixel bleed probabilities to what the portal reports: slice scores,
the study score, the lesion outline and the bleed volume. One implementation for
training, evaluation and serving (numpy and OpenCV only)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

#: A slice's score is the mean of its this many most probable brain pixels (on the
#: aligned 128-px frame a pixel is about 1.3 mm, so about 10 mm² in all): a robust
#: maximum that one hot pixel does not make.
TOP_PIXELS = 6
#: Pixel probability at which a pixel counts as bleed (outline, volume).
CONTOUR_LEVEL = 0.5
#: How a slice's pixel map becomes its score: "peak", the mean of its TOP_PIXELS
#: most probable brain pixels; "blob", the probability mass of its largest outlined
#: region, as 1 - exp(-mass / BLOB_SCALE): a speck of a few confident pixels (a
#: calcification, the skull's edge) scores low, a bleed of any real size high.
SCORE_RULES = ("peak", "blob")
BLOB_SCALE = 8.0  # aligned pixels: about 14 mm² on a 512 slice


def _grown(brains: np.ndarray) -> np.ndarray:
    """The intracranial masks grown by 2 px (a bleed against the skull lies on the
    mask's edge)."""
    return np.stack(
        [cv2.dilate(b.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0 for b in brains]
    )


def slice_scores(
    probabilities: np.ndarray, brains: np.ndarray, *, rule: str = "peak"
) -> np.ndarray:
    """(N,) float32 raw slice scores in [0, 1) of (N, S, S) pixel probabilities by
    ``rule`` (``SCORE_RULES``), counting only pixels inside the grown intracranial
    mask; 0 for a slice without a brain mask."""
    if rule not in SCORE_RULES:
        raise ValueError(f"score rule {rule!r} is not one of {SCORE_RULES}")
    maps = np.where(_grown(brains), probabilities, 0.0).astype(np.float32)
    if rule == "blob":
        return np.array([_blob_score(m) for m in maps], np.float32)
    flat = maps.reshape(len(maps), -1)
    k = min(TOP_PIXELS, flat.shape[1])
    top = np.partition(flat, flat.shape[1] - k, axis=1)[:, -k:]
    return top.mean(axis=1).astype(np.float32)


def _blob_score(probability: np.ndarray) -> float:
    outlined = (probability >= CONTOUR_LEVEL).astype(np.uint8)
    count, labels = cv2.connectedComponents(outlined)
    if count < 2:
        return 0.0
    mass = np.bincount(labels.ravel(), weights=probability.ravel())[1:].max()
    return float(1.0 - np.exp(-mass / BLOB_SCALE))


def lesion_pixels(
    probability: np.ndarray, *, level: float = CONTOUR_LEVEL
) -> np.ndarray:
    """(H, W) bool: the pixels of a slice's probability map at or above ``level``."""
    return np.asarray(probability) >= level


def slice_volume_ml(
    probability: np.ndarray,
    *,
    pixel_spacing_mm: Sequence[float],
    slice_spacing_mm: float,
    level: float = CONTOUR_LEVEL,
) -> float:
    """Bleed volume of one slice (mL): lesion pixels x pixel area x slice spacing."""
    area = float(pixel_spacing_mm[0]) * float(pixel_spacing_mm[1])
    pixels = int(lesion_pixels(probability, level=level).sum())
    return pixels * area * float(slice_spacing_mm) / 1000.0


def study_volume_ml(
    probabilities: Sequence[np.ndarray | None],
    *,
    pixel_spacing_mm: Sequence[float] | None,
    slice_spacing_mm: float | None,
    level: float = CONTOUR_LEVEL,
) -> float | None:
    """The study's bleed volume (mL) from its slices' maps on the slice as loaded
    (None for a slice the model did not read); None when the spacing is unknown."""
    if not pixel_spacing_mm or not slice_spacing_mm:
        return None
    if not all(np.isfinite(v) and v > 0 for v in (*pixel_spacing_mm, slice_spacing_mm)):
        return None
    return float(
        sum(
            slice_volume_ml(
                p,
                pixel_spacing_mm=pixel_spacing_mm,
                slice_spacing_mm=slice_spacing_mm,
                level=level,
            )
            for p in probabilities
            if p is not None
        )
    )


def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two boolean masks (1.0 when both are empty)."""
    p, t = np.asarray(prediction, bool), np.asarray(truth, bool)
    total = p.sum() + t.sum()
    return 1.0 if total == 0 else float(2 * (p & t).sum() / total)


def pointing_hit(
    probability: np.ndarray, truth: np.ndarray, *, tolerance: int = 5
) -> bool:
    """Whether the map's peak lies inside the true mask grown by ``tolerance`` px."""
    grown = cv2.dilate(
        np.asarray(truth, np.uint8), np.ones((2 * tolerance + 1,) * 2, np.uint8)
    )
    y, x = np.unravel_index(int(np.argmax(probability)), probability.shape)
    return bool(grown[y, x])
