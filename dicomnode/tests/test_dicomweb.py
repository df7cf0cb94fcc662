"""QIDO-RS and WADO-RS through the real URLs: what a radiologist, a clinician, an
outsider and an anonymous caller get, in the media types DICOMweb clients ask for,
and the audit trail every read leaves."""

import io
import json

import numpy as np
import pydicom
import pytest
from rest_framework.test import APIClient

from accounts.models import AuditEntry
from accounts.services import Refusal
from diagnosis.models import Study

from .dicomweb_fixtures import *  # noqa: F403 - the fixtures
from .dicomweb_fixtures import (
    SIZE,
    SLICES,
    multipart_parts,
    token_for,
    upload,
    write_series,
)

JSON = "application/dicom+json"
DICOM = 'multipart/related; type="application/dicom"'
FRAMES = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'


def bearer(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
    return client


def value(item: dict, tag: str):
    values = item.get(tag, {}).get("Value") or [None]
    return values[0]


def uid_of(study: Study) -> str:
    return study.study_instance_uid


def search(client, path="/dicomweb/studies", **params):
    return client.get(path, params, HTTP_ACCEPT=JSON)


# --- QIDO-RS studies ------------------------------------------------------------------
def test_radiologist_lists_every_dicom_study_with_the_study_attributes(
    radiologist, cleo_study, olga_study
):
    response = search(bearer(radiologist))
    assert response.status_code == 200
    assert response["Content-Type"] == JSON
    by_patient = {value(s, "00100020"): s for s in response.json()}
    assert set(by_patient) == {"MRN-0042", "MRN-7777"}
    cleo = by_patient["MRN-0042"]
    assert value(cleo, "0020000D") == uid_of(cleo_study)
    assert value(cleo, "00080020") == "20240101"
    assert value(cleo, "00080030") == "120000"
    assert value(cleo, "00100010") == {"Alphabetic": "PHANTOM^MRN-0042"}
    assert cleo["00080061"]["Value"] == ["CT"]
    assert (value(cleo, "00201206"), value(cleo, "00201208")) == (1, SLICES)
    assert value(cleo, "00081190").endswith(f"/dicomweb/studies/{uid_of(cleo_study)}")
    # Empty attributes are there, empty, as QIDO answers have them.
    assert cleo["00080050"] == {"vr": "SH"}
    olga = by_patient["MRN-7777"]
    assert value(olga, "00080050") == "ACC-7"
    assert value(olga, "00080090") == {"Alphabetic": "House^Gregory"}


@pytest.mark.parametrize(
    ("params", "patients"),
    [
        ({"PatientID": "MRN-0042"}, {"MRN-0042"}),
        ({"PatientID": "MRN-7*"}, {"MRN-7777"}),
        ({"00100020": "MRN-0042"}, {"MRN-0042"}),
        ({"PatientName": "phantom^mrn-77*"}, {"MRN-7777"}),
        ({"StudyDate": "20240101"}, {"MRN-0042"}),
        ({"StudyDate": "20240201-20240331"}, {"MRN-7777"}),
        ({"StudyDate": "-20240331"}, {"MRN-0042", "MRN-7777"}),
        ({"StudyDate": "20250101-"}, set()),
        ({"ModalitiesInStudy": "CT"}, {"MRN-0042", "MRN-7777"}),
        ({"ModalitiesInStudy": "MR"}, set()),
        ({"AccessionNumber": "ACC-7"}, {"MRN-7777"}),
        ({"AccessionNumber": "ACC-8"}, set()),
        ({"fuzzymatching": "false", "PatientID": ""}, {"MRN-0042", "MRN-7777"}),
    ],
)
def test_studies_match_as_qido_says(
    radiologist, cleo_study, olga_study, params, patients
):
    response = search(bearer(radiologist), **params)
    assert response.status_code == 200, response.content
    assert {value(s, "00100020") for s in response.json()} == patients


def test_studies_match_a_study_instance_uid_list(radiologist, cleo_study, olga_study):
    both = f"{uid_of(cleo_study)},{uid_of(olga_study)}"
    response = search(bearer(radiologist), StudyInstanceUID=both)
    assert len(response.json()) == 2
    response = search(bearer(radiologist), StudyInstanceUID=uid_of(olga_study))
    assert [value(s, "0020000D") for s in response.json()] == [uid_of(olga_study)]


def test_limit_and_offset_page_the_studies(radiologist, cleo_study, olga_study):
    client = bearer(radiologist)
    everything = [value(s, "0020000D") for s in search(client).json()]
    first = search(client, limit=1).json()
    second = search(client, limit=1, offset=1).json()
    assert [value(s, "0020000D") for s in first + second] == everything
    assert search(client, offset=2).json() == []
    # Paging after matching in Python, too.
    assert len(search(client, limit=1, ModalitiesInStudy="CT").json()) == 1


def test_includefield_adds_attributes(radiologist, cleo_study):
    client = bearer(radiologist)
    (study,) = search(client, includefield="00080060,SeriesDescription").json()
    assert value(study, "00080060") == "CT"
    assert value(study, "0008103E") == "SYNTHETIC HEAD PHANTOM"
    (study,) = search(client, includefield="all").json()
    assert value(study, "00180015") == "HEAD"  # BodyPartExamined, from the header
    assert "7FE00010" not in study


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"limit": "ten"}, "limit must be a whole number"),
        ({"offset": "-1"}, "offset must be a whole number"),
        ({"StudyDate": "2024"}, "StudyDate must be a date YYYYMMDD"),
        ({"StudyDate": "20241301"}, "StudyDate must be a date"),
        ({"Colour": "blue"}, "'Colour' is not a DICOM attribute"),
        ({"includefield": "Nonsense"}, "'Nonsense' is not a DICOM attribute"),
        ({"SliceThickness": "5"}, "Searching studies by SliceThickness is not"),
    ],
)
def test_bad_parameters_are_a_400_naming_them(radiologist, cleo_study, params, words):
    response = search(bearer(radiologist), **params)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert words in response.json()["detail"]


