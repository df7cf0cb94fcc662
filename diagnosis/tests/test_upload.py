"""Uploading a study through the real page and the real API: validation by content,
nothing stored when refused, same files recognised."""

import struct
import zlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.models import AuditEntry
from diagnosis import storage
from diagnosis.models import Slice, Study, StudyFile, StudyStatus

from .conftest import uploads_of, zip_of

UPLOAD = reverse("diagnosis:study-upload")


@pytest.fixture
def enqueued(monkeypatch):
    calls = []
    monkeypatch.setattr("diagnosis.tasks.study_process_task.delay", calls.append)
    return calls


def stored_files() -> list:
    root = storage.uploads_root()
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_upload_creates_a_queued_study_and_enqueues_it(
    as_clinician, clinician, series_dir, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = as_clinician.post(
            UPLOAD, {"files": uploads_of(series_dir), "patient_age": "67"}
        )
    study = Study.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("diagnosis:study-detail", args=[study.pk])
    assert (study.status, study.slice_count, study.uploaded_by) == (
        StudyStatus.QUEUED,
        8,
        clinician,
    )
    assert study.patient_id == "MRN-0042"  # pre-filled from DICOM
    assert study.patient_age == 67  # the form wins over DICOM
    assert study.queued_at is not None
    positions = list(
        Slice.objects.filter(study=study).values_list("position_mm", flat=True)
    )
    assert positions == sorted(positions)
    assert len(stored_files()) == 8 == StudyFile.objects.count()
    assert enqueued == [study.pk]
    assert AuditEntry.objects.filter(action="study.upload", object_id=str(study.pk))


def test_same_files_again_lead_to_the_same_study(as_clinician, series_dir, enqueued):
    as_clinician.post(UPLOAD, {"files": uploads_of(series_dir)})
    response = as_clinician.post(UPLOAD, {"files": uploads_of(series_dir)}, follow=True)
    assert Study.objects.count() == 1
    assert "uploaded before" in response.content.decode()


def test_upload_through_xhr_answers_json(as_clinician, series_dir, enqueued):
    response = as_clinician.post(
        UPLOAD, {"files": uploads_of(series_dir)}, HTTP_ACCEPT="application/json"
    )
    body = response.json()
    assert response.status_code == 201 and body["created"] is True
    assert body["url"] == reverse("diagnosis:study-detail", args=[body["study"]])


def test_stray_file_is_set_aside_and_named(as_clinician, series_dir, enqueued):
    files = [*uploads_of(series_dir), SimpleUploadedFile("notes.txt", b"hello there")]
    response = as_clinician.post(UPLOAD, {"files": files}, follow=True)
    study = Study.objects.get()
    assert study.slice_count == 8
    assert [r["name"] for r in study.rejected_files] == ["notes.txt"]
    assert "Set aside notes.txt" in response.content.decode()


def huge_png(width=30000, height=30000) -> bytes:
    def chunk(kind, data):
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def zip_bomb() -> SimpleUploadedFile:
    return zip_of({"slice.dcm": b"\x00" * (300 * 1024 * 1024)}, name="bomb.zip")


BAD_UPLOADS = {
    "corrupt DICOM": lambda: SimpleUploadedFile(
        "IM0001.dcm", b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00garbage" * 20
    ),
    "0-byte file": lambda: SimpleUploadedFile("empty.dcm", b""),
    "renamed executable": lambda: SimpleUploadedFile(
        "scan.dcm", b"\x7fELF\x02\x01\x01" + b"\x00" * 500
    ),
    "zip with ../ paths": lambda: zip_of({"../../etc/evil.dcm": b"x" * 200}),
    "zip bomb": zip_bomb,
    "30,000 x 30,000 image": lambda: SimpleUploadedFile("huge.png", huge_png()),
}


@pytest.mark.parametrize("kind", list(BAD_UPLOADS))
def test_bad_upload_is_refused_clearly_and_leaves_nothing(kind, as_clinician, enqueued):
    upload = BAD_UPLOADS[kind]()
    response = as_clinician.post(UPLOAD, {"files": [upload]})
    body = response.content.decode()
    assert response.status_code == 400, kind
    assert (
        "Nothing in this upload could be used" in body or "Every file is empty" in body
    )
    assert upload.name in body  # the file is named with its reason
    assert "Traceback" not in body
    assert not Study.objects.exists() and not StudyFile.objects.exists()
    assert stored_files() == []
    assert enqueued == []


def test_bad_upload_through_the_api_is_json(api_clinician, enqueued):
    response = api_clinician.post(
        reverse("api:study-list"),
        {"files": [SimpleUploadedFile("scan.dcm", b"\x7fELF" + b"\x00" * 300)]},
        format="multipart",
    )
    assert response.status_code == 400
    body = response.json()
    assert "Nothing in this upload could be used" in body["detail"]
    assert body["rejected"][0]["name"] == "scan.dcm"
    assert not Study.objects.exists()


def test_api_upload_creates_a_study(api_clinician, series_dir, enqueued):
    response = api_clinician.post(
        reverse("api:study-list"),
        {"files": uploads_of(series_dir), "patient_sex": "F"},
        format="multipart",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "queued" and body["slice_count"] == 8
    assert body["patient_sex"] == "F" and body["created"] is True


def test_non_ct_mr_dicom_is_refused(as_clinician, tmp_path, enqueued):
    import pydicom

    from ml.synthetic import make_phantom, write_dicom_series

    paths = write_dicom_series(make_phantom(size=32, slices=2, seed=1), tmp_path)
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.Modality = "US"
        ds.save_as(path)
    response = as_clinician.post(UPLOAD, {"files": uploads_of(tmp_path)})
    assert response.status_code == 400
    assert "analyses head CT and MR only" in response.content.decode()
    assert not Study.objects.exists()


def test_upload_without_files_says_so(as_clinician):
    response = as_clinician.post(UPLOAD, {"patient_id": "X"})
    assert response.status_code == 400
    assert "This field is required" in response.content.decode()
