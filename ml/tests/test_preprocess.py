"""Tests for ml.preprocess on small synthetic arrays."""

import cv2
import numpy as np
import pytest

from ml.brain import BrainConfig, brain_study, mask_orientation
from ml.preprocess import (
    WINDOW_PRESETS,
    AugmentConfig,
    PreprocessConfig,
    apply_clahe,
    apply_window,
    augment,
    crop_to_head,
    denoise,
    head_bbox,
    head_box_fast,
    head_mask,
    multi_window,
    percentile_normalise,
    preprocess_study,
    preprocess_volume,
    resize_keep_aspect,
    to_unit_range,
)


def _head_volume(depth=4, size=128, *, offset=(0, 0), seed=0):
    """Ellipse of soft tissue (35 HU) in air (-1000 HU) with a skull ring."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    cy, cx = size / 2 + offset[0], size / 2 + offset[1]
    r = np.hypot((yy - cy) / (size * 0.3), (xx - cx) / (size * 0.25))
    slice_hu = np.where(r < 1, 35.0, -1000.0)
    slice_hu[(r > 0.9) & (r < 1)] = 1000.0
    noise = rng.normal(0, 3, (depth, size, size))
    return (slice_hu[None] + noise).astype(np.float32)


def test_apply_window_maps_known_hu_values():
    hu = np.array([-1000.0, 0.0, 40.0, 80.0, 3000.0])
    out = apply_window(hu, center=40, width=80)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.0, 0.0, 0.5, 1.0, 1.0])


def test_apply_window_rejects_non_positive_width():
    with pytest.raises(ValueError, match="width"):
        apply_window(np.zeros(3), center=40, width=0)


def test_window_presets_are_centre_width_pairs():
    assert WINDOW_PRESETS["brain"] == (40, 80)
    assert WINDOW_PRESETS["bone"] == (600, 2800)


def test_multi_window_stacks_brain_subdural_bone():
    hu = np.array([[40.0, 80.0], [600.0, -1000.0]], dtype=np.float32)
    out = multi_window(hu)
    assert out.shape == (2, 2, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], [0.5, 0.3, (40 + 800) / 2800], rtol=1e-5)
    np.testing.assert_allclose(out[1, 0, 2], 0.5)
    assert multi_window(np.zeros((3, 2, 2))).shape == (3, 2, 2, 3)


def test_windowed8_is_not_windowed_again():
    image = np.array([[0, 64, 128, 255]], dtype=np.uint8)
    out = to_unit_range(image, units="windowed8")
    np.testing.assert_allclose(out, image / 255.0, rtol=1e-6)


def test_windowed8_rejects_values_outside_8_bit():
    with pytest.raises(ValueError, match=r"0\.\.255"):
        to_unit_range(np.array([[0, 300]]), units="windowed8")


def test_unknown_units_are_rejected():
    with pytest.raises(ValueError, match="units"):
        to_unit_range(np.zeros((2, 2)), units="Hounsfield")


@pytest.mark.parametrize("units", ["raw16", "intensity"])
def test_uncalibrated_units_use_percentiles(units):
    image = np.arange(10_000, dtype=np.float32).reshape(100, 100) * 7 + 300
    out = to_unit_range(image, units=units)
    assert out.min() == 0.0 and out.max() == 1.0
    assert abs(float(np.median(out)) - 0.5) < 0.01


def test_percentile_normalise_of_constant_image_is_zero():
    assert not percentile_normalise(np.full((4, 4), 7.0)).any()


def test_head_mask_is_largest_component_with_holes_filled():
    image = np.zeros((64, 64), np.float32)
    image[10:50, 10:50] = 0.8
    image[25:35, 25:35] = 0.0  # a dark ventricle inside the head
    image[55:60, 55:60] = 0.8  # a separate blob, e.g. the table
    mask = head_mask(image)
    assert mask[30, 30] and mask[10, 30] and mask[49, 30]
    assert not mask[57, 57] and not mask[5, 5]


def test_head_mask_of_black_image_is_empty():
    assert not head_mask(np.zeros((16, 16), np.float32)).any()


def test_crop_removes_black_border():
    unit = to_unit_range(_head_volume(depth=1, offset=(10, -15)), units="HU")[0]
    cropped = crop_to_head(unit, head_mask(unit), margin=0.0)
    assert cropped.shape[0] < unit.shape[0] * 0.7
    assert cropped.shape[1] < unit.shape[1] * 0.6
    for edge in (cropped[0], cropped[-1], cropped[:, 0], cropped[:, -1]):
        assert edge.max() > 0.5  # the skull touches every side of the crop


def test_head_bbox_margin_and_empty_mask():
    mask = np.zeros((20, 30), bool)
    mask[5:10, 10:20] = True
    assert head_bbox(mask, margin=0.0) == (5, 10, 10, 20)
    assert head_bbox(mask, margin=0.1) == (4, 11, 9, 21)
    assert head_bbox(np.zeros((20, 30), bool)) == (0, 20, 0, 30)


def test_fast_head_box_matches_full_resolution_box():
    unit = to_unit_range(_head_volume(depth=1, size=512, offset=(30, -40)), units="HU")
    exact = head_bbox(head_mask(unit[0]), margin=0.05)
    fast = head_box_fast(unit[0], margin=0.05)
    assert np.abs(np.subtract(fast, exact)).max() <= 8
    assert head_box_fast(np.zeros((512, 512), np.float32)) == (0, 512, 0, 512)


def test_crop_rejects_mismatched_mask():
    with pytest.raises(ValueError, match="mask shape"):
        crop_to_head(np.zeros((4, 4)), np.zeros((5, 5), bool))


def test_resize_keep_aspect_letterboxes_to_square():
    image = np.ones((50, 100), np.float32)
    out = resize_keep_aspect(image, size=64)
    assert out.shape == (64, 64) and out.dtype == np.float32
    assert out[0].max() == 0.0 and out[32].min() > 0.999
    assert resize_keep_aspect(np.ones((10, 20, 3), np.float32), size=8).shape == (
        8,
        8,
        3,
    )


@pytest.mark.parametrize("kind", ["none", "gaussian", "median"])
def test_denoise_keeps_shape_and_reduces_noise(kind):
    rng = np.random.default_rng(1)
    image = (0.5 + rng.normal(0, 0.1, (64, 64))).astype(np.float32)
    out = denoise(image, kind=kind)
    assert out.shape == image.shape and out.dtype == np.float32
    if kind != "none":
        assert out.std() < image.std() * 0.7


def test_denoise_rejects_unknown_kind_and_even_kernel():
    with pytest.raises(ValueError, match="denoise kind"):
        denoise(np.zeros((4, 4)), kind="bilateral")
    with pytest.raises(ValueError, match="odd"):
        denoise(np.zeros((4, 4)), kind="gaussian", ksize=4)


def test_clahe_raises_local_contrast_within_unit_range():
    image = np.tile(np.linspace(0.4, 0.5, 64, dtype=np.float32), (64, 1))
    out = apply_clahe(image)
    assert out.dtype == np.float32 and out.min() >= 0.0 and out.max() <= 1.0
    assert np.ptp(out) > np.ptp(image)
    assert apply_clahe(np.stack([image] * 3, axis=-1)).shape == (64, 64, 3)


@pytest.mark.parametrize(
    "config",
    [
        PreprocessConfig(size=64),
        PreprocessConfig(size=64, channels=3, clahe=True, denoise="median"),
        PreprocessConfig(size=48, window="multi", channels=3, denoise="gaussian"),
        PreprocessConfig(size=32, window="stroke", crop=False),
    ],
)
def test_preprocess_volume_shape_dtype_range(config):
    out = preprocess_volume(_head_volume(), units="HU", config=config)
    assert out.shape == (4, config.size, config.size, config.channels)
    assert out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0 and out.max() > 0.4


def test_preprocess_volume_accepts_windowed8_and_multi_config():
    png_like = (to_unit_range(_head_volume(), units="HU") * 255).astype(np.uint8)
    config = PreprocessConfig(size=32, window="multi", channels=3)
    out = preprocess_volume(png_like, units="windowed8", config=config)
    assert out.shape == (4, 32, 32, 3)
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_preprocess_crop_centres_an_off_centre_head():
    volume = _head_volume(depth=1, size=128, offset=(20, 25))
    out = preprocess_volume(volume, units="HU", config=PreprocessConfig(size=64))[
        0, ..., 0
    ]
    rows, cols = np.nonzero(out > 0.2)
    assert abs(rows.mean() - 31.5) < 3 and abs(cols.mean() - 31.5) < 3


def test_preprocess_volume_rejects_2d_input():
    with pytest.raises(ValueError, match="D, H, W"):
        preprocess_volume(np.zeros((8, 8)), units="HU", config=PreprocessConfig())


def _tilted_heads(angle=30.0, depth=4, size=128):
    """:func:`_head_volume` (skull ring, long axis vertical) rotated by ``angle``."""
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1.0)
    return np.stack(
        [
            cv2.warpAffine(hu, matrix, (size, size), borderValue=-1000.0)
            for hu in _head_volume(depth=depth, size=size)
        ]
    )


def _centroid(mask):
    rows, cols = np.nonzero(mask)
    return np.array([cols.mean(), rows.mean()])


@pytest.mark.parametrize("crop", [True, False])
def test_preprocess_study_matrices_map_the_slice_onto_the_input(crop):
    volume = _head_volume(depth=2, size=128, offset=(20, 25))
    config = PreprocessConfig(size=64, crop=crop)

    prepared = preprocess_study(volume, units="HU", config=config)

    x = preprocess_volume(volume, units="HU", config=config)
    np.testing.assert_array_equal(prepared.x, x)
    assert prepared.matrices.shape == (2, 2, 3) and prepared.brain_slices is None
    head = _centroid(volume[0] > 0)
    mapped = prepared.matrices[0] @ np.append(head, 1.0)
    np.testing.assert_allclose(mapped, _centroid(prepared.x[0, ..., 0] > 0.2), atol=1)


def test_preprocess_study_brain_input_is_the_aligned_brain_without_skull():
    volume = _tilted_heads(angle=30.0)
    config = PreprocessConfig(size=64, brain=True)

    prepared = preprocess_study(volume, units="HU", config=config)

    study = brain_study(volume, units="HU", config=BrainConfig(size=64))
    assert prepared.x.shape == (4, 64, 64, 1)
    assert prepared.brain_slices.tolist() == [True] * 4
    for k, aligned in enumerate(study.slices):
        expected = np.where(aligned.brain, aligned.image, 0.0)
        np.testing.assert_allclose(prepared.x[k, ..., 0], expected, atol=1e-6)
        np.testing.assert_allclose(prepared.matrices[k], aligned.matrix)
    # 35 HU is 0.46 in the brain window; the 1000 HU skull ring is gone but for
    # partial volume on the brain mask's edge (the image is interpolated linearly).
    brain = study.slices[0].brain.astype(np.uint8)
    edge = brain.astype(bool) & ~cv2.erode(brain, np.ones((5, 5), np.uint8)).astype(
        bool
    )
    bright = prepared.x[0, ..., 0] > 0.6
    assert bright.sum() < 0.05 * brain.sum() and not (bright & ~edge).any()
    _, _, axis, _ = mask_orientation(prepared.x[0, ..., 0] > 0)
    assert abs(abs(axis) - 90.0) < 5.0  # the long axis is upright


def test_preprocess_study_brain_input_takes_filters_channels_and_8_bit_images():
    png_like = np.round(np.clip((_tilted_heads() + 20.0) / 120.0, 0, 1) * 255)
    config = PreprocessConfig(
        size=48, brain=True, channels=3, clahe=True, denoise="median"
    )

    prepared = preprocess_study(png_like, units="windowed8", config=config)

    assert prepared.x.shape == (4, 48, 48, 3) and prepared.x.dtype == np.float32
    assert prepared.x.min() >= 0.0 and prepared.x.max() <= 1.0
    assert prepared.brain_slices.all()
    np.testing.assert_array_equal(prepared.x[..., 0], prepared.x[..., 2])


def test_preprocess_config_round_trips_through_dict():
    config = PreprocessConfig(window="multi", size=128, clahe=True, channels=3)
    assert PreprocessConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": "lung"}, "unknown window"),
        ({"window": "multi", "channels": 1}, "channels=3"),
        ({"channels": 2}, "channels"),
        ({"size": 4}, "size"),
        ({"denoise": "nlm"}, "denoise"),
        ({"brain": True, "window": "stroke"}, "window='brain'"),
        ({"brain": True, "window": "multi", "channels": 3}, "window='brain'"),
        ({"brain": True, "size": 16}, "size >= 32"),
    ],
)
def test_preprocess_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PreprocessConfig(**kwargs)


def test_preprocess_config_brain_is_stored_and_old_cards_load_without_it():
    config = PreprocessConfig(size=64, brain=True)
    assert config.to_dict()["brain"] is True
    assert PreprocessConfig.from_dict(config.to_dict()) == config
    old_card = {"window": "brain", "size": 64, "clahe": False, "denoise": "none"}
    assert PreprocessConfig.from_dict({**old_card, "crop": True}).brain is False


def test_preprocess_config_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown PreprocessConfig keys"):
        PreprocessConfig.from_dict({"window": "brain", "gamma": 2})


def test_augment_keeps_shape_and_is_deterministic_by_seed():
    image = preprocess_volume(
        _head_volume(depth=1), units="HU", config=PreprocessConfig(size=64)
    )[0]
    config = AugmentConfig(rotate_prob=1, shift_prob=1, zoom_prob=1, noise_prob=1)
    first = augment(image, rng=np.random.default_rng(7), config=config)
    again = augment(image, rng=np.random.default_rng(7), config=config)
    other = augment(image, rng=np.random.default_rng(8), config=config)
    assert first.shape == image.shape and first.dtype == np.float32
    assert first.min() >= 0.0 and first.max() <= 1.0
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def _only(**probs):
    """An AugmentConfig with every probability 0 except those given."""
    names = ("hflip", "vflip", "rotate", "shift", "zoom", "intensity", "noise")
    return AugmentConfig(**({f"{n}_prob": 0.0 for n in names} | probs))


def test_augment_with_everything_off_is_identity():
    off = _only(hflip_prob=0)
    image = np.random.default_rng(0).random((16, 16), dtype=np.float32)
    np.testing.assert_array_equal(
        augment(image, rng=np.random.default_rng(0), config=off), image
    )


def test_augment_flip_mirrors_left_right():
    flip = _only(hflip_prob=1)
    image = np.zeros((8, 8), np.float32)
    image[:, 0] = 1.0
    out = augment(image, rng=np.random.default_rng(0), config=flip)
    assert out[:, -1].min() == 1.0 and out[:, 0].max() == 0.0


def test_augment_config_validates_and_round_trips():
    with pytest.raises(ValueError, match="hflip_prob"):
        AugmentConfig(hflip_prob=1.5)
    with pytest.raises(ValueError, match="zoom_range"):
        AugmentConfig(zoom_range=(1.2, 0.8))
    config = AugmentConfig(zoom_range=(0.8, 1.2))
    assert AugmentConfig.from_dict(config.to_dict()) == config