def test_a_media_type_it_cannot_give_is_a_406(radiologist, cleo_study):
    response = bearer(radiologist).get("/dicomweb/studies", HTTP_ACCEPT="image/png")
    assert response.status_code == 406
    assert "application/dicom+json" in response.json()["detail"]
    # No Accept, or any type, is DICOM JSON.
    assert bearer(radiologist).get("/dicomweb/studies").status_code == 200


def test_a_non_dicom_study_is_not_served(radiologist, clinician, cleo_study):
    Study.objects.filter(pk=cleo_study.pk).update(source_kind="image")
    assert search(bearer(radiologist)).json() == []


# --- Who sees what --------------------------------------------------------------------
def test_a_clinician_sees_only_their_own_studies(clinician, cleo_study, olga_study):
    client = bearer(clinician)
    assert [value(s, "0020000D") for s in search(client).json()] == [uid_of(cleo_study)]
    assert search(client, PatientID="MRN-7777").json() == []
    other = f"/dicomweb/studies/{uid_of(olga_study)}"
    for path in (f"{other}/series", f"{other}/metadata", f"{other}/instances"):
        response = client.get(path, HTTP_ACCEPT=JSON)
        assert response.status_code == 404, path
    assert client.get(other, HTTP_ACCEPT=DICOM).status_code == 404
    refused = AuditEntry.objects.filter(action="access.denied", actor=clinician)
    assert refused.count() == 4
    assert set(refused.values_list("object_id", flat=True)) == {uid_of(olga_study)}
    assert refused.first().detail["reason"] == Refusal.NOT_VISIBLE


