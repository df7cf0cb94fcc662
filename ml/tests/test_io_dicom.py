"""ml.io on DICOM: one study, its axial series, in order, in Hounsfield units."""

import math
import random

import numpy as np
import pytest
from pydicom.uid import generate_uid

from ml.io import LoadLimits, StudyLoadError, load_study
from ml.tests.io_factories import (
    SAGITTAL,
    ct_series,
    ct_slice,
    dicomdir,
    enhanced_ct,
    no_pixel_object,
    write,
)

RT_DOSE = "1.2.840.10008.5.1.4.1.1.481.2"


def _hu(result):
    """The value each slice reads (factory slices are uniform)."""
    return [float(v) for v in result.volume[:, 0, 0]]


def _reasons(result):
    """Reasons by file name without the uploaded folder's name."""
    return {r.name.split("/", 1)[-1]: r.reason for r in result.rejected}


def test_load_study_orders_shuffled_files_foot_to_head(tmp_path):
    zs = [0.0, 5.0, 10.0, 15.0, 20.0]
    order = list(range(5))
    random.Random(3).shuffle(order)
    for rank, i in enumerate(order):  # file names and instance numbers mislead
        ds = ct_slice(hu=100.0 * i, z=zs[i], instance=10 - rank)
        write(ds, tmp_path / f"a{rank}.dcm")

    result = load_study(tmp_path)

    assert _hu(result) == [0.0, 100.0, 200.0, 300.0, 400.0]
    assert [s.position_mm for s in result.slices] == zs
    assert result.volume.dtype == np.float32
    assert result.metadata.units == "HU"
    assert result.metadata.slice_spacing_mm == 5.0
    assert not result.metadata.uneven_spacing
    assert len(result.consumed) == 5 and not result.rejected


def test_load_study_orders_by_position_when_normal_points_down(tmp_path):
    # Columns running anatomically up flip the row x column normal to the feet.
    flipped = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0)
    ct_series(tmp_path, zs=[30.0, 10.0, 20.0], orientation=flipped)

    result = load_study(tmp_path)

    assert _hu(result) == [100.0, 200.0, 0.0]  # z = 10, 20, 30
    assert [s.position_mm for s in result.slices] == [10.0, 20.0, 30.0]


def test_load_study_applies_rescale_slope_and_intercept(tmp_path):
    ds = ct_slice(hu=0.0)
    ds.RescaleSlope, ds.RescaleIntercept = 2, -1000
    ds.PixelData = np.full((16, 16), 520, np.uint16).tobytes()
    write(ds, tmp_path / "one.dcm")

    assert _hu(load_study(tmp_path / "one.dcm")) == [40.0]


def test_load_study_reads_metadata_a_report_needs(tmp_path):
    ct_series(tmp_path, zs=[0.0, 5.0])

    meta = load_study(tmp_path).metadata

    assert (meta.modality, meta.patient_id, meta.patient_sex) == ("CT", "P001", "F")
    assert meta.patient_name == "Test^Patient"
    assert str(meta.study_date) == "2024-01-02"
    assert str(meta.study_time) == "10:15:30"
    assert meta.pixel_spacing_mm == (0.5, 0.5)
    assert meta.slice_thickness_mm == 5.0
    assert meta.gantry_tilt_deg == 0.0


def test_load_study_keeps_a_tilted_series_and_records_the_tilt(tmp_path):
    tilt = math.radians(15)
    tilted = (1.0, 0.0, 0.0, 0.0, math.cos(tilt), -math.sin(tilt))
    ct_series(tmp_path, zs=[5.0, 0.0, 10.0, 2.5, 7.5], orientation=tilted)

    result = load_study(tmp_path)

    assert _hu(result) == [100.0, 300.0, 0.0, 400.0, 200.0]  # z = 0, 2.5, ..., 10
    assert result.metadata.gantry_tilt_deg == pytest.approx(15.0, abs=0.01)
    assert result.metadata.slice_spacing_mm == pytest.approx(2.5 * math.cos(tilt))


