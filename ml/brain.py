"""Brain-aware input: find the head, strip the skull, align the midline, and say which
slices show enough brain to decide a study.

Pure numpy/OpenCV. Every model reads the same input from here, and every step records
what it did, so a map computed on the aligned brain maps back onto the slice the
viewer shows (:meth:`BrainSlice.to_slice`) without recomputing anything.

Units: all images here are in **brain-window units**, float32 in [0, 1], the window of
ct-ich (level 40 HU, width 120 HU: -20 HU -> 0, +100 HU -> 1). Hounsfield units are
windowed to it (:func:`brain_window`); 8-bit images that arrive already windowed
(brain-stroke-ct, ct-ich, PNG exports) are taken as they are, /255. Their window is
not known exactly (brain-stroke-ct looks like a narrower brain window), so features
work relative to the brain's own median (``BrainSlice.relative``), never on absolute
grey levels, which are a scanner cue.

Chain per slice (:func:`brain_slice`), on a copy about ``WORK_SIDE`` pixels wide:
head mask (largest bright region, holes filled; letters, head holders and table
drop out as separate components) -> bone (saturated pixels) -> intracranial mask
(inside the skull ring; an eroded head as the fallback when the ring is broken) ->
orientation from the brain's second moments, refined by left-right mirror symmetry
-> one affine warp to an (S, S) image with the midline vertical at x = (S - 1)/2
(the column a left-right flip mirrors about) and the brain filling the frame ->
brain median and relative intensities. The study then
marks brain slices (:func:`brain_study`): neck, face and vertex slices, with little
brain, and the inside of test objects (water, plastic: not brain density) neither
train with the scan's label nor decide a study.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

#: (centre, width) in HU of the window every model reads: ct-ich's brain window.
BRAIN_WINDOW: tuple[float, float] = (40.0, 120.0)
#: Brain-window value from which a pixel counts as bone or calcification (~93 HU).
BONE_LEVEL = 0.945
#: Brain-window values the median of real brain tissue lies in (16..57 HU; real
#: scans: 0.34..0.63 over 2,700 brain slices of two sources): the
#: inside of a water- or acrylic-filled test object is no brain.
BRAIN_MEDIAN_RANGE: tuple[float, float] = (0.3, 0.64)
#: Side of the working copy the masks are computed on, pixels.
WORK_SIDE = 256


@dataclass(frozen=True)
class BrainConfig:
    """How slices become aligned brain images; stored in a model card.

    ``size``: side of the aligned output. ``margin``: free border around the brain,
    fraction of ``size``. ``rim``: pixels (output) next to bone left out of the
    feature region (partial volume of the skull's inner edge looks like blood).
    ``min_fraction``: brain area / head area below which a slice is not a brain
    slice (face, neck); ``min_relative_area``: brain area / the study's largest
    brain area below which it is not either (vertex, skull base).
    """

    size: int = 256
    margin: float = 0.04
    rim: int = 3
    min_fraction: float = 0.3
    min_relative_area: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size < 32:
            raise ValueError(f"brain size must be an int >= 32, got {self.size!r}")
        if not 0 <= self.margin < 0.3:
            raise ValueError(f"margin must be in [0, 0.3), got {self.margin}")
        if not 0 <= self.min_fraction < 1 or not 0 <= self.min_relative_area < 1:
            raise ValueError("min_fraction and min_relative_area must be in [0, 1)")

    def to_dict(self) -> dict[str, float | int]:
        return {
            "size": self.size,
            "margin": self.margin,
            "rim": self.rim,
            "min_fraction": self.min_fraction,
            "min_relative_area": self.min_relative_area,
        }

    @classmethod
    def from_dict(cls, data: dict) -> BrainConfig:
        known = set(cls().to_dict())
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown BrainConfig keys: {unknown}")
        return cls(**data)


@dataclass
class BrainSlice:
    """One slice, aligned: what the models read and how it maps back.

    ``image``: (S, S) float32 brain-window units, head rotated so the midline is
    the vertical line x = ``midline_x`` and scaled to fill the frame. ``relative``:
    ``image`` minus the brain median inside ``brain``, 0 outside. ``brain``: the
    intracranial mask; ``core``: brain minus the rim next to bone (feature region);
    ``bone``: bone and calcification. ``matrix``: (2, 3) affine from slice (x, y)
    to aligned (x, y) pixels. ``angle``: degrees the head was rotated by
    (counter-clockwise in image display). ``scale``: output pixels per slice pixel.
    ``head_box``: (y0, y1, x0, x1) of the head on the slice. ``brain_fraction``:
    brain area / head area; ``brain_area``: brain area in slice pixels.
    ``ring``: whether the skull ring was closed (else the eroded-head fallback).
    """

    image: np.ndarray
    relative: np.ndarray
    brain: np.ndarray
    core: np.ndarray
    bone: np.ndarray
    matrix: np.ndarray
    angle: float
    scale: float
    midline_x: float
    head_box: tuple[int, int, int, int]
    slice_shape: tuple[int, int]
    brain_fraction: float
    brain_area: float
    median: float
    ring: bool
    is_brain: bool = True
    elongation: float = 0.0

    def to_slice(self, values: np.ndarray, *, nearest: bool = False) -> np.ndarray:
        """Map an (S, S) array on the aligned image back onto the (H, W) slice.

        Linear interpolation (``nearest`` for label masks); 0 outside the frame.
        Returns float32 (H, W).
        """
        size = self.image.shape[0]
        if values.shape != (size, size):
            raise ValueError(f"need a ({size}, {size}) map, got {values.shape}")
        height, width = self.slice_shape
        inverse = cv2.invertAffineTransform(self.matrix)
        flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
        return cv2.warpAffine(
            np.ascontiguousarray(values, dtype=np.float32),
            inverse,
            (width, height),
            flags=flags,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0.0,
        )

    def from_slice(self, values: np.ndarray, *, nearest: bool = True) -> np.ndarray:
        """Map an (H, W) array on the slice (a mask, say) onto the aligned frame."""
        if values.shape != self.slice_shape:
            raise ValueError(f"need a {self.slice_shape} array, got {values.shape}")
        size = self.image.shape[0]
        flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
        return cv2.warpAffine(
            np.ascontiguousarray(values, dtype=np.float32),
            self.matrix,
            (size, size),
            flags=flags,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0.0,
        )


@dataclass
class BrainStudy:
    """The aligned slices of a study, in the order of the volume.

    ``is_brain``: (D,) bool, slices allowed to train with the scan's label and to
    decide the study. ``brain_fraction``: (D,) float.
    """

    slices: list[BrainSlice]
    is_brain: np.ndarray
    brain_fraction: np.ndarray
    config: BrainConfig = field(default_factory=BrainConfig)

    def images(self) -> np.ndarray:
        """(D, S, S) float32 aligned images."""
        return np.stack([s.image for s in self.slices])


# --- units -----------------------------------------------------------------------


def brain_window(volume: np.ndarray, *, units: str) -> np.ndarray:
    """Bring pixels to brain-window units: float32 [0, 1], same shape.

    ``units``: ``"HU"`` -> the ``BRAIN_WINDOW``; ``"windowed8"`` (0..255, already
    windowed) -> /255; ``"raw16"``/``"intensity"`` -> 1st..99.5th percentile of the
    whole array (no calibrated scale: the features are then only rough).
    """
    arr = np.asarray(volume, dtype=np.float32)
    if units == "HU":
        centre, width = BRAIN_WINDOW
        out = (arr - np.float32(centre - width / 2)) / np.float32(width)
        return np.clip(out, 0.0, 1.0, out=out)
    if units == "windowed8":
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ValueError(
                f"windowed8 pixels must lie in 0..255, got {arr.min():g}..{arr.max():g}"
            )
        return arr * np.float32(1.0 / 255.0)
    if units in ("raw16", "intensity"):
        low, high = np.percentile(arr, [1.0, 99.5]) if arr.size else (0.0, 1.0)
        if high <= low:
            return np.zeros_like(arr)
        return np.clip((arr - np.float32(low)) / np.float32(high - low), 0.0, 1.0)
    raise ValueError(f"unknown units {units!r}")


# --- masks on the working copy --------------------------------------------------


def _disk(radius: int) -> np.ndarray:
    side = 2 * max(1, radius) + 1
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))


def _largest(binary: np.ndarray) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        binary.astype(np.uint8), connectivity=8
    )
    if count <= 1:
        return np.zeros(binary.shape, bool)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool with every region the border cannot reach filled in."""
    padded = np.pad(mask.astype(np.uint8), 1)
    flood = np.zeros((padded.shape[0] + 2, padded.shape[1] + 2), np.uint8)
    cv2.floodFill(padded, flood, (0, 0), 2)
    return (padded != 2)[1:-1, 1:-1]


def head_mask(image: np.ndarray) -> np.ndarray:
    """The head on a (H, W) brain-window image: (H, W) bool.

    The threshold sits above the background, measured on the image border, so grey
    backgrounds work; an opening detaches the table, head holders and streaks, and
    only the largest region is kept, so burned-in letters and marks drop out.
    """
    border = np.concatenate([image[:3].ravel(), image[-3:].ravel()])
    border = np.concatenate([border, image[:, :3].ravel(), image[:, -3:].ravel()])
    level = max(0.05, float(np.median(border)) + 0.08)
    above = (image > level).astype(np.uint8)
    radius = max(1, round(min(image.shape) / 100))
    opened = cv2.morphologyEx(above, cv2.MORPH_OPEN, _disk(radius))
    # Fill first: a thin skull ring around a dark inside (a phantom, air) is still
    # the largest region once its inside counts.
    return _largest(fill_holes(opened))


def intracranial_mask(
    image: np.ndarray, head: np.ndarray, bone: np.ndarray
) -> tuple[np.ndarray, bool]:
    """The inside of the skull: ((H, W) bool, whether the skull ring was closed).

    Inside a closed ring: everything the closed bone encloses that is not bone.
    When the ring is broken (fracture, skull base, a skull cut by the image edge) or
    encloses too little, the head eroded by a typical scalp-and-skull thickness,
    minus bone, stands in. A bleed against the skull is not bone (it is below
    ``BONE_LEVEL``), so it stays inside.
    """
    side = min(image.shape)
    head_area = max(1, int(head.sum()))
    # Close gaps in the ring (sutures, thin temporal bone, fractures) with growing
    # disks; the smallest that encloses a plausible brain wins.
    for radius in (max(2, side // 64), max(3, side // 32), max(4, side // 20)):
        closed = cv2.morphologyEx(
            bone.astype(np.uint8), cv2.MORPH_CLOSE, _disk(radius)
        ).astype(bool)
        inside = fill_holes(closed) & ~closed & (image > 0.02)
        inside = _largest(_open(inside, max(1, side // 128)))
        if inside.sum() >= 0.25 * head_area:
            return fill_holes(inside) & ~bone, True
    equivalent = math.sqrt(head_area / math.pi)
    eroded = cv2.erode(head.astype(np.uint8), _disk(max(2, round(0.1 * equivalent))))
    near_bone = cv2.dilate(bone.astype(np.uint8), _disk(1)).astype(bool)
    soft = eroded.astype(bool) & ~near_bone & (image > 0.02) & mask_hull(bone)
    return _largest(_open(soft, max(1, side // 128))), False


def mask_hull(mask: np.ndarray, *, default: bool = True) -> np.ndarray:
    """(H, W) bool convex hull of a mask (from its outer contours, which have the
    same hull as all its pixels); all ``default`` when it has under 3 points."""
    found, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    points = np.concatenate(found) if found else np.zeros((0, 1, 2), np.int32)
    if len(points) < 3:
        return np.full(mask.shape, default, bool)
    hull = np.zeros(mask.shape, np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(points), 1)
    return hull.astype(bool)


def _open(mask: np.ndarray, radius: int) -> np.ndarray:
    return cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, _disk(radius)) > 0


# --- orientation ----------------------------------------------------------------


def mask_orientation(mask: np.ndarray) -> tuple[float, float, float, float]:
    """(centre x, centre y, angle in degrees, elongation) of a mask's major axis.

    The angle is that of the major axis against the x axis, in (-90, 90]; the head's
    long (anterior-posterior) axis is its major axis on most axial slices.
    ``elongation``: 1 - minor/major axis length, 0 for a disk.
    """
    moments = cv2.moments(mask.astype(np.uint8), binaryImage=True)
    if moments["m00"] == 0:
        height, width = mask.shape
        return width / 2.0, height / 2.0, 90.0, 0.0
    cx, cy = moments["m10"] / moments["m00"], moments["m01"] / moments["m00"]
    mu20, mu02, mu11 = moments["mu20"], moments["mu02"], moments["mu11"]
    theta = 0.5 * math.atan2(2 * mu11, mu20 - mu02)
    spread = math.hypot(mu20 - mu02, 2 * mu11)
    major, minor = mu20 + mu02 + spread, max(0.0, mu20 + mu02 - spread)
    elongation = 1.0 - math.sqrt(minor / major) if major > 0 else 0.0
    return cx, cy, math.degrees(theta), elongation


def _rotation(
    cx: float, cy: float, angle: float, scale: float, out: float
) -> np.ndarray:
    # Rotate about (cx, cy) by ``angle`` degrees, scale, and put (cx, cy) at (out, out).
    matrix = np.asarray(cv2.getRotationMatrix2D((cx, cy), angle, scale), np.float64)
    matrix[:, 2] += (out - cx, out - cy)
    return matrix


def _mirror_costs(
    image: np.ndarray, mask: np.ndarray, cx: float, cy: float, angles: np.ndarray
) -> np.ndarray:
    side = 64
    scale = side * 0.45 / max(1.0, math.sqrt(mask.sum() / math.pi))
    weight = mask.astype(np.float32)
    costs = np.empty(len(angles))
    for k, angle in enumerate(angles):
        matrix = _rotation(
            cx, cy, float(angle), scale, (side - 1) / 2
        )  # [:, ::-1] mirrors about this column
        img = cv2.warpAffine(image, matrix, (side, side), flags=cv2.INTER_LINEAR)
        msk = cv2.warpAffine(weight, matrix, (side, side))
        both = np.maximum(msk, msk[:, ::-1])
        total = both.sum()
        diff = np.abs(img - img[:, ::-1]) * both + np.abs(msk - msk[:, ::-1])
        costs[k] = diff.sum() / total if total else math.inf
    return costs


def midline_angle(
    image: np.ndarray, mask: np.ndarray, *, hint: float | None = None
) -> tuple[float, float, float, float]:
    """(centre x, centre y, rotation in degrees) that makes a head's midline vertical.

    Every angle is tried (10-degree steps, then 2-degree steps around the best): the
    one whose left-right mirror image matches best inside ``mask`` wins, with a
    preference for the mask's major axis that grows with its elongation (an oval
    head's long axis is anterior-posterior; a round vertex slice has no such cue).
    A rotation by the result (``cv2.getRotationMatrix2D`` convention) puts the
    midline upright; whether the face is up or down is not decided (left-right
    features do not need it). ``hint``: search only within 10 degrees of this
    rotation (the study's, for a round slice). Returns (cx, cy, angle, elongation).
    """
    cx, cy, theta, elongation = mask_orientation(mask)
    base = theta - 90.0  # rotating by this brings the major axis to vertical

    def cost(angles: np.ndarray) -> np.ndarray:
        prior = elongation * np.sin(np.radians(angles - base)) ** 2
        return _mirror_costs(image, mask, cx, cy, angles) + 0.3 * prior

    if hint is None:
        coarse = base + np.arange(-90.0, 90.0, 10.0)
        best = float(coarse[int(np.argmin(cost(coarse)))])
    else:
        best = float(hint)
    fine = best + np.arange(-8.0, 8.1, 2.0)
    return cx, cy, float(fine[int(np.argmin(cost(fine)))]), elongation


# --- one slice ------------------------------------------------------------------


def _work_copy(image: np.ndarray) -> tuple[np.ndarray, float]:
    height, width = image.shape
    factor = WORK_SIDE / max(height, width)
    if factor >= 1:
        return np.ascontiguousarray(image, np.float32), 1.0
    small = cv2.resize(
        np.ascontiguousarray(image, np.float32),
        (max(1, round(width * factor)), max(1, round(height * factor))),
        interpolation=cv2.INTER_AREA,
    )
    return small, factor


ROUGH_SIDE = 128  # side of the first look that finds the head's box


def _head_crop(image: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the box of the head on ``image``, found on a ~128 px copy,
    plus a margin (the whole image when no head shows). The masks are then computed
    on the head at the same resolution whatever the image size, border or field of
    view of the export."""
    height, width = image.shape
    factor = min(1.0, ROUGH_SIDE / max(height, width))
    rough = cv2.resize(
        np.ascontiguousarray(image, np.float32),
        (max(1, round(width * factor)), max(1, round(height * factor))),
        interpolation=cv2.INTER_AREA,
    )
    head = head_mask(rough)
    if not head.any():
        return 0, 0, width, height
    ys, xs = np.nonzero(head)
    pad = 0.08 * max(int(np.ptp(ys)) + 1, int(np.ptp(xs)) + 1)
    x0 = max(0, int((xs.min() - pad) / factor))
    y0 = max(0, int((ys.min() - pad) / factor))
    x1 = min(width, math.ceil((xs.max() + 1 + pad) / factor))
    y1 = min(height, math.ceil((ys.max() + 1 + pad) / factor))
    return x0, y0, x1, y1


@dataclass
class _Masks:
    """What one slice's masks are, on its working copy (before alignment)."""

    small: np.ndarray
    factor: float
    shape: tuple[int, int]
    head: np.ndarray
    bone: np.ndarray
    inside: np.ndarray
    ring: bool
    offset: tuple[int, int] = (0, 0)  # (x, y) of the working copy's crop on the slice
    cx: float = 0.0
    cy: float = 0.0
    theta: float = 90.0
    elongation: float = 0.0

    @property
    def outline(self) -> np.ndarray:
        """The mask the head's orientation is read from."""
        return self.inside if self.inside.sum() >= 0.1 * self.head.sum() else self.head


def _slice_masks(image: np.ndarray) -> _Masks | None:
    if image.ndim != 2 or min(image.shape) < 16:
        raise ValueError(f"need an (H, W) slice of at least 16 px, got {image.shape}")
    clipped = np.clip(image, 0.0, 1.0)
    x0, y0, x1, y1 = _head_crop(clipped)
    small, factor = _work_copy(clipped[y0:y1, x0:x1])
    head = head_mask(small)
    if head.sum() / factor**2 < 0.002 * image.size:  # a speck, not a head
        return None
    bone = head & (small >= BONE_LEVEL)
    inside, ring = intracranial_mask(small, head, bone)
    shape = (int(image.shape[0]), int(image.shape[1]))
    masks = _Masks(small, factor, shape, head, bone, inside, ring, offset=(x0, y0))
    masks.cx, masks.cy, masks.theta, masks.elongation = mask_orientation(masks.outline)
    return masks


def _align(
    masks: _Masks, cfg: BrainConfig, angle_hint: float | None = None
) -> BrainSlice:
    outline = masks.outline
    cx, cy, angle, elongation = midline_angle(masks.small, outline, hint=angle_hint)
    radius = _extent(outline, cx, cy, angle)
    scale = cfg.size * (0.5 - cfg.margin) / max(radius, 1.0)
    matrix = _rotation(cx, cy, angle, scale, (cfg.size - 1) / 2)
    aligned = _aligned(masks, matrix, cfg)
    aligned.elongation = elongation
    return aligned


def brain_slice(
    image: np.ndarray,
    *,
    config: BrainConfig | None = None,
    angle_hint: float | None = None,
) -> BrainSlice:
    """Align one slice: ``image`` (H, W) float32 brain-window units in [0, 1].

    ``angle_hint``: the rotation to refine instead of searching all angles (see
    :func:`midline_angle`).

    Returns a :class:`BrainSlice`; a slice without a head (all dark) gives empty
    masks, ``brain_fraction`` 0 and ``is_brain`` False.
    """
    cfg = config or BrainConfig()
    masks = _slice_masks(image)
    if masks is None:
        small, factor = _work_copy(np.clip(image, 0.0, 1.0))
        return _empty_slice(small, image.shape, cfg, factor)
    return _align(masks, cfg, angle_hint)


def _extent(mask: np.ndarray, cx: float, cy: float, angle: float) -> float:
    """Half the larger side of the mask's box once rotated upright, in pixels."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return max(mask.shape) / 2.0
    rad = math.radians(angle)
    dx, dy = xs - cx, ys - cy
    # cv2's rotation by +angle maps (dx, dy) to (c dx + s dy, -s dx + c dy).
    u = math.cos(rad) * dx + math.sin(rad) * dy
    v = -math.sin(rad) * dx + math.cos(rad) * dy
    return float(max(np.abs(u).max(), np.abs(v).max())) + 1.0


def _warp(
    values: np.ndarray, matrix: np.ndarray, size: int, nearest: bool = False
) -> np.ndarray:
    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.warpAffine(
        np.ascontiguousarray(values, np.float32),
        matrix,
        (size, size),
        flags=flags,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    )


def _aligned(masks: _Masks, matrix: np.ndarray, cfg: BrainConfig) -> BrainSlice:
    """The :class:`BrainSlice` of a slice's masks warped by ``matrix`` (working
    copy -> aligned frame)."""
    size, factor, offset = cfg.size, masks.factor, masks.offset
    head, inside, slice_shape = masks.head, masks.inside, masks.shape
    out = _warp(masks.small, matrix, size)
    brain = _warp(inside, matrix, size, nearest=True) > 0.5
    bone_out = _warp(masks.bone, matrix, size, nearest=True) > 0.5
    near_bone = cv2.dilate(bone_out.astype(np.uint8), _disk(cfg.rim)) > 0
    inner = cv2.erode(brain.astype(np.uint8), _disk(max(1, cfg.rim // 2))) > 0
    core = inner & ~near_bone
    median = float(np.median(out[core])) if core.any() else 0.0
    relative = np.where(brain, out - np.float32(median), np.float32(0.0))
    full = matrix.copy()
    # slice pixels -> working copy (crop, scale) -> aligned frame
    full[:, :2] *= factor
    full[:, 2] -= full[:, :2] @ np.asarray(offset, np.float64)
    ys, xs = np.nonzero(head)
    x_off, y_off = offset
    box = (
        y_off + int(ys.min() / factor),
        min(slice_shape[0], y_off + math.ceil((ys.max() + 1) / factor)),
        x_off + int(xs.min() / factor),
        min(slice_shape[1], x_off + math.ceil((xs.max() + 1) / factor)),
    )
    angle = math.degrees(math.atan2(-matrix[1, 0], matrix[0, 0]))
    return BrainSlice(
        image=out,
        relative=relative.astype(np.float32),
        brain=brain,
        core=core,
        bone=bone_out,
        matrix=full,
        angle=angle,
        scale=float(math.hypot(full[0, 0], full[1, 0])),
        midline_x=(size - 1) / 2.0,
        head_box=box,
        slice_shape=(int(slice_shape[0]), int(slice_shape[1])),
        brain_fraction=float(inside.sum() / max(1, head.sum())),
        brain_area=float(inside.sum() / factor**2),
        median=median,
        ring=masks.ring,
    )


def _empty_slice(
    small: np.ndarray, slice_shape: tuple[int, ...], cfg: BrainConfig, factor: float
) -> BrainSlice:
    size = cfg.size
    height, width = small.shape
    scale = size / max(height, width)
    matrix = _rotation(width / 2, height / 2, 0.0, scale, size / 2)
    empty = np.zeros((size, size), bool)
    full = matrix.copy()
    full[:, :2] *= factor
    return BrainSlice(
        image=_warp(small, matrix, size),
        relative=np.zeros((size, size), np.float32),
        brain=empty,
        core=empty.copy(),
        bone=empty.copy(),
        matrix=full,
        angle=0.0,
        scale=float(scale * factor),
        midline_x=(size - 1) / 2.0,
        head_box=(0, int(slice_shape[0]), 0, int(slice_shape[1])),
        slice_shape=(int(slice_shape[0]), int(slice_shape[1])),
        brain_fraction=0.0,
        brain_area=0.0,
        median=0.0,
        ring=False,
        is_brain=False,
    )


# --- a study --------------------------------------------------------------------


def select_brain_slices(
    fractions: Sequence[float] | np.ndarray,
    areas: Sequence[float] | np.ndarray,
    *,
    config: BrainConfig,
) -> np.ndarray:
    """(D,) bool: slices with enough brain for their head and for the study.

    A slice counts when its brain fills at least ``min_fraction`` of its head and
    its brain area is at least ``min_relative_area`` of the study's largest.
    """
    frac = np.asarray(fractions, np.float64)
    area = np.asarray(areas, np.float64)
    if frac.size == 0:
        return np.zeros(0, bool)
    largest = area.max()
    if largest <= 0:
        return np.zeros(frac.shape, bool)
    return (frac >= config.min_fraction) & (area >= config.min_relative_area * largest)


def _angle_gap(a: float, b: float) -> float:
    """Distance between two rotations modulo 180 degrees."""
    gap = abs((a - b) % 180.0)
    return min(gap, 180.0 - gap)


def _study_angle(masks: Sequence[_Masks | None]) -> float | None:
    """The rotation the well-formed slices agree on (closed skull ring, oval
    brain), or None when fewer than two are: the most common major axis modulo 180
    degrees (a histogram of 10-degree bins weighted by elongation and area, so a
    group of round or odd slices cannot pull it halfway), averaged over the slices
    within 20 degrees of it."""
    chosen = [m for m in masks if m is not None and m.ring and m.elongation > 0.08]
    if len(chosen) < 2:
        return None
    angles = np.array([m.theta - 90.0 for m in chosen])
    weights = np.array([m.elongation * float(m.inside.sum()) for m in chosen])
    bins = np.arange(-90.0, 90.0, 10.0)
    support = [weights[[_angle_gap(a, b) <= 10.0 for a in angles]].sum() for b in bins]
    peak = float(bins[int(np.argmax(support))])
    close = np.array([_angle_gap(a, peak) <= 20.0 for a in angles])
    return _circular_mean(angles[close], weights[close])


def _circular_mean(angles: np.ndarray, weights: np.ndarray) -> float:
    doubled = np.radians(2.0 * angles)
    return (
        math.degrees(
            math.atan2(
                float((weights * np.sin(doubled)).sum()),
                float((weights * np.cos(doubled)).sum()),
            )
        )
        / 2.0
    )


def plausible_brain(medians: Sequence[float]) -> np.ndarray:
    """(D,) bool: the median inside the skull is that of brain tissue
    (``BRAIN_MEDIAN_RANGE``), not water, plastic or air."""
    low, high = BRAIN_MEDIAN_RANGE
    values = np.asarray(medians, np.float64)
    return (values >= low) & (values <= high)


def brain_study(
    volume: np.ndarray, *, units: str, config: BrainConfig | None = None
) -> BrainStudy:
    """Align every slice of a (D, H, W) volume in ``units`` and mark brain slices.

    Returns a :class:`BrainStudy` whose slices follow the volume's order.
    """
    cfg = config or BrainConfig()
    if volume.ndim != 3 or len(volume) == 0:
        raise ValueError(f"need a (D, H, W) volume, got shape {volume.shape}")
    unit = brain_window(volume, units=units)
    masks = [_slice_masks(image) for image in unit]
    # The head does not turn between slices: every slice refines the study's
    # rotation, so a round vertex slice or the skull base cannot flip the midline.
    hint = _study_angle(masks)
    slices = [
        _align(m, cfg, hint) if m is not None else brain_slice(image, config=cfg)
        for m, image in zip(masks, unit, strict=True)
    ]
    fractions = np.array([s.brain_fraction for s in slices])
    is_brain = select_brain_slices(
        fractions, [s.brain_area for s in slices], config=cfg
    ) & plausible_brain([s.median for s in slices])
    for s, flag in zip(slices, is_brain, strict=True):
        s.is_brain = bool(flag)
    return BrainStudy(
        slices=slices, is_brain=is_brain, brain_fraction=fractions, config=cfg
    )
