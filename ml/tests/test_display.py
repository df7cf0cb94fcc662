"""ml.display: what a reader sees of a slice and of the model's maps."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ml.display import (
    BRAIN_WINDOW,
    CONTOUR_FILL_ALPHA,
    CONTOUR_RGBA,
    MIN_VISIBLE_ALPHA,
    blend,
    contour_rgba,
    heatmap_rgba,
    is_visible,
    overlay,
    window_slice,
)


def disc(size: int = 64, radius: float = 12.0) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= radius**2).astype(np.float32)


# --- windowing ----------------------------------------------------------------


def test_window_slice_shows_brain_hu_as_the_expected_grey():
    centre, width = BRAIN_WINDOW  # 40 / 80 HU: 0 HU is black, 80 HU white
    hu = np.array([[-1000.0, 0.0, 20.0, 40.0, 60.0, 80.0, 1500.0]], np.float32)
    grey = window_slice(hu, units="HU", centre=centre, width=width)
    assert grey.dtype == np.uint8 and grey.shape == hu.shape
    assert grey.tolist() == [[0, 0, 64, 128, 191, 255, 255]]


def test_window_slice_follows_the_window_and_the_units():
    hu = np.linspace(-100, 1000, 64 * 64, dtype=np.float32).reshape(64, 64)
    brain = window_slice(hu, units="HU", centre=40, width=80)
    bone = window_slice(hu, units="HU", centre=600, width=2800)
    assert not np.array_equal(brain, bone)
    # Already windowed images are shown as they came, never re-windowed.
    eight = np.array([[0.0, 90.0, 255.0, 300.0]], np.float32)
    assert window_slice(eight, units="windowed8", centre=40, width=80).tolist() == [
        [0, 90, 255, 255]
    ]
    # Without a window, or for uncalibrated pixels: percentiles fill the grey range.
    for units, centre, width in (("HU", None, None), ("raw16", 40, 80)):
        grey = window_slice(hu, units=units, centre=centre, width=width)
        assert grey.min() == 0 and grey.max() == 255
    with pytest.raises(ValueError, match="units"):
        window_slice(hu, units="kelvin", centre=40, width=80)
    with pytest.raises(ValueError, match="both"):
        window_slice(hu, units="HU", centre=40, width=None)


# --- maps ---------------------------------------------------------------------


def test_a_blank_or_invisibly_faint_map_gives_no_heatmap():
    assert heatmap_rgba(np.zeros((32, 32), np.float32)) is None
    assert heatmap_rgba(np.full((32, 32), np.nan, np.float32)) is None
    faint = (MIN_VISIBLE_ALPHA / 255.0) ** 2 * 0.9  # alpha is sqrt(map)
    assert heatmap_rgba(np.full((32, 32), faint, np.float32)) is None
    visible = heatmap_rgba(np.full((32, 32), faint / 0.8, np.float32))
    assert visible is not None and is_visible(visible)


def test_heatmap_is_opaque_where_the_map_is_hot_and_clear_where_cold():
    heat = np.zeros((32, 32), np.float32)
    heat[10, 20] = 1.0
    rgba = heatmap_rgba(heat)
    assert rgba is not None and rgba.shape == (32, 32, 4) and rgba.dtype == np.uint8
    assert rgba[10, 20, 3] == 255 and rgba[0, 0, 3] == 0
    assert rgba[10, 20, 0] > rgba[10, 20, 2]  # jet's hot end is red
    with pytest.raises(ValueError, match="colormap"):
        heatmap_rgba(heat, colormap="rainbow-ish")


def test_the_outline_lies_on_the_edge_of_a_lesion():
    lesion = disc()
    rgba = contour_rgba(lesion * 0.8, level=0.5)
    assert rgba is not None and rgba.shape == (64, 64, 4)
    line = rgba[..., 3] == CONTOUR_RGBA[3]
    inside = lesion > 0
    edge = inside & ~cv2.erode(inside.astype(np.uint8), np.ones((3, 3))).astype(bool)
    assert line[edge].all()  # every edge pixel of the disc is drawn
    assert not line[cv2.erode(inside.astype(np.uint8), np.ones((7, 7))) > 0].any()
    assert not line[cv2.dilate(inside.astype(np.uint8), np.ones((7, 7))) == 0].any()
    assert (rgba[line][:, :3] == CONTOUR_RGBA[:3]).all()
    assert rgba[32, 32, 3] == CONTOUR_FILL_ALPHA  # a faint fill, the slice shows
    assert rgba[0, 0, 3] == 0
    assert contour_rgba(lesion * 0.4, level=0.5) is None  # nothing reaches the level


# --- blending -----------------------------------------------------------------


def test_blend_at_opacity_zero_returns_the_slice():
    grey = (np.arange(64 * 64) % 256).astype(np.uint8).reshape(64, 64)
    rgba = contour_rgba(disc())
    out = blend(grey, rgba, opacity=0.0)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert np.array_equal(out, np.repeat(grey[..., None], 3, axis=-1))
    assert np.array_equal(blend(grey, None), out)


def test_blend_draws_an_outline_at_its_own_alpha():
    grey = np.full((64, 64), 90, np.uint8)
    rgba = contour_rgba(disc())
    out = blend(grey, rgba, opacity=1.0)
    line = rgba[..., 3] == 255
    assert (out[line] == CONTOUR_RGBA[:3]).all()
    assert (out[rgba[..., 3] == 0] == 90).all()
    with pytest.raises(ValueError, match="rgba"):
        blend(grey, rgba[:32])
    with pytest.raises(ValueError, match="opacity"):
        blend(grey, rgba, opacity=-0.1)


# Moved from test_explain.py with ml.explain's overlay_image and overlay_png: the PNG
# is now encoded where it is served, as here.


def test_overlay_png_is_an_rgb_png_of_the_slice_size():
    slice_image = np.linspace(0, 1, 40 * 30, dtype=np.float32).reshape(40, 30)
    heat = np.zeros((8, 8), np.float32)
    heat[2, 5] = 1.0
    rgb = overlay(slice_image, heat, colormap="jet", opacity=0.5)
    data = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))[1].tobytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.shape == (40, 30, 3)


def test_overlay_leaves_cold_pixels_alone_and_colours_hot_ones():
    gray = np.full((16, 16), 0.5, np.float32)
    heat = np.zeros((16, 16), np.float32)
    heat[8, 8] = 1.0
    rgb = overlay(gray, heat, opacity=0.6)
    assert tuple(rgb[0, 0]) == (128, 128, 128)
    assert rgb[8, 8, 0] != rgb[8, 8, 2]  # jet's red end is not grey
    assert np.array_equal(
        overlay(gray, heat, opacity=0.0)[..., 0], rgb[..., 1] * 0 + 128
    )
    with pytest.raises(ValueError, match="colormap"):
        overlay(gray, heat, colormap="rainbow-ish")
    with pytest.raises(ValueError, match="opacity"):
        overlay(gray, heat, opacity=1.5)
