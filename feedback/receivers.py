"""Feedback follows the readings: a reading that disagrees with the AI opens a
feedback case, in the reading's transaction (see diagnosis.signals)."""

from django.dispatch import receiver

from diagnosis.signals import review_saved

from . import services


@receiver(review_saved, dispatch_uid="feedback-case-on-review-saved")
def case_on_review_saved(sender, review, **kwargs) -> None:
    services.feedback_case_from_review(review=review)
