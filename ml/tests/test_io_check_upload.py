"""check_upload tells what load_study would return, without building the volume.

The portal validates an upload in the web request with check_upload and reads it
again in the worker with load_study; the user must see the same slices, set-aside
files, warnings and metadata from both. Each case builds an upload and compares.
"""

import dataclasses

import numpy as np
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import RLELossless, generate_uid

from ml.io import UNKNOWN_UNITS, StudyLoadError, check_upload, load_study
from ml.tests.io_factories import (
    SAGITTAL,
    ct_series,
    ct_slice,
    dicom_bytes,
    dicomdir,
    enhanced_ct,
    no_pixel_object,
    save_image,
    save_nifti,
    write,
    zip_bytes,
)


def _dicom_with_everything_set_aside(folder):
    ct_series(folder, zs=[0.0, 5.0, 10.0, 20.0])  # a gap: uneven spacing
    scout = ct_slice(z=0.0, instance=99)
    scout.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    write(scout, folder / "scout.dcm")
    write(ct_slice(z=50.0, orientation=SAGITTAL), folder / "sagittal.dcm")
    write(no_pixel_object(sop_class="1.2.840.10008.5.1.4.1.1.88.67"), folder / "sr")
    write(dicomdir(), folder / "DICOMDIR")
    write(ct_slice(z=0.0, study=generate_uid()), folder / "other-study.dcm")
    write(ct_slice(z=0.0, series=generate_uid()), folder / "other-series.dcm")
    write(ct_slice(z=30.0, size=(8, 8)), folder / "small.dcm")
    write(ct_slice(z=5.0, instance=7), folder / "same-place.dcm")
    (folder / "notes.txt").write_text("patient: 12")


def _dicom_without_positions(folder):
    ct_series(folder, zs=[None, None, None], orientation=None)


def _enhanced_multiframe(folder):
    write(enhanced_ct(zs=[4.0, 0.0, 2.0], slopes=[1.0, 2.0, 0.5]), folder / "e.dcm")


def _compressed_series(folder):
    for i, z in enumerate([0.0, 5.0, 10.0]):
        ds = ct_slice(hu=100.0 * i, z=z, instance=i + 1)
        ds.compress(RLELossless)
        write(ds, folder / f"IM{i}.dcm")


def _images_with_odd_ones(folder):
    rng = np.random.default_rng(0)
    for name in ("7 (3).png", "7 (1).png", "7 (2).png", "8 (2).png"):
        save_image(folder / name, rng.integers(0, 255, (12, 12), np.uint8))
    save_image(folder / "9 (4).png", np.zeros((6, 6), np.uint8))
    save_image(folder / "9 (5).png", np.zeros((12, 12), np.uint16))


def _nifti(folder):
    save_nifti(
        folder / "head.nii.gz",
        np.arange(8 * 6 * 5, dtype=np.int16).reshape(8, 6, 5),
        affine=np.diag([-0.8, 0.9, 3.0, 1.0]),
    )
    save_nifti(folder / "small.nii", np.zeros((4, 4, 2), np.int16), affine=np.eye(4))


def _mixed_zip(folder):
    members = {
        f"s/IM{i}.dcm": dicom_bytes(ct_slice(z=5.0 * i, instance=i)) for i in range(3)
    }
    (folder / "upload.zip").write_bytes(zip_bytes(members))
    save_image(folder / "photo.jpg", np.zeros((8, 8), np.uint8))


def _two_series_zipped(folder):
    members = {
        f"thin/IM{i}.dcm": dicom_bytes(ct_slice(z=2.5 * i, instance=i))
        for i in range(4)
    }
    bone = generate_uid()
    for i in range(2):
        ds = ct_slice(hu=900.0, z=5.0 * i, instance=i, series=bone, series_number=4)
        ds.SeriesDescription = "BONE"
        members[f"bone/IM{i}.dcm"] = dicom_bytes(ds)
    (folder / "upload.zip").write_bytes(zip_bytes(members))


UPLOADS = {
    "dicom with files set aside": _dicom_with_everything_set_aside,
    "dicom without positions": _dicom_without_positions,
    "enhanced multi-frame": _enhanced_multiframe,
    "compressed dicom": _compressed_series,
    "images with odd ones": _images_with_odd_ones,
    "nifti": _nifti,
    "mixed zip": _mixed_zip,
    "two series zipped": _two_series_zipped,
}


def _as_seen(result_or_check) -> dict:
    """What a user sees of a study: everything but the volume and NIfTI's units."""
    seen = {
        key: getattr(result_or_check, key)
        for key in ("slices", "consumed", "rejected", "warnings", "series")
    }
    metadata = dataclasses.asdict(result_or_check.metadata)
    if metadata["source_kind"] == "nifti":
        metadata.pop("units")
    return seen | {"metadata": metadata}


@pytest.mark.parametrize("build", list(UPLOADS.values()), ids=list(UPLOADS))
def test_check_upload_tells_what_load_study_returns(tmp_path, build):
    build(tmp_path)

    check = check_upload(tmp_path)
    result = load_study(tmp_path)

    assert _as_seen(check) == _as_seen(result)
    assert check.shape == result.volume.shape
    assert not check.fully_decoded


