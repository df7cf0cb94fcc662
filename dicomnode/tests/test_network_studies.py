"""A study a node sent, as its site's clinicians, other clinicians and the report
see it; and the ingest rules a node's studies share with uploads."""

import hashlib

import pytest
from django.utils import timezone

from accounts.tests.factories import UserFactory
from diagnosis.models import Arrival, Study
from diagnosis.services import Origin, StoredFile, UploadError, study_process
from diagnosis.services import study_receive as receive
from diagnosis.services.common import stored_files
from reports.pdf import report_html
from reports.selectors import report_content, report_state

from .conftest import series


@pytest.fixture
def network_study(scanner, tmp_path, stub_analysis, active_model, files_root):
    paths = series(tmp_path / "s", uid_seed="network")
    files = [StoredFile(p, p.name, sha256_of(p)) for p in paths]
    origin = Origin(
        arrival=Arrival.DICOM,
        received_from=scanner.ae_title,
        site=scanner.site,
        last_instance_at=timezone.now(),
    )
    study = receive(files=files, origin=origin).study
    study_process(study_id=study.pk)
    study.refresh_from_db()
    return study


def sha256_of(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def site_clinician(site):
    user = UserFactory(username="sam-site-clinician", role="clinician")
    user.site = site
    user.save()
    return user


def test_site_clinician_sees_the_study_received_from_the_node(
    client, site_clinician, network_study
):
    client.force_login(site_clinician)
    page = client.get(f"/studies/{network_study.pk}/").content.decode()
    assert "received from SCANNER1 (Northside ED)" in page
    # Said once, and the analysis time counted from its arrival, not an upload.
    assert "received 20" not in page and "after upload" not in page
    assert "None" not in page.split("<h1", 1)[1].split("</h1>", 1)[0]
    worklist = client.get("/studies/").content.decode()
    assert "received from SCANNER1 (Northside ED)" in worklist


def test_another_clinician_gets_404(client, outsider, network_study):
    client.force_login(outsider)
    assert client.get(f"/studies/{network_study.pk}/").status_code == 404


def test_radiologist_worklist_shows_the_sender(client, radiologist, network_study):
    client.force_login(radiologist)
    assert "received from SCANNER1" in client.get("/studies/").content.decode()


def test_report_says_where_the_study_came_from_not_none(network_study):
    result, review = report_state(study=network_study)
    content = report_content(
        study=network_study, result=result, review=review, images_too=False
    )
    html = report_html(content, reference="R-1", generated_at=timezone.now())
    assert "from SCANNER1 (Northside ED)" in html
    assert "by None" not in html and "None" not in html.split("Received", 1)[1][:200]


def test_same_instances_from_the_same_site_are_the_existing_study(
    network_study, scanner
):
    again = receive(
        files=stored_files(network_study.pk),
        origin=Origin(arrival=Arrival.DICOM, received_from="PACS2", site=scanner.site),
    )
    assert again.created is False and again.study == network_study


def test_acquired_at_is_read_from_the_headers_in_the_portal_zone(network_study):
    # ml.synthetic writes StudyDate 20240101, StudyTime 120000 (no acquisition time).
    local = timezone.localtime(network_study.acquired_at)
    assert (local.date().isoformat(), local.hour, local.minute) == ("2024-01-01", 12, 0)


def test_nothing_received_is_refused(scanner):
    with pytest.raises(UploadError, match="No instances"):
        receive(files=[], origin=Origin(arrival=Arrival.DICOM, site=scanner.site))
    assert not Study.objects.exists()
