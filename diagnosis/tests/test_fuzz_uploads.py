"""The fuzz corpus of bench/fuzz_uploads.py, a spread subset of it, through the upload
form and the API (issue 13). Each case must answer without a 500 and without a
server path; a refusal names a file it was sent (or the limit it broke) and leaves
no row and no file; an accepted upload leaves a study whose files are all there.
The corpus is made by code (bench/fuzz_corpus.py) from small synthetic seeds."""

import functools
import html
import logging
import tempfile
import threading

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse

from bench.fuzz_corpus import corpus, synthetic_seeds
from bench.fuzz_uploads import names_a_file
from diagnosis import services, storage
from diagnosis.models import Study, StudyFile


def _assert_no_server_path(text: str) -> None:
    """test_hostile_uploads' check, without its "upload-" marker: the upload page's
    own element ids hold it."""
    for root in (settings.DATA_DIR, settings.FILES_ROOT, settings.BASE_DIR):
        assert str(root) not in text, f"{root} leaked"
    assert f"{tempfile.gettempdir()}/" not in text
    assert "Traceback (most recent call last)" not in text


pytestmark = pytest.mark.filterwarnings("ignore")
#: Every family whole where one case costs little, one in EVERY of the others.
_WHOLE = {"many-files", "zip-bomb", "zip-nested", "mixed", "form-fields", "zip-many"}
_EVERY = 9
_SLOW = {"png-4096-black-x30", "png-4096-black-x30-first-cut", "jpeg-4096-x5"}


@functools.cache
def _cases():
    logging.getLogger("pydicom").setLevel(logging.ERROR)
    cases = [c for c in corpus(synthetic_seeds()) if c.id not in _SLOW]
    return [c for i, c in enumerate(cases) if c.family in _WHOLE or i % _EVERY == 0]


def _files(case):
    return [SimpleUploadedFile(name, blob) for name, blob in case.files]


def _stored_files() -> set[str]:
    root = storage.uploads_root()
    return {str(p) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


@pytest.fixture
def enqueued(monkeypatch):
    calls = []
    monkeypatch.setattr("diagnosis.tasks.study_process_task.delay", calls.append)
    return calls


def _check(case, response, *, before: set[str], study_id) -> None:
    body = response.content.decode(errors="replace")
    assert response.status_code < 500, body[:500]
    _assert_no_server_path(body)
    if response.status_code == 400:
        if case.files and case.family not in ("form-fields", "many-files"):
            assert names_a_file(case, body), html.unescape(body)[:800]
        assert not Study.objects.exists() and not StudyFile.objects.exists()
        assert _stored_files() == before
        return
    study = Study.objects.get(pk=study_id)
    paths = [storage.uploads_root() / f.storage_name for f in study.files.all()]
    assert paths and all(p.is_file() for p in paths)


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c.id)
def test_fuzz_case_through_the_api(case, api_clinician, enqueued):
    before = _stored_files()
    data = {"files": _files(case), **case.fields}
    response = api_clinician.post(reverse("api:study-list"), data, format="multipart")
    study_id = response.json().get("id") if response.status_code < 300 else None
    _check(case, response, before=before, study_id=study_id)


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c.id)
def test_fuzz_case_through_the_upload_form(case, as_clinician, enqueued):
    before = _stored_files()
    data = {"files": _files(case), **case.fields}
    response = as_clinician.post(reverse("diagnosis:study-upload"), data)
    study_id = None
    if response.status_code == 302:
        study_id = int(response["Location"].rstrip("/").rsplit("/", 1)[-1])
        page = as_clinician.get(response["Location"])
        assert page.status_code == 200
        _assert_no_server_path(page.content.decode())
    _check(case, response, before=before, study_id=study_id)


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL"
)
def test_the_same_upload_sent_twice_at_once_makes_one_study(
    clinician, series_dir, enqueued
):
    """The bench found this: the form and the API (or a double click) racing on
    one upload answered 500 (the unique constraint), and the loser's clean-up could
    delete the files the winner had just stored."""
    outcomes, errors = [], []
    barrier = threading.Barrier(4)

    def upload():
        try:
            barrier.wait()
            files = [
                SimpleUploadedFile(p.name, p.read_bytes())
                for p in sorted(series_dir.iterdir())
            ]
            outcomes.append(services.study_create(user=clinician, files=files))
        except Exception as exc:  # the test reports it
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=upload) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(o.created for o in outcomes) == [False, False, False, True]
    study = Study.objects.get()
    assert {o.study.pk for o in outcomes} == {study.pk}
    for f in study.files.all():
        assert (storage.uploads_root() / f.storage_name).is_file()
    assert not list(storage.uploads_root().rglob("*.partial"))
