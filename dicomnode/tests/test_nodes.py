"""The admin pages of the node registry, and a user's site on the user page."""

import pytest

from accounts.models import AuditEntry, Site
from dicomnode.models import DicomNode

NEW = {
    "name": "CT 2",
    "ae_title": "SCANNER2",
    "host": "10.0.0.2",
    "port": "",
    "sends_studies": "on",
}


def test_admin_registers_a_node_and_it_is_audited(as_admin, site):
    response = as_admin.post("/dicom/nodes/new/", {**NEW, "site": site.pk})
    assert response.status_code == 302
    node = DicomNode.objects.get(ae_title="SCANNER2")
    assert node.site == site and node.active and node.host == "10.0.0.2"
    entry = AuditEntry.objects.get(action="dicom.node_create")
    assert entry.detail["changes"]["site"] == [None, "Northside ED"]
    page = as_admin.get("/dicom/nodes/").content.decode()
    assert "SCANNER2" in page and "Northside ED" in page


@pytest.mark.parametrize(
    ("title", "message"),
    [
        ("", "This field is required"),
        ("A" * 17, "at most 16 characters"),
        ("BAD\\AE", "except a backslash"),
        ("ÉCRAN", "printable ASCII"),
    ],
)
def test_ae_title_is_validated(as_admin, title, message):
    response = as_admin.post("/dicom/nodes/new/", {**NEW, "ae_title": title})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not DicomNode.objects.exists()


def test_destination_needs_host_and_port(as_admin):
    data = {**NEW, "host": "", "receives_results": "on"}
    response = as_admin.post("/dicom/nodes/new/", data)
    assert "needs a host and port" in response.content.decode()


def test_admin_edits_and_deactivates_a_node(as_admin, scanner):
    data = {**NEW, "ae_title": "SCANNER1", "name": "ED CT renamed"}
    assert as_admin.post(f"/dicom/nodes/{scanner.pk}/", data).status_code == 302
    scanner.refresh_from_db()
    assert scanner.name == "ED CT renamed" and scanner.site is None
    change = AuditEntry.objects.get(action="dicom.node_change")
    assert change.detail["changes"]["name"] == ["ED CT", "ED CT renamed"]
    as_admin.post(f"/dicom/nodes/{scanner.pk}/deactivate/")
    scanner.refresh_from_db()
    assert not scanner.active
    assert AuditEntry.objects.filter(action="dicom.node_deactivate").count() == 1


def test_admin_adds_a_site(as_admin):
    as_admin.post("/dicom/sites/new/", {"name": "Southside"})
    assert Site.objects.filter(name="Southside").exists()
    assert AuditEntry.objects.filter(action="dicom.site_create").exists()


@pytest.mark.parametrize("persona", ["as_clinician", "as_radiologist"])
def test_node_pages_are_for_admins_only(request, persona, scanner):
    client = request.getfixturevalue(persona)
    assert client.get("/dicom/nodes/").status_code == 403
    assert client.post("/dicom/nodes/new/", NEW).status_code == 403
    assert client.post(f"/dicom/nodes/{scanner.pk}/deactivate/").status_code == 403
    assert DicomNode.objects.get().active


def test_admin_sets_a_users_site(as_admin, clinician, site):
    response = as_admin.post(f"/accounts/users/{clinician.pk}/site/", {"site": site.pk})
    assert response.status_code == 302
    clinician.refresh_from_db()
    assert clinician.site == site
    entry = AuditEntry.objects.get(action="user.site_change")
    assert entry.detail == {"from": "", "to": "Northside ED"}
    page = as_admin.get(f"/accounts/users/{clinician.pk}/").content.decode()
    assert "Northside ED" in page
