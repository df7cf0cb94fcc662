"""Refused reads of patient data are audited: a clinician probing another
clinician's study (page, slices, heatmap, PDF, FHIR, DICOM, on the pages and the
API) still gets a plain 404, and the trail has one `access.denied` entry naming
the user, the address, the study asked for and why it was refused. A study that
does not exist at all is recorded too (probing ids); a 404 of a URL that names no
object is not. Admins see a burst of refusals per user on the audit trail."""

import re

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import AuditEntry
from diagnosis.models import Study

MISSING_PK = 987654

PAGES = [
    ("diagnosis:study-detail", ()),
    ("diagnosis:study-status", ()),
    ("diagnosis:slice-image", (0,)),
    ("diagnosis:heatmap-image", (0,)),
    ("reports:study-pdf", ()),
    ("reports:study-fhir", ()),
    ("reports:study-dicom", ()),
    ("api:study-detail", ()),
    ("api:study-report-pdf", ()),
    ("api:study-report-fhir", ()),
    ("api:study-report-dicom", ()),
]


@pytest.fixture
def study(clinician):
    return Study.objects.create(
        uploaded_by=clinician,
        content_hash="0" * 64,
        source_kind="dicom",
        units="HU",
        patient_id="MRN-REFUSED",
        slice_count=8,
    )


def refusals():
    return AuditEntry.objects.filter(action="access.denied").order_by("pk")


@pytest.mark.parametrize("url_name, extra", PAGES)
def test_a_probe_of_another_clinicians_study_is_a_404_and_audited_once(
    url_name, extra, study, outsider
):
    client = APIClient()
    client.force_login(outsider)  # a session: pages and API alike
    url = reverse(url_name, args=[study.pk, *extra])
    response = client.get(url, REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 404
    assert "MRN-REFUSED" not in response.content.decode()
    [entry] = refusals()
    assert (entry.actor, entry.actor_role, entry.ip_address) == (
        outsider,
        "clinician",
        "10.1.2.3",
    )
    assert (entry.object_type, entry.object_id) == ("diagnosis.study", str(study.pk))
    assert (entry.outcome, entry.detail["reason"]) == ("denied", "not visible")
    assert entry.detail["view"] == url_name
    assert entry.detail.get("api", False) == url_name.startswith("api:")
    assert entry.path == url


@pytest.mark.parametrize("url_name", ["diagnosis:study-detail", "api:study-detail"])
def test_a_study_that_does_not_exist_is_recorded_as_not_found(
    url_name, api_clinician, as_clinician
):
    client = api_clinician if url_name.startswith("api:") else as_clinician
    response = client.get(reverse(url_name, args=[MISSING_PK]))
    assert response.status_code == 404
    [entry] = refusals()
    assert (entry.object_id, entry.outcome) == (str(MISSING_PK), "failure")
    assert entry.detail["reason"] == "not found"


def test_the_user_cannot_tell_not_visible_from_not_found(study, as_outsider):
    theirs = as_outsider.get(reverse("diagnosis:study-detail", args=[study.pk]))
    missing = as_outsider.get(reverse("diagnosis:study-detail", args=[MISSING_PK]))
    assert theirs.status_code == missing.status_code == 404

    def page(response):  # the sign-out form's CSRF token is masked afresh each time
        return re.sub(rb'name="csrfmiddlewaretoken" value="\w+"', b"", response.content)

    assert page(theirs) == page(missing)


def test_the_owner_reading_their_study_leaves_no_refusal(study, as_clinician):
    assert as_clinician.get(reverse("api:study-detail", args=[study.pk])).status_code
    response = as_clinician.get(reverse("diagnosis:study-detail", args=[study.pk]))
    assert response.status_code == 200
    assert not refusals().exists()


def test_a_404_that_names_no_object_is_not_audited(as_outsider, as_clinician, study):
    assert as_outsider.get("/no-such-page/").status_code == 404
    # The owner's study has no slice 99: a plain 404, nothing was refused.
    missing_slice = reverse("diagnosis:slice-image", args=[study.pk, 99])
    assert as_clinician.get(missing_slice).status_code == 404
    assert not refusals().exists()


def test_an_html_403_is_audited_once_with_the_id_asked_for(as_clinician, study):
    response = as_clinician.post(reverse("diagnosis:study-review", args=[study.pk]))
    assert response.status_code == 403
    [entry] = refusals()
    assert (entry.object_id, entry.outcome) == (str(study.pk), "denied")
    assert entry.detail == {"reason": "forbidden", "view": "diagnosis:study-review"}


def test_an_api_403_is_audited_with_the_study(api_clinician, study):
    response = api_clinician.post(
        reverse("api:study-review", args=[study.pk]), {"final_label": "normal"}
    )
    assert response.status_code == 403
    [entry] = refusals()
    assert (entry.object_type, entry.object_id) == ("diagnosis.study", str(study.pk))
    assert entry.detail["reason"] == "forbidden"
    assert entry.detail["api"] is True


def test_an_api_call_without_credentials_is_audited_as_anonymous(client, study):
    response = client.get(
        reverse("api:study-detail", args=[study.pk]),
        HTTP_AUTHORIZATION="Token not-a-real-token",
        REMOTE_ADDR="10.9.9.9",
    )
    assert response.status_code == 401
    [entry] = refusals()
    assert (entry.actor, entry.actor_username) == (None, "anonymous")
    assert (entry.ip_address, entry.object_id) == ("10.9.9.9", str(study.pk))
    assert entry.detail["reason"] == "unauthenticated"


def test_admins_see_a_burst_of_refusals_per_user(
    as_admin, as_outsider, outsider, settings
):
    settings.REFUSED_READS_ALERT_THRESHOLD = 5
    for pk in range(MISSING_PK, MISSING_PK + 6):
        as_outsider.get(reverse("diagnosis:study-detail", args=[pk]))
    response = as_admin.get(reverse("accounts:audit-list"))
    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-testid="refused-reads"' in page
    assert 'data-testid="refused-reads-alert"' in page
    row = response.context["refused_reads"][0]
    assert (row["actor_username"], row["count"], row["alert"]) == (
        outsider.username,
        6,
        True,
    )
    link = reverse("accounts:audit-list") + (
        f"?actor={outsider.username}&amp;action=access.denied"
    )
    assert link in page
    filtered = as_admin.get(
        reverse("accounts:audit-list"),
        {"actor": outsider.username, "action": "access.denied"},
    )
    assert filtered.context["page"].paginator.count == 6


def test_a_few_refusals_are_listed_without_a_warning(as_admin, as_outsider, study):
    as_outsider.get(reverse("diagnosis:study-detail", args=[study.pk]))
    response = as_admin.get(reverse("accounts:audit-list"))
    assert response.context["refused_reads"][0]["count"] == 1
    assert 'data-testid="refused-reads-alert"' not in response.content.decode()
