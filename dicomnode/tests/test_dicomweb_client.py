"""An OHIF-style DICOMweb client (dicomweb-client) against the running portal
(pytest-django's live server), with a user's token as a Bearer header: it lists,
opens and fetches what the user may see, and nothing else."""

from urllib.parse import urlsplit

import numpy as np
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from requests import HTTPError

from accounts.models import AuditEntry

from .dicomweb_fixtures import *  # noqa: F403 - the fixtures
from .dicomweb_fixtures import SIZE, SLICES, token_for

pytestmark = pytest.mark.django_db(transaction=True)


def client_for(live_server, user) -> DICOMwebClient:
    return DICOMwebClient(
        url=f"{live_server.url}/dicomweb",
        headers={"Authorization": f"Bearer {token_for(user)}"},
    )


def test_a_viewer_lists_opens_and_fetches_a_study(
    live_server, radiologist, cleo_study, cleo_series
):
    viewer = client_for(live_server, radiologist)
    (study,) = viewer.search_for_studies(search_filters={"PatientID": "MRN-0042"})
    study_uid = study["0020000D"]["Value"][0]
    assert study_uid == cleo_study.study_instance_uid
    assert study["00201208"]["Value"] == [SLICES]

    (series,) = viewer.search_for_series(study_uid)
    series_uid = series["0020000E"]["Value"][0]
    instances = viewer.search_for_instances(study_uid, series_uid)
    assert len(instances) == SLICES

    metadata = viewer.retrieve_study_metadata(study_uid)
    assert len(metadata) == SLICES
    assert "InlineBinary" not in metadata[0]["7FE00010"]
    # The pixel data's BulkDataURI is fetched as a viewer does. dicomweb-client
    # sends `Host: localhost` without the live server's port, so the portal's
    # absolute URIs name port 80: the path is taken against the server's URL.
    first = pydicom.Dataset.from_json(
        metadata[0],
        bulk_data_uri_handler=lambda tag, vr, uri: bytes(  # a bytearray part
            viewer.retrieve_bulkdata(live_server.url + urlsplit(uri).path)[0]
        ),
    )
    assert first.PatientID == "MRN-0042"
    first.file_meta = pydicom.dataset.FileMetaDataset()
    first.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    by_uid = {pydicom.dcmread(p).SOPInstanceUID: p for p in cleo_series}
    original = pydicom.dcmread(by_uid[first.SOPInstanceUID])
    np.testing.assert_array_equal(first.pixel_array, original.pixel_array)

    stored = pydicom.dcmread(cleo_series[3])
    instance = viewer.retrieve_instance(study_uid, series_uid, stored.SOPInstanceUID)
    assert instance.SOPInstanceUID == stored.SOPInstanceUID
    np.testing.assert_array_equal(instance.pixel_array, stored.pixel_array)

    (frame,) = viewer.retrieve_instance_frames(
        study_uid, series_uid, stored.SOPInstanceUID, frame_numbers=[1]
    )
    assert len(frame) == SIZE * SIZE * 2
    np.testing.assert_array_equal(
        np.frombuffer(frame, "<u2").reshape(SIZE, SIZE), stored.pixel_array
    )
    whole = viewer.retrieve_study(study_uid)
    assert len(whole) == SLICES
    actions = set(
        AuditEntry.objects.filter(actor=radiologist).values_list("action", flat=True)
    )
    assert {"dicomweb.search", "dicomweb.metadata", "dicomweb.retrieve"} <= actions


def test_a_clinicians_viewer_sees_only_their_studies(
    live_server, clinician, outsider, cleo_study, olga_study
):
    viewer = client_for(live_server, clinician)
    studies = viewer.search_for_studies()
    assert [s["0020000D"]["Value"][0] for s in studies] == [
        cleo_study.study_instance_uid
    ]
    with pytest.raises(HTTPError) as refused:
        viewer.retrieve_study_metadata(olga_study.study_instance_uid)
    assert refused.value.response.status_code == 404
    assert client_for(live_server, outsider).search_for_series(
        olga_study.study_instance_uid
    )


def test_a_viewer_without_a_valid_token_gets_nothing(live_server, cleo_study):
    viewer = DICOMwebClient(
        url=f"{live_server.url}/dicomweb",
        headers={"Authorization": "Bearer wrong"},
    )
    with pytest.raises(HTTPError) as refused:
        viewer.search_for_studies()
    assert refused.value.response.status_code == 401
