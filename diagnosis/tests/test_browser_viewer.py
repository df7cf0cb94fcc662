"""The slice viewer in Debian's Chromium, on a study whose values are known: the
stored volume is replaced by a synthetic one (0 HU on the left half, 100 HU on the
right, a 1000 HU block) with 0.5 mm pixels, so what the canvas shows, what the probe
reads and what a length measures can be checked against arithmetic.

Screenshots land in test-artifacts/ (viewer-*.png) for a person to look at.
"""

import re

import numpy as np
import pytest
from django.urls import reverse

from accounts.models import AuditEntry
from accounts.tests.factories import PASSWORD, UserFactory
from diagnosis import services, storage
from diagnosis.models import Study
from diagnosis.tasks import study_process_task
from tests.browser import ARTIFACTS, needs_chromium, sign_in

from .conftest import uploads_of

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
]

SIZE, SLICES = 64, 8
BLOCK = (slice(10, 18), slice(40, 48))  # rows, columns of the 1000 HU block
SPACING_MM = 0.5


def known_volume() -> np.ndarray:
    volume = np.zeros((SLICES, SIZE, SIZE), dtype=np.float32)
    volume[:, :, SIZE // 2 :] = 100.0
    volume[:, BLOCK[0], BLOCK[1]] = 1000.0
    volume[:, 0, 0] = -1000.0
    return volume


@pytest.fixture
def study(transactional_db, settings, tmp_path, monkeypatch, request, series_dir):
    settings.FILES_ROOT = tmp_path / "files"
    request.getfixturevalue("active_model")
    request.getfixturevalue("stub_analysis")
    monkeypatch.setattr("diagnosis.tasks.study_process_task.delay", lambda pk: None)
    clinician = UserFactory(username="viewer-clinician")
    clinician.set_password(PASSWORD)
    clinician.save()
    study = services.study_create(
        user=clinician, files=uploads_of(series_dir), clinical={}
    ).study
    study_process_task.apply(args=[study.pk])
    np.save(storage.volume_path(study.pk), known_volume())
    metadata = dict(Study.objects.get(pk=study.pk).dicom_metadata)
    metadata.update(
        pixel_spacing_mm=[SPACING_MM, SPACING_MM],
        image_orientation=[1, 0, 0, 0, 1, 0],
    )
    Study.objects.filter(pk=study.pk).update(dicom_metadata=metadata)
    return Study.objects.get(pk=study.pk)


@pytest.fixture
def page(browser, live_server, study):
    radiologist = UserFactory(username="viewer-radiologist", role="radiologist")
    radiologist.set_password(PASSWORD)
    radiologist.save()
    page = sign_in(browser, live_server.url, "viewer-radiologist", PASSWORD)
    open_study(page, live_server, study)
    yield page
    page.close()


def open_study(page, live_server, study):
    page.goto(live_server.url + reverse("diagnosis:study-detail", args=[study.pk]))
    page.wait_for_function(
        f"() => document.getElementById('viewer').dataset.loaded === '{SLICES}'"
    )
    page.wait_for_function("() => !!window.strokeViewer")


def at(page, x: float, y: float) -> tuple[float, float]:
    """Page coordinates of image pixel (x, y)'s centre."""
    return tuple(page.evaluate(f"() => window.strokeViewer.toPage({x}, {y})"))


def grey(page, x: int, y: int) -> int:
    """The canvas's grey level at image pixel (x, y)."""
    return page.evaluate(
        f"""() => document.getElementById('slice-canvas').getContext('2d')
            .getImageData({x}, {y}, 1, 1).data[0]"""
    )


def window(page) -> tuple[float, float]:
    centre, width = page.locator("#viewer").get_attribute("data-window").split(",")
    return float(centre), float(width)


def expected_grey(hu: float, centre: float, width: float) -> int:
    return round(min(max((hu - (centre - width / 2)) / width * 255, 0), 255))


def test_dragging_window_level_changes_the_pixels_as_the_window_says(page):
    assert window(page) == (40.0, 80.0)  # the brain window
    assert grey(page, 5, 30) == expected_grey(0, 40, 80) == 0
    assert grey(page, 50, 30) == 255  # 100 HU is above 80 HU: white
    page.get_by_role("button", name="W/L").click()
    x, y = at(page, 30, 30)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 120, y + 40, steps=6)  # wider, and a higher level
    page.mouse.up()
    centre, width = window(page)
    assert width > 80 and centre > 40
    for hu, px in ((0, (5, 30)), (100, (50, 30)), (1000, (44, 12))):
        assert abs(grey(page, *px) - expected_grey(hu, centre, width)) <= 1, hu
    # The C and W boxes follow the drag (they stayed at 40/80 before).
    assert float(page.locator("#wc").input_value()) == round(centre)
    assert float(page.locator("#ww").input_value()) == round(width)
    page.get_by_role("button", name="Bone").click()
    assert window(page) == (600.0, 2800.0)
    assert page.locator("#ww").input_value() == "2800"
    assert grey(page, 50, 30) == expected_grey(100, 600, 2800)
    page.locator(".viewer-stage").focus()
    page.keyboard.press("i")
    assert grey(page, 50, 30) == 255 - expected_grey(100, 600, 2800)
    page.keyboard.press("r")
    assert window(page) == (40.0, 80.0) and grey(page, 50, 30) == 255
    page.screenshot(path=ARTIFACTS / "viewer-window.png")
    assert page.js_errors == []


