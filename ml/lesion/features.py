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

Besides the core, a band along the inside of the skull is read on its own
(``rim_*``): traumatic bleeds (epidural, subdural) are crescents against the inner
table that the core leaves out. Pixels within 2 px of bone and pixels at bone level
(>= 0.93) stay out of it, so the skull's own partial volume does not count.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ml.brain import BrainSlice, mask_hull

#: Thresholds above the brain median, brain-window units (x120 = HU).
HYPER_LEVELS: tuple[float, ...] = (0.10, 0.15, 0.20, 0.27, 0.35)
BLOB_LEVEL = 0.15  # candidate-lesion threshold of the blobs
MAP_LEVEL = 0.10  # candidate contrast of the lesion map
MAP_SIDE = 0.08  # local-median window of the lesion map, fraction of S
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
    "rim_hyper",
    "rim_asym",
    "rim_blob",
    "rim_blob_len",
    "big_area",
    "big_excess",
    "big_compact",
    "big_edge_dist",
    "big_mid_dist",
    "asym_lr",
    "bone_inside",
    "rim_thick",
    "deep_hyper",
    "local_blob",
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
    """Connected regions of ``candidate`` after a 3x3 opening: (count including the
    background, (S, S) int32 labels, (count, 5) stats as OpenCV gives them).

    Candidates are sparse: the opening and the labelling run on their bounding box
    (plus 2 px), which gives the same regions in the same order, several times
    faster than on the whole frame."""
    height, width = candidate.shape
    x, y, w, h = cv2.boundingRect(candidate.astype(np.uint8))
    labels = np.zeros((height, width), np.int32)
    if w == 0 or h == 0:
        return 1, labels, np.array([[0, 0, width, height, height * width]], np.int32)
    y0, y1 = max(0, y - 2), min(height, y + h + 2)
    x0, x1 = max(0, x - 2), min(width, x + w + 2)
    opened = cv2.morphologyEx(
        candidate[y0:y1, x0:x1].astype(np.uint8),
        cv2.MORPH_OPEN,
        cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)),
    )
    count, inner, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=8)
    labels[y0:y1, x0:x1] = inner
    stats[:, cv2.CC_STAT_LEFT] += x0
    stats[:, cv2.CC_STAT_TOP] += y0
    stats[0, cv2.CC_STAT_AREA] += height * width - opened.size
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
    dist = _edge_distance(s)
    band = (dist <= max(2, round(PERIPHERY * rel.shape[0]))) & region
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
        *_extra(s, dist),
    ]
    return out


RIM_BAND = 0.05  # width of the extra-axial band inside the brain edge, fraction of S
RIM_LEVEL = 0.20


def _edge_distance(s: BrainSlice) -> np.ndarray:
    """(S, S) float32 distance of each brain pixel from the brain's edge, pixels."""
    brain = np.pad(s.brain.astype(np.uint8), 1)
    return cv2.distanceTransform(brain, cv2.DIST_L2, 3)[1:-1, 1:-1]


def _extra(s: BrainSlice, dist: np.ndarray) -> list[float]:
    size = s.image.shape[0]
    rel = s.relative
    notbone = cv2.distanceTransform((~s.bone).astype(np.uint8), cv2.DIST_L2, 3)
    strip = _strip_mask(size)
    band = s.brain & (dist <= RIM_BAND * size) & (notbone >= 2) & strip
    nb = max(1, int(band.sum()))
    hot = band & (rel > RIM_LEVEL) & (s.image < 0.93)
    rim_hyper = float(hot.sum() / nb)
    half = size // 2
    left, right = int(hot[:, :half].sum()), int(hot[:, half:].sum())
    nl, nr = max(1, int(band[:, :half].sum())), max(1, int(band[:, half:].sum()))
    rim_asym = abs(left / nl - right / nr)
    count, labels, stats = _blobs(hot)
    rim_blob, rim_len = 0.0, 0.0
    if count > 1:
        areas = stats[1:, cv2.CC_STAT_AREA]
        b = 1 + int(np.argmax(areas))
        rim_blob = float(areas.max() / nb)
        extent = max(stats[b, cv2.CC_STAT_WIDTH], stats[b, cv2.CC_STAT_HEIGHT])
        rim_len = float(extent / size)
    # largest hyperdense blob anywhere in the brain (not only the core)
    region = s.brain & strip & (notbone >= 2)
    na = max(1, int(region.sum()))
    cand = region & (rel > 0.15) & (s.image < 0.93)
    count, labels, stats = _blobs(cand)
    big = [0.0, 0.0, 0.0, 0.0, 0.0]
    if count > 1:
        areas = stats[1:, cv2.CC_STAT_AREA]
        b = 1 + int(np.argmax(areas))
        m = labels == b
        contours, _ = cv2.findContours(
            m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
        )
        per = sum(cv2.arcLength(c, True) for c in contours)
        xs = np.nonzero(m)[1]
        big = [
            float(areas.max() / na),
            float(rel[m].mean()),
            float(4 * math.pi * areas.max() / max(per, 1.0) ** 2),
            float(np.median(dist[m]) / size),
            float(np.abs(xs - size / 2).mean() / size),
        ]
    asym_lr = abs(int(cand[:, :half].sum()) - int(cand[:, half:].sum())) / na
    inside = mask_hull(s.brain, default=False) & s.bone
    bone_inside = float(inside.sum() / max(1, int(s.brain.sum())))
    # a rim bleed is thick; the skull's partial volume is a thin line
    thick = _open(hot, 2)
    rim_thick = float(thick.sum() / nb)
    deep = region & (dist > DEEP * size)
    deep_hyper = float(
        (deep & (rel > RIM_LEVEL) & (s.image < 0.93)).sum() / max(1, int(deep.sum()))
    )
    # local contrast: brighter than its own neighbourhood (slow shading drops out)
    local = _open(region & (_local_contrast(s) > LOCAL_LEVEL) & (s.image < 0.93), 1)
    count, labels, stats = _blobs(local)
    local_blob = float(stats[1:, cv2.CC_STAT_AREA].max() / na) if count > 1 else 0.0
    return [
        rim_hyper,
        rim_asym,
        rim_blob,
        rim_len,
        *big,
        asym_lr,
        bone_inside,
        rim_thick,
        deep_hyper,
        local_blob,
    ]


