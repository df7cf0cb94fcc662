"""Uploads and results meant to break the portal (issue 13, "One upload can blind the
radiologists"): non-finite numbers, too many files, server paths in messages. Each
goes through the real entry point: the upload API, the Celery task, the pages."""

import contextlib
import gzip
import math
import re
import tempfile

import numpy as np
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import StopFutureHandlers
from django.db import IntegrityError, transaction
from django.urls import reverse

from diagnosis import apis, services, storage
from diagnosis.models import AIResult, Slice, Study, StudyFile, StudyStatus
from diagnosis.tasks import study_process_task
from ml.tests.io_factories import save_nifti

from .conftest import fake_analysis, uploads_of

LIST = reverse("api:study-list")


@pytest.fixture
def enqueued(monkeypatch):
    calls = []
    monkeypatch.setattr("diagnosis.tasks.study_process_task.delay", calls.append)
    return calls


def api_upload(client, files):
    return client.post(LIST, {"files": files}, format="multipart")


# --- 1. Non-finite numbers ------------------------------------------------------
NAN, INF = float("nan"), float("inf")


def _nan_analyses():
    yield "probability", fake_analysis(probability=NAN)
    a = fake_analysis()
    a.confidence = INF
    yield "confidence", a
    a = fake_analysis()
    a.slice_probabilities[2] = NAN
    yield "slice probabilities", a
    a = fake_analysis()
    a.volume_ml = -INF
    yield "volume", a
    a = fake_analysis()
    a.timings = {"predict": NAN}
    yield "timings", a
    a = fake_analysis()
    a.type_probabilities = {"hemorrhagic": NAN, "ischemic": 0.5}
    yield "type probabilities", a


@pytest.mark.parametrize(
    "what,analysis", list(_nan_analyses()), ids=[w for w, _ in _nan_analyses()]
)
def test_non_finite_result_fails_the_study_and_the_api_still_answers(
    what,
    analysis,
    api_clinician,
    series_dir,
    enqueued,
    active_model,
    stub_analysis,
):
    stub_analysis.next = analysis
    study_id = api_upload(api_clinician, uploads_of(series_dir)).json()["id"]
    study_process_task.apply(args=[study_id])

    study = Study.objects.get(pk=study_id)
    assert study.status == StudyStatus.FAILED
    assert "not a finite number" in study.error_message
    assert math.isfinite(study.priority)
    assert not AIResult.objects.filter(study=study).exists()
    assert all(
        p is None or math.isfinite(p)
        for p in study.slices.values_list("probability", flat=True)
    )
    listing = api_clinician.get(LIST)
    assert listing.status_code == 200
    detail = api_clinician.get(reverse("api:study-detail", args=[study_id]))
    assert detail.status_code == 200


def test_non_finite_values_stored_by_older_code_cannot_break_the_api(
    api_clinician, series_dir, enqueued, active_model, stub_analysis
):
    """NaN already in the database (written before this fix) is answered as absent,
    and the database refuses a NaN priority: it would top every worklist."""
    sure = api_upload(api_clinician, uploads_of(series_dir)).json()["id"]
    study_process_task.apply(args=[sure])
    stub_analysis.next = fake_analysis(probability=0.2, label="normal", slices=6)
    poisoned = api_upload(api_clinician, uploads_of(series_dir)[:6]).json()["id"]
    study_process_task.apply(args=[poisoned])
    Study.objects.filter(pk=poisoned).update(ai_confidence=NAN, ai_volume_ml=INF)
    AIResult.objects.filter(study_id=poisoned).update(probability=NAN, confidence=INF)
    Slice.objects.filter(study_id=poisoned, index=2).update(probability=NAN)
    for value in (NAN, INF, -INF):
        with pytest.raises(IntegrityError), transaction.atomic():
            Study.objects.filter(pk=poisoned).update(priority=value)

    listing = api_clinician.get(LIST)
    assert listing.status_code == 200
    rows = listing.json()["results"]
    assert [r["id"] for r in rows] == [sure, poisoned]
    assert rows[1]["ai_confidence"] is None and rows[1]["ai_volume_ml"] is None
    detail = api_clinician.get(reverse("api:study-detail", args=[poisoned]))
    assert detail.status_code == 200
    body = detail.json()
    assert body["result"]["probability"] is None
    assert body["slice_probabilities"][2] is None
    fhir = api_clinician.get(reverse("api:study-report-fhir", args=[poisoned]))
    assert fhir.status_code == 200
    assert "NaN" not in fhir.content.decode()
    page = api_clinician.get(reverse("reports:study-fhir", args=[poisoned]))
    assert page.status_code in (200, 302)


