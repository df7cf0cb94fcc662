"""Hostile headers: non-finite numbers, size bombs and control characters.

Each case writes a small synthetic series, edits one header the way a fuzzer or a
broken scanner would, and reads it through ``load_study`` and ``check_upload``.
"""

import math

import nibabel as nib
import numpy as np
import pydicom
import pytest

from ml.io import StudyLoadError, check_upload, load_study
from ml.synthetic import make_phantom, write_dicom_series

_SLICES = 4


@pytest.fixture
def series(tmp_path):
    phantom = make_phantom(size=32, slices=_SLICES, seed=1)
    return write_dicom_series(phantom, tmp_path / "series", uid_seed="hostile")


def _edit(path, **values):
    ds = pydicom.dcmread(path)
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    ds.save_as(path)


def _both(paths):
    return load_study(paths), check_upload(paths)


def _reason(result, name):
    return {r.name: r.reason for r in result.rejected}[name]


@pytest.mark.parametrize("keyword", ["RescaleSlope", "RescaleIntercept"])
@pytest.mark.parametrize("value", ["NaN", "inf", "-inf"])
def test_load_study_sets_aside_a_slice_with_non_finite_rescale(series, keyword, value):
    _edit(series[1], **{keyword: value})
    for result in _both(series):
        assert len(result.slices) == _SLICES - 1
        assert _reason(result, series[1].name) == f"{keyword} is not a finite number"
    assert np.isfinite(load_study(series).volume).all()


def test_load_study_sets_aside_a_slice_whose_pixels_are_not_finite(series):
    ds = pydicom.dcmread(series[2])
    ds.RescaleSlope = 1e38  # finite, but stored * slope overflows float32
    ds.save_as(series[2])
    result = load_study(series)
    assert len(result.slices) == _SLICES - 1
    assert "not finite" in _reason(result, series[2].name)
    assert np.isfinite(result.volume).all()


@pytest.mark.parametrize(
    "values",
    [
        {"PixelSpacing": ["NaN", "NaN"]},
        {"PixelSpacing": ["inf", "0.5"]},
        {"SliceThickness": "NaN"},
        {"WindowCenter": "NaN", "WindowWidth": "inf"},
        {"GantryDetectorTilt": "NaN"},
    ],
)
def test_load_study_stores_non_finite_measures_as_absent(series, values):
    for path in series:
        _edit(path, **values)
    for result in _both(series):
        meta = result.metadata
        numbers = [
            meta.slice_thickness_mm,
            meta.slice_spacing_mm,
            meta.gantry_tilt_deg,
            meta.window_center,
            meta.window_width,
            *(meta.pixel_spacing_mm or ()),
        ]
        assert all(v is None or math.isfinite(v) for v in numbers)
    assert len(result.slices) == _SLICES


def test_load_study_gives_no_position_for_a_non_finite_image_position(series):
    _edit(series[0], ImagePositionPatient=["NaN", "0", "0"])
    for result in _both(series):
        positions = [s.position_mm for s in result.slices]
        assert all(p is None or math.isfinite(p) for p in positions)


def test_check_upload_sets_aside_a_frame_count_bomb_from_its_header(series):
    _edit(series[0], NumberOfFrames=1_000_000_000)
    result = check_upload(series)  # used to build a billion frames first
    assert "1000000000 frames" in _reason(result, series[0].name)
    assert len(result.slices) == _SLICES - 1


def test_check_upload_sets_aside_a_file_whose_declared_pixels_pass_the_limit(
    series,
):
    # Each frame is small enough, but frames x rows x columns x bytes is 16 GiB.
    _edit(series[0], Rows=4096, Columns=4096, NumberOfFrames=512)
    result = check_upload(series)
    assert "GiB" in _reason(result, series[0].name)


@pytest.mark.parametrize("rows", [2**31, 10**9])
def test_check_upload_sets_aside_absurd_rows(series, rows):
    ds = pydicom.dcmread(series[0])
    ds["Rows"].VR = "UL"
    ds.Rows = rows
    ds.save_as(series[0])
    result = check_upload(series)
    assert "pixels per slice" in _reason(result, series[0].name)


def test_load_study_strips_control_characters_from_dicom_text(series):
    for path in series:
        _edit(
            path,
            StudyDescription="HEAD\x00 CT\x07",
            SeriesDescription="STD\x1b[31m BRAIN",
            PatientName="DOE^JANE\x00",
            PatientID="ID\x00\x01",
            Manufacturer="ACME\x7f",
        )
    for result in _both(series):
        meta = result.metadata
        assert meta.study_description == "HEAD CT"
        assert meta.series_description == "STD[31m BRAIN"
        assert meta.patient_name == "DOE^JANE"
        assert meta.patient_id == "ID"
        assert meta.manufacturer == "ACME"


