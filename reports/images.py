"""Pictures for reports: key slices with the model's map over them, and the per-slice
probability plot. Pure functions of arrays and numbers, so they are cheap to test;
windowing, colour maps and blending are ml.display's, sizing and encoding ours."""

from __future__ import annotations

import io
from dataclasses import dataclass
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image

from ml import display

# Reports show slices at least this many pixels wide (small phantoms are upscaled so
# print does not blur them into blocks) and at most this many (to keep PDFs small).
MIN_SIDE = 256
MAX_SIDE = 512
OVERLAY_OPACITY = 0.55
BANNER_FILL = (0xB3, 0x5C, 0x00)  # the reports' amber for "read with care"


@dataclass(frozen=True)
class KeySlice:
    """One key slice: `ct` is the windowed slice as RGB uint8 (H, W, 3); `overlay` is
    the same with the model's map (heatmap or lesion outline) drawn over it, or None
    when the slice has no map."""

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
    order of suspicion, then the other slices with a heatmap from the most probable
    down (a segmenting model outlines many), then the other suspicious ones, topped
    up to `least` with the highest-probability slices. At most `most`."""
    count = len(probabilities)
    order = [i for i in suspicious if i in with_heatmap]
    order += sorted(
        (i for i in with_heatmap if i not in order and 0 <= i < count),
        key=lambda i: -(probabilities[i] or 0.0),
    )
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
    grey: np.ndarray, overlay_png: bytes | None, *, outline: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """The CT slice ((H, W) uint8 grey, windowed) and, given the overlay's RGBA PNG
    as the worker stored it, the slice with the overlay over it, both RGB uint8 at
    report size. A heatmap is blended at OVERLAY_OPACITY; a lesion outline
    (`outline`) is drawn as it is, at its own opacity and without blurring its
    lines. An overlay with nothing visible on it gives None, like a slice without
    one, so no plain copy of the slice passes for a map."""
    size = _report_size(grey.shape)
    ct = Image.fromarray(np.ascontiguousarray(grey, dtype=np.uint8))
    ct_rgb = np.asarray(ct.resize(size, Image.Resampling.LANCZOS).convert("RGB"))
    if overlay_png is None:
        return ct_rgb, None
    drawing = Image.open(io.BytesIO(overlay_png)).convert("RGBA")
    if not display.is_visible(np.asarray(drawing)):
        return ct_rgb, None
    upscaling = size[0] >= drawing.width
    resample = (
        Image.Resampling.NEAREST if outline and upscaling else Image.Resampling.BILINEAR
    )
    rgba = np.asarray(drawing.resize(size, resample))
    opacity = 1.0 if outline else OVERLAY_OPACITY
    return ct_rgb, display.blend(ct_rgb, rgba, opacity=opacity)


def with_banner(rgb: np.ndarray, text: str) -> np.ndarray:
    """`rgb` (H, W, 3) uint8 with `text` burned into a strip across its top, for
    marks that must travel with the pixels (a PACS shows a Secondary Capture's
    pixels, rarely its comments)."""
    from PIL import ImageDraw, ImageFont

    image = Image.fromarray(np.ascontiguousarray(rgb))
    draw = ImageDraw.Draw(image)
    size = max(9, image.width // 28)
    font = ImageFont.load_default(size=size)
    lines = _banner_lines(text, draw, font, room=image.width - size)
    step = round(size * 1.25)
    draw.rectangle(
        (0, 0, image.width, step * len(lines) + round(size * 0.35)), fill=BANNER_FILL
    )
    for number, line in enumerate(lines):
        position = (size // 2, round(size * 0.3) + number * step)
        draw.text(position, line, fill=(255, 255, 255), font=font)
    return np.asarray(image)


def _banner_lines(text: str, draw, font, *, room: int) -> list[str]:
    """`text` broken at spaces into lines no wider than `room` pixels (a word longer
    than that gets a line of its own), so a narrow slice shows the whole banner."""
    lines: list[str] = []
    for word in text.split():
        joined = f"{lines[-1]} {word}" if lines else word
        if lines and draw.textlength(joined, font=font) <= room:
            lines[-1] = joined
        else:
            lines.append(word)
    return lines or [""]


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