def test_priority_of_a_non_finite_probability_is_finite():
    from diagnosis.services import study_priority

    for value in (NAN, INF, -INF):
        assert math.isfinite(
            study_priority(label="stroke", probability=value, stroke_type="")
        )
    assert math.isfinite(apis.finite_or_none(1.0))


# --- 2. Too many files ------------------------------------------------------------
def test_too_many_files_in_one_api_request_is_a_400_naming_the_limit(
    api_clinician, enqueued
):
    files = [
        SimpleUploadedFile(f"{i:05d}.dcm", b"x")
        for i in range(settings.UPLOAD_MAX_FILES + 1)
    ]
    response = api_upload(api_clinician, files)
    assert response.status_code == 400
    assert str(settings.UPLOAD_MAX_FILES) in response.json()["detail"]
    assert not Study.objects.exists() and not StudyFile.objects.exists()
    assert enqueued == []


# --- 3. No server path in any message ----------------------------------------------
def _server_roots() -> list[str]:
    return [
        str(settings.DATA_DIR),
        str(settings.FILES_ROOT),
        tempfile.gettempdir(),
        "upload-",
    ]


def _assert_no_server_path(text: str) -> None:
    for root in _server_roots():
        assert root not in text, f"{root!r} leaked in {text!r}"


CORRUPT = {
    "x.png": b"\x89PNG\r\n\x1a\n" + b"garbage" * 20,
    "x.jpg": b"\xff\xd8\xff" + b"garbage" * 20,
}


@pytest.mark.parametrize("name", list(CORRUPT))
def test_corrupt_image_is_refused_naming_only_the_uploaded_file(
    name, api_clinician, enqueued
):
    response = api_upload(api_clinician, [SimpleUploadedFile(name, CORRUPT[name])])
    assert response.status_code == 400
    _assert_no_server_path(response.content.decode())
    assert response.json()["rejected"][0]["name"] == name


@pytest.mark.parametrize("name", list(CORRUPT))
def test_corrupt_image_beside_a_good_series_names_only_the_uploaded_file(
    name, api_clinician, as_clinician, series_dir, enqueued
):
    bad = SimpleUploadedFile(name, CORRUPT[name])
    response = api_upload(api_clinician, [*uploads_of(series_dir), bad])
    assert response.status_code == 201
    _assert_no_server_path(response.content.decode())
    study = Study.objects.get()
    _assert_no_server_path(str(study.rejected_files) + str(study.warnings))
    _assert_no_server_path(str(list(study.slices.values_list("source_name"))))
    page = as_clinician.get(reverse("diagnosis:study-detail", args=[study.pk]))
    _assert_no_server_path(page.content.decode())


def test_nifti_with_truncated_voxels_fails_naming_the_uploaded_file(
    api_clinician, as_clinician, tmp_path, enqueued, active_model, stub_analysis
):
    hu = np.full((64, 64, 8), 40, np.int16)
    path = save_nifti(tmp_path / "head.nii.gz", hu, affine=np.eye(4))
    upload = SimpleUploadedFile("head.nii.gz", path.read_bytes())
    study_id = api_upload(api_clinician, [upload]).json()["id"]
    for stored in StudyFile.objects.filter(study_id=study_id):
        # The header is whole (the upload passed its check); the voxels end early.
        target = storage.uploads_root() / stored.storage_name
        target.write_bytes(gzip.compress(gzip.decompress(target.read_bytes())[:400]))
    study_process_task.apply(args=[study_id])
    study = Study.objects.get(pk=study_id)
    assert study.status == StudyStatus.FAILED
    assert "head.nii.gz" in study.error_message
    _assert_no_server_path(study.error_message)
    detail = api_clinician.get(reverse("api:study-detail", args=[study_id]))
    _assert_no_server_path(detail.content.decode())
    page = as_clinician.get(reverse("diagnosis:study-detail", args=[study_id]))
    _assert_no_server_path(page.content.decode())