def test_load_study_strips_control_characters_from_other_series_labels(series):
    # Another series of the study is listed by its label: header text, cleaned.
    _edit(series[0], SeriesInstanceUID="1.2.3", SeriesDescription="OTHER\x00\x08")
    for result in _both(series):
        [other] = result.series
        assert "\x00" not in other.label and "\x08" not in other.label
        assert "OTHER" in other.label


def test_load_study_strips_control_characters_from_set_aside_reasons(series):
    # Another study's file is set aside naming its StudyInstanceUID: header text.
    _edit(series[0], StudyInstanceUID="1.2.3\x00\x08")
    for result in _both(series):
        assert "\x00" not in _reason(result, series[0].name)
        assert "\x08" not in _reason(result, series[0].name)


def test_load_study_strips_control_characters_from_nifti_descrip(tmp_path):
    image = nib.Nifti1Image(np.zeros((8, 8, 3), np.float32), np.eye(4))
    image.header["descrip"] = b"brain\x00\x01ct\x1f scan"
    path = tmp_path / "head.nii"
    nib.save(image, path)
    for result in _both(path):
        assert result.metadata.study_description == "brainct scan"


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_load_study_refuses_a_nifti_with_non_finite_voxels(tmp_path, bad):
    volume = np.zeros((8, 8, 3), np.float32)
    volume[1, 1, 1] = bad
    path = tmp_path / "head.nii"
    nib.save(nib.Nifti1Image(volume, np.eye(4)), path)
    with pytest.raises(StudyLoadError, match="voxel values are not finite"):
        load_study(path)


# --- Amplification: slices larger than needed, and the study's pixel budget -------
def _black_pngs(folder, *, count, width, height):
    from PIL import Image

    folder.mkdir()
    for i in range(count):
        Image.new("L", (width, height)).save(folder / f"{i:03d}.png")
    return folder


def test_large_pngs_are_read_reduced_to_1024_pixels_and_say_so(tmp_path):
    folder = _black_pngs(tmp_path / "big", count=3, width=4096, height=2048)

    loaded, checked = _both(folder)

    assert loaded.volume.shape == checked.shape == (3, 512, 1024)
    for result in (loaded, checked):
        assert result.metadata.stored_size == (2048, 4096)
        assert result.metadata.reduction == 4.0
        assert any("4096x2048" in w and "reduced 4x" in w for w in result.warnings)


def test_large_dicom_slices_keep_hounsfield_units_and_scale_the_pixel_spacing(tmp_path):
    from ml.tests.io_factories import ct_slice, write

    for i in range(2):
        ds = ct_slice(hu=40.0, z=5.0 * i, size=(2048, 1536), instance=i + 1)
        ds.SOPInstanceUID = f"1.2.3.{i}"
        ds.PixelSpacing = [0.25, 0.25]
        write(ds, tmp_path / f"{i}.dcm")

    loaded, checked = _both(tmp_path)

    assert loaded.volume.shape == checked.shape == (2, 1024, 768)
    assert np.allclose(loaded.volume, 40.0)
    assert loaded.metadata.pixel_spacing_mm == pytest.approx((0.5, 0.5))
    assert checked.metadata.pixel_spacing_mm == pytest.approx((0.5, 0.5))


def test_slices_up_to_1024_pixels_are_read_as_stored(tmp_path):
    folder = _black_pngs(tmp_path / "std", count=2, width=1024, height=700)

    loaded = load_study(folder)

    assert loaded.volume.shape == (2, 700, 1024)
    assert loaded.metadata.stored_size is None and loaded.metadata.reduction is None
    assert not any("reduced" in w for w in loaded.warnings)


def test_a_reduced_jpeg_reads_as_the_reduced_full_decode(tmp_path):
    from PIL import Image

    from ml.io import read_image

    rng = np.random.default_rng(3)
    pixels = np.kron(rng.integers(0, 255, (64, 64)), np.ones((40, 40))).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "x.jpg", quality=95)

    reduced = read_image(tmp_path / "x.jpg", max_side=1024)

    full = read_image(tmp_path / "x.jpg")
    assert full.shape == (2560, 2560) and reduced.shape == (1024, 1024)
    # Each 40-pixel block becomes 16 pixels; away from its edges, the block's value.
    blocks = full[20::40, 20::40]
    assert np.abs(reduced[8::16, 8::16] - blocks).mean() < 2.0


def test_a_study_past_the_pixel_budget_is_refused_naming_the_limit(tmp_path):
    from ml.io import LoadLimits

    folder = _black_pngs(tmp_path / "many", count=5, width=1024, height=1024)
    limits = LoadLimits(max_study_pixels=4 * 1024 * 1024)

    for read in (load_study, check_upload):
        with pytest.raises(StudyLoadError, match=r"4\.2 million pixels can be read"):
            read(folder, limits=limits)


