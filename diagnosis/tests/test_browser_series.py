"""The viewer's series picker in Debian's Chromium, on a study uploaded with two
series of known values (diagnosis/tests/conftest.py: the analysed series of 20
slices of 32 x 32 pixels of 0.5 mm, and another of 10 slices of 24 x 40 pixels of
0.8 mm, turned a quarter): what the canvas shows, what the probe reads and what a
length measures after switching are that series' values and spacing.

The screenshot lands in test-artifacts/viewer-series-picker.png.
"""

import re

import pytest
from django.urls import reverse

from accounts.tests.factories import PASSWORD, UserFactory
from diagnosis import services
from diagnosis.models import Study
from diagnosis.tasks import series_read_task, study_process_task
from tests.browser import ARTIFACTS, needs_chromium, sign_in

from .conftest import series_hu, two_series_analysis, uploads_of
from .test_browser_viewer import at, expected_grey, grey, window

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
]


@pytest.fixture
def study(transactional_db, settings, tmp_path, monkeypatch, request, two_series_dir):
    settings.FILES_ROOT = tmp_path / "files"
    request.getfixturevalue("active_model")
    request.getfixturevalue("stub_analysis").next = two_series_analysis()
    monkeypatch.setattr("diagnosis.tasks.study_process_task.delay", lambda pk: None)
    clinician = UserFactory(username="series-clinician")
    study = services.study_create(
        user=clinician, files=uploads_of(two_series_dir), clinical={}
    ).study
    study_process_task.apply(args=[study.pk])
    series_read_task.apply(args=[study.pk])
    return Study.objects.get(pk=study.pk)


@pytest.fixture
def page(browser, live_server, study):
    radiologist = UserFactory(username="series-radiologist", role="radiologist")
    radiologist.set_password(PASSWORD)
    radiologist.save()
    page = sign_in(browser, live_server.url, "series-radiologist", PASSWORD)
    page.goto(live_server.url + reverse("diagnosis:study-detail", args=[study.pk]))
    shown(page, series=0, slices=20)
    yield page
    page.close()


def shown(page, *, series: int, slices: int) -> None:
    """Wait until the viewer shows `series` with its `slices` loaded and drawn."""
    page.wait_for_function(
        f"""() => {{ const v = document.getElementById('viewer');
            return v.dataset.series === '{series}' && v.dataset.loaded === '{slices}'
              && (v.dataset.drawn || '').startsWith('{series}:'); }}"""
    )


def edges(page) -> dict[str, str]:
    return {
        e: page.get_by_test_id(f"edge-{e}").inner_text()
        for e in ("left", "right", "top", "bottom")
    }


def image_centre_offset(page) -> float:
    """How far (page pixels) the image's centre is from the stage's."""
    box = page.locator(".viewer-stage").bounding_box()
    rows, cols = page.evaluate(
        "() => [document.getElementById('slice-canvas').height,"
        " document.getElementById('slice-canvas').width]"
    )
    x, y = at(page, cols / 2, rows / 2)
    return abs(x - (box["x"] + box["width"] / 2)) + abs(
        y - (box["y"] + box["height"] / 2)
    )