DEEP = 0.08  # deep brain: farther than this from the brain's edge, fraction of S
LOCAL_LEVEL = 0.12  # local-contrast threshold (relative minus its local median)
LOCAL_SIDE = 0.12  # side of the local-median window, fraction of S


def _local_contrast(s: BrainSlice) -> np.ndarray:
    """(S, S) float32: ``relative`` minus its median over a window of
    ``LOCAL_SIDE`` x S (outside the brain counts as the brain median)."""
    size = s.image.shape[0]
    side = max(3, 2 * round(LOCAL_SIDE * size / 2) + 1)
    quantised = np.clip((s.relative + 0.5) * 255, 0, 255).astype(np.uint8)
    quantised[~s.brain] = 127
    # The local median is smooth: take it on a half-size copy (4x fewer pixels,
    # half the window) and bring it back up.
    half = cv2.resize(quantised, (size // 2, size // 2), interpolation=cv2.INTER_AREA)
    median = cv2.medianBlur(half, max(3, (side // 2) | 1))
    median = cv2.resize(median, (size, size), interpolation=cv2.INTER_LINEAR)
    return s.relative - (median.astype(np.float32) / 255 - 0.5)


def _open(mask: np.ndarray, radius: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2)
    return cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, kernel) > 0


_LOG_SCALED = frozenset(
    {
        "asym_hyper",
        "asym_hypo",
        "blob_area",
        "peripheral_hyper",
        "peripheral_share",
        "hypo_frac",
        "rim_hyper",
        "rim_asym",
        "rim_blob",
        "big_area",
        "asym_lr",
        "bone_inside",
        "rim_thick",
        "deep_hyper",
        "local_blob",
    }
)


def transform_features(features: np.ndarray) -> np.ndarray:
    """Log-scale the heavy-tailed fractions so a linear model sees their order of
    magnitude: (N, F) -> (N, F) float64."""
    x = np.asarray(features, np.float64).copy()
    for k, name in enumerate(FEATURE_NAMES):
        if name in _LOG_SCALED or name.startswith("hyper_"):
            x[:, k] = np.log10(x[:, k] + _EPS)
        elif name == "blob_count":
            x[:, k] = np.log1p(x[:, k])
    return x


def lesion_map(s: BrainSlice) -> np.ndarray:
    """(S, S) float32 in [0, 1] on the aligned frame: the candidate hyperdense blobs,
    coloured by how suspicious they are, 0 where nothing is suspect.

    A pixel is a candidate when, away from the midline strip and from bone, it is
    above the brain median and its contrast (half its excess over the brain median,
    half its excess over its own neighbourhood, ``MAP_SIDE`` x S) exceeds
    ``MAP_LEVEL``. Each blob is weighted by area^0.3 x mean contrast x thickness
    (thin lines of partial volume along the skull count less) x asymmetry (the
    share of its pixels whose mirror image across the midline is not bright:
    normal structures come in pairs); each pixel by its own contrast and its depth
    inside the blob, so the peak sits inside the most suspicious lesion.
    """
    size = s.image.shape[0]
    rel = s.relative
    notbone = cv2.distanceTransform((~s.bone).astype(np.uint8), cv2.DIST_L2, 3)
    region = s.brain & _strip_mask(size) & (notbone >= 2)
    side = max(3, 2 * round(MAP_SIDE * size / 2) + 1)
    quantised = np.clip((rel + 0.5) * 255, 0, 255).astype(np.uint8)
    quantised[~s.brain] = 127
    local = rel - (cv2.medianBlur(quantised, side).astype(np.float32) / 255 - 0.5)
    contrast = 0.5 * local + 0.5 * rel
    candidate = region & (contrast > MAP_LEVEL) & (s.image < 0.93) & (rel > 0.05)
    count, labels, stats = _blobs(candidate)
    out = np.zeros(s.image.shape, np.float32)
    if count <= 1:
        return out
    depth = cv2.distanceTransform((labels > 0).astype(np.uint8), cv2.DIST_L2, 3)
    mirrored, mirrored_region = contrast[:, ::-1], region[:, ::-1]
    weight = np.zeros(count, np.float32)
    for b in range(1, count):
        m = labels == b
        thickness = min(float(depth[m].max()), 4.0) / 4.0
        asym = float(((mirrored[m] < 0.06) | ~mirrored_region[m]).mean())
        area = float(stats[b, cv2.CC_STAT_AREA])
        weight[b] = area**0.3 * float(contrast[m].mean()) * thickness * (0.2 + asym)
    excess = np.clip((contrast - 0.05) / 0.3, 0.0, 1.0)
    out = weight[labels] * (0.5 + np.minimum(depth, 4.0) / 8.0) * excess
    out = cv2.GaussianBlur(out.astype(np.float32), (0, 0), 1.0)
    peak = float(out.max())
    return (out / peak).astype(np.float32) if peak > 0 else out.astype(np.float32)