def test_the_probe_reads_the_value_under_the_cursor_and_pins_it(page):
    page.mouse.move(*at(page, 44.5, 13.5))
    assert re.search(
        r"\(44, 13\) 1000 HU", page.get_by_test_id("probe-readout").inner_text()
    )
    page.mouse.move(*at(page, 5.5, 40.5))
    assert page.get_by_test_id("probe-readout").inner_text().endswith(" 0 HU")
    page.get_by_role("button", name="Probe").click()
    page.mouse.click(*at(page, 44.5, 13.5))
    assert "probe 1000 HU" in page.get_by_test_id("measurement-list").inner_text()


def test_a_length_and_an_ellipse_measure_in_millimetres_and_are_saved(page, study):
    page.get_by_role("button", name="Length").click()
    page.mouse.move(*at(page, 10, 40))
    page.mouse.down()
    page.mouse.move(*at(page, 50, 40), steps=5)
    page.mouse.up()
    # 40 pixels of 0.5 mm.
    listed = page.get_by_test_id("measurement-list").inner_text()
    assert "length 20.0 mm" in listed, listed
    page.get_by_role("button", name="Ellipse").click()
    page.mouse.move(*at(page, 40, 10))
    page.mouse.down()
    page.mouse.move(*at(page, 48, 18), steps=4)  # the 1000 HU block's box
    page.mouse.up()
    listed = page.get_by_test_id("measurement-list").inner_text()
    # An ellipse 8 x 8 pixels of 0.5 mm: pi * 2 mm * 2 mm; all of it on 1000 HU.
    assert "12.6 mm², mean 1000.0" in listed, listed
    page.screenshot(path=ARTIFACTS / "viewer-measurements.png")
    page.get_by_label("No stroke").check()
    page.get_by_role("button", name="Save reading").click()
    page.get_by_test_id("current-review").wait_for()
    review = study.reviews.get(is_current=True)
    assert [m["kind"] for m in review.measurements] == ["length", "ellipse"]
    assert review.measurements[0]["mm"] == 20.0
    words = page.get_by_test_id("review-measurements").inner_text()
    assert "Slice 6: length 20.0 mm" in words
    assert "ellipse 12.6 mm², mean 1000.0" in words