def test_server_paths_are_mapped_back_or_removed():
    names = {"/tmp/upload-ab/00000_x.jpg": "scans/x.jpg"}
    text = services.scrub_paths(
        "cannot identify image file '/tmp/upload-ab/00000_x.jpg'", names=names
    )
    assert text == "cannot identify image file 'scans/x.jpg'"
    other = f"[Errno 2] No such file: '{settings.FILES_ROOT}/uploads/ab/cd.bin'"
    assert str(settings.FILES_ROOT) not in services.scrub_paths(other)


def test_corrupt_nifti_fails_naming_only_the_uploaded_file(
    api_clinician, as_clinician, tmp_path, enqueued, active_model, stub_analysis
):
    hu = np.full((64, 64, 8), 40, np.int16)
    path = save_nifti(tmp_path / "head.nii", hu, affine=np.eye(4))
    data = path.read_bytes()
    upload = SimpleUploadedFile("head.nii", data[: len(data) - 20000])
    response = api_upload(api_clinician, [upload])
    _assert_no_server_path(response.content.decode())
    if response.status_code == 400:
        assert "head.nii" in response.content.decode()
        return
    study_id = response.json()["id"]
    study_process_task.apply(args=[study_id])
    study = Study.objects.get(pk=study_id)
    assert study.status == StudyStatus.FAILED
    assert "head.nii" in study.error_message
    _assert_no_server_path(study.error_message)
    detail = api_clinician.get(reverse("api:study-detail", args=[study_id]))
    _assert_no_server_path(detail.content.decode())
    page = as_clinician.get(reverse("diagnosis:study-detail", args=[study_id]))
    _assert_no_server_path(page.content.decode())


# --- 4. Too many files through the web form (its CSRF check reads the form first) ---
def test_too_many_files_through_the_upload_form_is_a_page_naming_the_limit(
    clinician, enqueued
):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(clinician)
    url = reverse("diagnosis:study-upload")
    token = client.get(url).cookies["csrftoken"].value
    files = [
        SimpleUploadedFile(f"{i:05d}.dcm", b"x")
        for i in range(settings.UPLOAD_MAX_FILES + 1)
    ]
    response = client.post(url, {"files": files, "csrfmiddlewaretoken": token})
    assert response.status_code == 400
    page = response.content.decode()
    assert f"more than the {settings.UPLOAD_MAX_FILES} files allowed" in page
    assert not Study.objects.exists() and not StudyFile.objects.exists()
    assert enqueued == []


def test_files_past_the_limit_are_counted_but_not_kept(settings, api_clinician):
    from diagnosis.forms import NotKeptFile, UploadLimitHandler

    settings.UPLOAD_MAX_FILES, settings.UPLOAD_MAX_BYTES = 2, 10
    request = type("R", (), {"path_info": LIST})()
    handler = UploadLimitHandler(request)
    kept = []
    for i, size in enumerate((4, 4, 4, 4)):
        # StopFutureHandlers past the limit: no other handler stores the file.
        with contextlib.suppress(StopFutureHandlers):
            handler.new_file("files", f"{i}.dcm", "x", None)
        kept.append(handler.receive_data_chunk(b"y" * size, 0))
        kept.append(handler.file_complete(size))
    assert kept[0] == b"yyyy" and kept[1] is None  # within the limits: stored
    assert kept[4] is None and isinstance(kept[5], NotKeptFile)  # 12 bytes > 10
    assert isinstance(kept[7], NotKeptFile) and kept[7].size == 4


def test_too_large_an_upload_is_refused_naming_the_limit_and_leaves_no_file(
    settings, api_clinician, enqueued
):
    settings.UPLOAD_MAX_BYTES = 1024 * 1024
    files = [SimpleUploadedFile(f"{i}.dcm", bytes(400 * 1024)) for i in range(4)]
    response = api_upload(api_clinician, files)
    assert response.status_code == 400
    assert "the limit is 1 MB" in response.json()["detail"]
    assert not Study.objects.exists()
    assert not storage.uploads_root().exists() or not any(
        storage.uploads_root().rglob("*")
    )


# --- 5. Amplification: large slices are read reduced, a study's pixels are capped ---
def _png(width: int, height: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (width, height)).save(buffer, "PNG")
    return buffer.getvalue()


