"""The worklist's clocks keep running in the browser between row reloads (Debian's
Chromium, with Playwright's clock moved on instead of waiting)."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from tests.browser import needs_chromium

from .test_worklist_pages import add_studies

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
    pytest.mark.django_db(transaction=True),
]


def test_the_scan_and_onset_clocks_tick(browser, live_server, clinician, radiologist):
    now = timezone.now()
    add_studies(
        clinician,
        1,
        acquired_at=now - timedelta(minutes=12, seconds=10),
        symptom_onset=now - timedelta(minutes=59, seconds=10),
    )
    client = Client()
    client.force_login(radiologist)
    context = browser.new_context()
    context.add_cookies(
        [
            {
                "name": "sessionid",
                "value": client.cookies["sessionid"].value,
                "url": live_server.url,
            }
        ]
    )
    page = context.new_page()
    page.clock.install()
    page.goto(f"{live_server.url}/studies/")
    scan, onset = (
        page.locator('[data-clock="scan"]'),
        page.locator('[data-clock="onset"]'),
    )
    assert scan.inner_text() == "scanned 12 min ago"
    assert onset.inner_text() == "onset 59 min ago"
    page.clock.fast_forward("02:00")
    assert scan.inner_text() == "scanned 14 min ago"
    assert onset.inner_text() == "onset 1 h 01 min ago"
    context.close()
