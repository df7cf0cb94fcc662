"""A request Django cannot parse (a part header over the multipart parser's limit:
a file name thousands of characters long) answers a 400 that says what to change,
in the portal's look or as JSON, never Django's bare "Bad Request"."""

from django.urls import reverse

from diagnosis.models import Study

BOUNDARY = "fuzzboundary"


def oversized_name_body() -> bytes:
    """One file part whose Content-Disposition header is ~12 KB: over Django's
    10 KB limit for the headers of a part."""
    name = "n" * 12_000 + ".dcm"
    return (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="files"; filename="{name}"\r\n'
        "Content-Type: application/dicom\r\n\r\n"
        "DICM\r\n"
        f"--{BOUNDARY}--\r\n"
    ).encode()


def post_raw(client, url):
    return client.post(
        url,
        data=oversized_name_body(),
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
    )


def test_an_upload_form_post_with_an_oversized_file_name_says_what_to_change(
    as_clinician,
):
    response = post_raw(as_clinician, reverse("diagnosis:study-upload"))
    assert response.status_code == 400
    page = response.content.decode()
    assert "could not be read" in page and "Rename the files" in page
    assert "Nothing was saved" in page
    assert "Traceback" not in page and "MultiPartParserError" not in page
    assert Study.objects.count() == 0


def test_an_api_upload_with_an_oversized_file_name_says_what_to_change(
    api_clinician,
):
    response = post_raw(api_clinician, reverse("api:study-list"))
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "could not be read" in detail and "Rename the files" in detail
    assert Study.objects.count() == 0