def test_load_study_prefers_the_gantry_tilt_the_scanner_recorded(tmp_path):
    ct_series(tmp_path, zs=[0.0, 5.0])
    for path in tmp_path.iterdir():
        ds = ct_slice(z=float(path.name[-5]) * 5)
        ds.GantryDetectorTilt = -12.5
        write(ds, path)

    assert load_study(tmp_path).metadata.gantry_tilt_deg == -12.5


def test_load_study_flags_uneven_spacing(tmp_path):
    ct_series(tmp_path, zs=[0.0, 5.0, 10.0, 20.0])  # one slice missing

    meta = load_study(tmp_path).metadata

    assert meta.uneven_spacing
    assert meta.slice_spacing_mm == 5.0
    assert load_study(tmp_path).warnings == [
        "uneven slice spacing: gaps from 5.00 to 10.00 mm (median 5.00 mm); "
        "slices may be missing"
    ]


def test_load_study_sets_aside_a_duplicate_position(tmp_path):
    ct_series(tmp_path, zs=[0.0, 5.0])
    write(ct_slice(hu=999.0, z=5.0, instance=3), tmp_path / "again.dcm")

    result = load_study(tmp_path)

    assert _hu(result) == [0.0, 100.0]
    reason = _reasons(result)["again.dcm"]
    assert reason.startswith("duplicate slice: same position (5.00 mm) as ")
    assert reason.endswith("/IM0001.dcm")


def test_load_study_sets_aside_the_same_file_uploaded_twice(tmp_path):
    [first] = ct_series(tmp_path / "a", zs=[0.0])
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "copy.dcm").write_bytes(first.read_bytes())

    result = load_study([tmp_path / "a", tmp_path / "b"])

    assert len(result.slices) == 1
    assert "identical SOPInstanceUID" in _reasons(result)["copy.dcm"]


def test_load_study_orders_by_instance_number_without_positions(tmp_path):
    for i, name in enumerate(["c.dcm", "a.dcm", "b.dcm"]):
        write(ct_slice(hu=100.0 * i, z=None, instance=i + 1), tmp_path / name)

    result = load_study(tmp_path)

    assert _hu(result) == [0.0, 100.0, 200.0]
    assert [s.position_mm for s in result.slices] == [None, None, None]
    assert any("ordered by InstanceNumber" in w for w in result.warnings)


def test_load_study_orders_by_instance_number_when_orientation_is_degenerate(
    tmp_path,
):
    ct_series(tmp_path, zs=[10.0, 0.0, 5.0], orientation=(0, 0, 0, 0, 0, 0))

    result = load_study(tmp_path)

    assert _hu(result) == [0.0, 100.0, 200.0]  # instance order, not z
    assert any("ordered by InstanceNumber" in w for w in result.warnings)


def test_load_study_sets_aside_localizers_and_non_image_objects(tmp_path):
    ct_series(tmp_path, zs=[0.0, 5.0, 10.0])
    scout = ct_slice(z=0.0, instance=99)
    scout.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    write(scout, tmp_path / "scout.dcm")
    write(ct_slice(z=50.0, orientation=SAGITTAL), tmp_path / "sagittal.dcm")
    write(ct_slice(z=60.0, sop_class="1.2.840.10008.5.1.4.1.1.7"), tmp_path / "sc.dcm")
    dose = no_pixel_object(sop_class="1.2.840.10008.5.1.4.1.1.88.67")
    write(dose, tmp_path / "dose.dcm")
    state = no_pixel_object(sop_class="1.2.840.10008.5.1.4.1.1.11.1")
    write(state, tmp_path / "ps.dcm")
    write(dicomdir(), tmp_path / "DICOMDIR")
    dose_grid = ct_slice(z=0.0, modality="RTDOSE", sop_class=RT_DOSE)
    write(dose_grid, tmp_path / "grid.dcm")

    result = load_study(tmp_path)
    reasons = _reasons(result)

    assert _hu(result) == [0.0, 100.0, 200.0]
    assert reasons["scout.dcm"] == "localizer (scout) image, not an axial slice"
    assert reasons["sagittal.dcm"].startswith("sagittal image, not an axial slice")
    assert reasons["sc.dcm"].startswith("secondary capture")
    assert reasons["dose.dcm"].startswith("structured report (X-Ray Radiation Dose SR")
    assert "without pixel data (Grayscale Softcopy Presentation" in reasons["ps.dcm"]
    assert (
        reasons["grid.dcm"] == "RT Dose Storage (RTDOSE), not an image of the patient"
    )
    assert reasons["DICOMDIR"].startswith("DICOMDIR")