def test_orientation_markers_follow_the_dicom_orientation(page, live_server, study):
    edges = {e: page.get_by_test_id(f"edge-{e}").inner_text() for e in
             ("left", "right", "top", "bottom")}  # fmt: skip
    assert edges == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    metadata = dict(study.dicom_metadata, image_orientation=[0, -1, 0, 1, 0, 0])
    Study.objects.filter(pk=study.pk).update(dicom_metadata=metadata)
    open_study(page, live_server, study)
    edges = {e: page.get_by_test_id(f"edge-{e}").inner_text() for e in
             ("left", "right", "top", "bottom")}  # fmt: skip
    assert edges == {"left": "P", "right": "A", "top": "R", "bottom": "L"}
    # The scale bar: its length in mm over the screen pixels of that many mm.
    assert page.locator("#scale-bar").inner_text().strip() == "5 mm"
    bar = page.locator("#scale-bar .bar").bounding_box()["width"]
    pixel = at(page, 1, 0)[0] - at(page, 0, 0)[0]
    assert abs(bar - 5 / SPACING_MM * pixel) < 1


def test_scrolling_cine_and_the_ai_overlay(page):
    viewer = page.locator("#viewer")
    assert viewer.get_attribute("data-current") == "5"  # the most suspicious slice
    assert page.locator("#heatmap-img").is_visible()
    src = page.locator("#heatmap-img").get_attribute("src")
    assert src.endswith("/slices/5/heatmap.png")
    page.locator(".viewer-stage").focus()
    page.keyboard.press("ArrowDown")
    assert viewer.get_attribute("data-current") == "6"
    assert not page.locator("#heatmap-img").is_visible()  # slice 7 has no map
    page.keyboard.press("n")  # the next suspicious slice wraps round to 6
    assert viewer.get_attribute("data-current") == "5"
    page.keyboard.press("o")
    assert not page.locator("#heatmap-img").is_visible()
    page.keyboard.press("o")
    page.keyboard.press("c")
    assert viewer.get_attribute("data-cine") == "playing"
    page.wait_for_function(
        "() => document.getElementById('viewer').dataset.current !== '5'"
    )
    page.keyboard.press("Escape")
    assert viewer.get_attribute("data-cine") == "stopped"
    page.keyboard.press("?")
    assert page.locator("#viewer-help").is_visible()
    page.screenshot(path=ARTIFACTS / "viewer-help.png")


def test_slice_data_is_int16_hounsfield_units_audited_and_refused_to_outsiders(
    client, study
):
    outsider = UserFactory(username="viewer-outsider")
    client.force_login(outsider)
    url = reverse("diagnosis:slice-data", args=[study.pk])
    assert client.get(url, {"start": 0, "count": 4}).status_code == 404
    client.force_login(study.uploaded_by)
    response = client.get(url, {"start": 2, "count": 4})
    assert response.status_code == 200
    assert response["X-Slice-Count"] == "4" and "private" in response["Cache-Control"]
    data = np.frombuffer(response.content, dtype="<i2").reshape(4, SIZE, SIZE)
    assert (data == known_volume()[2:6]).all()
    entry = AuditEntry.objects.filter(action="study.slice_data_view").last()
    assert entry.detail == {"slices": [2, 5]}
    assert client.get(url, {"start": "x"}).status_code == 400
    assert client.get(url, {"start": SLICES}).status_code == 404


def test_the_viewer_works_on_a_study_without_an_ai_result(page, live_server, study):
    # A study the model declined (not what it was made for) has slices, no result:
    # no "next suspicious", no overlay, and the viewer still draws and measures.
    study.results.update(is_current=False)
    page.js_errors.clear()
    open_study(page, live_server, study)
    assert page.get_by_role("button", name="Next suspicious").count() == 0
    assert grey(page, 50, 30) == 255
    page.mouse.move(*at(page, 44.5, 13.5))
    assert page.get_by_test_id("probe-readout").inner_text().endswith("1000 HU")
    assert page.js_errors == []
