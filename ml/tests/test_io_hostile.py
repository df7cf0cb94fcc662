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


def test_load_study_strips_control_characters_from_set_aside_reasons(series):
    _edit(series[0], SeriesInstanceUID="1.2.3", SeriesDescription="OTHER\x00\x08")
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
