"""ml.io on PNG, JPEG, BMP and TIFF slices: grayscale, upright, in name order."""

import numpy as np
import pytest
from PIL import Image

from ml.io import StudyLoadError, load_study, slice_order_key
from ml.tests.io_factories import png_header_only, save_image


def _level(value):
    return np.full((8, 8), value, np.uint8)


def _noise():
    return np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)


def test_load_study_orders_images_by_the_last_number_in_the_name(tmp_path):
    for k in (10, 2, 1, 3):
        save_image(tmp_path / f"12 ({k}).jpg", _level(20 * k), quality=100)

    result = load_study(tmp_path)

    names = [s.source.split("/")[-1] for s in result.slices]
    assert names == ["12 (1).jpg", "12 (2).jpg", "12 (3).jpg", "12 (10).jpg"]
    assert np.allclose(result.volume[:, 4, 4], [20, 40, 60, 200], atol=2)
    assert result.metadata.units == "windowed8"
    assert result.metadata.source_kind == "image"


def test_slice_order_key_sorts_naturally_and_puts_unnumbered_names_last():
    names = ["slice_010.png", "scout.png", "slice_002.png", "Slice_1.png", "axial.png"]

    ordered = sorted(names, key=slice_order_key)

    assert ordered == [
        "Slice_1.png",
        "slice_002.png",
        "slice_010.png",
        "axial.png",
        "scout.png",
    ]


def test_load_study_warns_when_slice_numbers_repeat(tmp_path):
    for scan in (1, 2):
        for k in (1, 2):
            save_image(tmp_path / f"{scan} ({k}).png", _level(k))

    result = load_study(tmp_path)

    assert len(result.slices) == 4
    assert "more than one scan" in result.warnings[0]


def test_load_study_reads_16_bit_png_as_raw16(tmp_path):
    pixels = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000
    save_image(tmp_path / "deep.png", Image.fromarray(pixels))

    result = load_study(tmp_path / "deep.png")

    assert result.metadata.units == "raw16"
    np.testing.assert_array_equal(result.volume[0], pixels.astype(np.float32))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA", "P", "1"])
def test_load_study_converts_colour_and_palette_images_to_gray(tmp_path, mode):
    gray = Image.fromarray(np.tile(np.arange(0, 256, 32, dtype=np.uint8), (8, 1)))
    save_image(tmp_path / "slice.png", gray.convert(mode))

    result = load_study(tmp_path / "slice.png")

    assert result.volume.shape == (1, 8, 8)
    expected = np.asarray(gray.convert(mode).convert("L"), np.float32)
    np.testing.assert_array_equal(result.volume[0], expected)


def test_load_study_applies_exif_orientation(tmp_path):
    stored = np.zeros((4, 8), np.uint8)
    stored[0, 0] = 255  # top-left as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: rotate 90 degrees clockwise to view
    save_image(tmp_path / "turned.png", Image.fromarray(stored), exif=exif)

    volume = load_study(tmp_path / "turned.png").volume

    assert volume.shape == (1, 8, 4)
    assert volume[0, 0, 3] == 255  # now top-right


@pytest.mark.parametrize("suffix", [".bmp", ".tif"])
def test_load_study_reads_bmp_and_tiff(tmp_path, suffix):
    save_image(tmp_path / f"a1{suffix}", _level(10))
    save_image(tmp_path / f"a2{suffix}", _level(30))

    result = load_study(tmp_path)

    assert result.volume[:, 0, 0].tolist() == [10.0, 30.0]


def test_load_study_sets_aside_images_of_another_size_or_depth(tmp_path):
    for k in (1, 2, 3):
        save_image(tmp_path / f"s{k}.png", _level(k))
    save_image(tmp_path / "s4.png", np.zeros((16, 16), np.uint8))
    save_image(tmp_path / "s5.png", Image.fromarray(np.zeros((8, 8), np.uint16)))

    result = load_study(tmp_path)
    reasons = {r.name.split("/")[-1]: r.reason for r in result.rejected}

    assert result.volume.shape == (3, 8, 8)
    assert (
        reasons["s4.png"] == "image size 16x16 differs from the 8x8 of the other slices"
    )
    assert (
        reasons["s5.png"]
        == "16-bit image among 8-bit images; upload one kind at a time"
    )


def test_load_study_refuses_an_image_too_large_before_decoding_it(tmp_path):
    (tmp_path / "huge.png").write_bytes(png_header_only(width=5000, height=5000))

    with pytest.raises(StudyLoadError) as caught:
        load_study(tmp_path / "huge.png")

    assert caught.value.rejected[0].reason == (
        "image is 5000x5000 pixels; at most 16777216 pixels per slice can be read"
    )


def test_load_study_sets_aside_a_truncated_jpeg(tmp_path):
    save_image(tmp_path / "1.jpg", _noise())
    good = save_image(tmp_path / "2.jpg", _noise())
    cut = (tmp_path / "1.jpg").read_bytes()
    (tmp_path / "1.jpg").write_bytes(cut[: len(cut) // 2])

    result = load_study(tmp_path)

    assert result.consumed == [f"{tmp_path.name}/{good.name}"]
    [rejected] = result.rejected
    assert rejected.name.endswith("1.jpg")
    assert rejected.reason.startswith("corrupt or unsupported JPEG image")


def test_truncated_jpeg_is_refused_even_when_pillow_is_told_to_load_it(
    tmp_path, monkeypatch
):
    """WeasyPrint sets Pillow's process-wide LOAD_TRUNCATED_IMAGES at import; a cut-off
    slice must still be set aside, not completed with grey."""
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    save_image(tmp_path / "1.jpg", _noise())
    good = save_image(tmp_path / "2.jpg", _noise())
    cut = (tmp_path / "1.jpg").read_bytes()
    (tmp_path / "1.jpg").write_bytes(cut[: len(cut) // 2])

    result = load_study(tmp_path)

    assert result.consumed == [f"{tmp_path.name}/{good.name}"]
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # left as it was found
