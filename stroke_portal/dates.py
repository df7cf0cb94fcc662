"""Date helpers shared by the apps' selectors."""

from datetime import date, datetime, time

from django.utils import timezone


def day_start(day: date) -> datetime:
    """Midnight starting ``day`` in the current time zone, as an aware datetime.

    Date-range filters compare timestamps with it, so "from 3 May" means from local
    midnight, not from midnight UTC.
    """
    return timezone.make_aware(datetime.combine(day, time.min))
