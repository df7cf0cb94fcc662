"""Synthetic hyperdense lesions pasted into normal aligned slices, and the
geometric and intensity augmentation every training slice gets.

All work on the network input of ``ml.segment.data.model_input``: channel 0 the
slice relative to its brain median (brain-window units, 1 = 120 HU), channel 1 the
intracranial mask. Acute blood is 50-90 HU against brain at 25-40 HU, so a lesion
is painted 0.15-0.42 above the median, with texture and a blurred (partial-volume)
edge; the painted share of each pixel is the target.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ml.segment.data import RELATIVE_RANGE

LESION_KINDS = ("intraparenchymal", "subdural", "epidural", "intraventricular")
#: Brightness of acute blood above the brain median, brain-window units.
BLOOD_DELTA = (0.15, 0.42)


def _smooth_noise(
    shape: tuple[int, int], rng: np.random.Generator, sigma: float
) -> np.ndarray:
    field = cv2.GaussianBlur(rng.normal(0, 1, shape).astype(np.float32), (0, 0), sigma)
    return field / (field.std() + 1e-6)


def _brain_distance(brain: np.ndarray) -> np.ndarray:
    """Distance of every brain pixel to the brain's edge (0 outside)."""
    return cv2.distanceTransform(brain.astype(np.uint8), cv2.DIST_L2, 3)