def test_load_study_keeps_the_study_with_most_slices(tmp_path):
    ct_series(tmp_path / "big", zs=[0.0, 5.0, 10.0])
    other = generate_uid()
    ct_series(tmp_path / "small", zs=[0.0, 5.0], study=other, series=generate_uid())

    result = load_study(tmp_path)

    assert len(result.slices) == 3
    assert all(s.source.startswith(f"{tmp_path.name}/big/") for s in result.slices)
    reason = _reasons(result)["small/IM0000.dcm"]
    assert reason == (
        f"belongs to another study (StudyInstanceUID {other}); "
        "upload one study at a time"
    )


def test_load_study_reads_the_axial_series_with_most_slices_and_lists_the_others(
    tmp_path,
):
    ct_series(tmp_path / "thin", zs=[0.0, 2.0, 4.0, 6.0], series_number=3)
    bone_uid = generate_uid()
    bone = ct_slice(hu=700.0, z=0.0, series=bone_uid, series_number=4)
    bone.SeriesDescription = "BONE"
    write(bone, tmp_path / "bone" / "b.dcm")
    for i, z in enumerate([0.0, 50.0]):  # a coronal reformat series
        write(
            ct_slice(z=z, orientation=(1, 0, 0, 0, 0, -1), series=generate_uid()),
            tmp_path / "cor" / f"c{i}.dcm",
        )

    result = load_study(tmp_path)
    reasons = _reasons(result)

    assert len(result.slices) == 4 and result.metadata.series_number == 3
    # The bone series is another series of the study: kept, not read, not set aside.
    assert "bone/b.dcm" not in reasons
    [other] = result.series
    assert (other.uid, other.label, other.shape) == (bone_uid, '4 "BONE"', (1, 16, 16))
    assert other.consumed == [f"{tmp_path.name}/bone/b.dcm"]
    assert other.metadata.slice_thickness_mm == 5.0
    assert reasons["cor/c0.dcm"].startswith("coronal image")
    # Read on its own, by its UID: its own values, the thin series listed instead.
    bone_only = load_study(tmp_path, series_uid=bone_uid)
    assert _hu(bone_only) == [700.0]
    assert [s.label for s in bone_only.series] == ["3"]


def test_load_study_reads_the_series_asked_for_even_when_another_ties(tmp_path):
    first, second = generate_uid(), generate_uid()
    ct_series(tmp_path / "a", zs=[0.0, 5.0], series=first, series_number=2)
    ct_series(tmp_path / "b", zs=[0.0, 5.0], series=second, series_number=3)

    assert load_study(tmp_path).metadata.series_instance_uid == first
    assert load_study(tmp_path, series_uid=second).metadata.series_number == 3
    with pytest.raises(StudyLoadError, match=r"not in series 1\.2\.3, the"):
        load_study(tmp_path, series_uid="1.2.3")


