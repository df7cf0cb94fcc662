"""STOW-RS through DRF's test client: what a DICOMweb sender gets back, who may
send, and that a refused request saves nothing."""

import io

import pydicom
import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import AuditEntry
from accounts.tests.factories import UserFactory
from diagnosis.models import Arrival, Study, StudyFile

from .conftest import series

BOUNDARY = "stow-boundary-42"
CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
URL = "/dicomweb/studies"
REFERENCED, FAILED, REASON = "00081199", "00081198", "00081197"


def multipart(parts: list[bytes], part_type="application/dicom") -> bytes:
    body = b""
    for data in parts:
        body += f"--{BOUNDARY}\r\nContent-Type: {part_type}\r\n\r\n".encode()
        body += data + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


@pytest.fixture
def instances(tmp_path):
    return [p.read_bytes() for p in series(tmp_path / "s", uid_seed="stow")]


@pytest.fixture
def sender(site):
    user = UserFactory(username="stan-sender", role="clinician")
    user.site = site
    user.save()
    return user


def post(client, parts, url=URL, content_type=CONTENT_TYPE):
    return client.generic("POST", url, multipart(parts), content_type=content_type)


def token_client(user, keyword="Token"):
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"{keyword} {token.key}")
    return client


@pytest.mark.parametrize("keyword", ["Token", "Bearer"])
def test_stow_stores_a_series_as_one_study(sender, instances, keyword):
    response = post(token_client(sender, keyword), instances)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/dicom+json"
    body = response.json()
    assert len(body[REFERENCED]["Value"]) == 8
    assert not body.get(FAILED, {}).get("Value")
    study = Study.objects.get()
    assert study.arrival == Arrival.STOW and study.uploaded_by == sender
    assert study.site == sender.site and study.slice_count == 8
    assert body["00081190"]["Value"][0].endswith(
        f"/dicomweb/studies/{study.study_instance_uid}"
    )
    assert AuditEntry.objects.filter(action="study.receive", object_id=study.pk)


def test_stow_with_a_bad_part_stores_the_rest_and_says_why(sender, instances):
    response = post(token_client(sender), [b"not dicom at all", *instances])
    assert response.status_code == 202
    body = response.json()
    assert len(body[REFERENCED]["Value"]) == 8
    (failed,) = body[FAILED]["Value"]
    assert failed[REASON]["Value"] == [0xC000]
    assert "part 1: not a readable DICOM instance" in response["Warning"]
    assert Study.objects.get().slice_count == 8


def test_stow_of_nothing_usable_is_409_and_saves_nothing(sender, instances):
    ds = pydicom.dcmread(io.BytesIO(instances[0]))
    ds.Modality = "SR"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    response = post(token_client(sender), [buffer.getvalue()])
    assert response.status_code == 409
    assert "SR" in response["Warning"]
    assert not Study.objects.exists() and not StudyFile.objects.exists()
    assert AuditEntry.objects.filter(action="dicom.stow_refused").exists()


def test_stow_to_a_study_url_refuses_instances_of_another_study(sender, instances):
    response = post(token_client(sender), instances, url=f"{URL}/1.2.3.4")
    assert response.status_code == 409
    reasons = {i[REASON]["Value"][0] for i in response.json()[FAILED]["Value"]}
    assert reasons == {0xA900}
    assert not Study.objects.exists()


def test_stow_refuses_what_is_not_multipart_dicom(sender, instances):
    client = token_client(sender)
    wrong = post(client, instances, content_type="application/json")
    assert wrong.status_code == 415
    assert "multipart/related" in wrong.json()["detail"]
    png = post(client, [b"\x89PNG"], content_type=CONTENT_TYPE.replace("dicom", "png"))
    assert png.status_code == 415
    empty = client.generic("POST", URL, b"", content_type=CONTENT_TYPE)
    assert empty.status_code == 400
    assert not Study.objects.exists()


def test_stow_refuses_the_anonymous_and_radiologists(
    client, radiologist, instances, db
):
    assert post(APIClient(), instances).status_code == 401
    assert post(token_client(radiologist), instances).status_code == 403
    assert not Study.objects.exists()
    assert AuditEntry.objects.filter(action="access.denied").count() == 2


def test_stow_session_auth_works_for_a_signed_in_clinician(clinician, instances):
    client = APIClient()
    client.force_login(clinician)
    assert post(client, instances).status_code == 200
