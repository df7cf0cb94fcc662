"""DICOM studies stored as uploads are (real StudyFile rows, content-addressed
files), API tokens, and a multipart/related reader, for the DICOMweb tests."""

from pathlib import Path

import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token

from accounts.audit import AuditContext
from diagnosis.services.upload import study_create
from dicomnode import dicomweb_index
from ml.synthetic import make_phantom, write_dicom_series

SLICES, SIZE = 8, 64


def write_series(folder: Path, *, patient_id: str, seed: int, **attrs) -> list[Path]:
    """A synthetic head CT series; `attrs` (DICOM keywords) set on every file."""
    paths = write_dicom_series(
        make_phantom(label="hemorrhagic", size=SIZE, slices=SLICES, seed=seed),
        folder,
        patient_id=patient_id,
        uid_seed=f"dicomweb-{patient_id}",
        transfer_syntax=attrs.pop("transfer_syntax", None),
    )
    if attrs:
        for path in paths:
            ds = pydicom.dcmread(path)
            for keyword, value in attrs.items():
                setattr(ds, keyword, value)
            ds.save_as(path)
    return paths


def upload(user, paths: list[Path]):
    files = [SimpleUploadedFile(p.name, p.read_bytes()) for p in paths]
    return study_create(user=user, files=files, audit=AuditContext(user=user)).study


@pytest.fixture(autouse=True)
def files_root(settings, tmp_path):
    settings.FILES_ROOT = tmp_path / "files"
    dicomweb_index.clear_cache()  # a path cached by an earlier test is gone
    yield settings.FILES_ROOT
    dicomweb_index.clear_cache()


@pytest.fixture
def no_enqueue(monkeypatch):
    monkeypatch.setattr("diagnosis.tasks.study_process_task.delay", lambda pk: None)


@pytest.fixture
def cleo_series(tmp_path) -> list[Path]:
    return write_series(tmp_path / "cleo", patient_id="MRN-0042", seed=3)


@pytest.fixture
def cleo_study(clinician, cleo_series, no_enqueue):
    """The clinician's upload: 8 slices, study date 20240101, no accession."""
    return upload(clinician, cleo_series)


@pytest.fixture
def olga_series(tmp_path) -> list[Path]:
    return write_series(
        tmp_path / "olga",
        patient_id="MRN-7777",
        seed=4,
        StudyDate="20240315",
        AccessionNumber="ACC-7",
        ReferringPhysicianName="House^Gregory",
    )


@pytest.fixture
def olga_study(outsider, olga_series, no_enqueue):
    """Another clinician's upload, with an accession number, of 15 March 2024."""
    return upload(outsider, olga_series)


def token_for(user) -> str:
    return Token.objects.get_or_create(user=user)[0].key


def multipart_parts(response) -> list[tuple[str, bytes]]:
    """The (Content-Type, body) of each part of a multipart/related response."""
    content_type = response["Content-Type"]
    boundary = content_type.split("boundary=")[1].split(";")[0].strip('"')
    body = (
        b"".join(response.streaming_content) if response.streaming else response.content
    )
    assert body.endswith(f"--{boundary}--\r\n".encode())
    parts = []
    for chunk in body.split(f"--{boundary}".encode())[1:-1]:
        head, _, data = chunk.partition(b"\r\n\r\n")
        assert data.endswith(b"\r\n")
        headers = dict(
            line.split(": ", 1) for line in head.decode().strip().splitlines()
        )
        parts.append((headers["Content-Type"], data[:-2]))
    return parts