def test_other_series_are_kept_within_the_study_limits(tmp_path):
    """The upload limits count every series kept: extra series cannot amplify a
    study past them, and never displace the series that is analysed."""
    ct_series(tmp_path / "main", zs=[0.0, 1.0, 2.0, 3.0], series_number=2)
    for number, count in ((3, 3), (4, 2)):
        ct_series(
            tmp_path / f"s{number}",
            zs=[float(z) for z in range(count)],
            series=generate_uid(),
            series_number=number,
        )
    # 4 + 3 slices fit 7 x 16 x 16 pixels; series 4 (2 more) does not.
    limits = LoadLimits(max_study_pixels=7 * 16 * 16)

    result = load_study(tmp_path, limits=limits)
    reasons = _reasons(result)

    assert len(result.slices) == 4
    assert [s.label for s in result.series] == ["3"]
    assert reasons["s4/IM0000.dcm"].startswith(
        "series 4 set aside: with its 2 slices of 16x16 pixels the study would "
        "have 2304 pixels; at most 1792 pixels are kept per study"
    )
    assert "s4/IM0001.dcm" in reasons
    few = load_study(tmp_path, limits=LoadLimits(max_slices=6))
    assert [s.label for s in few.series] == ["4"]  # 3 slices would make 7
    assert "the study would have 7 slices; at most 6" in _reasons(few)["s3/IM0000.dcm"]


def test_load_study_sets_aside_slices_of_another_size(tmp_path):
    ct_series(tmp_path, zs=[0.0, 5.0, 10.0])
    write(ct_slice(z=15.0, size=(8, 8), instance=4), tmp_path / "small.dcm")

    result = load_study(tmp_path)

    assert result.volume.shape == (3, 16, 16)
    assert _reasons(result)["small.dcm"] == (
        "image size 8x8 differs from the 16x16 of the series' other slices"
    )


def test_load_study_reads_enhanced_multiframe_ct_frame_by_frame(tmp_path):
    # Per-frame positions out of order and per-frame rescale slopes.
    write(enhanced_ct(zs=[4.0, 0.0, 2.0], slopes=[1.0, 2.0, 0.5]), tmp_path / "e.dcm")

    result = load_study(tmp_path / "e.dcm")

    assert _hu(result) == [100.0, 200.0, 0.0]
    assert [s.frame for s in result.slices] == [1, 2, 0]
    assert [s.position_mm for s in result.slices] == [0.0, 2.0, 4.0]
    assert result.metadata.slice_thickness_mm == 2.0
    assert result.metadata.pixel_spacing_mm == (0.5, 0.5)


def test_load_study_reads_mr_as_intensity_without_normalising(tmp_path):
    ct_series(tmp_path, zs=[0.0, 5.0], modality="MR")

    result = load_study(tmp_path)

    assert result.metadata.units == "intensity"
    assert result.metadata.modality == "MR"
    assert _hu(result) == [0.0, 100.0]  # the stored values after rescale, as they are


def test_load_study_reads_a_dicom_whatever_its_name(tmp_path):
    write(ct_slice(hu=40.0), tmp_path / "scan.png")

    result = load_study(tmp_path / "scan.png")

    assert result.metadata.source_kind == "dicom"
    assert _hu(result) == [40.0]


def test_load_study_refuses_slices_beyond_the_pixel_limit_before_decoding(tmp_path):
    ds = ct_slice()
    ds.Rows = ds.Columns = 5000  # pixel data stays 16x16: decoding would fail
    write(ds, tmp_path / "huge.dcm")

    with pytest.raises(StudyLoadError) as caught:
        load_study(tmp_path / "huge.dcm")

    assert caught.value.rejected[0].reason == (
        "image is 5000x5000 pixels; at most 16777216 pixels per slice can be read"
    )


def test_load_study_sets_aside_a_truncated_dicom_with_a_reason(tmp_path):
    ct_series(tmp_path, zs=[0.0, 5.0])
    path = write(ct_slice(z=10.0, instance=3), tmp_path / "cut.dcm")
    path.write_bytes(path.read_bytes()[:-200])

    result = load_study(tmp_path)

    assert len(result.slices) == 2
    assert _reasons(result)["cut.dcm"] == (
        "truncated file: it ends before its pixel data does"
    )
