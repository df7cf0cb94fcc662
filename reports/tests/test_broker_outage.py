"""A radiologist's reading is saved and its report downloadable while the broker is
down: the render that could not be queued is done when the PDF is asked for."""

import socket

import pytest
from django.urls import reverse

from diagnosis.models import Review
from reports.tasks import report_render_task
from stroke_portal.celery import app


@pytest.fixture
def broker_down(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
    send = report_render_task.apply_async

    def publish(args=None, kwargs=None, **options):
        with app.connection_for_write(url) as connection:
            return send(args, kwargs, connection=connection, **options)

    monkeypatch.setattr(report_render_task, "apply_async", publish)


def test_review_with_the_broker_down_is_saved_and_its_pdf_renders(
    ready_study,
    as_radiologist,
    as_clinician,
    broker_down,
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        response = as_radiologist.post(
            reverse("diagnosis:study-review", args=[ready_study.pk]),
            {
                "final_label": "stroke",
                "stroke_type": "hemorrhagic",
                "impression": "Right frontal haematoma.",
            },
        )
    assert response.status_code == 302
    assert Review.objects.filter(study=ready_study).count() == 1
    pdf = as_clinician.get(reverse("reports:study-pdf", args=[ready_study.pk]))
    assert pdf.status_code == 200
    assert pdf["Content-Type"] == "application/pdf"
