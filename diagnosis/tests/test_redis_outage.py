"""A Redis restart or outage must not answer 500: uploads are stored and stay queued
for the sweeper, and worklist pages are counted without the cache."""

import socket

import pytest
from django.urls import reverse

from diagnosis.models import Study, StudyFile, StudyStatus
from stroke_portal.celery import app

from .conftest import uploads_of

UPLOAD = reverse("diagnosis:study-upload")


def dead_address() -> str:
    """A local port nothing listens on: connecting is refused, as with Redis down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


@pytest.fixture
def broker_down(monkeypatch):
    """Every message is published, through kombu, to a broker that refuses."""
    from diagnosis.tasks import study_process_task

    url = dead_address()

    def publish(*args):
        with app.connection_for_write(url) as connection:
            return study_process_task.apply_async(args, connection=connection)

    monkeypatch.setattr(study_process_task, "delay", publish)


def test_upload_with_the_broker_down_is_stored_and_stays_queued(
    as_clinician, series_dir, broker_down, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = as_clinician.post(UPLOAD, {"files": uploads_of(series_dir)})
    study = Study.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("diagnosis:study-detail", args=[study.pk])
    assert study.status == StudyStatus.QUEUED
    assert StudyFile.objects.filter(study=study).count() == 8
    page = as_clinician.get(response["Location"])
    assert page.status_code == 200


def test_api_upload_with_the_broker_down_answers_201(
    api_clinician, series_dir, broker_down, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_clinician.post(
            reverse("api:study-list"),
            {"files": uploads_of(series_dir)},
            format="multipart",
        )
    assert response.status_code == 201, response.content
    assert response.json()["status"] == StudyStatus.QUEUED


def test_worklists_answer_with_the_cache_down(
    as_radiologist, as_clinician, series_dir, monkeypatch, settings
):
    monkeypatch.setattr("diagnosis.tasks.study_process_task.delay", lambda pk: None)
    as_clinician.post(UPLOAD, {"files": uploads_of(series_dir)})
    study = Study.objects.get()
    settings.CACHES = {
        "default": {
            "BACKEND": "stroke_portal.cache.ResilientRedisCache",
            "LOCATION": dead_address(),
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    for client in (as_radiologist, as_clinician):
        page = client.get(reverse("diagnosis:study-list"))
        assert page.status_code == 200
        assert (
            reverse("diagnosis:study-detail", args=[study.pk]) in page.content.decode()
        )
        pulse = client.get(reverse("diagnosis:study-list-pulse"))
        assert pulse.status_code == 200
