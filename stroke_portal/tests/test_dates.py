from datetime import UTC, date, datetime, timedelta

from django.utils import timezone

from stroke_portal.dates import day_start


def test_day_start_is_local_midnight():
    with timezone.override("Europe/Berlin"):
        start = day_start(date(2024, 5, 3))
    assert start == datetime(2024, 5, 2, 22, 0, tzinfo=UTC)


def test_day_start_next_day_is_local_midnight_across_dst():
    with timezone.override("Europe/Berlin"):
        end = day_start(date(2024, 3, 30)) + timedelta(days=1)
    # The clocks go forward on 31 March: that midnight is 23:00 UTC, not 22:00.
    assert end == datetime(2024, 3, 30, 23, 0, tzinfo=UTC)