def _blob(brain: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """An irregular ellipse deep in the brain (intraparenchymal bleed)."""
    size = brain.shape[0]
    radius = rng.uniform(0.015, 0.11) * size
    inside = np.argwhere(_brain_distance(brain) > radius + 2)
    if len(inside) == 0:
        return None
    cy, cx = inside[rng.integers(len(inside))]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = rng.uniform(0, math.pi)
    ratio = rng.uniform(0.5, 1.0)
    u = (xx - cx) * math.cos(angle) + (yy - cy) * math.sin(angle)
    v = (yy - cy) * math.cos(angle) - (xx - cx) * math.sin(angle)
    r = np.sqrt(u**2 + (v / ratio) ** 2) / radius
    r += 0.25 * _smooth_noise(brain.shape, rng, max(1.0, radius / 2))
    return (r < 1.0) & brain


def _rim(brain: np.ndarray, rng: np.random.Generator, *, lens: bool) -> np.ndarray:
    """A band along the inner skull over an arc: a crescent (subdural) thin and
    long, or a lens (epidural) short and thick in the middle."""
    size = brain.shape[0]
    distance = _brain_distance(brain)
    ys, xs = np.nonzero(brain)
    cy, cx = ys.mean(), xs.mean()
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    theta = np.arctan2(yy - cy, xx - cx)
    centre = rng.uniform(-math.pi, math.pi)
    gap = np.angle(np.exp(1j * (theta - centre)))
    if lens:
        half, thick = rng.uniform(0.2, 0.55), rng.uniform(0.03, 0.075) * size
        profile = np.sqrt(np.clip(1 - (gap / half) ** 2, 0, 1))
    else:
        half, thick = rng.uniform(0.5, 1.4), rng.uniform(0.012, 0.045) * size
        profile = np.clip(np.cos(gap / half * math.pi / 2), 0, 1) ** 0.5
    profile = profile * (1 + 0.15 * _smooth_noise(brain.shape, rng, size / 20))
    return brain & (distance > 0) & (distance < thick * profile) & (np.abs(gap) < half)


def _ventricle_cast(
    relative: np.ndarray, brain: np.ndarray, rng: np.random.Generator
) -> np.ndarray | None:
    """Blood layering in a ventricle: part of a dark (CSF) region near the centre."""
    size = brain.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    central = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (0.3 * size) ** 2
    csf = (relative < -0.12) & central & (_brain_distance(brain) > 3)
    count, labels = cv2.connectedComponents(csf.astype(np.uint8))
    if count < 2:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    candidates = np.flatnonzero(sizes >= 6) + 1
    if len(candidates) == 0:
        return None
    region = labels == rng.choice(candidates)
    ys, xs = np.nonzero(region)
    seed = rng.integers(len(ys))
    reach = rng.uniform(0.3, 1.0) * max(4.0, np.sqrt(region.sum()))
    near = (yy - ys[seed]) ** 2 + (xx - xs[seed]) ** 2 < reach**2
    return region & near


def paste_lesion(
    x: np.ndarray, target: np.ndarray, rng: np.random.Generator, kind: str | None = None
) -> tuple[np.ndarray, np.ndarray, str]:
    """Paste one synthetic bleed of ``kind`` (random when None) into an (S, S, 2)
    input; returns the new input, the target (S, S) float32 in [0, 1] (the old
    target's maximum with the painted share) and the kind. Unchanged when the slice
    has no room for it."""
    kind = kind or str(rng.choice(LESION_KINDS))
    relative, brain = x[..., 0], x[..., 1] > 0.5
    if brain.sum() < 200:
        return x, target, kind
    if kind == "intraparenchymal":
        shape = _blob(brain, rng)
    elif kind == "intraventricular":
        shape = _ventricle_cast(relative, brain, rng)
    else:
        shape = _rim(brain, rng, lens=kind == "epidural")
    if shape is None or shape.sum() < 3:
        return x, target, kind
    edge = rng.uniform(0.5, 1.2)
    share = cv2.GaussianBlur(shape.astype(np.float32), (0, 0), edge) * brain
    delta = rng.uniform(*BLOOD_DELTA)
    texture = 0.025 * _smooth_noise(brain.shape, rng, 1.0)
    painted = relative * (1 - share) + (delta + texture) * share
    if kind == "intraparenchymal" and rng.random() < 0.5:  # oedema around the clot
        ring = cv2.GaussianBlur(shape.astype(np.float32), (0, 0), edge + 2.0)
        oedema = np.clip(ring - share, 0, 1) * brain * rng.uniform(0.03, 0.08)
        painted = painted - oedema
    out = x.copy()
    out[..., 0] = np.clip(painted, *RELATIVE_RANGE)
    return out, np.maximum(target, share).astype(np.float32), kind


def augment(
    x: np.ndarray, target: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Rotation (heads arrive rotated, and the midline can be off), scale, flips,
    window width and level, blur (resolution, JPEG) and noise; the target follows
    the geometry."""
    size = x.shape[0]
    angle = rng.normal(0, 12) if rng.random() < 0.9 else rng.uniform(-180, 180)
    scale = rng.uniform(0.88, 1.12)
    matrix = np.asarray(
        cv2.getRotationMatrix2D((size / 2, size / 2), angle, scale), np.float64
    )
    matrix[:, 2] += rng.normal(0, 0.03 * size, 2)

    def warp(image: np.ndarray, flags: int) -> np.ndarray:
        return np.asarray(
            cv2.warpAffine(
                image, matrix, (size, size), flags=flags, borderMode=cv2.BORDER_CONSTANT
            )
        )

    relative = warp(x[..., 0], cv2.INTER_LINEAR)
    outside = warp(np.ones((size, size), np.float32), cv2.INTER_NEAREST)
    relative = np.where(outside > 0, relative, x[..., 0].min())  # air stays air
    brain = warp(x[..., 1], cv2.INTER_NEAREST)
    tgt = warp(target, cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        relative, brain, tgt = relative[:, ::-1], brain[:, ::-1], tgt[:, ::-1]
    if rng.random() < 0.25:
        relative, brain, tgt = relative[::-1], brain[::-1], tgt[::-1]
    if rng.random() < 0.3:
        op = cv2.erode if rng.random() < 0.5 else cv2.dilate
        brain = op(np.ascontiguousarray(brain), np.ones((3, 3), np.uint8))
    relative = relative * rng.uniform(0.8, 1.25) + rng.normal(0, 0.02)
    if rng.random() < 0.3:
        relative = cv2.GaussianBlur(
            np.ascontiguousarray(relative), (0, 0), rng.uniform(0.4, 1.0)
        )
    relative = relative + rng.normal(0, rng.uniform(0, 0.03), relative.shape)
    out = np.stack([np.clip(relative, *RELATIVE_RANGE), brain], axis=-1)
    return out.astype(np.float32), np.ascontiguousarray(tgt, dtype=np.float32)
