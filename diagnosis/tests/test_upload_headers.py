"""The upload request validates from headers and one sample slice; the worker reads
every pixel. What the user sees at upload is unchanged, and pixel data that only the
worker finds damaged fails the study with a reason naming the file."""

import numpy as np
import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from pydicom.encaps import encapsulate

from diagnosis.models import Slice, Study, StudyStatus
from diagnosis.tasks import study_process_task
from ml.synthetic import make_phantom, write_dicom_series
from ml.tests.io_factories import save_nifti

from .conftest import fake_analysis, uploads_of

UPLOAD = reverse("diagnosis:study-upload")


@pytest.fixture
def enqueued(monkeypatch):
    calls = []
    monkeypatch.setattr("diagnosis.tasks.study_process_task.delay", calls.append)
    return calls


@pytest.fixture
def decoded(monkeypatch):
    """Every DICOM pixel decode of the request; reading a whole study is refused."""
    from ml.io import dicom

    calls = []
    real = dicom.pixel_array

    def counting(ds, **kwargs):
        calls.append(ds)
        return real(ds, **kwargs)

    def no_full_read(*args, **kwargs):
        raise AssertionError("the upload request read the whole study")

    monkeypatch.setattr(dicom, "pixel_array", counting)
    monkeypatch.setattr(dicom, "load_frames", no_full_read)
    monkeypatch.setattr("diagnosis.ml_adapter.load_study", no_full_read)
    return calls


def rle_series(folder, *, damaged=()):
    """An 8-slice RLE-compressed CT series; slices numbered in ``damaged`` (1-based)
    keep valid headers but get pixel data no decoder can read."""
    paths = write_dicom_series(
        make_phantom(size=64, slices=8, seed=4),
        folder,
        transfer_syntax="rle",
        patient_id="MRN-0077",
    )
    for number in damaged:
        ds = pydicom.dcmread(paths[number - 1])
        ds.PixelData = encapsulate([b"\x01\x00\x00\x00\x40" + bytes(59)])
        ds.save_as(paths[number - 1])
    return folder


def test_upload_decodes_one_slice_and_queues_the_study_with_its_details(
    as_clinician,
    series_dir,
    tmp_path,
    enqueued,
    decoded,
    django_capture_on_commit_callbacks,
):
    scout = pydicom.dcmread(series_dir / "IM0001.dcm")
    scout.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    scout.SOPInstanceUID = pydicom.uid.generate_uid()
    scout.save_as(tmp_path / "scout.dcm")
    files = [
        *uploads_of(series_dir),
        SimpleUploadedFile("scout.dcm", (tmp_path / "scout.dcm").read_bytes()),
        SimpleUploadedFile("notes.txt", b"hello there"),
    ]

    with django_capture_on_commit_callbacks(execute=True):
        response = as_clinician.post(UPLOAD, {"files": files}, follow=True)

    study = Study.objects.get()
    assert (study.status, study.slice_count, study.units) == ("queued", 8, "HU")
    assert (study.patient_id, study.patient_sex) == ("MRN-0042", "O")
    assert study.study_date is not None and study.modality == "CT"
    assert study.dicom_metadata["series_instance_uid"]
    positions = list(study.slices.values_list("position_mm", flat=True))
    assert len(positions) == 8 and positions == sorted(positions)
    assert {r["name"]: r["reason"] for r in study.rejected_files} == {
        "scout.dcm": "localizer (scout) image, not an axial slice",
        "notes.txt": "not a DICOM, PNG, JPEG, BMP, TIFF or NIfTI file "
        "(looks like text: 'hello there')",
    }
    assert "Set aside" in response.content.decode()
    assert len(decoded) == 1  # one sample slice, not eight
    assert enqueued == [study.pk]


def test_damaged_sample_slice_is_set_aside_at_upload_as_before(
    as_clinician, tmp_path, enqueued
):
    folder = rle_series(tmp_path, damaged=[1])

    response = as_clinician.post(UPLOAD, {"files": uploads_of(folder)}, follow=True)

    study = Study.objects.get()
    assert study.slice_count == 7
    [rejected] = study.rejected_files
    assert rejected["name"] == "IM0001.dcm"
    assert rejected["reason"].startswith("pixel data could not be decoded")
    assert "IM0001.dcm" in response.content.decode()


def test_series_whose_pixels_never_decode_is_refused_at_upload(
    as_clinician, tmp_path, enqueued
):
    folder = rle_series(tmp_path, damaged=range(1, 9))

    response = as_clinician.post(UPLOAD, {"files": uploads_of(folder)})

    body = response.content.decode()
    assert response.status_code == 400
    assert "no slice of the upload could be decoded" in body
    assert "IM0001.dcm" in body and "pixel data could not be decoded" in body
    assert not Study.objects.exists() and enqueued == []


def test_damage_only_the_worker_finds_fails_the_study_naming_the_file(
    as_clinician, tmp_path, enqueued, active_model, stub_analysis
):
    folder = rle_series(tmp_path, damaged=[6])
    as_clinician.post(UPLOAD, {"files": uploads_of(folder)})
    study = Study.objects.get()
    assert (study.status, study.slice_count) == (StudyStatus.QUEUED, 8)

    outcome = study_process_task.apply(args=[study.pk])

    study.refresh_from_db()
    assert outcome.result == "failed" and study.status == StudyStatus.FAILED
    assert study.error_message.startswith(
        "The study could not be analysed: only 7 of the study's 8 slices could be "
        "read (IM0006.dcm: pixel data could not be decoded"
    )
    assert "Upload the study again without the damaged file(s)." in (
        study.error_message
    )
    assert stub_analysis.calls == 0
    page = as_clinician.get(reverse("diagnosis:study-detail", args=[study.pk]))
    assert "IM0006.dcm: pixel data could not be decoded" in page.content.decode()


def test_nifti_units_come_from_the_worker_that_reads_its_voxels(
    as_clinician, tmp_path, enqueued, active_model, stub_analysis
):
    hu = np.full((64, 64, 8), 40, np.int16)
    hu[:4], hu[-4:] = -1000, 1000  # air and bone: the values of a CT
    path = save_nifti(tmp_path / "head.nii.gz", hu, affine=np.eye(4))
    upload = SimpleUploadedFile("head.nii.gz", path.read_bytes())
    as_clinician.post(UPLOAD, {"files": [upload]})
    study = Study.objects.get()
    assert (study.source_kind, study.slice_count) == ("nifti", 8)
    assert study.units == "unknown"  # only the voxels tell HU from MR intensity
    assert Slice.objects.filter(study=study).count() == 8

    study_process_task.apply(args=[study.pk])

    study.refresh_from_db()
    assert (study.status, study.units) == (StudyStatus.READY, "HU")
    assert stub_analysis.calls == 1
    assert fake_analysis().slice_probabilities == list(
        study.slices.order_by("index").values_list("probability", flat=True)
    )
