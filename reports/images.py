"""Pictures for reports: key slices with their heatmap overlay, and the per-slice
probability plot. Pure functions of arrays and numbers, so they are cheap to test."""

from __future__ import annotations

import io
from dataclasses import dataclass
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image

# Reports show slices at least this many pixels wide (small phantoms are upscaled so
# print does not blur them into blocks) and at most this many (to keep PDFs small).
MIN_SIDE = 256
MAX_SIDE = 512
OVERLAY_OPACITY = 0.55


@dataclass(frozen=True)
class KeySlice:
    """One key slice: `ct` is the windowed slice as RGB uint8 (H, W, 3); `overlay` is
    the same with the heatmap blended in, or None when the slice has no heatmap."""

    index: int
    probability: float | None
    ct: np.ndarray
    overlay: np.ndarray | None


def key_slice_indices(
    *,
    suspicious: list[int],
    with_heatmap: list[int],
    probabilities: list[float | None],
    most: int = 4,
    least: int = 2,
) -> list[int]:
    """The slices a reader should see first: those with a heatmap in the model's
    order of suspicion, then the other suspicious ones, topped up to `least` with the
    highest-probability slices. At most `most`."""
    count = len(probabilities)
    order = [i for i in suspicious if i in with_heatmap]
    order += [i for i in with_heatmap if i not in order]
    order += [i for i in suspicious if i not in order]
    chosen = [i for i in dict.fromkeys(order) if 0 <= i < count][:most]
    by_probability = sorted(range(count), key=lambda i: -(probabilities[i] or 0.0))
    for i in by_probability:
        if len(chosen) >= min(least, count):
            break
        if i not in chosen:
            chosen.append(i)
    return chosen


def _report_size(shape: tuple[int, int]) -> tuple[int, int]:
    height, width = shape
    side = max(height, width)
    scale = min(max(MIN_SIDE / side, 1.0), MAX_SIDE / side) if side else 1.0
    return max(1, round(width * scale)), max(1, round(height * scale))


def key_slice_images(
    grey_png: bytes, heatmap_png: bytes | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The CT slice (8-bit grey PNG) and, given the heatmap's RGBA PNG, the slice
    with the heatmap blended over it at OVERLAY_OPACITY, both RGB uint8 at report
    size."""
    grey = Image.open(io.BytesIO(grey_png)).convert("L")
    size = _report_size((grey.height, grey.width))
    ct = grey.resize(size, Image.Resampling.LANCZOS).convert("RGB")
    if heatmap_png is None:
        return np.asarray(ct), None
    heat = Image.open(io.BytesIO(heatmap_png)).convert("RGBA")
    heat = heat.resize(size, Image.Resampling.BILINEAR)
    rgba = np.asarray(heat, dtype=np.float32) / 255.0
    alpha = rgba[..., 3:] * OVERLAY_OPACITY
    base = np.asarray(ct, dtype=np.float32) / 255.0
    blended = base * (1.0 - alpha) + rgba[..., :3] * alpha
    return np.asarray(ct), (blended * 255.0 + 0.5).astype(np.uint8)


def jpeg_bytes(rgb: np.ndarray) -> bytes:
    """A picture for the PDF. JPEG because the PDF embeds it as is (a PNG is decoded
    and compressed again), which halves rendering time and file size; at quality 92
    a windowed slice shows no visible artefacts. DICOM exports stay lossless."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def probability_plot_svg(
    probabilities: list[float | None],
    *,
    threshold: float | None,
    highlight: list[int],
    width: int = 640,
    height: int = 170,
) -> str:
    """A bar chart of per-slice probabilities (slice number on x, 0 to 1 on y) with the
    decision threshold dashed and the key slices in a darker colour. Drawn as SVG so
    it stays sharp on paper."""
    left, right, top, bottom = 44, 10, 10, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(probabilities), 1)
    step = plot_w / n
    bar = max(step * 0.8, 0.5)

    def y(value: float) -> float:
        return top + plot_h * (1.0 - min(max(value, 0.0), 1.0))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, sans-serif" '
        'font-size="10">',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" '
        'fill="#fbfbfb" stroke="#999" stroke-width="0.6"/>',
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            f'<line x1="{left - 3}" x2="{left + plot_w}" y1="{y(tick):.1f}" '
            f'y2="{y(tick):.1f}" stroke="#ddd" stroke-width="0.5"/>'
            f'<text x="{left - 6}" y="{y(tick) + 3.5:.1f}" text-anchor="end" '
            f'fill="#333">{tick:.2f}</text>'
        )
    for i, p in enumerate(probabilities):
        if p is None:
            continue
        colour = "#b3261e" if i in highlight else "#7a8fa6"
        parts.append(
            f'<rect x="{left + i * step + (step - bar) / 2:.2f}" y="{y(p):.2f}" '
            f'width="{bar:.2f}" height="{top + plot_h - y(p):.2f}" fill="{colour}"/>'
        )
    if threshold is not None:
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(threshold):.1f}" '
            f'y2="{y(threshold):.1f}" stroke="#000" stroke-width="1" '
            'stroke-dasharray="5,3"/>'
            f'<text x="{left + plot_w - 4}" y="{y(threshold) - 4:.1f}" '
            f'text-anchor="end" fill="#000">threshold {threshold:.2f}</text>'
        )
    for i in _x_ticks(len(probabilities)):
        x = left + (i + 0.5) * step
        parts.append(
            f'<text x="{x:.1f}" y="{top + plot_h + 13}" text-anchor="middle" '
            f'fill="#333">{i + 1}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{height - 4}" text-anchor="middle" '
        'fill="#333">slice</text>'
        f'<text x="11" y="{top + plot_h / 2}" text-anchor="middle" fill="#333" '
        f'transform="rotate(-90 11 {top + plot_h / 2})">{escape("probability")}'
        "</text></svg>"
    )
    return "".join(parts)


def _x_ticks(count: int) -> list[int]:
    """Slice numbers to label: every slice when few, else about ten round ones."""
    if count <= 16:
        return list(range(count))
    steps = (2, 5, 10, 20, 25, 50, 100, 200, 250, 500)
    step = next((s for s in steps if count / s <= 12), count // 10)
    return [i for i in range(count) if (i + 1) % step == 0 or i == 0]