def test_a_nifti_past_the_pixel_budget_is_refused_before_it_is_decoded(tmp_path):
    from ml.io import LoadLimits
    from ml.tests.io_factories import save_nifti

    path = save_nifti(
        tmp_path / "v.nii.gz", np.zeros((64, 64, 20), np.int16), affine=np.eye(4)
    )

    with pytest.raises(StudyLoadError, match="can be read per study"):
        check_upload(path, limits=LoadLimits(max_study_pixels=64 * 64 * 10))


# --- Zip member names --------------------------------------------------------------
def test_zip_member_names_reach_no_message_with_control_characters_or_path_tricks(
    tmp_path, series
):
    import zipfile

    files = sorted(series)
    long = "d" * 5000
    upload = tmp_path / "names.zip"
    with zipfile.ZipFile(upload, "w") as zf:
        zf.writestr("ok\x1b[31m/\x07a\nb.dcm", files[0].read_bytes())
        zf.writestr(f"{long}/{long}.dcm", files[1].read_bytes())
        zf.writestr("..\\..\\windows\\evil.dcm", b"x")
        zf.writestr("notes\x00.txt", b"hello")

    result = load_study(upload)

    names = [s.source for s in result.slices] + [r.name for r in result.rejected]
    assert "names.zip/ok[31m/ab.dcm" in names
    assert "names.zip/windows/evil.dcm" in names
    assert "names.zip/notes" in names  # zipfile itself ends a name at a NUL
    for name in names:
        assert len(name) <= 200
        assert not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in name)
        assert ".." not in name.split("/") and "\\" not in name
    assert any(name.endswith(f"{'d' * 50}.dcm") for name in names)


def test_check_upload_decodes_one_png_of_a_large_series(tmp_path, monkeypatch):
    """Pillow decodes a whole PNG to look for EXIF after its pixels: the header
    probe of 30 slices of 4096 x 4096 took 1.3 s of the web request."""
    from PIL import PngImagePlugin

    folder = _black_pngs(tmp_path / "big", count=8, width=2048, height=2048)
    loads = []
    original = PngImagePlugin.PngImageFile.load
    monkeypatch.setattr(
        PngImagePlugin.PngImageFile,
        "load",
        lambda self: loads.append(self.filename) or original(self),
    )

    checked = check_upload(folder)

    assert checked.shape == (8, 1024, 1024)
    assert len(set(loads)) == 1  # the spot check of the first slice


@pytest.mark.parametrize(
    "field,value", [("vox_offset", float("nan")), ("scl_inter", float("-inf"))]
)
def test_check_upload_refuses_a_gzip_nifti_whose_header_numbers_break_its_read(
    tmp_path, field, value
):
    """Found by the fuzz bench: a .nii.gz passed the upload check and failed on the
    worker, as only the full read met these numbers."""
    import gzip

    image = nib.Nifti1Image(np.full((16, 16, 4), 40, np.int16), np.eye(4))
    image.header["scl_slope"] = 1.0
    raw = bytearray(image.to_bytes())
    offset = {"vox_offset": 108, "scl_inter": 116}[field]
    raw[offset : offset + 4] = np.float32(value).tobytes()
    path = tmp_path / "v.nii.gz"
    path.write_bytes(gzip.compress(bytes(raw)))

    with pytest.raises(StudyLoadError) as refused:
        check_upload(path)
    assert "v.nii.gz" in str(refused.value)
    assert "NIfTI header" in str(refused.value)


def test_check_upload_of_a_large_study_with_a_damaged_slice_decodes_no_more(tmp_path):
    """A damaged first slice made the web request decode the whole upload: for 30
    PNGs of 4096 x 4096, 2.5 s and a 120 MB volume in the web process."""
    from ml.io import LoadLimits

    folder = _black_pngs(tmp_path / "big", count=6, width=2048, height=2048)
    first = folder / "000.png"
    first.write_bytes(first.read_bytes()[:-40])
    limits = LoadLimits(max_check_pixels=2048 * 2048)

    checked = check_upload(folder, limits=limits)
    loaded = load_study(folder, limits=limits)

    assert not checked.fully_decoded
    assert checked.shape == loaded.volume.shape == (5, 1024, 1024)
    assert [r.name for r in checked.rejected] == [r.name for r in loaded.rejected]
    assert checked.rejected[0].name == "big/000.png"


def test_check_upload_refuses_a_large_study_whose_slices_all_fail(tmp_path):
    from ml.io import LoadLimits

    folder = _black_pngs(tmp_path / "big", count=6, width=256, height=256)
    for path in folder.iterdir():
        path.write_bytes(path.read_bytes()[:-40])

    with pytest.raises(StudyLoadError, match="could be decoded") as refused:
        check_upload(folder, limits=LoadLimits(max_check_pixels=256 * 256))
    assert len(refused.value.rejected) >= 3