def test_check_upload_leaves_nifti_units_to_the_voxels(tmp_path):
    _nifti(tmp_path)

    assert check_upload(tmp_path).metadata.units == UNKNOWN_UNITS
    assert load_study(tmp_path).metadata.units == "intensity"


def test_check_upload_decodes_one_slice_of_a_series(tmp_path, monkeypatch):
    from ml.io import dicom

    ct_series(tmp_path, zs=[5.0 * i for i in range(8)])
    decoded = []
    real = dicom.pixel_array
    monkeypatch.setattr(
        dicom, "pixel_array", lambda ds, **kw: decoded.append(ds) or real(ds, **kw)
    )

    check = check_upload(tmp_path)

    assert check.shape == (8, 16, 16)
    assert len(decoded) == 1


def _rle_slice(*, z, damaged=False):
    ds = ct_slice(hu=z, z=z, instance=int(z) + 1)
    ds.compress(RLELossless)
    if damaged:
        ds.PixelData = encapsulate([b"\x01\x00\x00\x00\x40" + bytes(59)])
    return ds


def test_check_upload_sets_aside_what_load_study_does_when_the_sample_fails(
    tmp_path,
):
    write(_rle_slice(z=0.0, damaged=True), tmp_path / "broken.dcm")
    for z in (5.0, 10.0):
        write(_rle_slice(z=z), tmp_path / f"{z:.0f}.dcm")

    check = check_upload(tmp_path)

    assert check.fully_decoded
    assert _as_seen(check) == _as_seen(load_study(tmp_path))
    [rejected] = check.rejected
    assert rejected.name.endswith("/broken.dcm")
    assert rejected.reason.startswith("pixel data could not be decoded")


def test_check_upload_refuses_a_series_no_slice_of_which_decodes(tmp_path):
    for z in (0.0, 5.0):
        write(_rle_slice(z=z, damaged=True), tmp_path / f"{z:.0f}.dcm")

    with pytest.raises(StudyLoadError) as checked:
        check_upload(tmp_path)
    with pytest.raises(StudyLoadError) as loaded:
        load_study(tmp_path)

    assert str(checked.value) == str(loaded.value)
    assert str(checked.value).startswith("no slice of the upload could be decoded (")


def test_check_upload_misses_damage_beyond_the_sample_that_load_study_finds(
    tmp_path,
):
    """The price of not decoding every slice: the worker's full read finds it."""
    for z in (0.0, 5.0):
        write(_rle_slice(z=z), tmp_path / f"{z:.0f}.dcm")
    write(_rle_slice(z=10.0, damaged=True), tmp_path / "broken.dcm")

    assert len(check_upload(tmp_path).slices) == 3
    assert len(load_study(tmp_path).slices) == 2


def test_check_upload_decodes_a_jpeg_that_looks_cut_off(tmp_path):
    noise = np.random.default_rng(1).integers(0, 255, (32, 32), np.uint8)
    for k in (1, 2, 3):
        save_image(tmp_path / f"{k}.jpg", noise)
    cut = tmp_path / "3.jpg"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])

    check = check_upload(tmp_path)

    assert check.fully_decoded
    assert _as_seen(check) == _as_seen(load_study(tmp_path))
    assert [r.name for r in check.rejected] == [f"{tmp_path.name}/3.jpg"]


def test_check_upload_keeps_a_whole_jpeg_with_trailing_bytes(tmp_path):
    noise = np.random.default_rng(2).integers(0, 255, (32, 32), np.uint8)
    for k in (1, 2):
        save_image(tmp_path / f"{k}.jpg", noise)
    padded = tmp_path / "2.jpg"
    padded.write_bytes(padded.read_bytes() + bytes(200))

    check = check_upload(tmp_path)

    assert check.rejected == [] and check.shape == (2, 32, 32)


@pytest.mark.parametrize(
    ("build", "limit"),
    [
        (lambda p: (p / "a.txt").write_text("hello"), {}),
        (lambda p: ct_series(p, zs=[0.0, 5.0, 10.0]), {"max_slices": 2}),
    ],
    ids=["nothing usable", "too many slices"],
)
def test_check_upload_refuses_as_load_study_does(tmp_path, build, limit):
    from ml.io import LoadLimits

    build(tmp_path)
    limits = LoadLimits(**limit)

    with pytest.raises(StudyLoadError) as checked:
        check_upload(tmp_path, limits=limits)
    with pytest.raises(StudyLoadError) as loaded:
        load_study(tmp_path, limits=limits)

    assert str(checked.value) == str(loaded.value)


def test_check_upload_sets_aside_another_series_whose_sample_fails(tmp_path):
    ct_series(tmp_path / "main", zs=[0.0, 5.0, 10.0])
    other = generate_uid()
    for z in (0.0, 5.0):
        ds = _rle_slice(z=z, damaged=True)
        ds.SeriesInstanceUID, ds.SeriesNumber = other, 7
        write(ds, tmp_path / "other" / f"{z:.0f}.dcm")

    check = check_upload(tmp_path)

    assert check.shape == (3, 16, 16) and check.series == []
    reasons = {r.name.split("/", 1)[1]: r.reason for r in check.rejected}
    assert reasons["other/0.dcm"].startswith("pixel data could not be decoded")
    assert reasons["other/5.dcm"] == (
        f"series 7 set aside: its slice {tmp_path.name}/other/0.dcm could not be "
        "decoded"
    )
