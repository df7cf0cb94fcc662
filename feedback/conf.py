"""Settings of the promotion gate (stroke_portal.settings says why each default)."""

from django.conf import settings


def promotion_min_specificity() -> float:
    return float(settings.PROMOTION_MIN_SPECIFICITY)


def promotion_min_locked_studies() -> int:
    return int(settings.PROMOTION_MIN_LOCKED_STUDIES)
