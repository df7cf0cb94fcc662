"""Per-slice features of the aligned brain that a hemorrhage or stroke changes, and
the lesion map that shows which pixels carried them.

Input is a :class:`ml.brain.BrainSlice`. All intensities are relative to the
brain's own median in brain-window units (1 unit = 120 HU), so neither the image
size nor the absolute grey level of a scanner enters. Blood is 25-50 HU above
parenchyma (+0.2..+0.4 units); grey-white contrast is about +0.08.

What is left out on purpose: a strip along the midline (falx, pineal and choroid
calcifications are bright and normal), the rim next to bone (the skull's inner edge
is bright by partial volume), and absolute grey levels (a scanner cue that does not
transfer to other hospitals).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ml.brain import BrainSlice

#: Thresholds above the brain median, brain-window units (x120 = HU).
HYPER_LEVELS: tuple[float, ...] = (0.10, 0.15, 0.20, 0.27, 0.35)
BLOB_LEVEL = 0.15  # candidate-lesion threshold of the blobs and the lesion map
HYPO_LEVEL = -0.10
MIDLINE_STRIP = 0.03  # half-width of the left-out midline strip, fraction of S
PERIPHERY = 0.06  # width of the band along the brain's edge, fraction of S
_EPS = 1e-4

FEATURE_NAMES: tuple[str, ...] = (
    *(f"hyper_{int(t * 120)}hu" for t in HYPER_LEVELS),
    "blob_area",
    "blob_excess",
    "blob_count",
    "p90",
    "p95",
    "p99",
    "p997",
    "asym_hyper",
    "asym_hypo",
    "asym_mean",
    "hypo_frac",
    "peripheral_hyper",
    "peripheral_share",
    "brain_fraction",
)


def _strip_mask(size: int) -> np.ndarray:
    half = max(1, round(MIDLINE_STRIP * size))
    keep = np.ones((size, size), bool)
    keep[:, size // 2 - half : size // 2 + half] = False
    return keep


def feature_region(s: BrainSlice) -> np.ndarray:
    """(S, S) bool: the core of the brain without the midline strip."""
    return s.core & _strip_mask(s.image.shape[0])


def _blobs(candidate: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    opened = cv2.morphologyEx(
        candidate.astype(np.uint8),
        cv2.MORPH_OPEN,
        cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)),
    )
    count, labels, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=8)
    return count, labels, stats


def slice_features(s: BrainSlice) -> np.ndarray:
    """The ``FEATURE_NAMES`` of one aligned slice: (F,) float32.

    Fractions are of the feature region's area; a slice without brain gives zeros.
    """
    region = feature_region(s)
    area = int(region.sum())
    out = np.zeros(len(FEATURE_NAMES), np.float32)
    if area < 50:
        return out
    rel = s.relative
    values = rel[region]
    hyper = [float((values > t).mean()) for t in HYPER_LEVELS]
    candidate = region & (rel > BLOB_LEVEL)
    count, labels, stats = _blobs(candidate)
    blob_area, blob_excess, blob_count = 0.0, 0.0, 0
    if count > 1:
        areas = stats[1:, cv2.CC_STAT_AREA]
        biggest = 1 + int(np.argmax(areas))
        blob_area = float(areas.max() / area)
        blob_excess = float(rel[labels == biggest].mean())
        blob_count = int((areas >= max(4, 0.0005 * area)).sum())
    mirrored, both = rel[:, ::-1], region & region[:, ::-1]
    n_both = max(1, int(both.sum()))
    asym_hyper = float(((rel > BLOB_LEVEL) & (mirrored < 0.05) & both).sum() / n_both)
    asym_hypo = float(((rel < HYPO_LEVEL) & (mirrored > -0.03) & both).sum() / n_both)
    smooth = cv2.GaussianBlur(np.abs(rel - mirrored) * both, (0, 0), 4.0)
    band = _periphery(s) & region
    peripheral = float((band & candidate).sum() / max(1, int(band.sum())))
    share = float((band & candidate).sum() / max(1, int(candidate.sum())))
    p90, p95, p99, p997 = np.percentile(values, [90, 95, 99, 99.7])
    out[:] = [
        *hyper,
        blob_area,
        blob_excess,
        blob_count,
        p90,
        p95,
        p99,
        p997,
        asym_hyper,
        asym_hypo,
        float(smooth[both].mean()) if both.any() else 0.0,
        float((values < HYPO_LEVEL).mean()),
        peripheral,
        share,
        s.brain_fraction,
    ]
    return out


def _periphery(s: BrainSlice) -> np.ndarray:
    width = max(2, round(PERIPHERY * s.image.shape[0]))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1,) * 2)
    inner = cv2.erode(s.brain.astype(np.uint8), kernel) > 0
    return s.brain & ~inner


def transform_features(features: np.ndarray) -> np.ndarray:
    """Log-scale the heavy-tailed fractions so a linear model sees their order of
    magnitude: (N, F) -> (N, F) float64."""
    x = np.asarray(features, np.float64).copy()
    for k, name in enumerate(FEATURE_NAMES):
        if name.startswith(("hyper_", "asym_h", "blob_area", "peripheral", "hypo")):
            x[:, k] = np.log10(x[:, k] + _EPS)
        elif name == "blob_count":
            x[:, k] = np.log1p(x[:, k])
    return x


def lesion_map(s: BrainSlice) -> np.ndarray:
    """(S, S) float32 in [0, 1] on the aligned frame: the candidate hyperdense blobs,
    each pixel as bright as its excess over the brain median, weighted by the size
    of its blob, so the largest bright lesion peaks. 0 where nothing is suspect."""
    region = feature_region(s)
    candidate = region & (s.relative > BLOB_LEVEL)
    count, labels, stats = _blobs(candidate)
    out = np.zeros(s.image.shape, np.float32)
    if count <= 1:
        return out
    area = max(1, int(region.sum()))
    weight = np.zeros(count, np.float32)
    weight[1:] = np.log1p(stats[1:, cv2.CC_STAT_AREA] / (0.0005 * area))
    excess = np.clip((s.relative - BLOB_LEVEL + 0.05) / 0.3, 0.0, 1.0)
    out = (weight[labels] * excess).astype(np.float32)
    peak = float(out.max())
    return out / peak if peak > 0 else out