def test_the_picker_shows_the_other_series_with_its_own_values_and_spacing(page, study):
    viewer = page.locator("#viewer")
    picker = page.get_by_test_id("series-picker")
    assert picker.locator("option").all_inner_texts() == [
        '3 "THIN 2.5MM" · 20 slices · 2.5 mm · AI',
        '2 "BRAIN 5MM" · 10 slices · 5 mm',
    ]
    assert viewer.get_attribute("data-current") == "5"  # the most suspicious slice
    assert page.locator("#heatmap-img").is_visible()
    assert not page.get_by_test_id("ai-note").is_visible()
    assert edges(page) == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    # A window that shows the other series' values (-500 to -300 HU), and a zoom.
    page.locator("#wc").fill("-440")
    page.locator("#ww").fill("100")
    page.get_by_role("button", name="Apply").click()
    page.mouse.move(*at(page, 4, 4))
    page.keyboard.down("Control")
    page.mouse.wheel(0, -300)
    page.keyboard.up("Control")
    assert image_centre_offset(page) > 1  # zoomed about the cursor, off centre

    picker.select_option("1")
    shown(page, series=1, slices=10)

    # Its own slices: 24 x 40, and the same height in the head (slice 6 of 20 is
    # about slice 3 of 10), drawn in the window that was kept.
    assert window(page) == (-440.0, 100.0)
    assert page.evaluate(
        "() => [document.getElementById('slice-canvas').width,"
        " document.getElementById('slice-canvas').height]"
    ) == [40, 24]
    assert viewer.get_attribute("data-current") == "2"
    values = series_hu(2)[2]
    for x, y in ((3, 0), (30, 12), (39, 23)):
        assert abs(grey(page, x, y) - expected_grey(values[y, x], -440, 100)) <= 1
    page.mouse.move(*at(page, 10.5, 20.5))
    assert re.search(
        r"\(10, 20\) -440 HU$", page.get_by_test_id("probe-readout").inner_text()
    )
    # Zoom and pan reset to the fit; its own orientation markers and scale bar.
    assert image_centre_offset(page) < 1
    assert edges(page) == {"left": "P", "right": "A", "top": "R", "bottom": "L"}
    bar_mm = float(page.locator("#scale-bar").inner_text().split()[0])
    unit = page.locator("#scale-bar").inner_text().split()[1]
    bar_mm *= 10 if unit == "cm" else 1
    bar = page.locator("#scale-bar .bar").bounding_box()["width"]
    pixel = at(page, 1, 0)[0] - at(page, 0, 0)[0]
    assert abs(bar - bar_mm / 0.8 * pixel) < 1
    # The AI's results are the analysed series': said, and not laid over this one.
    assert page.get_by_test_id("ai-note").inner_text() == (
        'AI results are on series 3 "THIN 2.5MM"'
    )
    assert not page.locator("#heatmap-img").is_visible()
    assert page.get_by_role("button", name="Next suspicious").is_disabled()
    assert page.locator("#heatmap-toggle").is_disabled()
    label = page.locator("#slice-label").inner_text()
    assert label == 'Series 2 "BRAIN 5MM" · Slice 3 / 10', label  # no AI score

    # A length of 30 pixels of this series' 0.8 mm.
    page.get_by_role("button", name="Length").click()
    page.mouse.move(*at(page, 5, 10))
    page.mouse.down()
    page.mouse.move(*at(page, 35, 10), steps=5)
    page.mouse.up()
    listed = page.get_by_test_id("measurement-list").inner_text()
    assert 'Series 2 "BRAIN 5MM", slice 3: length 24.0 mm' in listed, listed
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "viewer-series-picker.png")

    # S and shift+S step through the series; each is where it was left.
    page.locator(".viewer-stage").focus()
    page.keyboard.press("s")
    shown(page, series=0, slices=20)
    assert viewer.get_attribute("data-current") == "5"
    assert page.locator("#heatmap-img").is_visible()
    assert not page.get_by_test_id("ai-note").is_visible()
    assert page.get_by_test_id("measurement-list").is_visible()  # not on this one
    page.keyboard.press("Shift+S")
    shown(page, series=1, slices=10)
    assert viewer.get_attribute("data-current") == "2"
    # Switching opens the other series at the level the reader is looking at: slice
    # 9 of this one lies 40 mm up, as slice 17 of the analysed one does.
    for _ in range(6):
        page.keyboard.press("ArrowDown")
    assert viewer.get_attribute("data-current") == "8"
    page.keyboard.press("s")
    shown(page, series=0, slices=20)
    assert viewer.get_attribute("data-current") == "16"
    page.keyboard.press("?")
    assert "next / previous series" in page.locator("#viewer-help").inner_text()
    page.keyboard.press("Escape")

    page.get_by_label("No stroke").check()
    page.get_by_role("button", name="Save reading").click()
    page.get_by_test_id("current-review").wait_for()
    [measurement] = study.reviews.get(is_current=True).measurements
    assert (measurement["series"], measurement["slice"]) == (1, 2)
    assert measurement["mm"] == 24.0
    words = page.get_by_test_id("review-measurements").inner_text()
    assert 'Series 2 "BRAIN 5MM", slice 3: length 24.0 mm' in words
    assert page.js_errors == []