def test_large_png_slices_are_stored_reduced_and_the_study_says_so(
    api_clinician, as_clinician, enqueued
):
    png = _png(4096, 4096)
    files = [SimpleUploadedFile(f"{i:02d}.png", png) for i in range(3)]
    response = api_upload(api_clinician, files)
    assert response.status_code == 201
    study = Study.objects.get()
    assert study.dicom_metadata["stored_size"] == [4096, 4096]
    assert study.dicom_metadata["reduction"] == 4.0
    assert any("reduced 4x" in w for w in study.warnings)
    page = as_clinician.get(reverse("diagnosis:study-detail", args=[study.pk]))
    assert "reduced 4x" in page.content.decode()
    assert "Read reduced" in page.content.decode()


def test_a_study_past_the_pixel_budget_is_refused_naming_the_limit(
    settings, api_clinician, enqueued
):
    settings.UPLOAD_MAX_STUDY_PIXELS = 2 * 1024 * 1024
    png = _png(1024, 1024)
    files = [SimpleUploadedFile(f"{i:02d}.png", png) for i in range(3)]
    response = api_upload(api_clinician, files)
    assert response.status_code == 400
    assert (
        "at most 2.1 million pixels can be read per study"
        in (response.json()["detail"])
    )
    assert not Study.objects.exists() and not StudyFile.objects.exists()


# --- 6. Names and old non-finite rows on the pages --------------------------------
def test_hostile_names_in_a_zip_reach_neither_the_database_nor_the_page(
    api_clinician, as_clinician, series_dir, enqueued
):
    from .conftest import zip_of

    members = {
        f"a\x1b[2J/./{'n' * 400}\x07{i}.dcm": f.read_bytes()
        for i, f in enumerate(sorted(series_dir.iterdir()))
    }
    members["..\\..\\evil\x1b.dcm"] = b"not dicom"
    response = api_upload(api_clinician, [zip_of(members, name="scan\x7f.zip")])
    assert response.status_code == 201, response.content
    study = Study.objects.get()
    stored = [*study.slices.values_list("source_name", flat=True)]
    stored += [r["name"] for r in study.rejected_files]
    stored += [*StudyFile.objects.values_list("original_name", flat=True)]
    for name in stored:
        assert len(name) <= 200
        assert not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in name), name
        assert ".." not in name.split("/") and "\\" not in name
    page = as_clinician.get(reverse("diagnosis:study-detail", args=[study.pk]))
    assert "\x1b" not in page.content.decode()


def test_pages_show_no_nan_for_non_finite_values_stored_by_older_code(
    api_clinician, as_clinician, series_dir, enqueued, active_model, stub_analysis
):
    study_id = api_upload(api_clinician, uploads_of(series_dir)).json()["id"]
    study_process_task.apply(args=[study_id])
    Study.objects.filter(pk=study_id).update(ai_confidence=NAN, ai_volume_ml=INF)
    AIResult.objects.filter(study_id=study_id).update(
        probability=NAN, confidence=INF, threshold=-INF, volume_ml=NAN
    )
    Slice.objects.filter(study_id=study_id, index__in=[2, 3]).update(probability=NAN)
    for url in (
        reverse("diagnosis:study-detail", args=[study_id]),
        reverse("diagnosis:study-list"),
    ):
        page = as_clinician.get(url).content.decode().lower()
        # Whole words: a persona's name may hold "nan" (Hernandez).
        assert not re.search(r"\bnan\b|\binf\b|infinity", page), url


def test_study_page_opens_when_the_first_slice_holds_nan_from_older_code(
    api_clinician, as_clinician, series_dir, enqueued, active_model, stub_analysis
):
    study_id = api_upload(api_clinician, uploads_of(series_dir)).json()["id"]
    study_process_task.apply(args=[study_id])
    Slice.objects.filter(study_id=study_id, index=0).update(probability=NAN)
    page = as_clinician.get(reverse("diagnosis:study-detail", args=[study_id]))
    assert page.status_code == 200


def test_a_study_of_another_modality_is_refused_naming_its_files(
    api_clinician, series_dir, enqueued
):
    import pydicom

    files = []
    for path in sorted(series_dir.iterdir()):
        ds = pydicom.dcmread(path)
        ds.Modality = "XX"
        buffer = __import__("io").BytesIO()
        ds.save_as(buffer)
        files.append(SimpleUploadedFile(path.name, buffer.getvalue()))
    response = api_upload(api_clinician, files)
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert f" and {len(files) - 1} more file(s)) is a XX study" in detail
    assert any(f"({f.name} and" in detail for f in files)