def test_an_unknown_study_series_or_instance_is_a_404(radiologist, cleo_study):
    client = bearer(radiologist)
    base = f"/dicomweb/studies/{uid_of(cleo_study)}"
    for path in (
        "/dicomweb/studies/1.2.3.4/series",
        f"{base}/series/1.2.3/instances",
        f"{base}/series/1.2.3/metadata",
    ):
        assert client.get(path, HTTP_ACCEPT=JSON).status_code == 404, path
    refused = AuditEntry.objects.filter(action="access.denied", actor=radiologist)
    assert refused.count() == 3
    assert set(refused.values_list("detail__reason", flat=True)) == {Refusal.NOT_FOUND}


def test_anonymous_and_a_bad_token_are_refused_and_audited(cleo_study, outsider):
    anonymous = APIClient().get("/dicomweb/studies", HTTP_ACCEPT=JSON)
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"].startswith("Bearer")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert client.get("/dicomweb/studies").status_code == 401
    assert AuditEntry.objects.filter(action="access.denied").count() == 2
    # An outsider's token works, for nothing of anyone else's.
    assert search(bearer(outsider)).json() == []


def test_token_and_session_work_as_well_as_bearer(clinician, as_clinician, cleo_study):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(clinician)}")
    assert len(search(client).json()) == 1
    assert len(search(as_clinician).json()) == 1


# --- QIDO-RS series and instances -----------------------------------------------------
def test_series_and_instances_of_a_study(radiologist, cleo_study, cleo_series):
    client = bearer(radiologist)
    base = f"/dicomweb/studies/{uid_of(cleo_study)}"
    (series,) = search(client, f"{base}/series").json()
    expected = [pydicom.dcmread(p, stop_before_pixels=True) for p in cleo_series]
    series_uid = expected[0].SeriesInstanceUID
    assert value(series, "0020000E") == series_uid
    assert value(series, "00080060") == "CT"
    assert value(series, "00201209") == SLICES
    assert value(series, "0020000D") == uid_of(cleo_study)
    assert search(client, f"{base}/series", Modality="MR").json() == []

    instances = search(client, f"{base}/series/{series_uid}/instances").json()
    assert [value(i, "00080018") for i in instances] == [
        ds.SOPInstanceUID for ds in expected
    ]
    assert [value(i, "00200013") for i in instances] == list(range(1, SLICES + 1))
    assert (value(instances[0], "00280010"), value(instances[0], "00280011")) == (
        SIZE,
        SIZE,
    )
    assert value(instances[0], "00081190").endswith(
        f"/series/{series_uid}/instances/{expected[0].SOPInstanceUID}"
    )
    assert len(search(client, f"{base}/instances").json()) == SLICES
    (third,) = search(client, f"{base}/instances", InstanceNumber="3").json()
    assert value(third, "00080018") == expected[2].SOPInstanceUID
    assert search(client, f"{base}/instances", InstanceNumber="x").status_code == 400


# --- WADO-RS metadata -----------------------------------------------------------------
def test_metadata_is_every_header_without_pixels_but_with_a_bulk_data_uri(
    radiologist, cleo_study, cleo_series
):
    client = bearer(radiologist)
    response = client.get(
        f"/dicomweb/studies/{uid_of(cleo_study)}/metadata", HTTP_ACCEPT=JSON
    )
    assert response.status_code == 200 and response["Content-Type"] == JSON

    items = json.loads(b"".join(response.streaming_content))
    assert len(items) == SLICES
    first = pydicom.dcmread(cleo_series[0], stop_before_pixels=True)
    item = next(i for i in items if value(i, "00080018") == first.SOPInstanceUID)
    assert value(item, "00100020") == "MRN-0042"
    assert value(item, "00281053") == 1  # RescaleSlope: the viewer needs it
    pixel = item["7FE00010"]
    assert "InlineBinary" not in pixel and "Value" not in pixel
    assert pixel["BulkDataURI"].endswith(
        f"/series/{first.SeriesInstanceUID}/instances/{first.SOPInstanceUID}/frames/1"
    )
    series = client.get(
        f"/dicomweb/studies/{uid_of(cleo_study)}/series/{first.SeriesInstanceUID}"
        "/metadata"
    )
    assert len(json.loads(b"".join(series.streaming_content))) == SLICES


