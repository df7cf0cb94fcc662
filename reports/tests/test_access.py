"""Who may download a study's report and exports: the clinician who uploaded it,
radiologists and admins. Anyone else gets 404, as if the study did not exist, and
every download leaves an audit entry naming the format and the report."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import AuditEntry
from reports.models import Report

DOWNLOADS = [
    ("reports:study-pdf", "pdf"),
    ("reports:study-fhir", "fhir"),
    ("reports:study-dicom", "dicom"),
    ("api:study-report-pdf", "pdf"),
    ("api:study-report-fhir", "fhir"),
    ("api:study-report-dicom", "dicom"),
]


def downloads_of(study):
    return AuditEntry.objects.filter(
        action="report.download", object_id=str(study.pk)
    ).order_by("pk")


@pytest.mark.parametrize("url_name, fmt", DOWNLOADS)
def test_uploader_radiologist_and_admin_download_and_are_audited(
    url_name, fmt, ready_study, clinician, radiologist, admin, client
):
    url = reverse(url_name, args=[ready_study.pk])
    for user in (clinician, radiologist, admin):
        client.force_login(user)
        response = client.get(url)
        assert response.status_code == 200, (user.role, response.status_code)
        assert response["Cache-Control"] == "private, no-store"
        assert "attachment" in response["Content-Disposition"]
    entries = list(downloads_of(ready_study))
    assert [e.actor for e in entries] == [clinician, radiologist, admin]
    for entry in entries:
        assert entry.object_type == "diagnosis.study"
        assert entry.detail["format"] == fmt
        assert entry.detail.get("api", False) == url_name.startswith("api:")
        assert entry.path == url
    if fmt != "fhir":
        reference = Report.objects.get(study=ready_study).reference
        assert {e.detail["report"] for e in entries} == {reference}


@pytest.mark.parametrize("url_name, fmt", DOWNLOADS)
def test_other_clinician_gets_404_and_nothing_is_rendered(
    url_name, fmt, ready_study, outsider
):
    client = APIClient()
    client.force_login(outsider)  # a session: pages and API alike
    response = client.get(reverse(url_name, args=[ready_study.pk]))
    assert response.status_code == 404
    assert not downloads_of(ready_study).exists()
    assert not Report.objects.exists()


@pytest.mark.parametrize("url_name, fmt", DOWNLOADS)
def test_anonymous_caller_is_refused(url_name, fmt, ready_study, client):
    response = client.get(reverse(url_name, args=[ready_study.pk]))
    if url_name.startswith("api:"):
        assert response.status_code in (401, 403)
    else:
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("accounts:login"))
    assert not downloads_of(ready_study).exists()


def test_missing_study_is_404(as_admin, db):
    assert as_admin.get(reverse("reports:study-pdf", args=[424242])).status_code == 404


def test_pdf_can_be_opened_in_the_browser(ready_study, as_clinician):
    response = as_clinician.get(
        reverse("reports:study-pdf", args=[ready_study.pk]) + "?view=1"
    )
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("inline")
    assert downloads_of(ready_study).count() == 1
