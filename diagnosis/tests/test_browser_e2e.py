"""End to end in Debian's Chromium: a clinician uploads a synthetic DICOM series and
waits for the result; a radiologist finds it at the top of the worklist, scrolls the
slices, toggles the heatmap and agrees with the AI. A real Celery worker (in a thread,
on the test broker) processes the study; the model is stubbed at the ml adapter.

Screenshots land in test-artifacts/ for a person to look at.
"""

import re

import pytest

from diagnosis.models import Study, StudyStatus
from tests.browser import ARTIFACTS, needs_chromium, sign_in

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
]


def test_upload_process_worklist_view_and_review(
    browser,
    live_server,
    worker,
    demo_passwords,
    active_model,
    stub_analysis,
    series_dir,
):
    ARTIFACTS.mkdir(exist_ok=True)
    base = live_server.url

    clinician = sign_in(
        browser, base, "demo-clinician", demo_passwords["demo-clinician"]
    )
    clinician.get_by_role("link", name="Upload").first.click()
    clinician.set_input_files("#id_files", sorted(str(p) for p in series_dir.iterdir()))
    clinician.get_by_label("Patient ID / MRN").fill("E2E-001")
    clinician.get_by_role("button", name="Upload and analyse").click()
    clinician.wait_for_url(re.compile(r"/studies/\d+/$"))
    clinician.get_by_test_id("ai-panel").get_by_text("Suspected stroke").wait_for(
        timeout=30000
    )
    study = Study.objects.get(patient_id="E2E-001")
    assert study.status == StudyStatus.READY
    clinician.screenshot(path=ARTIFACTS / "study-clinician-ready.png", full_page=True)

    radiologist = sign_in(
        browser, base, "demo-radiologist", demo_passwords["demo-radiologist"]
    )
    radiologist.get_by_role("link", name="Worklist").first.click()
    first_row = radiologist.get_by_test_id("study-table").locator("tbody tr").first
    assert "E2E-001" in first_row.inner_text()
    assert "Suspected stroke (hemorrhagic)" in first_row.inner_text()
    radiologist.screenshot(path=ARTIFACTS / "worklist-radiologist.png", full_page=True)
    first_row.get_by_role("link").click()

    viewer = radiologist.locator("#viewer")
    radiologist.wait_for_function(
        # A function, not an expression: polling an expression needs eval, which
        # the portal's Content-Security-Policy refuses.
        "() => document.getElementById('viewer').dataset.current"
    )
    assert radiologist.js_errors == []
    assert viewer.get_attribute("data-current") == "5"  # opens on the most suspicious
    assert radiologist.locator("#heatmap-img").is_visible()
    radiologist.locator(".viewer-stage").focus()
    radiologist.keyboard.press("ArrowDown")
    assert viewer.get_attribute("data-current") == "6"
    radiologist.locator(".viewer-stage").hover()
    radiologist.mouse.wheel(0, -120)
    radiologist.mouse.wheel(0, -120)
    radiologist.wait_for_function(
        "() => document.getElementById('viewer').dataset.current === '4'"
    )
    radiologist.locator(".prob-bar").nth(5).click()
    assert radiologist.locator("#heatmap-img").is_visible()
    radiologist.get_by_label("Heatmap").uncheck()
    assert not radiologist.locator("#heatmap-img").is_visible()
    radiologist.get_by_label("Heatmap").check()
    radiologist.get_by_role("button", name="Bone").click()
    # The viewer windows the slice itself (static/js/viewer.js): the window it
    # shows is the preset's, in the C/W boxes too.
    assert viewer.get_attribute("data-window") == "600,2800"
    assert radiologist.locator("#ww").input_value() == "2800"
    radiologist.get_by_role("button", name="Brain").click()
    radiologist.screenshot(path=ARTIFACTS / "viewer-radiologist.png", full_page=True)

    radiologist.get_by_role("button", name="Agree with the AI").click()
    radiologist.get_by_test_id("current-review").wait_for()
    assert (
        "agrees with the AI"
        in radiologist.get_by_test_id("current-review").inner_text()
    )
    review = study.current_review
    assert (
        review.final_label == "stroke"
        and review.reviewer.username == "demo-radiologist"
    )
    radiologist.screenshot(path=ARTIFACTS / "study-reviewed.png", full_page=True)