# --- WADO-RS retrieve -----------------------------------------------------------------
def test_an_instance_comes_back_as_the_stored_file(
    radiologist, cleo_study, cleo_series
):
    ds = pydicom.dcmread(cleo_series[4], stop_before_pixels=True)
    path = (
        f"/dicomweb/studies/{uid_of(cleo_study)}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )
    response = bearer(radiologist).get(path, HTTP_ACCEPT=DICOM)
    assert response.status_code == 200
    assert response["Content-Type"].startswith(DICOM)
    ((content_type, data),) = multipart_parts(response)
    assert content_type == "application/dicom; transfer-syntax=1.2.840.10008.1.2.1"
    assert data == cleo_series[4].read_bytes()
    assert pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID == ds.SOPInstanceUID


def test_a_study_and_a_series_come_back_whole(radiologist, cleo_study, cleo_series):
    client = bearer(radiologist)
    base = f"/dicomweb/studies/{uid_of(cleo_study)}"
    stored = {p.read_bytes() for p in cleo_series}
    study = multipart_parts(client.get(base, HTTP_ACCEPT=f"{DICOM}; transfer-syntax=*"))
    assert {data for _, data in study} == stored
    series_uid = pydicom.dcmread(cleo_series[0]).SeriesInstanceUID
    series = multipart_parts(client.get(f"{base}/series/{series_uid}"))
    assert {data for _, data in series} == stored
    refused = client.get(base, HTTP_ACCEPT="image/jpeg")
    assert refused.status_code == 406
    jpeg = client.get(
        base, HTTP_ACCEPT=f"{DICOM}; transfer-syntax=1.2.840.10008.1.2.4.50"
    )
    assert jpeg.status_code == 406


def test_frames_are_the_uncompressed_pixels(radiologist, cleo_study, cleo_series):
    ds = pydicom.dcmread(cleo_series[5])
    path = (
        f"/dicomweb/studies/{uid_of(cleo_study)}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}/frames"
    )
    client = bearer(radiologist)
    response = client.get(f"{path}/1", HTTP_ACCEPT=FRAMES)
    assert response.status_code == 200
    ((content_type, data),) = multipart_parts(response)
    assert content_type.startswith("application/octet-stream")
    assert len(data) == ds.Rows * ds.Columns * ds.BitsAllocated // 8 == SIZE * SIZE * 2
    np.testing.assert_array_equal(
        np.frombuffer(data, "<u2").reshape(SIZE, SIZE), ds.pixel_array
    )
    assert client.get(f"{path}/2", HTTP_ACCEPT=FRAMES).status_code == 404
    assert client.get(f"{path}/0", HTTP_ACCEPT=FRAMES).status_code == 400
    assert client.get(f"{path}/1", HTTP_ACCEPT="image/jpeg").status_code == 406


def test_a_compressed_study_is_sent_as_stored_or_decompressed(radiologist, tmp_path):
    from accounts.tests.factories import UserFactory

    uploader = UserFactory(username="rle-uploader", role="clinician")
    paths = write_series(
        tmp_path / "rle", patient_id="MRN-RLE", seed=5, transfer_syntax="rle"
    )
    study = upload(uploader, paths)
    ds = pydicom.dcmread(paths[2])
    path = (
        f"/dicomweb/studies/{uid_of(study)}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )
    client = bearer(radiologist)
    ((kind, stored),) = multipart_parts(
        client.get(path, HTTP_ACCEPT=f"{DICOM}; transfer-syntax=*")
    )
    assert kind.endswith("1.2.840.10008.1.2.5") and stored == paths[2].read_bytes()
    ((kind, plain),) = multipart_parts(client.get(path, HTTP_ACCEPT=DICOM))
    assert kind.endswith("1.2.840.10008.1.2.1")
    decoded = pydicom.dcmread(io.BytesIO(plain))
    assert decoded.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    np.testing.assert_array_equal(decoded.pixel_array, ds.pixel_array)
    ((_, frame),) = multipart_parts(client.get(f"{path}/frames/1", HTTP_ACCEPT=FRAMES))
    np.testing.assert_array_equal(
        np.frombuffer(frame, "<u2").reshape(SIZE, SIZE), ds.pixel_array
    )


# --- Audit ----------------------------------------------------------------------------
def test_every_read_is_audited(radiologist, cleo_study, cleo_series):
    client = bearer(radiologist)
    ds = pydicom.dcmread(cleo_series[0], stop_before_pixels=True)
    base = f"/dicomweb/studies/{uid_of(cleo_study)}"
    instance = f"{base}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    search(client)
    search(client, f"{base}/series")
    client.get(f"{base}/metadata")
    client.get(instance, HTTP_ACCEPT=DICOM)
    client.get(f"{instance}/frames/1", HTTP_ACCEPT=FRAMES)
    entries = AuditEntry.objects.filter(
        actor=radiologist, action__startswith="dicomweb."
    )
    assert list(entries.order_by("id").values_list("action", "object_id")) == [
        ("dicomweb.search", ""),
        ("dicomweb.search", str(cleo_study.pk)),
        ("dicomweb.metadata", str(cleo_study.pk)),
        ("dicomweb.retrieve", str(cleo_study.pk)),
        ("dicomweb.retrieve", str(cleo_study.pk)),
    ]
    assert entries.order_by("id").first().detail["studies"] == [cleo_study.pk]
    assert entries.order_by("id").last().detail["frames"] == [1]


# --- CORS -----------------------------------------------------------------------------
def test_cors_preflight_and_headers_for_the_configured_origin_only(
    settings, radiologist, cleo_study
):
    settings.DICOMWEB_CORS_ORIGINS = ["http://viewer.example:3000"]
    client = APIClient()
    preflight = client.options(
        "/dicomweb/studies",
        HTTP_ORIGIN="http://viewer.example:3000",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization",
    )
    assert preflight.status_code == 204
    assert preflight["Access-Control-Allow-Origin"] == "http://viewer.example:3000"
    assert "Authorization" in preflight["Access-Control-Allow-Headers"]
    assert "GET" in preflight["Access-Control-Allow-Methods"]
    other = client.options(
        "/dicomweb/studies",
        HTTP_ORIGIN="http://evil.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
    )
    assert "Access-Control-Allow-Origin" not in other
    viewer = bearer(radiologist)
    allowed = viewer.get("/dicomweb/studies", HTTP_ORIGIN="http://viewer.example:3000")
    assert allowed["Access-Control-Allow-Origin"] == "http://viewer.example:3000"
    refused = viewer.get("/dicomweb/studies", HTTP_ORIGIN="http://evil.example")
    assert refused.status_code == 200 and "Access-Control-Allow-Origin" not in refused


def test_no_cors_by_default(radiologist, cleo_study):
    response = bearer(radiologist).get(
        "/dicomweb/studies", HTTP_ORIGIN="http://viewer.example:3000"
    )
    assert "Access-Control-Allow-Origin" not in response


def test_more_results_than_one_answer_holds_are_announced(
    monkeypatch, radiologist, cleo_study, olga_study
):
    from dicomnode import dicomweb, dicomweb_query

    monkeypatch.setattr(dicomweb_query, "MAX_RESULTS", 1)
    monkeypatch.setattr(dicomweb, "MAX_RESULTS", 1)
    client = bearer(radiologist)
    first = search(client, limit=50)
    assert len(first.json()) == 1
    assert first["Warning"].startswith("299 ") and "larger offset" in first["Warning"]
    last = search(client, offset=1)
    assert len(last.json()) == 1 and "Warning" not in last
    assert value(last.json()[0], "0020000D") != value(first.json()[0], "0020000D")
