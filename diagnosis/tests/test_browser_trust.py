"""What the AI shows must not lead or mislead, seen in Debian's Chromium with the
shipped model unmocked (issue 14): the reader's form starts empty with the AI's
finding beside it, not inside it; once read, the clinician's list leads with the
reading and marks the AI's call as the AI's; the key images sent to the PACS say
in their pixels that they are AI output.

Screenshots for a person to look at: test-artifacts/trust-review-form.png,
trust-clinician-list.png and trust-key-image.png.
"""

import io
import re
import zipfile

import numpy as np
import pydicom
import pytest
from PIL import Image

from diagnosis.models import Study, StudyStatus
from reports.images import BANNER_FILL
from tests.browser import ARTIFACTS, needs_chromium, needs_shipped_model, sign_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    needs_chromium,
    needs_shipped_model,
]


@pytest.fixture
def uploaded(browser, live_server, worker, demo_passwords, shipped_model, bleed_series):
    """(the clinician's page, the study): the bleed series uploaded through the form
    and analysed by the shipped model on a real worker."""
    _, files = bleed_series
    ARTIFACTS.mkdir(exist_ok=True)
    page = sign_in(
        browser, live_server.url, "demo-clinician", demo_passwords["demo-clinician"]
    )
    page.get_by_role("link", name="Upload").first.click()
    page.set_input_files("#id_files", [str(p) for p in files])
    page.get_by_label("Patient ID / MRN").fill("TRUST-1")
    page.get_by_role("button", name="Upload and analyse").click()
    page.wait_for_url(re.compile(r"/studies/\d+/$"), timeout=120_000)
    page.locator('#study-status[data-status="ready"]').wait_for(timeout=120_000)
    study = Study.objects.get(patient_id="TRUST-1")
    assert study.status == StudyStatus.READY, study.error_message
    return page, study


def beside(a: dict, b: dict) -> bool:
    """Whether two bounding boxes do not overlap."""
    return (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


def test_the_reader_decides_unled_and_the_clinician_sees_the_reading_first(
    browser, live_server, demo_passwords, uploaded
):
    clinician, study = uploaded
    base = live_server.url

    reader = sign_in(
        browser, base, "demo-radiologist", demo_passwords["demo-radiologist"]
    )
    reader.goto(f"{base}/studies/{study.pk}/")
    ai = reader.get_by_test_id("ai-finding")
    assert "Suspected intracranial hemorrhage" in ai.inner_text()
    form = reader.get_by_test_id("review-form")
    choices = form.locator('input[name="final_label"]')
    assert choices.count() == 2
    assert [choices.nth(i).is_checked() for i in range(2)] == [False, False]
    assert form.get_by_label("Impression").input_value() == ""
    assert beside(ai.bounding_box(), form.bounding_box())
    assert "Confidence" not in reader.locator("main").inner_text()
    reader.get_by_test_id("review-form").scroll_into_view_if_needed()
    reader.screenshot(path=ARTIFACTS / "trust-review-form.png", full_page=True)

    # Saving without a choice is refused: nothing was decided for the reader.
    form.get_by_role("button", name="Save reading").click()
    assert Study.objects.get(pk=study.pk).current_review is None

    form = reader.get_by_test_id("review-form")
    form.get_by_label("No stroke").check()
    form.get_by_label("Impression").fill("Dense vessel only; no parenchymal blood.")
    form.get_by_role("button", name="Save reading").click()
    reader.get_by_test_id("current-review").wait_for()
    assert "differs from the AI" in reader.get_by_test_id("current-review").inner_text()
    assert reader.js_errors == []

    clinician.goto(f"{base}/studies/")
    row = clinician.locator(f'tr[data-study="{study.pk}"]')
    finding = row.locator("td").nth(2)
    reading = finding.locator("[data-reading]")
    assert reading.inner_text().startswith("Read: No stroke")
    secondary = finding.get_by_test_id("ai-secondary")
    assert secondary.inner_text().startswith("AI: ")
    # The reading comes first, above the AI's call.
    assert reading.bounding_box()["y"] < secondary.bounding_box()["y"]
    assert "Reviewed" in row.inner_text() or "read after" in row.inner_text()
    clinician.screenshot(path=ARTIFACTS / "trust-clinician-list.png", full_page=True)
    assert clinician.js_errors == []


def test_key_images_for_the_pacs_say_in_their_pixels_that_they_are_ai_output(
    live_server, uploaded
):
    clinician, _ = uploaded
    base = live_server.url
    link = clinician.get_by_role("link", name="DICOM", exact=True)
    response = clinician.request.get(base + link.get_attribute("href"))
    assert response.status == 200
    with zipfile.ZipFile(io.BytesIO(response.body())) as archive:
        objects = [
            pydicom.dcmread(io.BytesIO(archive.read(n))) for n in archive.namelist()
        ]
    key_images = [ds for ds in objects if ds.Modality == "OT"]
    assert key_images, [ds.SOPClassUID.name for ds in objects]
    for ds in key_images:
        assert "AI" in ds.SeriesDescription
        # Nothing that names the patient is burned in: only the AI banner.
        assert ds.BurnedInAnnotation == "NO"
        rgb = ds.pixel_array
        band = rgb[: rgb.shape[0] // 12]
        amber = (np.abs(band.astype(int) - BANNER_FILL).max(axis=-1) <= 8).mean()
        white = (band.min(axis=-1) >= 240).mean()
        # An amber strip across the top (a head CT has black air there) with
        # white letters in it.
        assert amber > 0.5 and white > 0.01, (amber, white)
    Image.fromarray(key_images[0].pixel_array).save(ARTIFACTS / "trust-key-image.png")
