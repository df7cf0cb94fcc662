"""The clocks a stroke team works against, on the worklist, the clinician's list and
the study page: time since the scan (acquisition, else the last slice's arrival,
else the study's arrival) and since symptom onset, exact times in the portal's time
zone, and no query per row."""

import re
from datetime import UTC, datetime, timedelta

from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from diagnosis.models import Study

from .test_worklist_pages import add_studies, page_rows


def row_of(body: str, study: Study) -> str:
    return re.search(rf'<tr data-study="{study.pk}">.*?</tr>', body, re.S).group(0)


def clock(html: str, name: str) -> str:
    """The text and title of the `name` clock ("scan", "onset") in `html`."""
    match = re.search(rf'<span[^>]*data-clock="{name}"[^>]*>(.*?)</span>', html)
    return match.group(0) if match else ""


def test_a_row_shows_minutes_since_the_scan_and_since_onset(clinician, as_radiologist):
    now = timezone.now()
    (study,) = add_studies(
        clinician,
        1,
        acquired_at=now - timedelta(minutes=12, seconds=20),
        last_instance_at=now - timedelta(minutes=3),
        symptom_onset=now - timedelta(hours=2, minutes=5, seconds=10),
    )
    row = row_of(page_rows(as_radiologist)[1], study)
    assert ">scanned 12 min ago</span>" in clock(row, "scan")
    assert ">onset 2 h 05 min ago</span>" in clock(row, "onset")


def test_without_an_acquisition_time_the_clock_says_received_or_uploaded(
    clinician, as_radiologist
):
    now = timezone.now()
    received, uploaded, from_scanner = add_studies(clinician, 3)
    Study.objects.filter(pk=received.pk).update(
        last_instance_at=now - timedelta(minutes=7), arrival="dicom"
    )
    Study.objects.filter(pk=uploaded.pk).update(created_at=now - timedelta(minutes=40))
    Study.objects.filter(pk=from_scanner.pk).update(
        created_at=now - timedelta(minutes=5), arrival="stow"
    )
    body = page_rows(as_radiologist)[1]
    assert ">received 7 min ago</span>" in clock(row_of(body, received), "scan")
    assert ">uploaded 40 min ago</span>" in clock(row_of(body, uploaded), "scan")
    assert ">received 5 min ago</span>" in clock(row_of(body, from_scanner), "scan")
    # No onset entered: no onset clock.
    assert clock(row_of(body, uploaded), "onset") == ""


def test_exact_times_are_in_the_portals_time_zone(settings, clinician, as_radiologist):
    settings.TIME_ZONE = "Europe/Berlin"
    scanned = datetime(2026, 7, 1, 8, 30, tzinfo=UTC)  # 10:30 in Berlin (CEST)
    onset = datetime(2026, 7, 1, 7, 45, tzinfo=UTC)
    (study,) = add_studies(clinician, 1, acquired_at=scanned, symptom_onset=onset)
    row = row_of(page_rows(as_radiologist)[1], study)
    assert 'title="Scanned 2026-07-01 10:30 CEST"' in clock(row, "scan")
    assert 'title="Symptom onset 2026-07-01 09:45 CEST"' in clock(row, "onset")
    page = as_radiologist.get(reverse("diagnosis:study-detail", args=[study.pk]))
    text = page.content.decode()
    assert re.search(r'data-testid="scan-time">2026-07-01 10:30 CEST<', text)
    assert re.search(r'data-testid="onset-time">2026-07-01 09:45 CEST<', text)


def test_the_clinicians_list_shows_the_clocks_too(clinician, as_clinician):
    now = timezone.now()
    (study,) = add_studies(
        clinician,
        1,
        acquired_at=now - timedelta(minutes=25),
        symptom_onset=now - timedelta(minutes=95),
    )
    row = row_of(page_rows(as_clinician)[1], study)
    assert ">scanned 25 min ago</span>" in clock(row, "scan")
    assert ">onset 1 h 35 min ago</span>" in clock(row, "onset")


def test_the_study_page_header_shows_both_clocks(clinician, as_radiologist):
    now = timezone.now()
    (study,) = add_studies(
        clinician,
        1,
        acquired_at=now - timedelta(minutes=9),
        symptom_onset=now - timedelta(hours=1, minutes=2),
    )
    page = as_radiologist.get(reverse("diagnosis:study-detail", args=[study.pk]))
    header = re.search(
        r'data-testid="study-clocks">(.*?)</p>', page.content.decode(), re.S
    ).group(1)
    assert ">scanned 9 min ago</span>" in clock(header, "scan")
    assert ">onset 1 h 02 min ago</span>" in clock(header, "onset")


def test_the_clocks_cost_no_query_per_row(clinician, as_radiologist):
    now = timezone.now()

    def queries_for_page() -> int:
        cache.clear()  # the shared totals are counted each time
        with CaptureQueriesContext(connection) as queries:
            as_radiologist.get(reverse("diagnosis:study-list"))
        return len(queries)

    add_studies(clinician, 2, acquired_at=now, symptom_onset=now)
    queries_for_page()  # the session's first request writes it
    few = queries_for_page()
    add_studies(clinician, 20, first=2, acquired_at=now, symptom_onset=now)
    assert queries_for_page() == few
